// Per-task cgroups for the exec driver (internal to src/drivers). Both layouts are supported:
//   v1: <mount>/<controller>/<root>/<id> for memory, cpu, cpuacct and pids (controllers that
//       share a hierarchy, such as "cpu,cpuacct", resolve to one directory);
//   v2: /sys/fs/cgroup/<root>/<id> (detected by /sys/fs/cgroup/cgroup.controllers).
// A TaskCgroup is plain data (the directories), so the supervisor can create it, write it into
// state.json, and the driver can reload it after an agent restart. Not thread-safe per object.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/result.h"

namespace baton::drivers {

struct CgroupLimits {
  uint64_t memory_bytes = 0;   // 0 = no limit; swap is counted in it where the host accounts swap
  double cpu_weight_cores = 0; // a share of the CPU under contention, in cores (0 = default)
  double cpu_quota_cores = 0;  // a hard quota in cores (0 = none)
  int64_t pids_max = 0;        // processes and threads (0 = no limit)
};

// One value to write into a cgroup's control file. `required`: the task must not run without it
// (the memory limit, the process limit).
struct CgroupWrite {
  std::string file;
  std::string value;
  bool required = false;
};

struct CgroupUsage {
  uint64_t memory_bytes = 0;
  uint64_t cpu_usage_ns = 0;
  int processes = 0;
  uint64_t throttled_periods = 0;  // CFS periods in which the quota stopped the task
};

class TaskCgroup {
 public:
  enum class Version { kNone, kV1, kV2 };

  // What `limits` means as control-file writes, in order, for a layout (pure):
  //   v1: memory.limit_in_bytes, memory.memsw.limit_in_bytes (= the limit: no swap beyond it),
  //       cpu.shares (1024 per core), cpu.cfs_period_us + cpu.cfs_quota_us, pids.max;
  //   v2: memory.max, memory.swap.max 0, cpu.weight (100 per core), cpu.max, pids.max.
  static std::vector<CgroupWrite> limitWrites(Version version, const CgroupLimits& limits);

  TaskCgroup() = default;
  TaskCgroup(Version version, std::vector<std::filesystem::path> dirs)
      : version_(version), dirs_(std::move(dirs)) {}

  // Which cgroup layout the host has, under `mount` (default /sys/fs/cgroup).
  static Version detect(const std::filesystem::path& mount = "/sys/fs/cgroup");
  // Creates <root>/<id> in every controller and applies `limits`. An error means the task
  // should run without a cgroup (the caller logs a warning).
  static Result<TaskCgroup> create(const std::string& root, const std::string& id,
                                   const CgroupLimits& limits,
                                   const std::filesystem::path& mount = "/sys/fs/cgroup");
  // The directories `create` would use, without touching anything (for reporting/cleanup).
  static TaskCgroup paths(const std::string& root, const std::string& id,
                          const std::filesystem::path& mount = "/sys/fs/cgroup");

  bool valid() const { return version_ != Version::kNone && !dirs_.empty(); }
  Version version() const { return version_; }
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }

  // The cgroup.procs files to write to join the cgroup (computed before fork).
  std::vector<std::string> procsFiles() const;
  // Moves the calling process into the cgroup by writing "0" to each of `procs_files`. Uses
  // only async-signal-safe calls, so it may run between fork and exec. Returns 0 or an errno.
  static int joinSelf(const std::vector<std::string>& procs_files);
  // Every pid in the cgroup(s), deduplicated.
  std::vector<pid_t> pids() const;
  // SIGKILLs everything in the cgroup until it is empty (bounded). True when empty.
  bool killAll() const;
  // Removes the directories (retrying briefly while the kernel finishes exits). Missing is ok.
  void remove() const;
  CgroupUsage usage() const;
  // Whether the kernel OOM-killed anything in the memory cgroup.
  bool oomKilled() const;
  std::string memoryLimitFile() const;  // path of memory.limit_in_bytes / memory.max

  // JSON-able form: "v1"|"v2"|"none" and the directory list.
  std::string versionName() const;
  static Version versionFromName(const std::string& name);

 private:
  Version version_ = Version::kNone;
  std::vector<std::filesystem::path> dirs_;
};

// "key value" lines (memory.events, cpu.stat, memory.oom_control): the value for `key`; 0 when
// the file or the key is missing.
uint64_t readKeyed(const std::filesystem::path& path, const std::string& key);

}  // namespace baton::drivers
