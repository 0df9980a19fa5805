#include "drivers/oom_watch.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "drivers/cgroup.h"

namespace baton::drivers {
namespace {


}  // namespace

OomWatch::OomWatch() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ >= 0 && wake_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    thread_ = std::thread([this] { run(); });
  }
}

OomWatch::~OomWatch() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (auto& [_, e] : entries_) close(e);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<std::string> OomWatch::memoryCgroupOf(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  if (!in) return Status(Code::kNotFound, "process " + std::to_string(pid) + " is gone");
  std::string line, unified;
  while (std::getline(in, line)) {
    // hierarchy-id:controllers:path
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::stringstream ss(controllers);
    for (std::string c; std::getline(ss, c, ',');) {
      if (c == "memory") return "/sys/fs/cgroup/memory" + path;
    }
    if (line.rfind("0::", 0) == 0) unified = path;
  }
  if (!unified.empty() && access(("/sys/fs/cgroup" + unified + "/memory.events").c_str(), R_OK) == 0) {
    return "/sys/fs/cgroup" + unified;
  }
  return Status(Code::kNotFound, "process " + std::to_string(pid) + " has no memory cgroup");
}

Status OomWatch::watch(const std::string& key, int pid) {
  if (epoll_fd_ < 0) return Status(Code::kUnavailable, "epoll is not available");
  auto dir = memoryCgroupOf(pid);
  if (!dir) return dir.status();
  Entry e;
  e.dir = *dir;
  auto fail = [&](const std::string& what) {
    int err = errno;
    close(e);
    return Status(Code::kIo, what + " in " + *dir + ": " + std::strerror(err));
  };
  if (access((*dir + "/memory.oom_control").c_str(), R_OK) == 0) {
    e.event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e.control_fd = ::open((*dir + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC);
    if (e.event_fd < 0 || e.control_fd < 0) return fail("opening memory.oom_control");
    int ctl = ::open((*dir + "/cgroup.event_control").c_str(), O_WRONLY | O_CLOEXEC);
    if (ctl < 0) return fail("opening cgroup.event_control");
    std::string reg = std::to_string(e.event_fd) + " " + std::to_string(e.control_fd);
    bool ok = ::write(ctl, reg.data(), reg.size()) == static_cast<ssize_t>(reg.size());
    ::close(ctl);
    if (!ok) return fail("registering for OOM events");
  } else {
    e.v2 = true;
    e.event_fd = ::open((*dir + "/memory.events").c_str(), O_RDONLY | O_CLOEXEC);
    if (e.event_fd < 0) return fail("opening memory.events");
  }
  std::lock_guard lock(mu_);
  if (auto old = entries_.find(key); old != entries_.end()) {
    by_fd_.erase(old->second.event_fd);
    close(old->second);
    entries_.erase(old);
  }
  epoll_event ev{};
  ev.events = e.v2 ? EPOLLPRI : EPOLLIN;
  ev.data.fd = e.event_fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, e.event_fd, &ev) != 0) return fail("epoll_ctl");
  by_fd_[e.event_fd] = key;
  entries_[key] = e;
  return Status::ok();
}

bool OomWatch::oomKilled(const std::string& key) {
  std::lock_guard lock(mu_);
  return killed_.count(key) > 0;
}

void OomWatch::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  killed_.erase(key);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  by_fd_.erase(it->second.event_fd);
  close(it->second);
  entries_.erase(it);
}

void OomWatch::close(Entry& e) {
  if (e.event_fd >= 0) {
    if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, e.event_fd, nullptr);
    ::close(e.event_fd);
  }
  if (e.control_fd >= 0) ::close(e.control_fd);
  e.event_fd = e.control_fd = -1;
}

void OomWatch::check(const std::string& key) {
  std::string dir;
  bool v2;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    dir = it->second.dir;
    v2 = it->second.v2;
  }
  uint64_t kills = readKeyed(dir + (v2 ? "/memory.events" : "/memory.oom_control"), "oom_kill");
  uint64_t under = v2 ? 0 : readKeyed(dir + "/memory.oom_control", "under_oom");
  std::lock_guard lock(mu_);
  if (kills > 0 || under > 0) {
    killed_.insert(key);
  } else if (access(dir.c_str(), F_OK) != 0) {
    // The cgroup is gone (v1 notifies its removal too): nothing more will come.
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      by_fd_.erase(it->second.event_fd);
      close(it->second);
      entries_.erase(it);
    }
  }
}

void OomWatch::run() {
  epoll_event events[16];
  while (true) {
    int n = ::epoll_wait(epoll_fd_, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_fd_) return;
      std::string key;
      {
        std::lock_guard lock(mu_);
        auto it = by_fd_.find(fd);
        if (it == by_fd_.end()) continue;
        key = it->second;
        if (!entries_[key].v2) {
          uint64_t count;
          (void)!::read(fd, &count, sizeof count);
        }
      }
      check(key);
    }
  }
}

}  // namespace baton::drivers
