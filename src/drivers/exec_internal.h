// Internals shared by the exec driver (agent side) and its supervisor (exec_supervisor.cc):
// the files of a task dir, atomic writes, process liveness with pid-reuse protection, ${VAR}
// expansion and the rotating log writer. Not part of the driver's public API; here so both
// sides and the tests agree on one definition.
//
// Task dir (<state_dir>/<instance_id>/):
//   config.json  written by the driver before the supervisor starts (what to run)
//   state.json   written by the supervisor once the service runs (pids, start times, cgroup)
//   exit.json    written by the supervisor when the service has ended (exit status)
//   supervisor.log  the supervisor's own stderr (warnings, errors)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <mutex>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "drivers/driver.h"

namespace baton::drivers::exec {

inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kExitFile = "exit.json";
inline constexpr const char* kSupervisorLog = "supervisor.log";

// What the supervisor runs: TaskConfig after the driver resolved defaults and expanded argv.
struct SupervisorConfig {
  std::string instance_id;
  std::vector<std::string> argv;  // ${VAR} already expanded
  std::map<std::string, std::string> env;
  std::filesystem::path cwd;
  std::filesystem::path log_dir;
  uint64_t log_max_bytes = 10ull << 20;
  int log_max_files = 3;
  std::string cgroup_root;
  uint64_t memory_bytes = 0;
  double cpu_cores = 0;        // the cgroup CPU weight, in cores
  double cpu_limit_cores = 0;  // a hard CPU quota; 0 = none
  int64_t pids_max = 0;
  int64_t uid = -1;            // -1: the supervisor's own
  int64_t gid = -1;
  std::vector<uint32_t> groups;
  // When the program exits 0 having written a pid to this file, and that process is now the
  // supervisor's child (re-parented to it, the subreaper), it is the service from then on:
  // `runc run --detach --pid-file F` starts a container and leaves its init behind.
  std::string adopt_pid_file;
  // The network namespace the service joins (/var/run/netns/<name>), and its address there
  // (where the node reaches it); empty: the host's network.
  std::string netns_path;
  std::string address;
  // A file bind-mounted at /etc/resolv.conf in a mount namespace of the service's own; "" = the
  // host's.
  std::string resolv_conf;
};

struct SupervisorState {
  int supervisor_pid = 0;
  uint64_t supervisor_start = 0;  // /proc/<pid>/stat starttime: tells a reused pid apart
  int pid = 0;                    // the service (its own session and process group)
  uint64_t pid_start = 0;
  int64_t started_at_ms = 0;
  std::string cgroup_version = "none";
  std::vector<std::string> cgroup_dirs;
  std::vector<std::string> warnings;
  std::string error;  // start error, e.g. run[0] "nosuch": no such file or directory
};

std::string encodeConfig(const SupervisorConfig& c);
Result<SupervisorConfig> decodeConfig(const std::string& text);
std::string encodeState(const SupervisorState& s);
Result<SupervisorState> decodeState(const std::string& text);
std::string encodeExit(const ExitStatus& e, const std::string& error = "");
Result<ExitStatus> decodeExit(const std::string& text);

// Writes `path` via `path.tmp` + fsync + rename, so readers see the old file or the new one.
Status writeFileAtomic(const std::filesystem::path& path, const std::string& content);
Result<std::string> readWholeFile(const std::filesystem::path& path);

// starttime (field 22 of /proc/<pid>/stat); nullopt when the process is gone or a zombie.
std::optional<uint64_t> processStartTime(pid_t pid);
// Alive, not a zombie, and (when start != 0) the same process that had that start time.
bool processAlive(pid_t pid, uint64_t start);
// Direct children of `pid` (from /proc/*/stat).
std::vector<pid_t> childrenOf(pid_t pid);

// Expands ${NAME} in each argument from `env`; "$${" stands for a literal "${". Any other '$'
// is kept as is (so shell scripts keep $1, $$, $PORT). An unknown or unterminated ${...} is an
// error naming the argument: run[2]: unknown variable ${NOPE}.
Result<std::vector<std::string>> expandArgv(const std::vector<std::string>& argv,
                                            const std::map<std::string, std::string>& env);

// strerror with a lower-case first letter ("no such file or directory").
std::string errnoText(int err);

// A task id that is safe as a file name and a runc container id: [A-Za-z0-9._-], 1..200
// characters, not "." or "..".
bool validTaskId(const std::string& id);

// The ids whose start is under way, so that a second concurrent start of one id is refused
// (kAlreadyExists) instead of racing the first. Thread-safe.
class StartingIds {
 public:
  Result<TaskStatus> run(const std::string& id, const std::function<Result<TaskStatus>()>& start);
  bool contains(const std::string& id);

 private:
  std::mutex mu_;
  std::set<std::string> ids_;
};

// Append-only log file with size-based rotation: before a write would take the file past
// `max_bytes`, file -> file.1 -> ... -> file.<max_files> (the oldest is dropped). Not
// thread-safe.
class RotatingLog {
 public:
  RotatingLog(std::filesystem::path path, uint64_t max_bytes, int max_files);
  ~RotatingLog();
  RotatingLog(const RotatingLog&) = delete;
  RotatingLog& operator=(const RotatingLog&) = delete;

  Status open();
  void write(const char* data, size_t n);

 private:
  void rotate();

  std::filesystem::path path_;
  uint64_t max_bytes_;
  int max_files_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace baton::drivers::exec
