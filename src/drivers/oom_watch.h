// Tells which tasks the kernel's OOM killer hit, for drivers whose runtime does not (Podman with
// runc and cgroupfs on cgroups v1 reports OOMKilled=false for a container the kernel killed at
// its memory limit). One thread for the whole driver waits (epoll) on each watched memory
// cgroup's OOM notification (v1: an eventfd registered on memory.oom_control; v2: memory.events
// changes) and, when it fires, reads the cgroup's oom_kill count while the cgroup still exists.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/result.h"

namespace baton::drivers {

class OomWatch {
 public:
  OomWatch();
  ~OomWatch();
  OomWatch(const OomWatch&) = delete;
  OomWatch& operator=(const OomWatch&) = delete;

  // Watches the memory cgroup that process `pid` is in, under `key`. An error (no memory
  // cgroup, no permission) means OOM kills of this task will not be recognised.
  Status watch(const std::string& key, int pid);
  // Whether an OOM kill happened in the cgroup watched under `key`.
  bool oomKilled(const std::string& key);
  void forget(const std::string& key);

  // The memory cgroup directory of `pid` (v1: the memory controller's; v2: the unified one).
  static Result<std::string> memoryCgroupOf(int pid);

 private:
  struct Entry {
    std::string dir;
    int event_fd = -1;    // v1: the eventfd; v2: memory.events
    int control_fd = -1;  // v1: memory.oom_control (must stay open while registered)
    bool v2 = false;
  };
  void run();
  void check(const std::string& key);
  void close(Entry& e);

  std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::map<int, std::string> by_fd_;
  std::set<std::string> killed_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
};

}  // namespace baton::drivers
