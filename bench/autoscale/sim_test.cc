// The simulator is deterministic: the same trace and seed give the same decisions and results.
#include "sim.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace baton::autoscale_sim
