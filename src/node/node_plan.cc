#include "node/node_plan.h"

#include <fmt/format.h>

#include <set>

#include "core/units.h"

namespace baton::node {

using model::InstanceState;

const char *toString(Phase p) {
  switch (p) {
    case Phase::kNew:
      return "new";
    case Phase::kRunning:
      return "running";
    case Phase::kBackoff:
      return "backoff";
    case Phase::kStopping:
      return "stopping";
    case Phase::kStopped:
      return "stopped";
    case Phase::kFailed:
      return "failed";
  }
  return "unknown";
}

bool statusChanged(const model::InstanceStatus &a, const model::InstanceStatus &b) {
  return a.id != b.id || a.node != b.node || a.state != b.state || a.address != b.address ||
         a.port != b.port || a.pid != b.pid || a.restarts != b.restarts ||
         a.last_exit_code != b.last_exit_code || a.message != b.message ||
         a.cpu_throttled != b.cpu_throttled || a.last_failure != b.last_failure ||
         a.started_at != b.started_at;
}

model::InstanceStatus statusFor(const std::string &id, const NodeSnapshot &snapshot,
                                const LocalInstance &local, const drivers::TaskStatus *task) {
  model::InstanceStatus st;
  st.id = id;
  st.node = snapshot.node_id;
  st.address = snapshot.address;
  st.port = local.port;
  st.restarts = local.restarts;
  st.last_exit_code = local.last_exit_code;
  bool running = task && !task->exit;
  st.cpu_throttled = running && local.cpu_throttled;
  st.last_failure = local.last_failure;
  if (running) {
    st.pid = task->pid;
    st.started_at = task->started_at;
    // A task in a network of its own that the node reaches at an address of its own (the oci
    // driver's veth): that is where the gateway sends requests.
    if (!task->address.empty() && task->address != "127.0.0.1") {
      st.address = task->address;
      if (task->port) st.port = task->port;
    }
  }
  switch (local.phase) {
    case Phase::kNew:
      st.state = InstanceState::kPending;
      st.message = local.message;
      break;
    case Phase::kRunning:
      st.state = local.health.state();
      st.message = local.message.empty() ? local.health.message() : local.message;
      break;
    case Phase::kBackoff:
      st.state = InstanceState::kUnhealthy;
      st.message = local.message;
      break;
    case Phase::kStopping:
      st.state = InstanceState::kStopping;
      st.message = local.message;
      break;
    case Phase::kStopped:
      st.state = InstanceState::kStopped;
      st.message = local.message;
      break;
    case Phase::kFailed:
      st.state = InstanceState::kFailed;
      st.message = local.message;
      break;
  }
  return st;
}

namespace {

Action makeAction(Action::Kind kind, const std::string &id) {
  Action a;
  a.kind = kind;
  a.id = id;
  return a;
}

Action stopAction(const std::string &id, Duration grace, bool restart) {
  Action a = makeAction(Action::Kind::kStop, id);
  a.grace = grace;
  a.restart = restart;
  return a;
}

class Planner {
 public:
  Planner(const NodeSnapshot &s, TimePoint now) : s_(s), now_(now) {}

  NodePlan run() {
    std::set<std::string> ids;
    for (const auto &[id, _] : s_.desired) ids.insert(id);
    for (const auto &[id, _] : s_.local) ids.insert(id);
    for (const auto &[id, _] : s_.tasks) ids.insert(id);
    for (const auto &[id, _] : s_.written) ids.insert(id);
    for (const auto &id : ids) planOne(id);
    return std::move(plan_);
  }

 private:
  template <typename M>
  static const typename M::mapped_type *find(const M &m, const std::string &id) {
    auto it = m.find(id);
    return it == m.end() ? nullptr : &it->second;
  }

  void push(Action a) { plan_.actions.push_back(std::move(a)); }

