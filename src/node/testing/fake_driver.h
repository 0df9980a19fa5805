// An in-memory drivers::Driver for the node's tests. Tasks are records in a
// map; "processes" end only when the test says so (crash()) or when stopped.
// With listen(true), start() binds a real TCP listener on
// 127.0.0.1:<config.port> for as long as the task "runs", so that real TCP
// health probes succeed.
//
// Thread safety: every method is synchronized.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "drivers/driver.h"

namespace baton::node::testing {

class FakeDriver final : public drivers::Driver {
 public:
  explicit FakeDriver(Clock &clock, std::string name = "exec")
      : clock_(clock), name_(std::move(name)) {}
  ~FakeDriver() override {
    for (auto &[_, t] : tasks_) closeListener(t);
  }

  // --- test controls ---
  void listen(bool on) {
    std::lock_guard lock(mu_);
    listen_ = on;
  }
  // The next start() of any task fails with `error` (until cleared with
  // Status::ok()).
  void failStarts(Status error) {
    std::lock_guard lock(mu_);
    start_error_ = std::move(error);
  }
  // The task ends with `exit_code` (its listener closes).
  void crash(const std::string &id, int exit_code) {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.status.exit) return;
    end(it->second, exit_code, std::nullopt);
  }
  // A task the driver "finds" at recover(), as if left by an earlier agent.
  void addOrphan(const std::string &id, int pid) {
    std::lock_guard lock(mu_);
    Task t;
    t.status.instance_id = id;
    t.status.pid = pid;
    t.status.started_at = clock_.now();
    tasks_[id] = t;
  }
  int starts() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(started_.size());
  }
  std::vector<drivers::TaskConfig> started() const {
    std::lock_guard lock(mu_);
    return started_;
  }
  std::vector<std::string> stops() const {
    std::lock_guard lock(mu_);
    return stops_;
  }
  // "<id> <signal>" per signal() call.
  std::vector<std::string> signals() const {
    std::lock_guard lock(mu_);
    return signals_;
  }
  bool running(const std::string &id) const {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    return it != tasks_.end() && !it->second.status.exit;
  }
  bool known(const std::string &id) const {
    std::lock_guard lock(mu_);
    return tasks_.count(id) > 0;
  }

  // --- drivers::Driver ---
  std::string name() const override { return name_; }

  Result<drivers::TaskStatus> start(const drivers::TaskConfig &config) override {
    std::lock_guard lock(mu_);
    if (!start_error_.isOk()) return start_error_;
    auto it = tasks_.find(config.instance_id);
    if (it != tasks_.end() && !it->second.status.exit) {
      return Status(Code::kAlreadyExists, "task " + config.instance_id + " is running");
    }
    Task t;
    t.status.instance_id = config.instance_id;
    t.status.pid = next_pid_++;
    t.status.started_at = clock_.now();
    if (listen_) {
      t.listener = openListener(config.port);
      if (t.listener < 0)
        return ioError("fake: cannot listen on port " + std::to_string(config.port));
    }
    started_.push_back(config);
    tasks_[config.instance_id] = t;
    return t.status;
  }

  Status stop(const std::string &id, Duration grace) override {
    std::lock_guard lock(mu_);
    stops_.push_back(id);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.status.exit) return Status::ok();
    end(it->second, 128 + 15, 15);
    return Status::ok();
  }

  Status signal(const std::string &id, int sig) override {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return notFound("fake: no task " + id);
    if (it->second.status.exit) return {Code::kFailedPrecondition, "fake: task has ended"};
    signals_.push_back(id + " " + std::to_string(sig));
    return Status::ok();
  }

  Result<drivers::TaskStatus> inspect(const std::string &id) override {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return notFound("fake: no task " + id);
    drain(it->second);
    return it->second.status;
  }

  Result<drivers::ExitStatus> wait(const std::string &id, Duration timeout) override {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return notFound("fake: no task " + id);
    if (!it->second.status.exit) return Status(Code::kTimeout, "fake: still running");
    return *it->second.status.exit;
  }

  Status destroy(const std::string &id) override {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return Status::ok();
    if (!it->second.status.exit) return {Code::kFailedPrecondition, "fake: task is running"};
    closeListener(it->second);
    tasks_.erase(it);
    destroyed_.push_back(id);
    return Status::ok();
  }

  Result<std::vector<drivers::TaskStatus>> recover() override {
    std::lock_guard lock(mu_);
    std::vector<drivers::TaskStatus> out;
    for (const auto &[_, t] : tasks_) out.push_back(t.status);
    return out;
  }

  Result<drivers::TaskStats> stats(const std::string &id) override { return drivers::TaskStats{}; }

 private:
  struct Task {
    drivers::TaskStatus status;
    int listener = -1;
  };

  void end(Task &t, int code, std::optional<int> signal) {
    drivers::ExitStatus e;
    e.exit_code = code;
    e.signal = signal;
    e.finished_at = clock_.now();
    t.status.exit = e;
    closeListener(t);
  }
  static void closeListener(Task &t) {
    if (t.listener >= 0) ::close(t.listener);
    t.listener = -1;
  }
  // Accept and drop pending connections so the backlog never fills up.
  static void drain(Task &t) {
    if (t.listener < 0) return;
    for (;;) {
      int c = ::accept4(t.listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break;
      ::close(c);
    }
  }
  static int openListener(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, 128) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  Clock &clock_;
  std::string name_;
  mutable std::mutex mu_;
  bool listen_ = false;
  Status start_error_;
  int next_pid_ = 1000;
  std::map<std::string, Task> tasks_;
  std::vector<drivers::TaskConfig> started_;
  std::vector<std::string> stops_;
  std::vector<std::string> signals_;
  std::vector<std::string> destroyed_;
};

}  // namespace baton::node::testing
