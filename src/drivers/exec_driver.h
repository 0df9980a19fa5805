// The exec driver (DESIGN.md §2 Node): runs a service's `run` argv as a plain process, under a
// small per-instance supervisor process so that instances outlive the agent. See README.md.
//
// Layout: every task has a dir <state_dir>/<instance_id>/ holding config.json (written here),
// state.json and exit.json (written by the supervisor). All the driver knows about a task is in
// that dir, so a new ExecDriver on the same state_dir (after an agent crash) sees every task
// the old one started: recover() lists them.
//
// Thread safety: all methods may be called concurrently, also for the same instance (start of
// one id is serialized; stop/inspect/wait only read files and send signals).
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "drivers/driver.h"
#include "drivers/exec_internal.h"
#include "drivers/instance_net.h"

namespace baton::drivers {

struct ExecDriverOptions {
  // Where task dirs live, e.g. <data_dir>/tasks. Created if missing.
  std::filesystem::path state_dir;
  // How to run the supervisor; the driver appends "--ready-fd=3" and the task dir. The agent
  // passes {"/path/to/baton", "supervise"}; tests pass {"/path/to/baton_test_supervisor"}.
  std::vector<std::string> supervisor_argv;
  // cgroup name under each controller: <controller>/<cgroup_root>/<instance_id>.
  std::string cgroup_root = "baton";
  // How long start() waits for the supervisor to report that the service runs.
  Duration start_timeout = Duration(10'000);
  // Poll period of wait() and stop() (they watch exit.json and process liveness).
  Duration poll_interval = Duration(10);
  // The soft RLIMIT_NOFILE supervisors (and so services) start with; 0 = the agent's. The agent
  // raises its own to the hard limit for the gateway and passes the one it inherited here.
  uint64_t child_nofile = 0;
  // When set, every task gets its own network namespace and veth pair from here (named
  // <netns_prefix><instance id>; drivers/instance_net.h) and is reached at its address there.
  // Null: tasks share the host's network (loopback). Not owned; must outlive the driver.
  InstanceNetworks* networks = nullptr;
  std::string netns_prefix = "baton-";
  // With `networks`: the /etc/resolv.conf tasks see (the mesh's DNS); "" = the host's.
  std::string resolv_conf;
};

class ExecDriver final : public Driver {
 public:
  // `clock` stamps nothing that the supervisor writes; it measures wait/stop deadlines
  // (steadyNow) and must outlive the driver.
  explicit ExecDriver(ExecDriverOptions options, Clock& clock = SystemClock::instance());

  std::string name() const override { return "exec"; }

  // Expands ${VAR} in spec.run from config.env (an unknown variable is kInvalidArgument),
  // writes config.json and spawns the supervisor detached (double fork + setsid: it is not
  // the agent's child, so it survives the agent and leaves no zombie). Returns once the
  // service was exec'd, or the start error: run[0] "nosuch": no such file or directory.
  // TaskConfig.task_dir is the service's cwd (default: the task dir); log_dir defaults to
  // <task dir>/logs. An id whose task still runs is kAlreadyExists; an ended one is replaced.
  Result<TaskStatus> start(const TaskConfig& config) override;
  // SIGTERM (via the supervisor, which forwards it to the service's process group), up to
  // `grace` for exit.json, then SIGKILL to the process group and every pid in the cgroup;
  // returns once the supervisor (which reaps and kills leftovers) is gone. Unknown id: ok.
  Status stop(const std::string& instance_id, Duration grace) override;
  Status signal(const std::string& instance_id, int signal) override;
  Result<TaskStatus> inspect(const std::string& instance_id) override;
  Result<ExitStatus> wait(const std::string& instance_id, Duration timeout) override;
  // Stops the task first if it still runs (grace 0), then removes the task dir and its network.
  Status destroy(const std::string& instance_id) override;
  Result<std::vector<TaskStatus>> recover() override;
  // From the task's cgroup; without one, the RSS of the service's processes (no CPU time).
  Result<TaskStats> stats(const std::string& instance_id) override;

  std::filesystem::path taskDir(const std::string& instance_id) const {
    return options_.state_dir / instance_id;
  }

 private:
  Result<TaskStatus> spawn(const TaskConfig& config);
  // Where a task is reached in its own network ("" without one): remembered from its start, or
  // read once from config.json for a task an earlier agent started (inspect runs every pass).
  std::string addressOf(const std::string& instance_id);
  void sleepPoll() const;

  ExecDriverOptions options_;
  Clock& clock_;
  exec::StartingIds starting_;
  std::mutex addresses_mu_;
  std::map<std::string, std::string> addresses_;  // guarded by addresses_mu_
};

}  // namespace baton::drivers
