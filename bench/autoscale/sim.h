// The autoscaling simulator (issue 4): replays a request trace against a simulated service whose
// instance count is driven by a scaling policy: Baton's own (src/autoscaler, the same code the
// controller runs) or a baseline implemented here from its documented algorithm (static-max,
// HPA-like, KPA-like). Event-driven; deterministic for a given trace and seed. See README.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/clock.h"
#include "model/app.h"

namespace baton::autoscale_sim {

// A stream of requests in arrival order: arrival time (seconds from the trace start) and the
// service time the request will need.
class ArrivalStream {
 public:
  virtual ~ArrivalStream() = default;
  virtual bool next(double& arrival_s, double& service_s) = 0;  // false at the end
};

struct Scenario {
  std::string name;
  std::string description;
  model::ScaleSpec scale;       // min/max/concurrency/idle and the schedule
  TimePoint epoch;              // wall time of t = 0 (for the schedule)
  double duration_s = 0;        // simulated span
  double cold_start_s = 2.0;    // instance start to ready
  double service_mean_s = 0.1;  // exponential service-time mean (stated in the output)
  std::function<std::unique_ptr<ArrivalStream>()> make;  // a fresh, identical stream per run
};

// Built-in synthetic scenarios by name: "shop-week", "bursts", "spiky-api".
std::vector<std::string> builtinNames();
std::optional<Scenario> builtin(const std::string& name, uint64_t seed);

// A CSV trace with a TIMESTAMP column (one row per request). Timestamps: "YYYY-MM-DD
// HH:MM:SS[.fraction]" (a 'T' separator and a trailing 'Z' are accepted) or plain numbers
// (seconds). Rows that do not parse are counted in `skipped`. Service times are drawn from the
// simulator's exponential distribution (seeded).
struct TraceOptions {
  int concurrency = 10;
  int min = 0;
  int max = 10;
  double idle_s = 300;
  double service_mean_s = 0.5;
  double cold_start_s = 2.0;
  uint64_t seed = 1;
};
struct LoadedTrace {
  Scenario scenario;
  size_t skipped = 0;
  std::string error;  // non-empty: the file could not be used
};
LoadedTrace loadCsvTrace(const std::string& path, const TraceOptions& options);

// Per-minute invocation counts of many functions (the Azure Functions 2019 format: columns
// HashOwner,HashApp,HashFunction,Trigger and one per minute, labelled with the dataset's 1-based
// minute numbers; label m starts (m - 1) x 60 s after midnight), each function one service.
// Request times follow ../shared/traces/to_arrivals.py's placement rule (placeArrivals); the
// service time of a function is exponential around its `Average` from a durations file (ms, at
// least 1 ms), else around `TraceOptions::service_mean_s`. Every function's scenario starts
// kFunctionsLeadSeconds (at least one cold start) before the first minute column, an empty stretch,
// so that every policy starts from zero instances and the oracle can start its first instance
// ahead of the first call. TraceOptions::seed seeds the placement and the service times.
inline constexpr double kFunctionsLeadSeconds = 60;
struct FunctionTrace {
  size_t row = 0;       // 0-based data row, as to_arrivals.py numbers them
  std::string hash;     // HashFunction
  std::string trigger;  // timer, http, queue, event, storage, orchestration, ...
  uint64_t requests = 0;
  double service_ms = 0;
  bool has_duration = false;  // service_ms from the durations file
  Scenario scenario;
};
struct LoadedFunctions {
  std::vector<FunctionTrace> functions;
  std::string error;  // non-empty: the files could not be used
};
LoadedFunctions loadFunctions(const std::string& invocations_path,
                              const std::string& durations_path,  // "" for none
                              const TraceOptions& options);

// to_arrivals.py's placement of one function's calls, in seconds since midnight: within a minute
// with k calls, a timer's calls at equal spacing from second 0 (0, 60/k, ...); any other
// trigger's k uniform random times in the minute, sorted. The generator is mt19937_64 seeded
// with FNV-1a of "SEED:HASH" (the converter seeds Python's random with that string), so the same
// inputs give the same times; the draws differ from Python's (same distribution, other values).
std::vector<double> placeArrivals(const std::vector<int>& minute_labels,
                                  const std::vector<int64_t>& counts, bool timer, uint64_t seed,
                                  const std::string& function_hash);

struct SimOptions {
  double tick_s = 1.0;            // controller period
  double hold_timeout_s = 30.0;   // a request waiting longer is lost
  size_t queue_limit = 10'000;    // hold queue bound; beyond it requests are lost
  double drain_s = 120.0;         // after the trace ends, time to serve what is queued
  bool record_decisions = false;  // keep every (time, desired) change in Result::decisions
  double baton_penalty_s = -1;    // >= 0: override PolicyParams::cold_start_penalty
  double baton_min_idle_s = -1;   // >= 0: override PolicyParams::min_idle
  // Baton policy overrides by PolicyParams field name, seconds for durations (exploration; see
  // main.cc --baton-set).
  std::vector<std::pair<std::string, double>> baton_set;
};

struct Result {
  std::string scenario;
  std::string policy;
  uint64_t requests = 0;
  uint64_t served = 0;
  uint64_t lost = 0;
  uint64_t over_100ms = 0;   // served requests that waited more than 100 ms
  uint64_t cold_starts = 0;  // hold episodes: a request arrived with no instance ready
  uint64_t starts = 0;       // instance starts
  double instance_seconds = 0;
  double p99_wait_ms = 0;
  int peak_instances = 0;
  uint64_t decision_hash = 0;  // FNV-1a over the (tick, desired) sequence
  std::vector<std::pair<double, int>> decisions;
  // Per hour of the day since the trace start (wall time of the epoch, UTC hours offset kept):
  // instance-seconds and cold starts, to see where a policy spends and saves.
  std::vector<double> instance_s_by_hour = std::vector<double>(24, 0.0);
  std::vector<uint64_t> cold_starts_by_hour = std::vector<uint64_t>(24, 0);
};

// Policies: "baton", "static-max", "hpa", "kpa" (policyNames(), what a trace runs by default)
// and "oracle" (allPolicyNames()): perfect foresight, the lower bound. The oracle reads the
// scenario's whole arrival stream (times and service times) before the run and plans, per
// instance level k (the k-th instance is needed while more than (k - 1) x concurrency requests
// are in service, requests served FIFO at once while the max in force allows), a run from one
// cold start before the level is needed to the moment it is idle, bridging an idle gap only
// when it is at most one cold start (stopping and starting again would cost that much instance
// time). The simulator then runs that plan like any policy's decisions: instances still take the
// cold start to become ready, and a request finding none ready is a cold start. Its memory is one
// entry per planned run.
std::vector<std::string> policyNames();
std::vector<std::string> allPolicyNames();
Result simulate(const Scenario& scenario, const std::string& policy, const SimOptions& options);

}  // namespace baton::autoscale_sim
