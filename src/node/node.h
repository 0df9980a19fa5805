// NodeRuntime: the node role's I/O shell (DESIGN.md §2 Node). It registers this
// node in the store under a lease, re-adopts the tasks its drivers recover
// after an agent restart, and runs a level-triggered loop: read the desired
// InstanceRecords for this node, inspect the tasks, plan (node_plan.h, pure),
// perform the plan (driver start/stop/destroy, status writes).
//
// Data flow:
//   store /baton/instances/* --(watch wakes; list every pass)--> planNode() -->
//   drivers drivers.inspect()/recover() --> planNode();  probe thread --> probe
//   results --> planNode() planNode() --> /baton/status/<id> (only when
//   something changed: SD-card friendly) heartbeat: /baton/nodes/<id> under a
//   lease, keepAlive every ttl/3, re-registered if lost.
//
// Instances outlive the agent: stop() ends the runtime's threads but not the
// tasks. Bookkeeping (port, restarts, final states) survives an agent restart
// through the status records; running tasks through Driver::recover().
//
// Thread safety: start(), stop() and runOnce() may be called from any one
// thread at a time. With `background` set, start() runs the loop, probe and
// stop threads; runOnce() then must not be called. Without it (tests), nothing
// runs in the background: the caller drives runOnce(), which also runs due
// probes inline and performs stops synchronously.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "drivers/driver.h"
#include "node/node_plan.h"
#include "node/port_allocator.h"
#include "node/run_as.h"
#include "state/store.h"

namespace baton::node {

// What NodeOptions::read_secret gives.
struct SecretRead {
  int64_t version = 0;
  std::map<std::string, std::string> data;
};

struct NodeOptions {
  std::string node_id;
  std::string advertise_address = "127.0.0.1";  // where other agents reach this node's instances
  std::string api_address;                      // the agent's API ("127.0.0.1:4646")
  std::string mesh_address;                     // its mesh proxy's mTLS address (NodeRecord)
  std::string network = "host";                 // "isolated" or "host" (NodeRecord.network)
  // Where an instance reaches an upstream ("app", "svc") through the mesh: "ip:port", handed
  // out as BATON_UPSTREAM_<NAME> and ..._URL. Unset: no mesh, no such variables. Also asked for
  // a caller's own service (one with upstreams): its mesh connections come from that address.
  std::function<Result<std::string>(const std::string &app, const std::string &service)>
      upstream_address;
  // The agent's API for isolated instances granted `api = "read"` ("ip:port") and the token of
  // an app for it (docs/mesh.md "The API for instances"), handed out as BATON_ADDR and
  // BATON_TOKEN. Unset: such instances do not start (a named error).
  std::string instance_api_address;
  std::function<std::string(const std::string &app)> app_token;
  // Secrets (docs/secrets.md "Delivery"). read_secret: a secret's keys and values at `version`
  // (0: the current one), read for `instance` (the agent audits it). secret_version: the version
  // a read of the current one would get now (0: none), without reading it. Unset: instances of
  // a service that lists secrets do not start (a named error).
  std::function<Result<SecretRead>(const std::string &path, int64_t version,
                                   const std::string &instance)>
      read_secret;
  std::function<int64_t(const std::string &path)> secret_version;
  // Instances' secret files: host/<id> (exec; 0711 so that each service reaches its own) and
  // containers/<id> (0700: only their bind mounts reach them). tmpfs: one per instance.
  std::filesystem::path secrets_dir;
  bool secrets_tmpfs = false;
  std::filesystem::path data_dir;               // tasks under data_dir/tasks/<id>, logs under
                                                // data_dir/logs/<app>/<service>/<id>/
  double cpu = 1;                               // cores offered
  uint64_t memory = 1ull << 30;                 // bytes offered
  Duration heartbeat_ttl = Duration(10'000);
  std::map<std::string, std::string> env;  // given to every instance (e.g. BATON_ADDR)
  Duration loop_interval = Duration(500);  // the longest pause between passes
  HealthOptions health;
  RestartOptions restart;
  bool background = true;  // see the class comment
  // Between reporting an instance `stopping` and signalling it, so that clients that looked it
  // up a moment ago (catalog, gateway) finish their requests: what Kubernetes does with a
  // preStop sleep. Not applied to restarts of unhealthy instances, nor when !background.
  Duration drain_delay = Duration(1000);
  // Who instances run as (run_as.h): root only with allow_root; `user` lookups in `users`.
  bool allow_root = false;
  UserDb users = UserDb::system();
  uint32_t agent_uid = 0;    // geteuid() of the agent (set by the agent)
  int64_t default_pids = 2048;  // a service's process/thread limit when it names none
  // The log dir of an instance no longer on this node is removed this long after its last
  // write (checked at most once a minute, or every retention/2 when shorter).
  Duration log_retention = Duration(24 * 3'600'000);
};

// "cart" -> BATON_UPSTREAM_CART; "billing/api" -> BATON_UPSTREAM_BILLING_API ('-' and '/'
// become '_').
std::string upstreamEnvName(std::string_view upstream);

// Probe period of an instance that has not passed its first health check yet.
inline constexpr Duration kStartingProbeInterval = Duration(50);

class NodeRuntime {
 public:
  // `store`, `drivers` and `clock` must outlive the runtime.
  NodeRuntime(state::Store &store, drivers::DriverRegistry &drivers, Clock &clock,
              NodeOptions options);
  ~NodeRuntime();  // stop()
  NodeRuntime(const NodeRuntime &) = delete;
  NodeRuntime &operator=(const NodeRuntime &) = delete;