  void planOne(const std::string &id) {
    const model::InstanceRecord *rec = find(s_.desired, id);
    const drivers::TaskStatus *task = find(s_.tasks, id);
    bool running = task && !task->exit;

    if (!rec) {  // the record is gone (or the instance is not ours): clean up
                 // everything
      if (running) {
        push(stopAction(id, kDefaultStopGrace, false));
      } else if (task) {
        push(makeAction(Action::Kind::kDestroy, id));
      }
      if (s_.written.count(id)) push(makeAction(Action::Kind::kDeleteStatus, id));
      return;
    }

    LocalInstance loc;
    if (const LocalInstance *known = find(s_.local, id)) {
      loc = *known;
    } else {
      loc.health = HealthMachine(s_.health);
      loc.restart = RestartPolicy(s_.restart);
    }
    if (loc.port == 0 && rec->spec.port && !s_.own_network_drivers.count(rec->spec.driver)) {
      loc.port = *rec->spec.port;
    }
    Duration grace = rec->spec.kill_timeout;

    if (!rec->desired_running) {
      if (running) {
        if (loc.phase != Phase::kStopping) {
          loc.phase = Phase::kStopping;
          loc.message = "stopping";
        }
        push(stopAction(id, grace, false));
      } else {
        if (task) {
          if (task->exit) loc.last_exit_code = task->exit->exit_code;
          push(makeAction(Action::Kind::kDestroy, id));
        }
        if (loc.phase != Phase::kStopped) {
          loc.phase = Phase::kStopped;
          loc.message = "stopped";
        }
      }
      finish(id, loc, task);
      return;
    }

    if (loc.phase == Phase::kStopping || loc.phase == Phase::kStopped) {
      // Wanted again (the controller flipped desired_running back): start over.
      loc.phase = Phase::kNew;
      loc.message.clear();
    }

    switch (loc.phase) {
      case Phase::kFailed:
        if (running) {
          push(stopAction(id, grace, false));
        } else if (task) {
          push(makeAction(Action::Kind::kDestroy, id));
        }
        break;
      case Phase::kNew:
        if (running) {
          adopt(loc);
          if (const model::InstanceStatus *old = find(s_.written, id);
              old && old->state == InstanceState::kHealthy && old->pid == task->pid) {
            loc.health.resetHealthy(now_);  // it was healthy before the agent restarted
            loc.restart.observe(true, now_);
          }
          observeRunning(id, *rec, loc, *task);
        } else if (task) {
          crashed(id, loc, task);  // ended while the agent was down
        } else {
          start(id, loc);
        }
        break;
      case Phase::kRunning:
        if (running) {
          observeRunning(id, *rec, loc, *task);
        } else {
          crashed(id, loc, task);
        }
        break;
      case Phase::kBackoff:
        if (running) {
          adopt(loc);
          observeRunning(id, *rec, loc, *task);
          break;
        }
        if (task) push(makeAction(Action::Kind::kDestroy, id));
        if (!loc.restart_at || now_ >= *loc.restart_at) {
          if (start(id, loc)) ++loc.restarts;
        } else if (!plan_.next_wake || *loc.restart_at < *plan_.next_wake) {
          plan_.next_wake = loc.restart_at;
        }
        break;
      case Phase::kStopping:
      case Phase::kStopped:
        break;  // handled above
    }
    finish(id, loc, running ? task : nullptr);
  }

  void adopt(LocalInstance &loc) {
    loc.phase = Phase::kRunning;
    ++loc.generation;
    loc.health.reset(now_);
    loc.restart.onStart(now_);
    loc.restart_at.reset();
    loc.restart_requested = false;
    loc.message.clear();
  }

  // Starts the task, unless its driver is still preparing (then it stays where it is, with the
  // progress as its message) or failed to (a crash, with the restart policy's backoff).
  bool start(const std::string &id, LocalInstance &loc) {
    if (auto p = s_.preparing.find(id); p != s_.preparing.end()) {
      loc.message = p->second;
      return false;
    }
    adopt(loc);
    if (s_.start_errors.count(id)) {
      crashed(id, loc, nullptr);
      return true;
    }
    Action a = makeAction(Action::Kind::kStart, id);
    a.port = loc.port;
    push(std::move(a));
    return true;
  }

