// The simulator is deterministic: the same trace and seed give the same decisions and results;
// the per-minute placement keeps every minute's count; the oracle takes no cold start and pays
// one cold start plus the service per isolated request.
#include "sim.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

namespace baton::autoscale_sim {
namespace {

TEST(Simulator, SameTraceSameDecisions) {
  std::optional<Scenario> sc = builtin("spiky-api", 7);
  ASSERT_TRUE(sc.has_value());
  sc->duration_s = 4 * 3600;
  SimOptions opt;
  opt.record_decisions = true;
  for (const std::string& policy : policyNames()) {
    Result a = simulate(*sc, policy, opt);
    Result b = simulate(*sc, policy, opt);
    EXPECT_GT(a.requests, 100u) << policy;
    EXPECT_EQ(a.decisions, b.decisions) << policy;
    EXPECT_EQ(a.decision_hash, b.decision_hash) << policy;
    EXPECT_EQ(a.instance_seconds, b.instance_seconds) << policy;
    EXPECT_EQ(a.over_100ms, b.over_100ms) << policy;
    EXPECT_EQ(a.cold_starts, b.cold_starts) << policy;
  }
  // Another seed gives another trace.
  std::optional<Scenario> other = builtin("spiky-api", 8);
  other->duration_s = sc->duration_s;
  EXPECT_NE(simulate(*other, "baton", opt).decision_hash,
            simulate(*sc, "baton", opt).decision_hash);
}

TEST(Simulator, BurstOntoZeroIsServedWithinTheMax) {
  std::optional<Scenario> sc = builtin("bursts", 1);
  sc->duration_s = 1800;
  Result r = simulate(*sc, "baton", SimOptions{});
  EXPECT_GT(r.requests, 9000u);
  EXPECT_LE(r.peak_instances, sc->scale.max);
  EXPECT_GT(r.cold_starts, 0u);
  EXPECT_EQ(r.lost, 0u);
}

// Requests at given times, each with the same service time.
class FixedStream final : public ArrivalStream {
 public:
  FixedStream(std::vector<double> times, double service)
      : times_(std::move(times)), service_(service) {}
  bool next(double& arrival, double& service) override {
    if (i_ >= times_.size()) return false;
    arrival = times_[i_++];
    service = service_;
    return true;
  }

