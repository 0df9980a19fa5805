// placement_bench: scheduler::place() on a simulated cluster. The headline case places
// 100,000 instances (10,000 services x 10) on 5,000 nodes; `placements/s` is the rate.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "scheduler/scheduler.h"

namespace {

using baton::scheduler::ClusterSnapshot;
using baton::scheduler::NodeState;
using baton::scheduler::PlacementRequest;

ClusterSnapshot makeCluster(int nodes) {
  ClusterSnapshot c;
  c.nodes.reserve(static_cast<size_t>(nodes));
  for (int i = 0; i < nodes; ++i) {
    NodeState n;
    n.id = "node-" + std::to_string(i);
    n.cpu_capacity = 16 + (i % 4) * 8;  // heterogeneous: 16..40 cores
    n.memory_capacity = (64ull + (i % 3) * 32) << 30;
    n.used_cpu = (i % 7) * 0.5;  // some nodes already carry load
    n.drivers = (i % 10 == 0) ? std::vector<std::string>{"exec"}
                              : std::vector<std::string>{"exec", "docker"};
    c.nodes.push_back(std::move(n));
  }
  return c;
}

std::vector<PlacementRequest> makeRequests(int services, int per_service) {
  std::vector<PlacementRequest> reqs;
  reqs.reserve(static_cast<size_t>(services));
  for (int s = 0; s < services; ++s) {
    PlacementRequest r;
    r.app = "app-" + std::to_string(s / 10);
    r.service = "svc-" + std::to_string(s % 10);
    r.cpu = 0.25 * (1 + s % 4);
    r.memory = (128ull << 20) * (1 + s % 3);
    r.driver = s % 5 == 0 ? "docker" : "exec";
    r.count = per_service;
    reqs.push_back(std::move(r));
  }
  return reqs;
}

// range(3): candidate_limit (0 = Baton's automatic bounded sample; a number >= the node count
// scores every feasible node, the exhaustive baseline that kube-scheduler runs at 100%
// percentageOfNodesToScore).
void BM_Place(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const int services = static_cast<int>(state.range(1));
  const int per_service = static_cast<int>(state.range(2));
  baton::scheduler::PlaceOptions options;
  options.candidate_limit = static_cast<size_t>(state.range(3));
  ClusterSnapshot cluster = makeCluster(nodes);
  std::vector<PlacementRequest> reqs = makeRequests(services, per_service);
  uint64_t seed = 1;
  size_t placed = 0;
  size_t failed = 0;
  for (auto _ : state) {
    auto plan = baton::scheduler::place(cluster, reqs, seed++, options);
    placed += plan.placements.size();
    failed += plan.failures.size();
    benchmark::DoNotOptimize(plan);
  }
  state.counters["placements/s"] =
      benchmark::Counter(static_cast<double>(placed), benchmark::Counter::kIsRate);
  state.counters["failed_requests"] =
      benchmark::Counter(static_cast<double>(failed), benchmark::Counter::kAvgIterations);
}

// {nodes, services, instances per service, candidate limit}
BENCHMARK(BM_Place)
    ->Args({5000, 10000, 10, 0})     // 100,000 instances on 5,000 nodes
    ->Args({5000, 1000, 100, 0})     // fewer, larger services: spread matters more
    ->Args({500, 10000, 10, 0})      // a dense cluster: the walk sees more infeasible nodes
    ->Args({5000, 1000, 10, 5000})   // baseline: score every feasible node (10,000 instances)
    ->Args({5000, 1000, 10, 0})      // Baton on the same 10,000 instances
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