  // Registers the node, recovers tasks and statuses, and (background) starts
  // the threads. Errors: the store is unreachable (kUnavailable/kIo), the node
  // id is empty.
  Status start();
  // Ends the threads (waits for stops in flight); running instances keep
  // running. Idempotent.
  void stop();
  // One reconcile pass (heartbeat included). Errors: the store could not be
  // read; the pass then changed nothing.
  Status runOnce();

  // For tests and the API: the bookkeeping after the last pass.
  std::map<std::string, LocalInstance> instances() const;
  state::LeaseId lease() const;
  // Prometheus text: cold starts per service (start -> first passing health check).
  // `deployed`: the "app/service" names that exist; others' series are left out (and
  // forgotten). Null: every series.
  std::string prometheus(const std::set<std::string> *deployed = nullptr);

 private:
  Status registerNode();
  Status registerNodeLocked();  // lease_mu_ held
  Status heartbeat();
  Status recover();
  void ensureWatch();
  Status reconcile();
  void execute(const Action &action, const std::map<std::string, model::InstanceRecord> &desired);
  void startTask(const std::string &id, int port, const model::InstanceRecord &rec);
  void stopTask(const std::string &id, Duration grace, bool restart);
  void refreshTask(const std::string &id);
  drivers::Driver *driverFor(const std::string &id, const model::InstanceRecord *rec);
  void runDueProbes(bool inline_mode);
  void loopMain();
  void probeMain();
  void heartbeatMain();
  void joinFinishedStops(bool all);
  void sweepLogs(const std::set<std::string> &keep);
  // Writes an instance's secret files and resolves its "secret:" env entries into `cfg`.
  Status deliverSecrets(const std::string &id, const model::InstanceRecord &rec,
                        const drivers::Driver &driver, drivers::TaskConfig &cfg);
  // Services signalled on a secret change: new versions rewritten, then the signal sent.
  void followSecrets(const std::map<std::string, model::InstanceRecord> &desired);
  void sweepSecrets(const std::set<std::string> &keep);
  void wake();
  void recordColdStart(const std::string &service, Duration d);

  struct ColdStarts {
    int64_t count = 0;
    Duration sum{0}, last{0}, max{0};
  };
  mutable std::mutex metrics_mu_;
  std::map<std::string, ColdStarts> cold_starts_;  // by "app/service"

  state::Store &store_;
  drivers::DriverRegistry &drivers_;
  Clock &clock_;
  NodeOptions options_;
  PortAllocator ports_;

  // Loop state: touched only by the pass (pass_mu_).
  mutable std::mutex pass_mu_;
  bool started_ = false;
  // The node's lease: its own lock and thread, so that a pass busy starting instances (a
  // driver start may take seconds) never lets the lease expire.
  mutable std::mutex lease_mu_;
  state::LeaseId lease_ = 0;
  TimePoint next_keepalive_{};
  std::map<std::string, LocalInstance> local_;
  std::map<std::string, drivers::TaskStatus> tasks_;
  std::map<std::string, std::string> task_driver_;  // instance id -> driver name
  std::map<std::string, model::InstanceStatus> written_;
  std::map<std::string, std::string> start_errors_;
  static model::ServiceSpec withImagePath(const model::ServiceSpec &spec);
  std::map<std::string, uint32_t> dynamic_uids_;  // "app/service" -> its dynamic UID
  // What each running instance was given of its secrets, for followSecrets().
  struct DeliveredSecrets {
    std::filesystem::path dir;
    std::map<std::string, int64_t> versions;  // by path
    int64_t uid = -1, gid = -1;
  };
  std::map<std::string, DeliveredSecrets> delivered_;
  TimePoint next_log_sweep_{};
  // Instances with a cpu_limit: the cgroup's throttled-period count last seen, and until when
  // the instance reads as throttled (10 s after the count last grew).
  std::map<std::string, std::pair<uint64_t, TimePoint>> throttling_;

  // Shared with the probe, stop and watch threads (mu_).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool wake_ = false;
  bool watch_broken_ = true;
  std::vector<ProbeTarget> probe_targets_;
  std::map<std::string, TimePoint> last_probe_;  // by "id/generation"
  std::map<std::string, std::vector<ProbeResult>> probe_results_;
  std::map<std::string, bool> last_probe_ok_;
  std::set<std::string> passed_once_;  // "<id>/<generation>" that passed a probe
  std::set<std::string> stops_in_flight_;
  std::vector<std::pair<std::string, std::thread>> stop_threads_;

  std::unique_ptr<state::WatchHandle> watch_;  // destroyed before the state it touches
  std::thread loop_thread_;
  std::thread probe_thread_;
  std::thread heartbeat_thread_;
};

}  // namespace baton::node
