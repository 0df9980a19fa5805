#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

namespace baton::scheduler {
namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMiB = 1ull << 20;

NodeState node(std::string id, double cpu, uint64_t mem) {
  NodeState n;
  n.id = std::move(id);
  n.cpu_capacity = cpu;
  n.memory_capacity = mem;
  return n;
}

PlacementRequest req(std::string svc, double cpu, uint64_t mem, int count,
                     std::string driver = "") {
  PlacementRequest r;
  r.app = "shop";
  r.service = std::move(svc);
  r.cpu = cpu;
  r.memory = mem;
  r.count = count;
  r.driver = std::move(driver);
  return r;
}

// Checks that no node is over-committed by the plan on top of its existing usage.
void expectWithinCapacity(const ClusterSnapshot& c, std::span<const PlacementRequest> reqs,
                          const Plan& plan) {
  std::map<std::string, std::pair<double, uint64_t>> used;
  for (const auto& n : c.nodes) used[n.id] = {n.used_cpu, n.used_memory};
  for (const auto& p : plan.placements) {
    used[p.node].first += reqs[p.request].cpu;
    used[p.node].second += reqs[p.request].memory;
  }
  for (const auto& n : c.nodes) {
    EXPECT_LE(used[n.id].first, n.cpu_capacity + 1e-6) << n.id;
    EXPECT_LE(used[n.id].second, n.memory_capacity) << n.id;
  }
}

TEST(Scheduler, RespectsResourcesAndNeverOverCommits) {
  ClusterSnapshot c;
  c.nodes = {node("a", 1.0, kGiB), node("b", 2.0, kGiB), node("c", 0.5, 4 * kGiB)};
  c.nodes[1].used_cpu = 1.5;
  std::vector<PlacementRequest> reqs = {req("web", 0.25, 256 * kMiB, 20)};
  Plan plan = place(c, reqs, 1);
  expectWithinCapacity(c, reqs, plan);
  // a: 4 (cpu), b: 2 (cpu), c: 2 (cpu) -> 8 placed, 12 not.
  EXPECT_EQ(plan.placements.size(), 8u);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(plan.failures[0].unplaced, 12);
  EXPECT_EQ(plan.failures[0].reason, "no node has 0.25 cpu free; largest free: 0.00 on a");
}

TEST(Scheduler, MemoryIsRespected) {
  ClusterSnapshot c;
  c.nodes = {node("a", 8, 512 * kMiB), node("b", 8, 1 * kGiB)};
  std::vector<PlacementRequest> reqs = {req("db", 0.1, 512 * kMiB, 4)};
  Plan plan = place(c, reqs, 7);
  expectWithinCapacity(c, reqs, plan);
  EXPECT_EQ(plan.placements.size(), 3u);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(plan.failures[0].reason, "no node has 512MiB memory free; largest free: 0 on a");
}

TEST(Scheduler, SpreadsInstancesOfAServiceAcrossNodes) {
  ClusterSnapshot c;
  for (int i = 0; i < 5; ++i) c.nodes.push_back(node("n" + std::to_string(i), 4, 8 * kGiB));
  // n0 is emptier but already runs web: spread wins over least-allocated.
  c.nodes[0].service_counts[serviceKey("shop", "web")] = 1;
  for (int i = 1; i < 5; ++i) c.nodes[i].used_cpu = 2;
  std::vector<PlacementRequest> reqs = {req("web", 0.1, 64 * kMiB, 4)};
  Plan plan = place(c, reqs, 3, {.candidate_limit = 16});
  std::set<std::string> used;
  for (const auto& p : plan.placements) used.insert(p.node);
  EXPECT_EQ(used, (std::set<std::string>{"n1", "n2", "n3", "n4"}));
}

TEST(Scheduler, LeastAllocatedBreaksTies) {
  ClusterSnapshot c;
  c.nodes = {node("busy", 4, 8 * kGiB), node("idle", 4, 8 * kGiB)};
  c.nodes[0].used_cpu = 3;
  std::vector<PlacementRequest> reqs = {req("web", 0.5, 64 * kMiB, 1)};
  for (uint64_t seed = 0; seed < 10; ++seed) {
    Plan plan = place(c, reqs, seed);
    ASSERT_EQ(plan.placements.size(), 1u);
    EXPECT_EQ(plan.placements[0].node, "idle");
  }
}

TEST(Scheduler, DriverAndEligibility) {
  ClusterSnapshot c;
  c.nodes = {node("exec-only", 4, kGiB), node("docker", 4, kGiB), node("closed", 4, kGiB)};
  c.nodes[0].drivers = {"exec"};
  c.nodes[1].drivers = {"exec", "docker"};
  c.nodes[2].eligible = false;
  std::vector<PlacementRequest> reqs = {req("web", 0.1, kMiB, 3, "docker"),
                                        req("wasm", 0.1, kMiB, 1, "wasm")};
  Plan plan = place(c, reqs, 5);
  ASSERT_EQ(plan.placements.size(), 3u);
  for (const auto& p : plan.placements) EXPECT_EQ(p.node, "docker");
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(plan.failures[0].request, 1u);
  EXPECT_EQ(plan.failures[0].reason, "no eligible node offers driver \"wasm\"");
}

TEST(Scheduler, FailureReasonWhenNoNodeHasBoth) {
  ClusterSnapshot c;
  c.nodes = {node("cpu-rich", 8, 256 * kMiB), node("mem-rich", 1, 8 * kGiB)};
  std::vector<PlacementRequest> reqs = {req("big", 2, kGiB, 1)};
  Plan plan = place(c, reqs, 0);
  ASSERT_EQ(plan.failures.size(), 1u);
  EXPECT_EQ(plan.failures[0].reason,
            "no node has both 2.00 cpu and 1GiB memory free (1 have the cpu, 1 the memory)");
  EXPECT_EQ(place(ClusterSnapshot{}, reqs, 0).failures.at(0).reason, "no nodes are registered");
}

TEST(Scheduler, DeterministicForSeed) {
  ClusterSnapshot c;
  for (int i = 0; i < 200; ++i) c.nodes.push_back(node("n" + std::to_string(i), 4, 8 * kGiB));
  std::vector<PlacementRequest> reqs;
  for (int s = 0; s < 50; ++s) reqs.push_back(req("s" + std::to_string(s), 0.25, 128 * kMiB, 5));
  auto nodesOf = [](const Plan& p) {
    std::vector<std::string> v;
    for (const auto& x : p.placements) v.push_back(x.node);
    return v;
  };
  Plan a = place(c, reqs, 42), b = place(c, reqs, 42), d = place(c, reqs, 43);
  EXPECT_EQ(nodesOf(a), nodesOf(b));
  EXPECT_NE(nodesOf(a), nodesOf(d));
}

TEST(Scheduler, ManyNodesIsFastAndSpread) {
  ClusterSnapshot c;
  for (int i = 0; i < 5000; ++i) c.nodes.push_back(node("n" + std::to_string(i), 16, 64 * kGiB));
  std::vector<PlacementRequest> reqs;
  for (int s = 0; s < 10000; ++s)
    reqs.push_back(req("s" + std::to_string(s), 0.25, 256 * kMiB, 10));
  auto start = std::chrono::steady_clock::now();
  Plan plan = place(c, reqs, 9);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(plan.placements.size(), 100000u);
  EXPECT_TRUE(plan.failures.empty());
  expectWithinCapacity(c, reqs, plan);
  // Every service's 10 instances land on 10 different nodes.
  std::map<size_t, std::set<std::string>> by_request;
  for (const auto& p : plan.placements) by_request[p.request].insert(p.node);
  for (const auto& [r, nodes] : by_request) ASSERT_EQ(nodes.size(), 10u) << r;
  // Generous bound (sanitizers, shared CI): well above 10,000 placements/s.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 10000);
}

TEST(Scheduler, FullClusterFailsFastAndCompletely) {
  ClusterSnapshot c;
  for (int i = 0; i < 2000; ++i) c.nodes.push_back(node("n" + std::to_string(i), 1, kGiB));
  std::vector<PlacementRequest> reqs;
  for (int s = 0; s < 3000; ++s) reqs.push_back(req("s" + std::to_string(s), 1, kMiB, 1));
  Plan plan = place(c, reqs, 1);
  expectWithinCapacity(c, reqs, plan);
  EXPECT_EQ(plan.placements.size(), 2000u);
  EXPECT_EQ(plan.failures.size(), 1000u);
}

}  // namespace
}  // namespace baton::scheduler
