// Placement: which node runs each new instance. Pure (links only baton_model): a snapshot of
// the cluster and a list of requests in, a plan out. No I/O, no clock, no global state.
//
// Algorithm (Nomad-style, see README.md):
//  1. Feasibility: a node is a candidate for a request when it is eligible, offers the
//     request's driver, and has the request's cpu and memory free (capacity - used).
//  2. Candidates are found by walking a seeded permutation of the nodes from a rotating cursor
//     and stopping after `candidate_limit` feasible nodes (default: ceil(log2(nodes)), at least
//     2, at most 16), so a placement costs O(limit) on a roomy cluster instead of O(nodes).
//     Only when the cluster is nearly full does the walk visit many nodes; a shape (cpu, memory,
//     driver) that found no node is remembered as infeasible for the rest of the call (usage
//     only grows while placing), so repeated failures stay cheap.
//  3. Scoring among the candidates: spread first (fewest instances of the same app/service on
//     the node), then least-allocated (the largest of the cpu and memory fractions used after
//     placing is smallest: keeps nodes balanced and leaves headroom), then permutation order.
//  4. The chosen node's usage and per-service count are updated before the next placement, so
//     a plan never over-commits a node and later placements see earlier ones.
//
// Determinism: the same snapshot, requests and seed give the same plan (the permutation comes
// from a fixed splitmix64 generator, not from std::shuffle).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace baton::scheduler {

// "app/service": the key of NodeState::service_counts.
std::string serviceKey(std::string_view app, std::string_view service);

struct NodeState {
  std::string id;
  double cpu_capacity = 0;       // cores offered
  uint64_t memory_capacity = 0;  // bytes offered
  double used_cpu = 0;           // cores already reserved by instances on the node
  uint64_t used_memory = 0;
  bool eligible = true;              // false: draining or otherwise closed to new instances
  std::vector<std::string> drivers;  // driver names offered; empty = any driver
  std::unordered_map<std::string, int> service_counts;  // serviceKey -> instances on the node
};

struct ClusterSnapshot {
  std::vector<NodeState> nodes;
};

struct PlacementRequest {
  std::string app;
  std::string service;
  double cpu = 0;       // cores per instance
  uint64_t memory = 0;  // bytes per instance
  std::string driver;   // empty = any
  int count = 1;        // instances wanted
};

struct Placement {
  size_t request = 0;  // index into the requests span
  std::string node;    // NodeState::id
};

struct PlacementFailure {
  size_t request = 0;
  int unplaced = 0;    // how many of the request's `count` could not be placed
  std::string reason;  // "no node has 2.00 cpu free; largest free: 1.50 on node-3"
};

struct Plan {
  std::vector<Placement> placements;  // in request order, then instance order
  std::vector<PlacementFailure> failures;
};

struct PlaceOptions {
  size_t candidate_limit = 0;  // feasible nodes scored per placement; 0 = automatic
};

// Places every instance of every request. Thread-safe (no shared state).
Plan place(const ClusterSnapshot& cluster, std::span<const PlacementRequest> requests,
           uint64_t seed, const PlaceOptions& options = {});

}  // namespace baton::scheduler
