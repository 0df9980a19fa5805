#include "node/node.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <future>
#include <system_error>

#include "model/json.h"
#include "model/keys.h"
#include "node/prober.h"
#include "node/secret_files.h"

namespace baton::node {

std::string upstreamEnvName(std::string_view upstream) {
  std::string name = "BATON_UPSTREAM_";
  for (char c : upstream) {
    name.push_back(c == '-' || c == '/' ? '_' : (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c);
  }
  return name;
}

namespace keys = model::keys;

namespace {

// The signals a manifest's on_secret_change may name (spec/manifest.cc); 0 for others.
int signalNumber(const std::string &name) {
  static const std::map<std::string, int> kSignals = {
      {"SIGHUP", SIGHUP},   {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
      {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGWINCH", SIGWINCH}};
  auto it = kSignals.find(name);
  return it == kSignals.end() ? 0 : it->second;
}

}  // namespace

NodeRuntime::NodeRuntime(state::Store &store, drivers::DriverRegistry &drivers, Clock &clock,
                         NodeOptions options)
    : store_(store), drivers_(drivers), clock_(clock), options_(std::move(options)) {}

NodeRuntime::~NodeRuntime() { stop(); }

Status NodeRuntime::start() {
  if (options_.node_id.empty()) return invalidArgument("node: the node id is empty");
  {
    std::lock_guard pass(pass_mu_);
    if (started_) return Status::ok();
    if (Status s = registerNode(); !s) return s;
    if (Status s = recover(); !s) return s;
    started_ = true;
  }
  if (options_.background) {
    {
      std::lock_guard lock(mu_);
      stopping_ = false;
    }
    ensureWatch();
    loop_thread_ = std::thread([this] { loopMain(); });
    probe_thread_ = std::thread([this] { probeMain(); });
    heartbeat_thread_ = std::thread([this] { heartbeatMain(); });
  }
  return Status::ok();
}

void NodeRuntime::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (loop_thread_.joinable()) loop_thread_.join();
  if (probe_thread_.joinable()) probe_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  joinFinishedStops(/*all=*/true);
  watch_.reset();
  std::lock_guard pass(pass_mu_);
  started_ = false;
}

std::map<std::string, LocalInstance> NodeRuntime::instances() const {
  std::lock_guard pass(pass_mu_);
  return local_;
}

state::LeaseId NodeRuntime::lease() const {
  std::lock_guard lock(lease_mu_);
  return lease_;
}

// --- registration
// -----------------------------------------------------------------------------

Status NodeRuntime::registerNode() {
  std::lock_guard lock(lease_mu_);
  return registerNodeLocked();
}

Status NodeRuntime::registerNodeLocked() {
  auto lease = store_.grantLease(options_.heartbeat_ttl);
  if (!lease) return lease.status();
  model::NodeRecord rec;
  rec.id = options_.node_id;
  rec.address = options_.advertise_address;
  rec.api = options_.api_address;
  rec.mesh = options_.mesh_address;
  rec.network = options_.network;
  rec.cpu = options_.cpu;
  rec.memory = options_.memory;
  rec.drivers = drivers_.names();
  rec.started_at = clock_.now();
  auto put = store_.put(keys::node(options_.node_id), model::encode(rec), *lease);
  if (!put) {
    (void)store_.revokeLease(*lease);
    return put.status();
  }
  lease_ = *lease;
  next_keepalive_ = clock_.now() + options_.heartbeat_ttl / 3;
  spdlog::info("node {}: registered (lease {})", options_.node_id, lease_);
  return Status::ok();
}

Status NodeRuntime::heartbeat() {
  std::lock_guard lock(lease_mu_);
  TimePoint now = clock_.now();
  if (lease_ != 0 && now < next_keepalive_) return Status::ok();
  if (lease_ != 0) {
    Status s = store_.keepAlive(lease_);
    if (s) {
      next_keepalive_ = now + options_.heartbeat_ttl / 3;
      return s;
    }
    if (s.code() != Code::kNotFound) return s;  // the store is unreachable: try next pass
    spdlog::warn("node {}: lease {} lost; registering again", options_.node_id, lease_);
    lease_ = 0;
  }
  return registerNodeLocked();
}

void NodeRuntime::heartbeatMain() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (Status hb = heartbeat(); !hb) {
      spdlog::warn("node {}: heartbeat failed: {}", options_.node_id, hb.toString());
    }
    lock.lock();
    // heartbeat() renews every ttl/3; waking more often only checks the time.
    cv_.wait_for(lock, std::min<Duration>(options_.heartbeat_ttl / 6, Duration(1'000)),
                 [this] { return stopping_; });
  }
}

Status NodeRuntime::recover() {
  // Statuses this node wrote before: ports, restart counts and final states.
  auto statuses = store_.list(std::string(keys::kStatus));
  if (!statuses) return statuses.status();
  for (const state::KeyValue &kv : statuses->kvs) {
    auto st = model::decode<model::InstanceStatus>(kv.value);
    if (!st) {
      spdlog::warn("node {}: skipping {}: {}", options_.node_id, kv.key, st.status().toString());
      continue;
    }
    if (st->node != options_.node_id) continue;
    std::string id(keys::leaf(kv.key));
    LocalInstance loc;
    loc.health = HealthMachine(options_.health);
    loc.restart = RestartPolicy(options_.restart);
    loc.port = st->port;
    loc.restarts = st->restarts;
    loc.last_exit_code = st->last_exit_code;
    if (st->state == model::InstanceState::kFailed) loc.phase = Phase::kFailed;
    if (st->state == model::InstanceState::kStopped) loc.phase = Phase::kStopped;
    if (isTerminal(st->state)) loc.message = st->message;
    local_[id] = std::move(loc);
    written_[id] = *st;
  }
  // Tasks the drivers left running (or that ended while the agent was down).
  for (const std::string &name : drivers_.names()) {
    drivers::Driver *d = drivers_.find(name);
    auto tasks = d->recover();
    if (!tasks) {
      spdlog::warn("node {}: driver {} recover failed: {}", options_.node_id, name,
                   tasks.status().toString());
      continue;
    }
    for (drivers::TaskStatus &t : *tasks) {
      task_driver_[t.instance_id] = name;
      std::string id = t.instance_id;
      tasks_[id] = std::move(t);
    }
  }
  spdlog::info("node {}: recovered {} tasks, {} statuses", options_.node_id, tasks_.size(),
               written_.size());
  return Status::ok();
}

void NodeRuntime::ensureWatch() {
  {
    std::lock_guard lock(mu_);
    if (!watch_broken_) return;
    watch_broken_ = false;
  }
  watch_.reset();
  state::WatchCallbacks cb;
  cb.on_events = [this](const std::vector<state::Event> &) { wake(); };
  cb.on_error = [this](const Status &) {
    {
      std::lock_guard lock(mu_);
      watch_broken_ = true;
      wake_ = true;
    }
    cv_.notify_all();
  };
  auto rev = store_.currentRevision();
  if (!rev) {
    std::lock_guard lock(mu_);
    watch_broken_ = true;
    return;
  }
  auto w = store_.watch(std::string(keys::kInstances), *rev + 1, std::move(cb));
  if (!w) {
    std::lock_guard lock(mu_);
    watch_broken_ = true;  // the 500 ms pass still runs; retry next pass
    return;
  }
  watch_ = std::move(*w);
}

void NodeRuntime::wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

// --- the pass
// ---------------------------------------------------------------------------------

Status NodeRuntime::runOnce() {
  Status s;
  {
    std::lock_guard pass(pass_mu_);
    if (!started_) return {Code::kFailedPrecondition, "node: runOnce() before start()"};
    // In the background the heartbeat has its own thread (heartbeatMain).
    if (!options_.background) {
      if (Status hb = heartbeat(); !hb) {
        spdlog::warn("node {}: heartbeat failed: {}", options_.node_id, hb.toString());
      }
    }
    s = reconcile();
  }
  if (!options_.background) runDueProbes(/*inline_mode=*/true);
  return s;
}

Status NodeRuntime::reconcile() {
  joinFinishedStops(/*all=*/false);
  auto listed = store_.list(std::string(keys::kInstances));
  if (!listed) return listed.status();
  std::map<std::string, model::InstanceRecord> desired;
  for (const state::KeyValue &kv : listed->kvs) {
    auto rec = model::decode<model::InstanceRecord>(kv.value);
    if (!rec) {
      spdlog::warn("node {}: skipping {}: {}", options_.node_id, kv.key, rec.status().toString());
      continue;
    }
    if (rec->node != options_.node_id) continue;
    std::string id(keys::leaf(kv.key));
    desired[id] = std::move(*rec);
  }

  std::vector<std::string> known;
  for (const auto &[id, _] : task_driver_) known.push_back(id);
  for (const std::string &id : known) refreshTask(id);

  // Ports for instances that need one (fixed ports come from the spec inside
  // the plan).
  std::set<int> in_use;
  for (const auto &[_, loc] : local_) {
    if (loc.port != 0) in_use.insert(loc.port);
  }
  for (const auto &[id, rec] : desired) {
    auto [it, inserted] = local_.try_emplace(id);
    if (inserted) {
      it->second.health = HealthMachine(options_.health);
      it->second.restart = RestartPolicy(options_.restart);
    }
    drivers::Driver *rd = drivers_.find(rec.spec.driver);
    bool own_network = rd && rd->ownNetwork();
    if (it->second.port != 0 || (rec.spec.port && !own_network) || !rec.desired_running) continue;
    auto port = ports_.allocate(in_use);
    if (!port) {
      spdlog::warn("node {}: no port for {}: {}", options_.node_id, id, port.status().toString());
      continue;
    }
    it->second.port = *port;
    in_use.insert(*port);
  }

  // CPU throttling, only possible with a cpu_limit quota: shown for 10 s after it happened.
  for (auto &[id, loc] : local_) {
    auto rec = desired.find(id);
    auto task = tasks_.find(id);
    drivers::Driver *d = rec == desired.end() || task == tasks_.end() || task->second.exit ||
                                 rec->second.spec.cpu_limit <= 0
                             ? nullptr
                             : driverFor(id, &rec->second);
    if (!d) {
      loc.cpu_throttled = false;
      throttling_.erase(id);
      continue;
    }
    auto stats = d->stats(id);
    if (!stats) continue;
    auto [it, inserted] = throttling_.try_emplace(id, stats->throttled_periods, TimePoint{});
    if (stats->throttled_periods > it->second.first) it->second.second = clock_.now() + Duration(10'000);
    it->second.first = stats->throttled_periods;
    loc.cpu_throttled = clock_.now() < it->second.second;
  }

  NodeSnapshot snap;
  snap.node_id = options_.node_id;
  snap.address = options_.advertise_address;
  snap.desired = desired;
  snap.tasks = tasks_;
  snap.local = local_;
  snap.written = written_;
  snap.start_errors = std::move(start_errors_);
  start_errors_.clear();
  for (const std::string &name : drivers_.names()) {
    if (drivers_.find(name)->ownNetwork()) snap.own_network_drivers.insert(name);
  }
  // Slow steps before a start (image pulls) run in the drivers' background: ask whether they
  // are done for every instance the plan may start in this pass.
  for (const auto &[id, rec] : desired) {
    if (!rec.desired_running) continue;
    if (auto t = tasks_.find(id); t != tasks_.end() && !t->second.exit) continue;
    auto loc = local_.find(id);
    if (loc != local_.end()) {
      Phase phase = loc->second.phase;
      bool due = phase == Phase::kNew ||
                 (phase == Phase::kBackoff &&
                  (!loc->second.restart_at || clock_.now() >= *loc->second.restart_at));
      if (!due) continue;
    }
    drivers::Driver *d = drivers_.find(rec.spec.driver);
    if (!d) continue;
    auto prep = d->prepare(withImagePath(rec.spec));
    if (!prep) {
      snap.start_errors[id] = prep.status().message();
    } else if (!prep->ready) {
      snap.preparing[id] = prep->progress;
    }
  }
  snap.health = options_.health;
  snap.restart = options_.restart;
  {
    std::lock_guard lock(mu_);
    snap.probes = std::move(probe_results_);
    probe_results_.clear();
  }

  NodePlan plan = planNode(snap, clock_.now());
  local_ = std::move(plan.local);
  for (const Action &a : plan.actions) execute(a, desired);
  if (clock_.now() >= next_log_sweep_) {
    next_log_sweep_ = clock_.now() + std::clamp<Duration>(options_.log_retention / 2,
                                                          Duration(1'000), Duration(60'000));
    std::set<std::string> keep;
    for (const auto &[id, _] : desired) keep.insert(id);
    for (const auto &[id, _] : local_) keep.insert(id);
    for (const auto &[id, _] : task_driver_) keep.insert(id);
    sweepLogs(keep);
    sweepSecrets(keep);
  }
  followSecrets(desired);
  {
    std::lock_guard lock(mu_);
    probe_targets_ = std::move(plan.probes);
  }
  return Status::ok();
}

void NodeRuntime::refreshTask(const std::string &id) {
  auto dn = task_driver_.find(id);
  if (dn == task_driver_.end()) return;
  drivers::Driver *d = drivers_.find(dn->second);
  if (!d) return;
  auto st = d->inspect(id);
  if (st) {
    tasks_[id] = std::move(*st);
  } else if (st.status().code() == Code::kNotFound) {
    tasks_.erase(id);
    task_driver_.erase(id);
  }  // other errors: keep what we knew; next pass asks again
}

drivers::Driver *NodeRuntime::driverFor(const std::string &id, const model::InstanceRecord *rec) {
  if (auto it = task_driver_.find(id); it != task_driver_.end()) return drivers_.find(it->second);
  return rec ? drivers_.find(rec->spec.driver) : nullptr;
}

void NodeRuntime::execute(const Action &a,
                          const std::map<std::string, model::InstanceRecord> &desired) {
  auto rit = desired.find(a.id);
  const model::InstanceRecord *rec = rit == desired.end() ? nullptr : &rit->second;
  switch (a.kind) {
    case Action::Kind::kStart:
      if (rec) startTask(a.id, a.port, *rec);
      // Plan again at once: the next pass hands the new task to the probe thread, and its first
      // passing probe ends the cold start (waiting for the loop's interval would add up to it).
      if (options_.background) wake();
      break;
    case Action::Kind::kStop:
      stopTask(a.id, a.grace, a.restart);
      break;
    case Action::Kind::kDestroy: {
      drivers::Driver *d = driverFor(a.id, rec);
      if (!d) break;
      Status s = d->destroy(a.id);
      if (s || s.code() == Code::kNotFound) {
        tasks_.erase(a.id);
        task_driver_.erase(a.id);
        if (auto it = delivered_.find(a.id); it != delivered_.end()) {
          if (Status r = removeSecretFiles(it->second.dir); !r) {
            spdlog::warn("node {}: {}", options_.node_id, r.message());
          }
          delivered_.erase(it);
        }
      } else {
        spdlog::warn("node {}: destroy {}: {}", options_.node_id, a.id, s.toString());
      }
      break;
    }
    case Action::Kind::kWriteStatus: {
      model::InstanceStatus st = a.status;
      st.updated_at = clock_.now();
      auto put = store_.put(keys::status(a.id), model::encode(st));
      if (put) {
        auto prev = written_.find(a.id);
        bool was_healthy = prev != written_.end() &&
                           prev->second.state == model::InstanceState::kHealthy &&
                           prev->second.started_at == st.started_at;
        auto rec = desired.find(a.id);
        if (st.state == model::InstanceState::kHealthy && !was_healthy && rec != desired.end() &&
            st.started_at.time_since_epoch().count() > 0) {
          recordColdStart(rec->second.app + "/" + rec->second.service,
                          st.updated_at - st.started_at);
        }
        written_[a.id] = std::move(st);
      } else {
        spdlog::warn("node {}: writing status of {}: {}", options_.node_id, a.id,
                     put.status().toString());
      }
      break;
    }
    case Action::Kind::kDeleteStatus: {
      auto del = store_.del(keys::status(a.id));
      if (del) {
        written_.erase(a.id);
        local_.erase(a.id);
      }
      break;
    }
  }
}

// An image the manifest names by a relative path (oci-archive:app.tar) is in the manifest's
// directory.
model::ServiceSpec NodeRuntime::withImagePath(const model::ServiceSpec &spec) {
  model::ServiceSpec out = spec;
  for (std::string_view prefix : {"oci-archive:", "oci:"}) {
    if (!out.image.starts_with(prefix) || out.workdir.empty()) continue;
    std::string path = out.image.substr(prefix.size());
    if (!path.empty() && path[0] != '/') {
      out.image = std::string(prefix) + (std::filesystem::path(out.workdir) / path).string();
    }
    break;
  }
  return out;
}

void NodeRuntime::startTask(const std::string &id, int port, const model::InstanceRecord &rec) {
  drivers::Driver *d = drivers_.find(rec.spec.driver);
  if (!d) {
    start_errors_[id] =
        fmt::format("driver \"{}\" is not available on node {}", rec.spec.driver, options_.node_id);
    return;
  }
  drivers::TaskConfig cfg;
  cfg.instance_id = id;
  cfg.spec = withImagePath(rec.spec);
  cfg.port = port;
  // Who it runs as: its own dynamic UID unless the manifest names a user (run_as.h).
  const std::string service_key = rec.app + "/" + rec.service;
  RunAsRequest who{.app = rec.app,
                   .service = rec.service,
                   .user = rec.spec.user,
                   .allow_root = options_.allow_root,
                   .agent_uid = options_.agent_uid};
  who.taken_by_other_service = [&](uint32_t uid) {
    for (const auto &[key, used] : dynamic_uids_) {
      if (used == uid && key != service_key) return true;
    }
    return false;
  };
  // A user a container names is one of its image's (the driver passes it on); root still needs
  // the agent's consent.
  const bool image_user = d->imageUsers() && !rec.spec.user.empty();
  if (image_user) {
    const std::string &u = rec.spec.user;
    bool root = u == "root" || u == "0" || u.starts_with("0:") || u.starts_with("root:");
    if (root && !options_.allow_root) {
      start_errors_[id] = fmt::format(
          "user \"{}\" is root in the container, which this agent does not allow "
          "([drivers.exec] allow_root = true in the agent's config)", u);
      return;
    }
    who.user.clear();
  }
  Result<RunAs> run_as = resolveRunAs(who, options_.users);
  if (!run_as) {
    start_errors_[id] = run_as.status().message();
    spdlog::warn("node {}: starting {}: {}", options_.node_id, id, run_as.status().message());
    return;
  }
  if ((rec.spec.user.empty() || image_user) && run_as->uid >= 0) {
    dynamic_uids_[service_key] = static_cast<uint32_t>(run_as->uid);
  }
  cfg.uid = image_user ? -1 : run_as->uid;
  cfg.gid = image_user ? -1 : run_as->gid;
  cfg.groups = image_user ? std::vector<uint32_t>{} : run_as->groups;
  cfg.pids_max = rec.spec.pids > 0 ? rec.spec.pids : options_.default_pids;
  // The service runs in its manifest's directory when `baton up` sent one (relative paths in
  // `run` resolve there), else in "/" (the data dir is the agent's alone).
  cfg.task_dir = rec.spec.workdir.empty() ? std::filesystem::path("/")
                                          : std::filesystem::path(rec.spec.workdir);
  cfg.log_dir = options_.data_dir / "logs" / rec.app / rec.service / id;
  cfg.env = options_.env;
  if (d->imageUsers()) cfg.env.erase("PATH");  // an image has its own PATH
  for (const auto &[k, v] : rec.spec.env) cfg.env[k] = v;
  // In a network of its own the service listens on its manifest's port (else on the same number
  // as the node's side); PORT says which.
  cfg.container_port = d->ownNetwork() && rec.spec.port ? *rec.spec.port : port;
  cfg.env["PORT"] = std::to_string(cfg.container_port);
  cfg.env["BATON_INSTANCE_ID"] = id;
  cfg.env["BATON_APP"] = rec.app;
  cfg.env["BATON_SERVICE"] = rec.service;
  if (options_.upstream_address) {
    // Through the mesh (docs/mesh.md): each declared upstream at its service address. The
    // agent's API is out of an isolated instance's reach, so BATON_ADDR is not given.
    // A caller has a service address too: the destination's instances see its connections come
    // from there ("Who is calling").
    if (!rec.spec.upstreams.empty()) {
      if (auto own = options_.upstream_address(rec.app, rec.service); !own) {
        start_errors_[id] = "mesh address: " + own.status().message();
        return;
      }
    }
    for (const std::string &u : rec.spec.upstreams) {
      auto slash = u.find('/');
      std::string app = slash == std::string::npos ? rec.app : u.substr(0, slash);
      std::string svc = slash == std::string::npos ? u : u.substr(slash + 1);
      auto addr = options_.upstream_address(app, svc);
      if (!addr) {
        start_errors_[id] = "upstream " + u + ": " + addr.status().message();
        return;
      }
      const std::string name = upstreamEnvName(u);
      cfg.env[name] = *addr;
      cfg.env[name + "_URL"] = "http://" + *addr;
    }
    if (rec.spec.api == "read") {
      if (options_.instance_api_address.empty() || !options_.app_token) {
        start_errors_[id] = "api = \"read\": this node has no API for instances";
        return;
      }
      cfg.env["BATON_ADDR"] = "http://" + options_.instance_api_address;
      cfg.env["BATON_TOKEN"] = options_.app_token(rec.app);
    }
  } else if (auto it = options_.env.find("BATON_ADDR"); it != options_.env.end()) {
    cfg.env["BATON_ADDR"] = it->second;
  } else if (!options_.api_address.empty()) {
    cfg.env["BATON_ADDR"] = "http://" + options_.api_address;
  }
  if (!rec.spec.secrets.empty()) {
    if (Status s = deliverSecrets(id, rec, *d, cfg); !s) {
      start_errors_[id] = s.message();
      spdlog::warn("node {}: starting {}: {}", options_.node_id, id, s.message());
      return;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(cfg.task_dir, ec);
  if (!ec) std::filesystem::create_directories(cfg.log_dir, ec);
  if (ec) {
    start_errors_[id] = fmt::format("creating {}: {}", cfg.log_dir.string(), ec.message());
    return;
  }
  auto st = d->start(cfg);
  if (!st && st.status().code() == Code::kAlreadyExists) {
    st = d->inspect(id);  // already running (a lost start reply): adopt it
  }
  if (!st) {
    start_errors_[id] = st.status().message();
    spdlog::warn("node {}: starting {}: {}", options_.node_id, id, st.status().toString());
    // The next try gets a fresh port: an engine may hold the old one after a failed start
    // (Podman 4.3 keeps its port reservation open).
    if (auto loc = local_.find(id); loc != local_.end()) loc->second.port = 0;
    return;
  }
  tasks_[id] = std::move(*st);
  task_driver_[id] = d->name();
  spdlog::info("node {}: started {} ({}/{}) on port {} as {}", options_.node_id, id, rec.app,
               rec.service, port, run_as->describe);
}

void NodeRuntime::stopTask(const std::string &id, Duration grace, bool restart) {
  drivers::Driver *d = driverFor(id, nullptr);
  if (!d) return;
  if (!options_.background) {
    Status s = d->stop(id, grace);
    if (!s) spdlog::warn("node {}: stopping {}: {}", options_.node_id, id, s.toString());
    refreshTask(id);
    return;
  }
  std::lock_guard lock(mu_);
  if (stopping_ || !stops_in_flight_.insert(id).second) return;  // already on its way
  Duration drain = restart ? Duration(0) : options_.drain_delay;
  stop_threads_.emplace_back(id, std::thread([this, d, id, grace, drain] {
                               if (drain.count() > 0) std::this_thread::sleep_for(drain);
                               Status s = d->stop(id, grace);
                               if (!s) {
                                 spdlog::warn("node {}: stopping {}: {}", options_.node_id, id,
                                              s.toString());
                               }
                               {
                                 std::lock_guard inner(mu_);
                                 stops_in_flight_.erase(id);
                                 wake_ = true;
                               }
                               cv_.notify_all();
                             }));
}

void NodeRuntime::joinFinishedStops(bool all) {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mu_);
    for (auto it = stop_threads_.begin(); it != stop_threads_.end();) {
      if (all || !stops_in_flight_.count(it->first)) {
        done.push_back(std::move(it->second));
        it = stop_threads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::thread &t : done) t.join();
}

Status NodeRuntime::deliverSecrets(const std::string &id, const model::InstanceRecord &rec,
                                   const drivers::Driver &driver, drivers::TaskConfig &cfg) {
  if (!options_.read_secret || options_.secrets_dir.empty()) {
    return Status(Code::kFailedPrecondition,
                  "secrets: node " + options_.node_id + " cannot deliver secrets");
  }
  SecretValues values;
  DeliveredSecrets given;
  for (const std::string &path : rec.spec.secrets) {
    // A service that rolls gets the version its instance record names; 0 there means the
    // controller saw none to read.
    int64_t want = 0;
    if (auto pin = rec.spec.secret_versions.find(path); pin != rec.spec.secret_versions.end()) {
      want = pin->second;
      if (want == 0) {
        return Status(Code::kNotFound, "secret " + path + " has no version to read (baton secret put " +
                                           path + " KEY=VALUE)");
      }
    }
    auto read = options_.read_secret(path, want, id);
    if (!read) return Status(read.status().code(), "secret " + path + ": " + read.status().message());
    values[path] = std::move(read->data);
    given.versions[path] = read->version;
  }
  // A container's image user is not known here: its files are readable by any user inside it,
  // and its directory is under one only the agent enters.
  const bool container = driver.imageUsers();
  const std::filesystem::path parent = options_.secrets_dir / (container ? "containers" : "host");
  std::error_code ec;
  // The directories this makes above `parent` must let each service through to its own (the
  // agent's umask would make them 0700).
  std::vector<std::filesystem::path> made;
  for (auto p = options_.secrets_dir; !p.empty() && !std::filesystem::exists(p, ec);
       p = p.parent_path()) {
    made.push_back(p);
    if (p == p.parent_path()) break;
  }
  std::filesystem::create_directories(parent, ec);
  if (ec) return ioError("creating " + parent.string() + ": " + ec.message());
  for (const auto &p : made) std::filesystem::permissions(p, std::filesystem::perms(0711), ec);
  std::filesystem::permissions(parent, std::filesystem::perms(container ? 0700 : 0711), ec);
  given.dir = parent / id;
  given.uid = cfg.uid;
  given.gid = cfg.gid;
  if (Status s = writeSecretFiles(given.dir, values,
                                  {.uid = given.uid, .gid = given.gid, .tmpfs = options_.secrets_tmpfs});
      !s) {
    return Status(s.code(), "secrets: " + s.message());
  }
  cfg.secrets_dir = given.dir;
  cfg.env[std::string(model::kSecretsDirEnv)] =
      container ? std::string(drivers::kContainerSecretsDir) : given.dir.string();
  for (auto &[name, value] : cfg.env) {
    if (!value.starts_with(model::kSecretEnvPrefix)) continue;
    auto v = secretEnvValue(value.substr(model::kSecretEnvPrefix.size()), values);
    if (!v) return Status(v.status().code(), "env." + name + ": " + v.status().message());
    value = std::move(*v);
  }
  delivered_[id] = std::move(given);
  return Status::ok();
}

void NodeRuntime::followSecrets(const std::map<std::string, model::InstanceRecord> &desired) {
  if (!options_.secret_version || !options_.read_secret) return;
  for (const auto &[id, task] : tasks_) {
    auto rec = desired.find(id);
    if (rec == desired.end() || task.exit || rec->second.spec.secrets.empty()) continue;
    const std::string &change = rec->second.spec.on_secret_change;
    if (change == "roll") continue;  // the controller rolls it
    drivers::Driver *d = driverFor(id, &rec->second);
    if (!d) continue;
    auto known = delivered_.find(id);
    if (known == delivered_.end()) {
      // Recovered after an agent restart: what it was given is on its files; version -1 makes
      // the pass below read the current versions and compare.
      DeliveredSecrets found;
      found.dir = options_.secrets_dir / (d->imageUsers() ? "containers" : "host") / id;
      for (const std::string &path : rec->second.spec.secrets) found.versions[path] = -1;
      auto uid = dynamic_uids_.find(rec->second.app + "/" + rec->second.service);
      if (!d->imageUsers() && uid != dynamic_uids_.end() && rec->second.spec.user.empty()) {
        found.uid = found.gid = uid->second;
      } else if (!rec->second.spec.user.empty() && !d->imageUsers()) {
        continue;  // a named user's ids: not known here until it restarts; leave it be
      }
      known = delivered_.emplace(id, std::move(found)).first;
    }
    DeliveredSecrets &given = known->second;
    bool changed = false;
    for (const auto &[path, version] : given.versions) {
      if (options_.secret_version(path) != version) changed = true;
    }
    if (!changed) continue;
    SecretValues values;
    std::map<std::string, int64_t> versions;
    Status status = Status::ok();
    for (const auto &[path, _] : given.versions) {
      auto read = options_.read_secret(path, 0, id);
      if (!read) {
        status = Status(read.status().code(), "secret " + path + ": " + read.status().message());
        break;
      }
      values[path] = std::move(read->data);
      versions[path] = read->version;
    }
    const bool same = status && sameSecretFiles(given.dir, values);
    if (status && !same) {
      status = writeSecretFiles(given.dir, values,
                                {.uid = given.uid, .gid = given.gid, .tmpfs = options_.secrets_tmpfs});
    }
    if (!status) {
      // Keep the files it has; try again on the next pass.
      spdlog::warn("node {}: {}: new secret versions not delivered: {}", options_.node_id, id,
                   status.message());
      continue;
    }
    given.versions = std::move(versions);
    if (same) continue;  // a version of the same values (or what it already had)
    const int sig = signalNumber(change);
    Status sent = sig > 0 ? d->signal(id, sig)
                          : Status(Code::kInvalidArgument, "unknown signal " + change);
    if (sent) {
      spdlog::info("node {}: {}: secrets rewritten, sent {}", options_.node_id, id, change);
    } else {
      spdlog::warn("node {}: {}: secrets rewritten, {} not sent: {}", options_.node_id, id, change,
                   sent.message());
    }
  }
}

// Removes the secret files of instances this node no longer has (left by a stop while the agent
// was down, say).
void NodeRuntime::sweepSecrets(const std::set<std::string> &keep) {
  if (options_.secrets_dir.empty()) return;
  for (const char *kind : {"host", "containers"}) {
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator(options_.secrets_dir / kind, ec)) {
      const std::string id = entry.path().filename().string();
      if (keep.contains(id)) continue;
      if (Status s = removeSecretFiles(entry.path()); !s) {
        spdlog::warn("node {}: {}", options_.node_id, s.message());
      }
      delivered_.erase(id);
    }
  }
}

// Removes <data_dir>/logs/<app>/<service>/<instance> of instances this node no longer has once
// nothing was written there for log_retention, then service and app dirs left empty.
void NodeRuntime::sweepLogs(const std::set<std::string> &keep) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  const fs::path root = options_.data_dir / "logs";
  for (const auto &app : fs::directory_iterator(root, ec)) {
    for (const auto &svc : fs::directory_iterator(app.path(), ec)) {
      for (const auto &inst : fs::directory_iterator(svc.path(), ec)) {
        const std::string id = inst.path().filename().string();
        if (keep.count(id)) continue;
        // The newest write to any of its files (rotation renames them).
        auto newest = fs::last_write_time(inst.path(), ec);
        for (const auto &f : fs::directory_iterator(inst.path(), ec)) {
          newest = std::max(newest, fs::last_write_time(f.path(), ec));
        }
        if (now - newest < options_.log_retention) continue;
        fs::remove_all(inst.path(), ec);
        if (!ec) spdlog::info("node {}: removed the logs of {}", options_.node_id, id);
      }
      fs::remove(svc.path(), ec);  // only when empty
    }
    fs::remove(app.path(), ec);
  }
}

// --- probes
// -----------------------------------------------------------------------------------

void NodeRuntime::runDueProbes(bool inline_mode) {
  std::vector<ProbeTarget> targets;
  {
    std::lock_guard lock(mu_);
    targets = probe_targets_;
    // Forget the schedule of tasks that are no longer probed.
    std::set<std::string> live;
    for (const ProbeTarget &t : targets) live.insert(fmt::format("{}/{}", t.id, t.generation));
    for (auto it = last_probe_.begin(); it != last_probe_.end();) {
      it = live.count(it->first) ? std::next(it) : last_probe_.erase(it);
    }
    for (auto it = passed_once_.begin(); it != passed_once_.end();) {
      it = live.count(*it) ? std::next(it) : passed_once_.erase(it);
    }
    for (auto it = last_probe_ok_.begin(); it != last_probe_ok_.end();) {
      bool probed = std::any_of(targets.begin(), targets.end(),
                                [&](const ProbeTarget &t) { return t.id == it->first; });
      it = probed ? std::next(it) : last_probe_ok_.erase(it);
    }
  }
  std::vector<const ProbeTarget *> due;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !inline_mode) return;
    TimePoint now = clock_.now();
    for (const ProbeTarget &t : targets) {
      std::string key = fmt::format("{}/{}", t.id, t.generation);
      // Until its first passing probe an instance is probed every kStartingProbeInterval, so
      // a cold start ends as soon as the service listens; after that at its own interval.
      Duration interval = passed_once_.count(key) ? t.check.interval
                                                  : std::min(t.check.interval, kStartingProbeInterval);
      auto it = last_probe_.find(key);
      if (it != last_probe_.end() && now < it->second + interval) continue;
      last_probe_[key] = now;
      due.push_back(&t);
    }
  }
  // Concurrently, on up to kProbeWorkers threads: one instance that does not answer (a probe
  // waits up to its timeout) must not delay the others' probes, nor a cold start's first
  // passing one. Few threads: each costs the agent a stack and a malloc arena.
  constexpr size_t kProbeWorkers = 4;
  std::vector<Status> results(due.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < due.size(); i = next++) {
      results[i] = probe(due[i]->check, due[i]->address, due[i]->port);
    }
  };
  {
    std::vector<std::future<void>> workers;
    for (size_t w = 1; w < std::min(due.size(), kProbeWorkers); ++w) {
      workers.push_back(std::async(std::launch::async, work));
    }
    work();
  }  // the futures' destructors wait for the workers
  for (size_t i = 0; i < due.size(); ++i) {
    const ProbeTarget &t = *due[i];
    std::string key = fmt::format("{}/{}", t.id, t.generation);
    Status s = results[i];
    bool changed;
    {
      std::lock_guard lock(mu_);
      probe_results_[t.id].push_back({t.generation, s.isOk(), s.message(), clock_.now()});
      if (s.isOk()) passed_once_.insert(key);
      auto [it, inserted] = last_probe_ok_.try_emplace(t.id, s.isOk());
      changed = inserted || it->second != s.isOk();
      it->second = s.isOk();
    }
    if (changed && !inline_mode) wake();
  }
}

void NodeRuntime::probeMain() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    runDueProbes(/*inline_mode=*/false);
    lock.lock();
    cv_.wait_for(lock, kStartingProbeInterval / 2, [this] { return stopping_; });
  }
}

