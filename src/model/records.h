// What the store holds (keys in model/keys.h). Desired state is written by the api and the
// controller; observed state by the node that runs an instance. Separate keys for each writer
// keep compare-and-swap conflicts rare and each record's owner obvious.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/clock.h"
#include "model/app.h"

namespace baton::model {

// /baton/apps/<app>: the deployed manifest. `version` grows by one on every change.
struct AppRecord {
  AppSpec spec;
  int64_t version = 1;
  std::string source;                      // the manifest text as given, for `baton ps --json`
  TimePoint updated_at{};
};

enum class InstanceState { kPending, kStarting, kHealthy, kUnhealthy, kStopping, kStopped, kFailed };
const char* toString(InstanceState s);
std::optional<InstanceState> parseInstanceState(std::string_view s);
// True when the instance no longer runs and will not run again.
inline bool isTerminal(InstanceState s) {
  return s == InstanceState::kStopped || s == InstanceState::kFailed;
}

// /baton/instances/<id>: desired, written by the controller. The service spec is copied in so
// a rolling update can run old and new versions side by side.
struct InstanceRecord {
  std::string id;
  std::string app;
  std::string service;
  std::string node;
  int64_t version = 0;                     // the app version this instance was created for
  std::string spec_hash;                   // hash of `spec`: a new hash means a new rollout
  ServiceSpec spec;
  bool desired_running = true;             // false: the node stops it, then the controller deletes it
  TimePoint created_at{};
};

// /baton/status/<id>: observed, written by the node that runs the instance.
struct InstanceStatus {
  std::string id;
  std::string node;
  InstanceState state = InstanceState::kPending;
  std::string address;                     // where the node reaches it
  int port = 0;
  int pid = 0;                             // process drivers
  int restarts = 0;
  std::optional<int> last_exit_code;       // exit code, or 128+signal
  std::string message;                     // why it is in this state, for humans
  bool cpu_throttled = false;              // its cpu_limit quota throttled it lately
  std::string last_failure;                // why it last ended unasked (kept across restarts)
  TimePoint started_at{};
  TimePoint updated_at{};
};

// /baton/nodes/<id>: a node's registration, under a lease that its heartbeat keeps alive.
struct NodeRecord {
  std::string id;
  std::string address;                     // where other agents and clients reach it
  std::string api;                         // the agent's API address
  std::string mesh;                        // its mesh proxy's mTLS address; empty: no mesh
  std::string network = "host";            // "isolated": instances in networks of their own
  double cpu = 1;                          // cores offered
  uint64_t memory = 1ull << 30;            // bytes offered
  std::vector<std::string> drivers;        // registered driver names
  TimePoint started_at{};
};

// /baton/scale/<app>/<service>: an operator's `baton scale` override.
struct ScaleOverride {
  std::optional<int> min;
  std::optional<int> max;
  std::optional<TimePoint> expires_at;     // none: until cleared
  TimePoint set_at{};
};

// /baton/rollouts/<app>/<service>: the rollout of one spec hash, kept so a failed version is
// not retried until the app changes again.
struct RolloutRecord {
  std::string spec_hash;
  int64_t version = 0;
  enum class Phase { kInProgress, kComplete, kFailed } phase = Phase::kInProgress;
  std::string message;
  TimePoint updated_at{};
};

// /baton/intentions/<source>|<destination>: an operator's `baton allow|deny SRC DST`. Sides
// are "app/svc", "app/*" or "*" (mesh/intentions.h decides with them).
struct IntentionRecord {
  std::string source;
  std::string destination;
  std::string action;                      // "allow" or "deny"
  TimePoint updated_at{};
};

}  // namespace baton::model
