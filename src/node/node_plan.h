// The node's reconcile decision (pure): desired instance records for this node
// + the tasks the drivers know + the node's per-instance bookkeeping + new
// probe results + now -> a plan: ordered actions for the shell (node.h) and the
// next bookkeeping.
//
// Level-triggered and idempotent: planning the same snapshot twice yields the
// same actions; an action that did not take effect is planned again on the next
// pass. The shell de-duplicates stops that are still in flight.
//
// Per-instance phases (LocalInstance::phase):
//   kNew ------start-----> kRunning (health: starting -> healthy <-> unhealthy)
//   kRunning --exit / start error / vanished / unhealthy too long--> kBackoff
//   --deadline--> start kRunning --crashes >= max_attempts or startup
//   deadline--> kFailed (task stopped; final) any --desired_running=false-->
//   kStopping (task running) --> kStopped (final) record gone --> stop +
//   destroy the task, delete the status, forget the instance
// Reported state: kNew -> pending, kRunning -> the health machine's state,
// kBackoff -> unhealthy ("exited with code N; restart in Ns"),
// kStopping/kStopped/kFailed -> same name.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "drivers/driver.h"
#include "model/records.h"
#include "node/health.h"
#include "node/restart_policy.h"

namespace baton::node {

enum class Phase { kNew, kRunning, kBackoff, kStopping, kStopped, kFailed };
const char *toString(Phase p);

// The node's memory of one instance. Survives agent restarts only through the
// status record (port, restarts, final states) and the drivers' recover().
struct LocalInstance {
  Phase phase = Phase::kNew;
  int port = 0;             // 0: not chosen yet (the shell picks one before planning)
  int restarts = 0;         // starts after the first, for the status
  uint64_t generation = 0;  // +1 per start; probe results of older tasks are dropped
  HealthMachine health;
  RestartPolicy restart;
  std::optional<TimePoint> restart_at;  // kBackoff: when to start again
  bool restart_requested = false;       // kRunning: stopping an unhealthy task to restart it
  std::optional<int> last_exit_code;
  std::string message;  // why it is not running (crash, failure, stop)
  bool cpu_throttled = false;  // set by the shell: the task's CPU quota throttled it lately
  std::string last_failure;    // why the task last ended unasked; a restart keeps it
  bool operator==(const LocalInstance &) const = default;
};

struct ProbeResult {
  uint64_t generation = 0;
  bool ok = false;
  std::string reason;  // when !ok
  TimePoint at{};
};

struct NodeSnapshot {
  std::string node_id;
  std::string address;                                   // advertised in statuses
  std::map<std::string, model::InstanceRecord> desired;  // records with node == node_id
  std::map<std::string, drivers::TaskStatus> tasks;      // every task the drivers know
  std::map<std::string, LocalInstance> local;
  std::map<std::string, model::InstanceStatus> written;    // status keys as last written/read
  std::map<std::string, std::vector<ProbeResult>> probes;  // new results, oldest first
  std::map<std::string, std::string> start_errors;         // last pass's failed starts (and
                                                           // failed prepares: image pulls)
  std::map<std::string, std::string> preparing;  // instances whose driver is still preparing
                                                 // (pulling an image): the progress
  std::set<std::string> own_network_drivers;     // drivers whose tasks have their own network:
                                                 // a fixed `port` is inside it, not the node's
  HealthOptions health;                                    // for instances seen the first time
  RestartOptions restart;
};

struct Action {
  enum class Kind {
    kStart,         // start the task for `id` on `port` (config built from the record)
    kStop,          // stop the task (SIGTERM, `grace`, SIGKILL); `restart` when it
                    // restarts
    kDestroy,       // forget an ended task
    kWriteStatus,   // put /baton/status/<id> = status (the shell sets updated_at)
    kDeleteStatus,  // delete /baton/status/<id>
  };
  Kind kind = Kind::kStart;
  std::string id;
  int port = 0;
  Duration grace{0};
  bool restart = false;
  model::InstanceStatus status;
};

struct ProbeTarget {
  std::string id;
  uint64_t generation = 0;
  std::string address;
  int port = 0;
  model::HealthCheck check;
};

struct NodePlan {
  std::vector<Action> actions;                 // in order
  std::map<std::string, LocalInstance> local;  // the bookkeeping after this pass
  std::vector<ProbeTarget> probes;             // instances to probe until the next pass
  std::optional<TimePoint> next_wake;          // the earliest backoff deadline
};

inline constexpr Duration kDefaultStopGrace = Duration(5'000);

NodePlan planNode(const NodeSnapshot &snapshot, TimePoint now);

// The status an instance reports, from its bookkeeping and task (updated_at
// left zero).
model::InstanceStatus statusFor(const std::string &id, const NodeSnapshot &snapshot,
                                const LocalInstance &local, const drivers::TaskStatus *task);

// True when `a` and `b` differ in something other than updated_at.
bool statusChanged(const model::InstanceStatus &a, const model::InstanceStatus &b);

}  // namespace baton::node