  void observeRunning(const std::string &id, const model::InstanceRecord &rec, LocalInstance &loc,
                      const drivers::TaskStatus &task) {
    if (auto it = s_.probes.find(id); it != s_.probes.end()) {
      for (const ProbeResult &p : it->second) {
        if (p.generation != loc.generation) continue;  // an older task's result
        loc.health.onProbe(p.ok, p.reason, p.at);
        loc.restart.observe(loc.health.healthy(), p.at);
      }
    }
    loc.restart.observe(loc.health.healthy(), now_);

    if (loc.health.tick(now_) == HealthEvent::kRestart) {
      loc.restart_requested = true;
      loc.message = fmt::format("unhealthy for {}; restarting",
                                formatDuration(loc.health.options().unhealthy_restart_after));
    }
    if (loc.restart_requested) {
      push(stopAction(id, rec.spec.kill_timeout, true));
      return;
    }
    if (!loc.health.healthy() && loc.health.state() == InstanceState::kStarting &&
        loc.restart.startupExpired(now_)) {
      loc.phase = Phase::kFailed;
      loc.message = fmt::format("not healthy within {}",
                                formatDuration(loc.restart.options().startup_deadline));
      if (!loc.health.message().empty()) loc.message += " (" + loc.health.message() + ")";
      push(stopAction(id, rec.spec.kill_timeout, false));
      return;
    }
    plan_.probes.push_back({id, loc.generation, task.address.empty() ? "127.0.0.1" : task.address,
                            task.port ? task.port : loc.port, rec.spec.health});
  }

  void crashed(const std::string &id, LocalInstance &loc, const drivers::TaskStatus *task) {
    std::string reason;
    if (auto err = s_.start_errors.find(id); err != s_.start_errors.end()) {
      reason = "failed to start: " + err->second;
    } else if (task && task->exit) {
      const drivers::ExitStatus &e = *task->exit;
      loc.last_exit_code = e.exit_code;
      if (e.oom_killed) {
        reason = "killed: out of memory";
      } else if (e.signal) {
        reason = fmt::format("killed by signal {}", *e.signal);
      } else {
        reason = fmt::format("exited with code {}", e.exit_code);
      }
    } else {
      reason = "task disappeared";
    }
    if (loc.restart_requested) reason = loc.message;
    loc.last_failure = reason;
    loc.health.onExit(loc.last_exit_code.value_or(-1), now_);
    loc.restart_requested = false;
    if (task) push(makeAction(Action::Kind::kDestroy, id));

    RestartDecision d = loc.restart.onCrash(now_);
    if (d.give_up) {
      loc.phase = Phase::kFailed;
      loc.message = reason + "; " + d.reason;
      loc.restart_at.reset();
      return;
    }
    loc.phase = Phase::kBackoff;
    loc.restart_at = now_ + d.delay;
    loc.message = fmt::format("{}; restarting in {}", reason, formatDuration(d.delay));
    if (!plan_.next_wake || *loc.restart_at < *plan_.next_wake) plan_.next_wake = loc.restart_at;
  }

  void finish(const std::string &id, const LocalInstance &loc, const drivers::TaskStatus *task) {
    model::InstanceStatus st = statusFor(id, s_, loc, task);
    const model::InstanceStatus *old = find(s_.written, id);
    if (!old || statusChanged(*old, st)) {
      Action a = makeAction(Action::Kind::kWriteStatus, id);
      a.status = std::move(st);
      push(std::move(a));
    }
    plan_.local[id] = loc;
  }

  const NodeSnapshot &s_;
  TimePoint now_;
  NodePlan plan_;
};

}  // namespace

NodePlan planNode(const NodeSnapshot &snapshot, TimePoint now) {
  return Planner(snapshot, now).run();
}

}  // namespace baton::node
