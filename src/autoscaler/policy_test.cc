#include "autoscaler/policy.h"

#include <gtest/gtest.h>

#include "core/testing/fake_clock.h"

namespace baton::autoscaler {
namespace {

using namespace std::chrono_literals;

PolicyParams params(int concurrency = 10) {
  PolicyParams p;
  p.concurrency = concurrency;  // target per instance: 10 * 0.7 = 7
  p.idle = 300s;
  return p;
}

// Drives an Autoscaler once a second with a fake clock; instances become ready at once.
struct Harness {
  explicit Harness(PolicyParams p, int min = 0, int max = 100) : as(p), min(min), max(max) {}
  Decision tick(double concurrency, int64_t arrivals = -1, int parked = 0) {
    clock.advance(1s);
    Observation o;
    o.concurrency = concurrency;
    o.arrivals = arrivals < 0 ? (concurrency > 0 ? 1 : 0) : arrivals;
    o.parked = parked;
    o.ready = ready;
    o.desired = ready;
    o.min = min;
    o.max = max;
    Decision d = as.step(o, clock.now());
    ready = d.desired;
    return d;
  }
  testing::FakeClock clock;
  Autoscaler as;
  int min;
  int max;
  int ready = 0;
};

TEST(Policy, StableLoadGivesCeilOfConcurrencyOverTarget) {
  Harness h(params(), 0, 100);
  h.ready = 1;
  Decision d;
  for (int i = 0; i < 120; ++i) d = h.tick(140);
  EXPECT_EQ(d.desired, 20);  // 140 / 7
  EXPECT_FALSE(d.panic);
  EXPECT_NE(d.reason.find("stable"), std::string::npos);
}

TEST(Policy, NeverAboveMaxNorBelowMin) {
  Harness h(params(), 2, 5);
  h.ready = 2;
  Decision d;
  for (int i = 0; i < 120; ++i) d = h.tick(1000);
  EXPECT_EQ(d.desired, 5);
  EXPECT_NE(d.reason.find("capped at max 5"), std::string::npos);
  for (int i = 0; i < 900; ++i) d = h.tick(0);
  EXPECT_EQ(d.desired, 2);
}

TEST(Policy, PanicOnBurstAndNoScaleDownWhilePanicking) {
  Harness h(params(), 0, 100);
  h.ready = 1;
  for (int i = 0; i < 60; ++i) h.tick(5);
  EXPECT_EQ(h.ready, 1);
  Decision d = h.tick(140);  // panic window average jumps; stable barely moves
  EXPECT_TRUE(d.panic);
  EXPECT_GE(d.desired, 3);
  for (int i = 0; i < 5; ++i) d = h.tick(140);
  EXPECT_EQ(d.desired, 20);
  // The load goes away: no scale-down while panicking (60 s after the last over-threshold step).
  for (int i = 0; i < 30; ++i) {
    d = h.tick(1);
    EXPECT_EQ(d.desired, 20) << i;
  }
  for (int i = 0; i < 120; ++i) d = h.tick(1);
  EXPECT_FALSE(d.panic);
  EXPECT_EQ(d.desired, 1);
}

TEST(Policy, ScaleFromZeroAtOnceSizedByParkedRequests) {
  PolicyParams p = params();
  Harness h(p, 0, 100);
  h.ready = 0;
  for (int i = 0; i < 600; ++i) EXPECT_EQ(h.tick(0).desired, 0);
  // One request parked: desired 1 without waiting for any window.
  Decision d = h.tick(0, 1, 1);
  EXPECT_EQ(d.desired, 1);
  EXPECT_NE(d.reason.find("scale from zero"), std::string::npos);
  Harness big(p, 0, 100);
  d = big.tick(0, 70, 70);
  EXPECT_EQ(d.desired, 10);
  // ...but never past max.
  Harness capped(p, 0, 4);
  EXPECT_EQ(capped.tick(0, 70, 70).desired, 4);
}

TEST(Policy, ScaleToZeroAfterIdleOnlyWhenMinIsZero) {
  PolicyParams p = params();
  p.adaptive_idle = false;
  p.idle = 30s;
  Harness h(p, 0, 10);
  h.ready = 1;
  h.tick(3);
  for (int i = 1; i < 30; ++i) EXPECT_EQ(h.tick(0).desired, 1) << i;
  Decision d = h.tick(0);
  EXPECT_EQ(d.desired, 0);
  EXPECT_NE(d.reason.find("idle 30s"), std::string::npos);

  Harness one(p, 1, 10);
  one.ready = 1;
  one.tick(3);
  for (int i = 0; i < 600; ++i) EXPECT_EQ(one.tick(0).desired, 1);
}

TEST(Policy, ScaleDownIsRateLimitedAndDelayed) {
  PolicyParams p = params();
  p.stable_window = 2s;  // short, so the rate limit is what binds
  p.panic_window = 1s;
  Harness h(p, 1, 100);
  h.ready = 16;
  for (int i = 0; i < 10; ++i) h.tick(112);  // 16 instances' worth
  EXPECT_EQ(h.ready, 16);
  std::vector<int> seen;
  for (int i = 0; i < 5; ++i) seen.push_back(h.tick(0).desired);
  EXPECT_EQ(seen, (std::vector<int>{8, 4, 2, 1, 1}));  // at most halving per step, min 1

  p.scale_down_delay = 30s;
  Harness delayed(p, 1, 100);
  delayed.ready = 16;
  for (int i = 0; i < 10; ++i) delayed.tick(112);
  for (int i = 0; i < 29; ++i) EXPECT_EQ(delayed.tick(0).desired, 16) << i;
  for (int i = 0; i < 5; ++i) delayed.tick(0);
  EXPECT_EQ(delayed.ready, 8);  // each lower count holds for the delay, then halves again
}

TEST(Policy, AdaptiveKeepAliveFollowsTheGaps) {
  PolicyParams p = params();
  p.idle = 300s;
  // Requests every 20 s: keep one warm just past 20 s.
  Harness h(p, 0, 10);
  h.ready = 1;
  EXPECT_EQ(h.as.keepAlive(), 90s);  // fallback until enough gaps were seen
  for (int k = 0; k < 10; ++k) {
    h.tick(1);
    for (int i = 0; i < 19; ++i) h.tick(0);
  }
  // Just past 20 s bridges every gap seen: twice that, so that the next longer gap is not a
  // cold start (issue 18).
  EXPECT_EQ(h.as.keepAlive(), 42s);
  EXPECT_EQ(h.ready, 1);  // never went to zero: no cold start
  // Requests every 10 minutes (longer than `idle`): go to zero early. (Without the rhythm, which
  // would recognise the period: see PeriodicCallsArePrewarmedAndNothingRunsBetween.)
  p.rhythm = false;
  Harness sparse(p, 0, 10);
  for (int k = 0; k < 8; ++k) {
    sparse.tick(1, 1, sparse.ready == 0 ? 1 : 0);
    for (int i = 0; i < 599; ++i) sparse.tick(0);
  }
  EXPECT_EQ(sparse.as.keepAlive(), 10s);
  EXPECT_EQ(sparse.ready, 0);
  // The manifest's idle is the ceiling.
  p.idle = 15s;
  Harness capped(p, 0, 10);
  for (int k = 0; k < 10; ++k) {
    capped.tick(1);
    for (int i = 0; i < 19; ++i) capped.tick(0);
  }
  EXPECT_LE(capped.as.keepAlive(), 15s);
}

// Issue 18: a timer every 300 s with a 2 s cold start. After a few periods every call finds an
// instance ready, and between calls nothing runs.
TEST(Policy, PeriodicCallsArePrewarmedAndNothingRunsBetween) {
  Harness h(params(), 0, 10);
  const int cold_start_ticks = 2;
  int pending = 0;        // ticks until a started instance is ready
  int cold = 0, late_cold = 0;
  int64_t warm_ticks = 0;
  std::string prewarm_reason;
  for (int call = 0; call < 12; ++call) {
    for (int t = 0; t < 300; ++t) {
      const bool arrives = t == 0;
      const bool ready = h.ready > 0 && pending == 0;
      if (arrives && !ready) {
        ++cold;
        if (call >= 6) ++late_cold;
      }
      const int before = h.ready;
      Decision d = h.tick(arrives ? 0.5 : 0, arrives ? 1 : 0, arrives && !ready ? 1 : 0);
      if (before == 0 && h.ready > 0) pending = cold_start_ticks;
      else if (pending > 0) --pending;
      if (call >= 6 && h.ready > 0) ++warm_ticks;
      if (d.reason.starts_with("prewarm:")) prewarm_reason = d.reason;
    }
  }
  EXPECT_EQ(late_cold, 0) << "after learning, no call is cold (" << cold << " in all)";
  EXPECT_LE(cold, 6);
  // Per period: up a few seconds ahead, the call, a short linger: far below 300 s.
  EXPECT_LT(warm_ticks, 6 * 15) << "an instance idled between calls";
  EXPECT_NE(prewarm_reason.find("prewarm: period 300 s, next expected"), std::string::npos)
      << prewarm_reason;
  ASSERT_TRUE(h.as.nextExpected().has_value());
}

// A call every 10 s (a timer six times a minute) that runs across a tick, cold start 2 s: an
// instance from 3 s before each call to 2 s after it, none in between (the 4 s it would be at
// zero are more than a cold start).
TEST(Policy, ShortPeriodsGoToZeroWhenTheGapIsLongerThanAColdStart) {
  Harness h(params(), 0, 10);
  int late_cold = 0, zero_ticks = 0;
  for (int call = 0; call < 40; ++call) {
    for (int t = 0; t < 10; ++t) {
      const bool arrives = t == 0;
      if (arrives && h.ready == 0 && call >= 10) ++late_cold;
      h.tick(t < 2 ? 0.05 : 0, arrives ? 1 : 0, arrives && h.ready == 0 ? 1 : 0);
      if (call >= 10 && h.ready == 0) ++zero_ticks;
    }
  }
  EXPECT_EQ(late_cold, 0);
  EXPECT_GE(zero_ticks, 30 * 3) << "at zero part of every period";
}

// A cron-like client on the minute that skips minutes (4, 5 or 6 minutes apart): an instance
// around each minute mark until the call comes, none between, no cold start once learned.
TEST(Policy, AGridOfMinuteMarksIsPrewarmedAtEachMark) {
  Harness h(params(), 0, 10);
  const int cold_start_ticks = 2;
  const int minutes[] = {5, 4, 6, 5, 5, 6, 4, 5, 6, 4};
  int pending = 0, late_cold = 0;
  int64_t warm_ticks = 0, late_ticks = 0;
  std::string reason;
  for (int call = 0; call < 30; ++call) {
    const int period = minutes[call % 10] * 60;
    for (int t = 0; t < period; ++t) {
      const bool arrives = t == 0;
      const bool ready = h.ready > 0 && pending == 0;
      if (arrives && !ready && call >= 12) ++late_cold;
      const int before = h.ready;
      Decision d = h.tick(arrives ? 0.5 : 0, arrives ? 1 : 0, arrives && !ready ? 1 : 0);
      if (before == 0 && h.ready > 0) {
        pending = cold_start_ticks;
      } else if (pending > 0) {
        --pending;
      }
      if (call >= 12) {
        ++late_ticks;
        if (h.ready > 0) ++warm_ticks;
      }
      if (d.reason.starts_with("prewarm: grid")) reason = d.reason;
    }
  }
  EXPECT_EQ(late_cold, 0);
  EXPECT_LT(warm_ticks, late_ticks / 6) << "an instance idled between the minute marks";
  EXPECT_NE(reason.find("prewarm: grid 60 s up to 360 s, next expected"), std::string::npos)
      << reason;
}

// What it learned survives a restart of the policy from its stored state.
TEST(Policy, ARestoredPolicyKeepsItsRhythm) {
  Harness h(params(), 0, 10);
  for (int call = 0; call < 8; ++call) {
    h.tick(0.5, 1, h.ready == 0 ? 1 : 0);
    for (int t = 1; t < 300; ++t) h.tick(0, 0);
  }
  auto stored = Rhythm::fromJson(h.as.rhythm().toJson());
  ASSERT_TRUE(stored.isOk());
  Harness again(params(), 0, 10);
  again.clock.advance(h.clock.now() - again.clock.now());
  again.as.restore(std::move(*stored));
  ASSERT_TRUE(again.as.nextExpected().has_value());
  EXPECT_EQ(*again.as.nextExpected(), *h.as.nextExpected());
  // Idle now (the call is due in a moment): the restored policy brings one up ahead of it.
  again.tick(0, 0);
  EXPECT_EQ(again.ready, 1) << "prewarmed for the call due at the next tick";
}

// Bounds still rule: a prewarm never goes above max (max 0 stops everything) nor below min.
TEST(Policy, PrewarmStaysWithinTheBounds) {
  Harness h(params(), 0, 10);
  for (int call = 0; call < 8; ++call) {
    h.tick(0.5, 1, h.ready == 0 ? 1 : 0);
    for (int t = 1; t < 300; ++t) h.tick(0, 0);
  }
  EXPECT_EQ(h.ready, 1);  // prewarmed for the next call
  h.max = 0;
  EXPECT_EQ(h.tick(0, 0).desired, 0);
  h.max = 10;
  h.min = 2;
  for (int t = 0; t < 100; ++t) EXPECT_GE(h.tick(0, 0).desired, 2);
}

// Issue 18: with a keep-alive chosen from the last gaps only, every gap longer than all before
// it was a cold start. Gaps that grow slowly (12 s, 13 s, ... 40 s, as on a steady service
// through a quiet hour) now cost at most a couple.
TEST(Policy, ANewLongestGapIsNotAColdStartEachTime) {
  PolicyParams p = params();
  p.rhythm = false;  // the keep-alive alone
  Harness h(p, 0, 10);
  int cold = 0;
  for (int gap = 12; gap <= 40; ++gap) {
    if (h.ready == 0) ++cold;
    h.tick(0.5, 1, h.ready == 0 ? 1 : 0);
    for (int i = 1; i < gap; ++i) h.tick(0, 0);
  }
  EXPECT_LE(cold, 3) << "keep-alive " << h.as.keepAlive().count() << " ms";
}

TEST(Policy, ToleranceBandHoldsTheCountOnSmallExcess) {
  // HPA's 10% band: a stable demand up to 1.1 x what the current count serves keeps the count.
  // (With one instance any excess is already 2x in the panic window: KPA panics there.)
  Harness h(params(), 0, 100);
  h.ready = 3;
  Decision d;
  for (int i = 0; i < 120; ++i) d = h.tick(22);  // 22 <= 3 x 7 x 1.1
  EXPECT_EQ(d.desired, 3);
  EXPECT_FALSE(d.panic);
  for (int i = 0; i < 120; ++i) d = h.tick(25);  // beyond the band: ceil(25 / 7)
  EXPECT_EQ(d.desired, 4);
  PolicyParams p = params();
  p.tolerance = 0;  // plain KPA
  Harness kpa(p, 0, 100);
  kpa.ready = 3;
  for (int i = 0; i < 120; ++i) d = kpa.tick(22);
  EXPECT_EQ(d.desired, 4);
}

TEST(Policy, LittlesLawReactsToTheArrivalRateBeforeConcurrency) {
  // 60 s at 10 rps with 2 in flight (0.2 s each), then 1,000 arrivals in one second while the
  // in-flight average has not moved yet: rate x service time already asks for more.
  auto run = [](bool little, double queued) {
    PolicyParams p = params();
    p.little_law = little;
    Harness h(p, 0, 100);
    h.ready = 1;
    for (int i = 0; i < 60; ++i) h.tick(2, 10);
    h.clock.advance(std::chrono::seconds(1));
    Observation o;
    o.concurrency = 2;
    o.queued = queued;
    o.arrivals = 1000;
    o.ready = o.desired = 1;
    o.max = 100;
    return h.as.step(o, h.clock.now());
  };
  Decision d = run(true, 0);
  EXPECT_TRUE(d.panic);
  EXPECT_GE(d.desired, 2);
  d = run(false, 0);
  EXPECT_FALSE(d.panic);
  EXPECT_EQ(d.desired, 1);
}

TEST(Policy, LittlesLawLeavesQueueingOut) {
  // Requests that waited for a cold start are not service time: with the whole in-flight count
  // reported as queued, the rate term adds nothing.
  PolicyParams p = params();
  Harness h(p, 0, 100);
  h.ready = 1;
  Observation o;
  o.max = 100;
  Decision d;
  for (int i = 0; i < 60; ++i) {
    h.clock.advance(std::chrono::seconds(1));
    o.concurrency = 5;
    o.queued = 5;
    o.arrivals = i == 59 ? 100 : 1;
    o.ready = o.desired = 1;
    d = h.as.step(o, h.clock.now());
  }
  EXPECT_EQ(d.desired, 1);
}

TEST(Policy, SameInputsSameDecisions) {
  auto run = [] {
    Harness h(params(), 0, 20);
    std::vector<int> out;
    for (int i = 0; i < 600; ++i) {
      double c = (i / 37) % 3 == 0 ? 0 : (i % 11) * 3.0;
      out.push_back(h.tick(c, c > 0 ? static_cast<int64_t>(c) : 0, h.ready == 0 && c > 0).desired);
    }
    return out;
  };
  EXPECT_EQ(run(), run());
}

TEST(Policy, MaxZeroStopsEverything) {
  Harness h(params(), 0, 0);
  EXPECT_EQ(h.tick(50, 50, 50).desired, 0);
}

}  // namespace
}  // namespace baton::autoscaler