void NodeRuntime::loopMain() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    ensureWatch();
    if (Status s = runOnce(); !s) {
      spdlog::warn("node {}: reconcile failed: {}", options_.node_id, s.toString());
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.loop_interval, [this] { return stopping_ || wake_; });
    wake_ = false;
  }
}

void NodeRuntime::recordColdStart(const std::string &service, Duration d) {
  std::lock_guard lock(metrics_mu_);
  ColdStarts &c = cold_starts_[service];
  ++c.count;
  c.sum += d;
  c.last = d;
  c.max = std::max(c.max, d);
  spdlog::info("node {}: {} ready {} ms after start", options_.node_id, service, d.count());
}

std::string NodeRuntime::prometheus(const std::set<std::string> *deployed) {
  std::lock_guard lock(metrics_mu_);
  if (deployed) {
    std::erase_if(cold_starts_, [&](const auto &kv) { return !deployed->count(kv.first); });
  }
  std::string out =
      "# HELP baton_cold_start_seconds Time from starting an instance to its first passing "
      "health check.\n# TYPE baton_cold_start_seconds summary\n";
  for (const auto &[svc, c] : cold_starts_) {
    auto slash = svc.find('/');
    std::string labels = fmt::format("app=\"{}\",service=\"{}\"", svc.substr(0, slash),
                                     svc.substr(slash + 1));
    out += fmt::format("baton_cold_start_seconds_sum{{{}}} {:.3f}\n", labels, c.sum.count() / 1e3);
    out += fmt::format("baton_cold_start_seconds_count{{{}}} {}\n", labels, c.count);
  }
  out += "# HELP baton_cold_start_last_seconds The latest cold start per service.\n"
         "# TYPE baton_cold_start_last_seconds gauge\n";
  for (const auto &[svc, c] : cold_starts_) {
    auto slash = svc.find('/');
    out += fmt::format("baton_cold_start_last_seconds{{app=\"{}\",service=\"{}\"}} {:.3f}\n",
                       svc.substr(0, slash), svc.substr(slash + 1), c.last.count() / 1e3);
  }
  return out;
}

}  // namespace baton::node
