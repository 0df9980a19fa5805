#include "node/health.h"

#include <gtest/gtest.h>

namespace baton::node {
namespace {

using model::InstanceState;
using std::chrono::seconds;

const TimePoint kT0 = fromUnixMillis(1'700'000'000'000);

TEST(HealthTest, StartsStartingAndBecomesHealthyAfterOneSuccess) {
  HealthMachine h;
  h.reset(kT0);
  EXPECT_EQ(h.state(), InstanceState::kStarting);
  EXPECT_EQ(h.onProbe(false, "refused", kT0), HealthEvent::kNone);
  EXPECT_EQ(h.state(),
            InstanceState::kStarting);  // failures while starting do not count
  EXPECT_EQ(h.message(), "health check failing: refused");
  EXPECT_EQ(h.onProbe(true, "", kT0 + seconds(1)), HealthEvent::kBecameHealthy);
  EXPECT_EQ(h.state(), InstanceState::kHealthy);
  EXPECT_EQ(h.message(), "");
}

TEST(HealthTest, ConfigurableSuccessesToHealthy) {
  HealthMachine h(HealthOptions{.successes_to_healthy = 3});
  h.reset(kT0);
  EXPECT_EQ(h.onProbe(true, "", kT0), HealthEvent::kNone);
  EXPECT_EQ(h.onProbe(true, "", kT0), HealthEvent::kNone);
  EXPECT_EQ(h.onProbe(true, "", kT0), HealthEvent::kBecameHealthy);
}

TEST(HealthTest, SuccessesToHealthyMustBeConsecutive) {
  HealthMachine h(HealthOptions{.successes_to_healthy = 2});
  h.reset(kT0);
  h.onProbe(true, "", kT0);
  h.onProbe(false, "x", kT0);
  EXPECT_EQ(h.onProbe(true, "", kT0), HealthEvent::kNone);
  EXPECT_EQ(h.onProbe(true, "", kT0), HealthEvent::kBecameHealthy);
}

TEST(HealthTest, UnhealthyAfterThreeConsecutiveFailures) {
  HealthMachine h;
  h.reset(kT0);
  h.onProbe(true, "", kT0);
  EXPECT_EQ(h.onProbe(false, "a", kT0 + seconds(1)), HealthEvent::kNone);
  EXPECT_EQ(h.onProbe(false, "b", kT0 + seconds(2)), HealthEvent::kNone);
  EXPECT_EQ(h.onProbe(true, "", kT0 + seconds(3)),
            HealthEvent::kNone);  // resets the count
  EXPECT_EQ(h.onProbe(false, "a", kT0 + seconds(4)), HealthEvent::kNone);
  EXPECT_EQ(h.onProbe(false, "b", kT0 + seconds(5)), HealthEvent::kNone);
  EXPECT_EQ(h.state(), InstanceState::kHealthy);
  EXPECT_EQ(h.onProbe(false, "c", kT0 + seconds(6)), HealthEvent::kBecameUnhealthy);
  EXPECT_EQ(h.state(), InstanceState::kUnhealthy);
  EXPECT_EQ(h.message(), "3 consecutive health checks failed: c");
  EXPECT_EQ(h.since(), kT0 + seconds(6));
}

TEST(HealthTest, RecoversAfterOneSuccess) {
  HealthMachine h(HealthOptions{.failures_to_unhealthy = 1});
  h.reset(kT0);
  h.onProbe(true, "", kT0);
  EXPECT_EQ(h.onProbe(false, "x", kT0), HealthEvent::kBecameUnhealthy);
  EXPECT_EQ(h.onProbe(true, "", kT0 + seconds(1)), HealthEvent::kBecameHealthy);
  EXPECT_EQ(h.state(), InstanceState::kHealthy);
}

TEST(HealthTest, RestartOnceWhenUnhealthyTooLong) {
  HealthMachine h(HealthOptions{.failures_to_unhealthy = 1});
  h.reset(kT0);
  h.onProbe(true, "", kT0);
  h.onProbe(false, "x", kT0);
  EXPECT_EQ(h.tick(kT0 + seconds(29)), HealthEvent::kNone);
  h.onProbe(false, "x",
            kT0 + seconds(29));  // still failing: the episode goes on
  EXPECT_EQ(h.tick(kT0 + seconds(30)), HealthEvent::kRestart);
  EXPECT_EQ(h.tick(kT0 + seconds(31)), HealthEvent::kNone);  // once per episode
}

TEST(HealthTest, RecoveryEndsTheUnhealthyEpisode) {
  HealthMachine h(HealthOptions{.failures_to_unhealthy = 1});
  h.reset(kT0);
  h.onProbe(true, "", kT0);
  h.onProbe(false, "x", kT0);
  h.onProbe(true, "", kT0 + seconds(20));
  h.onProbe(false, "x", kT0 + seconds(25));
  EXPECT_EQ(h.tick(kT0 + seconds(40)),
            HealthEvent::kNone);  // unhealthy for 15 s only
  EXPECT_EQ(h.tick(kT0 + seconds(55)), HealthEvent::kRestart);
}

TEST(HealthTest, TickNeverRestartsStartingOrHealthy) {
  HealthMachine h;
  h.reset(kT0);
  EXPECT_EQ(h.tick(kT0 + seconds(3600)), HealthEvent::kNone);
  h.onProbe(true, "", kT0);
  EXPECT_EQ(h.tick(kT0 + seconds(7200)), HealthEvent::kNone);
}

TEST(HealthTest, ExitIsReportedAsUnhealthyAndIgnoresLateProbes) {
  HealthMachine h;
  h.reset(kT0);
  h.onProbe(true, "", kT0);
  EXPECT_EQ(h.onExit(2, kT0 + seconds(1)), HealthEvent::kExited);
  EXPECT_TRUE(h.exited());
  EXPECT_EQ(h.state(), InstanceState::kUnhealthy);
  EXPECT_EQ(h.message(), "exited with code 2");
  EXPECT_EQ(h.onProbe(true, "", kT0 + seconds(2)), HealthEvent::kNone);
  EXPECT_EQ(h.onExit(2, kT0 + seconds(2)), HealthEvent::kNone);
  h.reset(kT0 + seconds(3));
  EXPECT_EQ(h.state(), InstanceState::kStarting);
  EXPECT_EQ(h.message(), "");
}

}  // namespace
}  // namespace baton::node
