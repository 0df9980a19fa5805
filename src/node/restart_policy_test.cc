#include "node/restart_policy.h"

#include <gtest/gtest.h>

namespace baton::node {
namespace {

using std::chrono::seconds;

const TimePoint kT0 = fromUnixMillis(1'700'000'000'000);

TEST(RestartPolicyTest, BackoffDoublesAndIsCapped) {
  RestartPolicy p(RestartOptions{.max_attempts = 100});
  TimePoint t = kT0;
  std::vector<int64_t> delays;
  for (int i = 0; i < 8; ++i) {
    p.onStart(t);
    RestartDecision d = p.onCrash(t + seconds(1));
    ASSERT_FALSE(d.give_up);
    delays.push_back(std::chrono::duration_cast<seconds>(d.delay).count());
    t += seconds(100);
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{1, 2, 4, 8, 16, 30, 30, 30}));
}

TEST(RestartPolicyTest, FailsAfterMaxAttemptsWithoutHealthy) {
  RestartPolicy p;
  p.onStart(kT0);
  EXPECT_FALSE(p.onCrash(kT0).give_up);
  p.onStart(kT0 + seconds(1));
  EXPECT_FALSE(p.onCrash(kT0 + seconds(1)).give_up);
  p.onStart(kT0 + seconds(3));
  RestartDecision d = p.onCrash(kT0 + seconds(3));
  EXPECT_TRUE(d.give_up);
  EXPECT_EQ(d.reason, "crashed 3 times without becoming healthy");
}

TEST(RestartPolicyTest, HealthyResetsTheAttemptCountButNotTheBackoff) {
  RestartPolicy p;
  p.onStart(kT0);
  p.onCrash(kT0);
  p.onStart(kT0 + seconds(1));
  p.onCrash(kT0 + seconds(1));
  p.onStart(kT0 + seconds(3));
  p.observe(true, kT0 + seconds(4));  // healthy briefly
  EXPECT_EQ(p.crashesSinceHealthy(), 0);
  RestartDecision d = p.onCrash(kT0 + seconds(10));
  EXPECT_FALSE(d.give_up);
  EXPECT_EQ(d.delay,
            seconds(4));  // healthy for less than 60 s: backoff keeps growing
}

TEST(RestartPolicyTest, BackoffResetsAfterSixtySecondsHealthy) {
  RestartPolicy p;
  p.onStart(kT0);
  p.onCrash(kT0);
  p.onStart(kT0 + seconds(1));
  p.onCrash(kT0 + seconds(1));
  p.onStart(kT0 + seconds(3));
  p.observe(true, kT0 + seconds(4));
  p.observe(true, kT0 + seconds(64));
  EXPECT_EQ(p.backoffLevel(), 0);
  EXPECT_EQ(p.onCrash(kT0 + seconds(65)).delay, seconds(1));
}

TEST(RestartPolicyTest, BackoffResetsAtCrashWhenHealthyLongEnough) {
  RestartPolicy p;
  p.onStart(kT0);
  p.onCrash(kT0);
  p.onStart(kT0 + seconds(1));
  p.observe(true, kT0 + seconds(2));
  // No observe() call in between: the crash itself sees the 60 s of health.
  EXPECT_EQ(p.onCrash(kT0 + seconds(70)).delay, seconds(1));
}

TEST(RestartPolicyTest, StartupDeadline) {
  RestartPolicy p;
  p.onStart(kT0);
  EXPECT_FALSE(p.startupExpired(kT0 + seconds(59)));
  EXPECT_TRUE(p.startupExpired(kT0 + seconds(60)));
  p.observe(true, kT0 + seconds(10));
  EXPECT_FALSE(p.startupExpired(kT0 + seconds(600)));  // healthy once: no deadline
  p.onStart(kT0 + seconds(700));
  EXPECT_TRUE(p.startupExpired(kT0 + seconds(760)));
}

}  // namespace
}  // namespace baton::node
