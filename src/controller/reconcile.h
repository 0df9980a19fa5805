// The controller's decision: a pure function from a snapshot of the store (desired apps and
// scale overrides, desired instances, observed instance status, nodes, rollout records) and
// `now` to a plan (instances to create, stop, delete; rollout records to write; events).
// No I/O; the shell (controller.h) reads the snapshot and writes the plan. See README.md for the
// rules (scaling, replacement, rolling update). Once nothing of another spec runs, a service's
// rollout record names its current spec as complete, also when no rollout was needed (the
// previous manifest deployed again after a failed rollout, a change while at zero instances).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "autoscaler/bounds.h"
#include "model/records.h"

namespace baton::controller {

// ---- Desired count (the autoscaler plugs in here) -------------------------------------------

// The bounds in force (manifest, schedule calendar, operator override): autoscaler/bounds.h.
using ScaleBounds = autoscaler::BoundsInForce;
using autoscaler::boundsInForce;

// The instance count wanted inside `bounds`. Without an autoscaler this is `min` (so min = 0
// means no instances for now).
int desiredCount(const ScaleBounds& bounds);

// ---- Snapshot and plan -----------------------------------------------------------------------

struct ObservedInstance {
  model::InstanceRecord record;
  std::optional<model::InstanceStatus> status;  // none: the node has not reported yet
};

struct ControllerSnapshot {
  std::map<std::string, model::AppRecord> apps;           // by app name
  std::map<std::string, ObservedInstance> instances;      // by instance id
  std::map<std::string, model::NodeRecord> nodes;         // by node id
  std::map<std::string, model::ScaleOverride> overrides;  // by "app/service"
  std::map<std::string, model::RolloutRecord> rollouts;   // by "app/service"
  // By secret path: the version an instance gets now (0: none can be read). Services that roll
  // on a secret change pin these in their instances' spec (ServiceSpec::secret_versions).
  std::map<std::string, int64_t> secret_versions;
};

struct StopInstance {
  std::string id;
  std::string reason;
};

struct RolloutWrite {
  std::string app;
  std::string service;
  model::RolloutRecord record;
};

struct PlanEvent {
  std::string kind;     // "scale", "rollout", "instance", "placement", "cleanup"
  std::string message;  // "shop/web: scaled 1 -> 3 (manual override)"
  bool operator==(const PlanEvent&) const = default;
};

struct ReconcilePlan {
  std::vector<model::InstanceRecord> create;  // full records, node chosen by the scheduler
  std::vector<StopInstance> stop;             // set desired_running = false
  std::vector<std::string> remove;            // delete the instance record and its status key
  std::vector<RolloutWrite> rollouts;         // records to put
  std::vector<std::string> delete_rollouts;   // "app/service" of services that no longer exist
  std::vector<PlanEvent> events;              // what the actions above do, for /v1/events
  // Conditions that persist while nothing can be done (e.g. an instance that fits no node).
  // They repeat on every pass; the shell reports each one once until it changes.
  std::vector<PlanEvent> warnings;

  // True when the plan changes nothing in the store (warnings do not count).
  bool empty() const {
    return create.empty() && stop.empty() && remove.empty() && rollouts.empty() &&
           delete_rollouts.empty();
  }
};

// Returns a fresh, unique instance id for a new instance of app/service. Called once per
// created instance, in plan order.
using IdGenerator = std::function<std::string(const std::string& app, const std::string& service)>;
// Optional hook: the desired count of app/service within `bounds` (default: desiredCount).
using DesiredCountFn = std::function<int(const std::string& app, const std::string& service,
                                         const ScaleBounds& bounds)>;

struct ReconcileOptions {
  // A new-version instance that is not healthy this long after creation fails its rollout.
  Duration rollout_deadline = Duration(60'000);
  // An instance asked to stop whose node never reported any status is deleted after this long
  // (measured from its creation).
  Duration stop_grace = Duration(30'000);
  uint64_t seed = 0;  // for the scheduler
  DesiredCountFn desired_count;
};

// Pure and deterministic for the same snapshot, time, options and id sequence.
ReconcilePlan reconcile(const ControllerSnapshot& snapshot, TimePoint now,
                        const ReconcileOptions& options, const IdGenerator& ids);

}  // namespace baton::controller
