#include "drivers/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace baton::drivers {
namespace fs = std::filesystem;
namespace {

const char* const kV1Controllers[] = {"memory", "cpu", "cpuacct", "pids"};

bool writeFile(const fs::path& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = ::write(fd, value.data(), value.size());
  ::close(fd);
  return n == static_cast<ssize_t>(value.size());
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t readU64(const fs::path& path) {
  std::string s = readFile(path);
  return s.empty() ? 0 : std::strtoull(s.c_str(), nullptr, 10);
}


bool makeDir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return true;
  return false;
}

}  // namespace

TaskCgroup::Version TaskCgroup::detect(const fs::path& mount) {
  std::error_code ec;
  if (fs::exists(mount / "cgroup.controllers", ec)) return Version::kV2;
  for (const char* c : kV1Controllers) {
    if (fs::exists(mount / c / "cgroup.procs", ec)) return Version::kV1;
  }
  return Version::kNone;
}

TaskCgroup TaskCgroup::paths(const std::string& root, const std::string& id,
                             const fs::path& mount) {
  Version version = detect(mount);
  std::vector<fs::path> dirs;
  std::error_code ec;
  if (version == Version::kV2) {
    dirs.push_back(mount / root / id);
  } else if (version == Version::kV1) {
    std::set<fs::path> seen;
    for (const char* c : kV1Controllers) {
      fs::path hier = mount / c;
      if (!fs::exists(hier / "cgroup.procs", ec)) continue;
      fs::path canon = fs::canonical(hier, ec);
      if (ec || !seen.insert(canon).second) continue;
      dirs.push_back(canon / root / id);
    }
  }
  return TaskCgroup(version, std::move(dirs));
}

Result<TaskCgroup> TaskCgroup::create(const std::string& root, const std::string& id,
                                      const CgroupLimits& limits, const fs::path& mount) {
  TaskCgroup cg = paths(root, id, mount);
  if (cg.version_ == Version::kNone)
    return unavailable("no cgroup hierarchy under " + mount.string());
  if (cg.version_ == Version::kV2) {
    // Enable the controllers for <root>'s children; failures show up as missing files below.
    writeFile(mount / "cgroup.subtree_control", "+memory +cpu +pids");
    if (!makeDir(mount / root)) {
      return unavailable("cannot create cgroup " + (mount / root).string() + ": " +
                         std::strerror(errno));
    }
    writeFile(mount / root / "cgroup.subtree_control", "+memory +cpu +pids");
    const fs::path& dir = cg.dirs_[0];
    if (!makeDir(dir)) {
      return unavailable("cannot create cgroup " + dir.string() + ": " + std::strerror(errno));
    }
    for (const CgroupWrite& w : limitWrites(Version::kV2, limits)) {
      if (!writeFile(dir / w.file, w.value) && w.required) {
        const std::string err = std::strerror(errno);
        cg.remove();
        return unavailable("cannot set " + w.file + " in " + dir.string() + ": " + err);
      }
    }
    return cg;
  }
  std::vector<fs::path> created;
  for (const fs::path& dir : cg.dirs_) {
    if (!makeDir(dir.parent_path()) || !makeDir(dir)) {
      std::string err = std::strerror(errno);
      TaskCgroup(cg.version_, created).remove();
      return unavailable("cannot create cgroup " + dir.string() + ": " + err);
    }
    created.push_back(dir);
  }
  // v1: each file lives in its controller's directory.
  for (const CgroupWrite& w : limitWrites(Version::kV1, limits)) {
    std::error_code ec;
    auto it = std::find_if(cg.dirs_.begin(), cg.dirs_.end(),
                           [&](const fs::path& d) { return fs::exists(d / w.file, ec); });
    const bool written = it != cg.dirs_.end() && writeFile(*it / w.file, w.value);
    if (!written && w.required) {
      const std::string err = it == cg.dirs_.end() ? "no such control file" : std::strerror(errno);
      cg.remove();
      return unavailable("cannot set " + w.file + " for cgroup " + root + "/" + id + ": " + err);
    }
  }
  return cg;
}

