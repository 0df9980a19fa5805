// The driver interface (DESIGN.md §2 Node): how a node runs one instance of a service. Drivers
// register by name ("exec", later "docker", "oci", "wasm") in a DriverRegistry; every driver
// passes the same conformance suite (drivers/testing/driver_conformance.h).
//
// An instance's task must outlive the agent: after the agent is killed and restarted,
// recover() finds the tasks that are still running (and those that ended meanwhile, with their
// exit status) so the node re-adopts them instead of starting them again.
//
// Thread safety: a driver may be called from several threads, for different instances at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "model/app.h"

namespace baton::drivers {

// Everything a driver needs to start one instance. The node fills it from the InstanceRecord.
struct TaskConfig {
  std::string instance_id;                 // unique, filesystem-safe ([a-z0-9-]); the task's key
  model::ServiceSpec spec;                 // run / image / wasm, cpu, memory
  std::map<std::string, std::string> env;  // the final environment (PORT included)
  int port = 0;                            // the port the instance must listen on
  std::filesystem::path task_dir;          // the driver's private dir for this instance
  std::filesystem::path log_dir;           // stdout.log / stderr.log (+ rotated .1 .. .N)
  uint64_t log_max_bytes = 10ull << 20;    // rotate a log file past this size
  int log_max_files = 3;                   // rotated files kept per stream
  // Who the service runs as (the node decides: docs/security.md "Instances"); -1: as the agent.
  int64_t uid = -1;
  int64_t gid = -1;
  std::vector<uint32_t> groups;            // supplementary groups (a named user's)
  int64_t pids_max = 0;                    // processes and threads of the task; 0 = no limit
  // Drivers that give a task a network of its own (containers): the port the service listens
  // on inside it (the manifest's `port`, else `port`); the node reaches it on 127.0.0.1:port.
  int container_port = 0;
  // Exec driver only (for drivers built on it): when `run` exits 0 having written a pid to this
  // file, that process (re-parented to the supervisor) is the service from then on.
  std::filesystem::path adopt_pid_file;
  // The instance's secret files on the node (the node fills it; docs/secrets.md "Delivery");
  // drivers with an image of their own mount it read-only at kContainerSecretsDir. "": none.
  std::filesystem::path secrets_dir;
};

// Where a container sees its secret files (BATON_SECRETS_DIR inside it).
inline constexpr std::string_view kContainerSecretsDir = "/run/secrets/baton";

// What prepare() found: ready to start, or a slow step (an image pull) still under way.
struct Preparation {
  bool ready = true;
  std::string progress;                    // when !ready: "pulling image x: 12.0 of 40.1 MB"
};

struct ExitStatus {
  int exit_code = 0;                       // 0..255, or 128 + signal when killed by a signal
  std::optional<int> signal;               // the signal that ended it, if any
  bool oom_killed = false;
  TimePoint finished_at{};
};

struct TaskStatus {
  std::string instance_id;
  int pid = 0;                             // the service's main process, for the API (0 if none)
  TimePoint started_at{};
  std::optional<ExitStatus> exit;          // set once the task has ended
  // Where the node reaches the service: address:port. Empty: 127.0.0.1 and TaskConfig.port.
  std::string address;
  int port = 0;                            // 0: TaskConfig.port
};

struct TaskStats {
  uint64_t memory_bytes = 0;               // resident memory of the whole task (cgroup)
  uint64_t cpu_usage_ns = 0;               // total CPU time used
  int processes = 0;
  uint64_t throttled_periods = 0;          // periods its CPU quota stopped it (cgroup cpu.stat)
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;

  // Slow steps before a start (pulling or unpacking an image) run apart from it: prepare()
  // never blocks; it starts the step in the background and reports whether it is done. An
  // error is the step's failure (reported once; the next call tries again). Default: ready.
  virtual Result<Preparation> prepare(const model::ServiceSpec& spec) { return Preparation{}; }
  // Whether tasks get a network of their own (then `port` is published on the node's loopback
  // and the service listens on TaskConfig.container_port inside).
  virtual bool ownNetwork() const { return false; }
  // Whether a manifest's `user` names a user inside the task's image (not on the host).
  virtual bool imageUsers() const { return false; }

  // Starts the task and returns once it is running (or failed to start: e.g. the program does
  // not exist -> error naming it). Starting an id that is already running is kAlreadyExists.
  virtual Result<TaskStatus> start(const TaskConfig& config) = 0;
  // Asks the task to stop (SIGTERM or equivalent), waits up to `grace`, then kills it and
  // everything it started. Returns once nothing of the task runs. Idempotent.
  virtual Status stop(const std::string& instance_id, Duration grace) = 0;
  // Sends `signal` (SIGHUP, SIGUSR1, ...) to the task's main process (a container's init).
  // kNotFound if the driver does not know the id, kFailedPrecondition if the task has ended.
  virtual Status signal(const std::string& instance_id, int signal) = 0;
  // The task's status now, without blocking. kNotFound if the driver does not know the id.
  virtual Result<TaskStatus> inspect(const std::string& instance_id) = 0;
  // Blocks until the task ends or `timeout` passes; returns the exit status or kTimeout.
  virtual Result<ExitStatus> wait(const std::string& instance_id, Duration timeout) = 0;
  // Forgets an ended task and deletes its driver state (not its logs). Idempotent.
  virtual Status destroy(const std::string& instance_id) = 0;
  // After an agent restart: every task this driver left on this node, running or ended.
  virtual Result<std::vector<TaskStatus>> recover() = 0;
  virtual Result<TaskStats> stats(const std::string& instance_id) = 0;
};

// Drivers by name (STYLE.md "extensions by name"). Not thread-safe to modify; register all
// drivers at startup, then share read-only.
class DriverRegistry {
 public:
  void add(std::unique_ptr<Driver> driver);
  Driver* find(const std::string& name) const;  // nullptr when absent
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::unique_ptr<Driver>> drivers_;
};

}  // namespace baton::drivers