 private:
  std::vector<double> times_;
  size_t i_ = 0;
  double service_;
};

Scenario fixedScenario(std::vector<double> times, double service_s, double cold_start_s,
                       int concurrency = 10) {
  Scenario sc;
  sc.name = "fixed";
  sc.scale.min = 0;
  sc.scale.max = 10;
  sc.scale.concurrency = concurrency;
  sc.epoch = fromUnixMillis(0);
  sc.duration_s = times.back() + 1;
  sc.cold_start_s = cold_start_s;
  sc.service_mean_s = service_s;
  sc.make = [times, service_s] { return std::make_unique<FixedStream>(times, service_s); };
  return sc;
}

TEST(Placement, KeepsEachMinutesCountAndTheConvertersRule) {
  const std::vector<int> minutes = {480, 481, 482, 483};
  const std::vector<int64_t> counts = {3, 0, 1, 7};
  for (bool timer : {true, false}) {
    std::vector<double> t = placeArrivals(minutes, counts, timer, 1, "abc");
    ASSERT_EQ(t.size(), 11u);
    EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
    std::vector<int64_t> seen(4, 0);
    for (double x : t) {
      const int64_t m = static_cast<int64_t>(std::floor(x / 60)) + 1;  // the minute's label
      ASSERT_GE(m, 480);
      ASSERT_LE(m, 483);
      ++seen[static_cast<size_t>(m - 480)];
    }
    EXPECT_EQ(seen, counts) << (timer ? "timer" : "random");
  }
  // Timers: equal spacing from second 0 of the minute (minute label m starts at (m - 1) x 60 s).
  std::vector<double> t = placeArrivals(minutes, counts, true, 1, "abc");
  EXPECT_DOUBLE_EQ(t[0], 479 * 60.0);
  EXPECT_DOUBLE_EQ(t[1], 479 * 60.0 + 20);
  EXPECT_DOUBLE_EQ(t[2], 479 * 60.0 + 40);
  EXPECT_DOUBLE_EQ(t[3], 481 * 60.0);
  EXPECT_EQ(t, placeArrivals(minutes, counts, true, 2, "xyz")) << "timers do not draw";
  // Other triggers: random, reproducible from the seed and the function's hash.
  std::vector<double> r = placeArrivals(minutes, counts, false, 1, "abc");
  EXPECT_EQ(r, placeArrivals(minutes, counts, false, 1, "abc"));
  EXPECT_NE(r, placeArrivals(minutes, counts, false, 2, "abc"));
  EXPECT_NE(r, placeArrivals(minutes, counts, false, 1, "abd"));
}

TEST(Functions, EveryRowIsAServiceWithItsCountsAndItsAverageDuration) {
  char dir[] = "/tmp/sim_test_XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string inv = std::string(dir) + "/invocations.csv";
  const std::string dur = std::string(dir) + "/durations.csv";
  std::ofstream(inv) << "HashOwner,HashApp,HashFunction,Trigger,480,481,482\n"
                        "o,a,f1,timer,2,0,2\n"
                        "o,a,f2,http,0,5,\n";
  std::ofstream(dur) << "HashOwner,HashApp,HashFunction,Average,Count\n"
                        "o,a,f1,0.2,4\n";
  TraceOptions opt;
  opt.service_mean_s = 0.25;
  LoadedFunctions lf = loadFunctions(inv, dur, opt);
  ASSERT_EQ(lf.error, "");
  ASSERT_EQ(lf.functions.size(), 2u);
  EXPECT_EQ(lf.functions[0].trigger, "timer");
  EXPECT_EQ(lf.functions[0].requests, 4u);
  EXPECT_DOUBLE_EQ(lf.functions[0].service_ms, 1.0) << "at least 1 ms";
  EXPECT_TRUE(lf.functions[0].has_duration);
  EXPECT_EQ(lf.functions[1].requests, 5u);
  EXPECT_DOUBLE_EQ(lf.functions[1].service_ms, 250.0) << "no durations row: the default";
  // The first minute starts one lead after t = 0; the span covers every minute.
  std::unique_ptr<ArrivalStream> s = lf.functions[0].scenario.make();
  double a = 0, svc = 0;
  ASSERT_TRUE(s->next(a, svc));
  EXPECT_DOUBLE_EQ(a, kFunctionsLeadSeconds);
  EXPECT_DOUBLE_EQ(lf.functions[0].scenario.duration_s, kFunctionsLeadSeconds + 180);
  for (const std::string& p : allPolicyNames()) {
    EXPECT_EQ(simulate(lf.functions[1].scenario, p, SimOptions{}).requests, 5u) << p;
  }
  EXPECT_NE(loadFunctions(dir + std::string("/missing.csv"), "", opt).error, "");
  std::remove(inv.c_str());
  std::remove(dur.c_str());
  ::rmdir(dir);
}

TEST(Oracle, APeriodicTraceHasNoColdStartAndPaysAStartPerCall) {
  // Every 300 s, 0.5 s of service, 2 s cold start: each call is one run of 2.5 s.
  std::vector<double> times;
  for (int i = 0; i < 20; ++i) times.push_back(10 + 300.0 * i);
  Scenario sc = fixedScenario(times, 0.5, 2.0);
  Result r = simulate(sc, "oracle", SimOptions{});
  EXPECT_EQ(r.requests, 20u);
  EXPECT_EQ(r.served, 20u);
  EXPECT_EQ(r.cold_starts, 0u);
  EXPECT_EQ(r.over_100ms, 0u);
  EXPECT_EQ(r.p99_wait_ms, 0);
  EXPECT_EQ(r.starts, 20u);
  EXPECT_NEAR(r.instance_seconds, 20 * (2.0 + 0.5), 1e-6);
  // Every other policy pays more or waits.
  for (const std::string& p : policyNames()) {
    Result o = simulate(sc, p, SimOptions{});
    EXPECT_TRUE(o.instance_seconds > r.instance_seconds || o.cold_starts > 0) << p;
  }
}

TEST(Oracle, BridgesGapsShorterThanAColdStartAndAddsInstancesForConcurrency) {
  // Gaps of 1.5 s (< 2 s cold start): one run from the first call's start to the last's end.
  std::vector<double> times;
  for (int i = 0; i < 10; ++i) times.push_back(5 + 2.0 * i);
  Result r = simulate(fixedScenario(times, 0.5, 2.0), "oracle", SimOptions{});
  EXPECT_EQ(r.cold_starts, 0u);
  EXPECT_EQ(r.starts, 1u);
  EXPECT_NEAR(r.instance_seconds, 2.0 + (times.back() + 0.5 - times.front()), 1e-6);

  // Three requests at once, one per instance: three instances, each started ahead.
  Result c = simulate(fixedScenario({5, 5.1, 5.2, 100}, 1.0, 2.0, /*concurrency=*/1), "oracle",
                      SimOptions{});
  EXPECT_EQ(c.cold_starts, 0u);
  EXPECT_EQ(c.over_100ms, 0u);
  EXPECT_EQ(c.peak_instances, 3);
  EXPECT_NEAR(c.instance_seconds, 4 * 2.0 + 4 * 1.0, 1e-6);
}

// Issue 18: a steady Poisson service (no rhythm to learn) takes no more cold starts with
// Baton's policy than with the KPA-like baseline, at mean gaps from seconds to a minute.
TEST(Policy, ASteadyPoissonServiceTakesNoMoreColdStartsThanKpa) {
  for (double mean_gap : {5.0, 20.0, 60.0}) {
    std::mt19937_64 rng(static_cast<uint64_t>(mean_gap * 1000));
    std::exponential_distribution<double> gap(1.0 / mean_gap);
    std::vector<double> times;
    for (double t = 5 + gap(rng); t < 8 * 3600; t += gap(rng)) times.push_back(t);
    const Scenario sc = fixedScenario(times, 0.2, 2.0);
    const Result baton = simulate(sc, "baton", SimOptions{});
    const Result kpa = simulate(sc, "kpa", SimOptions{});
    EXPECT_GT(kpa.cold_starts, 0u) << "mean gap " << mean_gap;
    EXPECT_LE(baton.cold_starts, kpa.cold_starts) << "mean gap " << mean_gap;
    std::printf("mean gap %.0f s: cold starts baton %llu, kpa %llu; instance-s %.0f, %.0f\n",
                mean_gap, (unsigned long long)baton.cold_starts,
                (unsigned long long)kpa.cold_starts, baton.instance_seconds,
                kpa.instance_seconds);
  }
}

}  // namespace
}  // namespace baton::autoscale_sim