std::vector<CgroupWrite> TaskCgroup::limitWrites(Version version, const CgroupLimits& limits) {
  std::vector<CgroupWrite> out;
  const bool v2 = version == Version::kV2;
  if (limits.memory_bytes > 0) {
    const std::string bytes = std::to_string(limits.memory_bytes);
    out.push_back({v2 ? "memory.max" : "memory.limit_in_bytes", bytes, true});
    // Swap counted in the limit: a service cannot page out past it (only where the host
    // accounts swap; not required).
    out.push_back({v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes", v2 ? "0" : bytes});
  }
  if (limits.cpu_weight_cores > 0) {
    if (v2) {
      const long weight = std::clamp(std::lround(limits.cpu_weight_cores * 100), 1L, 10000L);
      out.push_back({"cpu.weight", std::to_string(weight)});
    } else {
      const long shares = std::max(2L, std::lround(limits.cpu_weight_cores * 1024));
      out.push_back({"cpu.shares", std::to_string(shares)});
    }
  }
  if (limits.cpu_quota_cores > 0) {
    const long quota = std::max(1000L, std::lround(limits.cpu_quota_cores * 100000));
    if (v2) {
      out.push_back({"cpu.max", std::to_string(quota) + " 100000"});
    } else {
      out.push_back({"cpu.cfs_period_us", "100000"});
      out.push_back({"cpu.cfs_quota_us", std::to_string(quota)});
    }
  }
  if (limits.pids_max > 0) out.push_back({"pids.max", std::to_string(limits.pids_max), true});
  return out;
}

std::vector<std::string> TaskCgroup::procsFiles() const {
  std::vector<std::string> out;
  for (const fs::path& dir : dirs_) out.push_back((dir / "cgroup.procs").string());
  return out;
}

int TaskCgroup::joinSelf(const std::vector<std::string>& procs_files) {
  for (const std::string& file : procs_files) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = ::write(fd, "0", 1);
    int err = errno;
    ::close(fd);
    if (n != 1) return err;
  }
  return 0;
}

std::vector<pid_t> TaskCgroup::pids() const {
  std::set<pid_t> out;
  for (const fs::path& dir : dirs_) {
    std::istringstream in(readFile(dir / "cgroup.procs"));
    pid_t pid;
    while (in >> pid) out.insert(pid);
  }
  return {out.begin(), out.end()};
}

bool TaskCgroup::killAll() const {
  if (!valid()) return true;
  if (version_ == Version::kV2) writeFile(dirs_[0] / "cgroup.kill", "1");
  for (int attempt = 0; attempt < 200; ++attempt) {
    std::vector<pid_t> live = pids();
    if (live.empty()) return true;
    for (pid_t pid : live) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 10 ? 2 : 10));
  }
  return pids().empty();
}

void TaskCgroup::remove() const {
  for (const fs::path& dir : dirs_) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

CgroupUsage TaskCgroup::usage() const {
  CgroupUsage u;
  std::error_code ec;
  for (const fs::path& dir : dirs_) {
    if (version_ == Version::kV2) {
      u.memory_bytes = readU64(dir / "memory.current");
      u.cpu_usage_ns = readKeyed(dir / "cpu.stat", "usage_usec") * 1000;
      u.processes = static_cast<int>(readU64(dir / "pids.current"));
      u.throttled_periods = readKeyed(dir / "cpu.stat", "nr_throttled");
    } else {
      if (fs::exists(dir / "memory.usage_in_bytes", ec)) {
        u.memory_bytes = readU64(dir / "memory.usage_in_bytes");
      }
      if (fs::exists(dir / "cpuacct.usage", ec)) u.cpu_usage_ns = readU64(dir / "cpuacct.usage");
      if (fs::exists(dir / "cpu.cfs_quota_us", ec)) {
        u.throttled_periods = readKeyed(dir / "cpu.stat", "nr_throttled");
      }
      if (fs::exists(dir / "pids.current", ec)) {
        u.processes = static_cast<int>(readU64(dir / "pids.current"));
      }
    }
  }
  if (u.processes == 0) u.processes = static_cast<int>(pids().size());
  return u;
}

bool TaskCgroup::oomKilled() const {
  std::error_code ec;
  for (const fs::path& dir : dirs_) {
    if (version_ == Version::kV2) return readKeyed(dir / "memory.events", "oom_kill") > 0;
    if (fs::exists(dir / "memory.oom_control", ec)) {
      return readKeyed(dir / "memory.oom_control", "oom_kill") > 0;
    }
  }
  return false;
}

std::string TaskCgroup::memoryLimitFile() const {
  std::error_code ec;
  for (const fs::path& dir : dirs_) {
    if (version_ == Version::kV2) return (dir / "memory.max").string();
    if (fs::exists(dir / "memory.limit_in_bytes", ec)) {
      return (dir / "memory.limit_in_bytes").string();
    }
  }
  return {};
}

std::string TaskCgroup::versionName() const {
  switch (version_) {
    case Version::kV1:
      return "v1";
    case Version::kV2:
      return "v2";
    case Version::kNone:
      break;
  }
  return "none";
}

TaskCgroup::Version TaskCgroup::versionFromName(const std::string& name) {
  if (name == "v1") return Version::kV1;
  if (name == "v2") return Version::kV2;
  return Version::kNone;
}

uint64_t readKeyed(const fs::path& path, const std::string& key) {
  std::istringstream in(readFile(path));
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

}  // namespace baton::drivers
