#include "drivers/exec_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "drivers/cgroup.h"
#include "drivers/exec_internal.h"

namespace baton::drivers {
namespace fs = std::filesystem;
using namespace exec;

namespace {

// Records the service child sends on the error pipe between fork and exec.
enum Stage : int {
  kJoinCgroup = 1,
  kChdir = 2,
  kExec = 3,
  kSetUser = 4,
  kNoNewPrivs = 5,
  kJoinNetns = 6,
  kResolvConf = 7
};
struct ChildError {
  int stage;
  int err;
};

void logLine(const std::string& line) {
  std::string text = line + "\n";
  ssize_t n = ::write(2, text.data(), text.size());
  (void)n;
}

void report(int fd, const std::string& msg) {
  if (fd < 0) return;
  ssize_t n = ::write(fd, msg.data(), msg.size());
  (void)n;
  ::close(fd);
}

int64_t nowMillis() { return toUnixMillis(SystemClock::instance().now()); }

// Finds `program` like execvp would, but in the service's PATH rather than ours. Returns the
// program itself when it contains a '/', and "" when it is nowhere on the PATH.
std::string resolveProgram(const std::string& program,
                           const std::map<std::string, std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  auto it = env.find("PATH");
  std::string path = it == env.end() ? "/usr/local/bin:/usr/bin:/bin" : it->second;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return "";
}

// Every descendant of this process (the supervisor is a child subreaper, so orphans of the
// service are re-parented here and stay findable even without a cgroup).
std::vector<pid_t> descendants() {
  std::vector<pid_t> out;
  std::vector<pid_t> frontier = {::getpid()};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    for (pid_t c : childrenOf(p)) {
      out.push_back(c);
      frontier.push_back(c);
    }
  }
  return out;
}

void reapAll() {
  while (true) {
    int status;
    pid_t p = ::waitpid(-1, &status, WNOHANG);
    if (p <= 0) return;
  }
}

class Supervisor {
 public:
  Supervisor(fs::path task_dir, int ready_fd) : dir_(std::move(task_dir)), ready_fd_(ready_fd) {}
  int run();

 private:
  int failStart(const std::string& error);
  void pump(int& fd, RotatingLog& log, bool until_eof);
  void killLeftovers();
  bool adopt(int status);

  fs::path dir_;
  int ready_fd_;
  SupervisorConfig config_;
  SupervisorState state_;
  TaskCgroup cgroup_;
  pid_t child_ = -1;
  bool adopted_ = false;  // child_ is the process named by config_.adopt_pid_file
  int out_fd_ = -1;
  int err_fd_ = -1;
};

int Supervisor::failStart(const std::string& error) {
  logLine("start failed: " + error);
  state_.error = error;
  (void)writeFileAtomic(dir_ / kStateFile, encodeState(state_));
  ExitStatus exit;
  exit.exit_code = 127;
  exit.finished_at = fromUnixMillis(nowMillis());
  (void)writeFileAtomic(dir_ / kExitFile, encodeExit(exit, error));
  killLeftovers();
  cgroup_.remove();
  report(ready_fd_, "error: " + error);
  return 1;
}

void Supervisor::pump(int& fd, RotatingLog& log, bool until_eof) {
  char buf[65536];
  while (fd >= 0) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      log.write(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && !until_eof) return;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) {  // something outside our reach holds the pipe: give up
        ::close(fd);
        fd = -1;
      }
      continue;
    }
    ::close(fd);  // EOF or error
    fd = -1;
  }
}

// After the program ended with `status`: when it exited 0 having written the pid of a process
// that is now our child (config.adopt_pid_file), that process becomes the service.
bool Supervisor::adopt(int status) {
  if (config_.adopt_pid_file.empty() || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return false;
  }
  auto text = readWholeFile(config_.adopt_pid_file);
  if (!text) {
    logLine("adopt: " + text.status().message());
    return false;
  }
  pid_t pid = static_cast<pid_t>(std::atoi(text->c_str()));
  std::vector<pid_t> children = childrenOf(::getpid());
  if (pid <= 1 || std::find(children.begin(), children.end(), pid) == children.end()) {
    logLine("adopt: " + std::to_string(pid) + " from " + config_.adopt_pid_file +
            " is not a child of the supervisor");
    return false;
  }
  child_ = pid;
  adopted_ = true;
  state_.pid = pid;
  state_.pid_start = processStartTime(pid).value_or(0);
  if (Status s = writeFileAtomic(dir_ / kStateFile, encodeState(state_)); !s) {
    logLine("error: " + s.message());
  }
  return true;
}

void Supervisor::killLeftovers() {
  // The process group still exists while any member lives, so its id cannot have been reused.
  if (child_ > 0) ::kill(-child_, SIGKILL);
  cgroup_.killAll();
  // Without a cgroup (or for anything that escaped it) the process tree is the fallback.
  for (int attempt = 0; attempt < 500; ++attempt) {
    std::vector<pid_t> rest = descendants();
    reapAll();
    if (rest.empty()) break;
    for (pid_t p : rest) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 10 ? 1 : 10));
  }
  reapAll();
}

int Supervisor::run() {
  auto text = readWholeFile(dir_ / kConfigFile);
  if (!text) return failStart(text.status().message());
  auto config = decodeConfig(*text);
  if (!config) return failStart(config.status().message());
  config_ = std::move(config.value());
  if (config_.argv.empty()) return failStart("run is empty");

  state_.supervisor_pid = ::getpid();
  state_.supervisor_start = processStartTime(::getpid()).value_or(0);

  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  auto cg = TaskCgroup::create(config_.cgroup_root, config_.instance_id,
                               {.memory_bytes = config_.memory_bytes,
                                .cpu_weight_cores = config_.cpu_cores,
                                .cpu_quota_cores = config_.cpu_limit_cores,
                                .pids_max = config_.pids_max});
  if (cg) {
    cgroup_ = std::move(cg.value());
    state_.cgroup_version = cgroup_.versionName();
    for (const auto& d : cgroup_.dirs()) state_.cgroup_dirs.push_back(d.string());
  } else {
    std::string warning = "running without a cgroup: " + cg.status().message();
    logLine("warning: " + warning);
    state_.warnings.push_back(warning);
  }

  std::error_code ec;
  fs::create_directories(config_.log_dir, ec);
  RotatingLog out_log(config_.log_dir / "stdout.log", config_.log_max_bytes, config_.log_max_files);
  RotatingLog err_log(config_.log_dir / "stderr.log", config_.log_max_bytes, config_.log_max_files);
  if (Status s = out_log.open(); !s) return failStart(s.message());
  if (Status s = err_log.open(); !s) return failStart(s.message());

  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    return failStart("pipe: " + errnoText(errno));
  }

  // Everything the child needs, computed before fork.
  std::string program = resolveProgram(config_.argv[0], config_.env);
  std::vector<char*> argv;
  for (auto& a : config_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : config_.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> procs = cgroup_.procsFiles();
  std::string cwd = config_.cwd.string();
  const std::string resolv_conf = config_.resolv_conf;
  const bool switch_user = config_.uid >= 0 && config_.gid >= 0;
  const uid_t uid = static_cast<uid_t>(config_.uid);
  const gid_t gid = static_cast<gid_t>(config_.gid);
  std::vector<gid_t> groups(config_.groups.begin(), config_.groups.end());
  // Without a cgroup (and so no pids.max), RLIMIT_NPROC bounds the service's processes
  // instead: it counts per UID, which is the service's own when it has a dynamic one.
  const bool nproc_limit = !cgroup_.valid() && config_.pids_max > 0;
  const rlimit nproc{static_cast<rlim_t>(config_.pids_max), static_cast<rlim_t>(config_.pids_max)};

  // The instance's own network (drivers/instance_net.h), joined before privileges are dropped.
  int netns_fd = -1;
  if (!config_.netns_path.empty()) {
    netns_fd = ::open(config_.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      return failStart("cannot open network namespace " + config_.netns_path + ": " +
                       errnoText(errno));
    }
  }

  sigset_t none;
  sigemptyset(&none);
  child_ = ::fork();
  if (child_ < 0) return failStart("fork: " + errnoText(errno));
  if (child_ == 0) {
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGHUP, SIGINT, SIGPIPE, SIGTERM, SIGCHLD}) ::signal(sig, SIG_DFL);
    ::setsid();
    if (!procs.empty()) {
      if (int err = TaskCgroup::joinSelf(procs); err != 0) {
        ChildError ce{kJoinCgroup, err};
        ssize_t n = ::write(exec_pipe[1], &ce, sizeof ce);
        (void)n;
      }
    }
    int nul = ::open("/dev/null", O_RDONLY);
    if (nul >= 0) ::dup2(nul, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    auto fail = [&](Stage stage, int err) {
      ChildError ce{stage, err};
      ssize_t n = ::write(exec_pipe[1], &ce, sizeof ce);
      (void)n;
      ::_exit(127);
    };
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) fail(kJoinNetns, errno);
    // Its own view of /etc/resolv.conf (the mesh's DNS): a mount namespace of its own whose
    // changes do not reach the host's, then one bind mount.
    if (!resolv_conf.empty()) {
      if (::unshare(CLONE_NEWNS) != 0 ||
          ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0 ||
          ::mount(resolv_conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
        fail(kResolvConf, errno);
      }
    }
    // Least privilege (docs/security.md "Instances"): the service's own user and groups, no
    // way back to more privilege through setuid binaries or file capabilities, and the usual
    // umask (the agent's 077 is for its own files).
    if (switch_user) {
      if (nproc_limit) ::setrlimit(RLIMIT_NPROC, &nproc);
      if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
          ::setuid(uid) != 0) {
        fail(kSetUser, errno);
      }
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(kNoNewPrivs, errno);
    ::umask(022);
    if (::chdir(cwd.c_str()) != 0) {
      ChildError ce{kChdir, errno};
      ssize_t n = ::write(exec_pipe[1], &ce, sizeof ce);
      (void)n;
      ::_exit(127);
    }
    if (!program.empty()) ::execve(program.c_str(), argv.data(), envp.data());
    ChildError ce{kExec, program.empty() ? ENOENT : errno};
    ssize_t n = ::write(exec_pipe[1], &ce, sizeof ce);
    (void)n;
    ::_exit(127);
  }
  if (netns_fd >= 0) ::close(netns_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];

  std::string fatal;
  ChildError ce{};
  while (true) {
    ssize_t n = ::read(exec_pipe[0], &ce, sizeof ce);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof ce)) break;  // EOF: exec succeeded
    if (ce.stage == kJoinCgroup) {
      std::string warning = "service did not join its cgroup: " + errnoText(ce.err);
      logLine("warning: " + warning);
      state_.warnings.push_back(warning);
    } else if (ce.stage == kChdir) {
      fatal = "cannot enter working directory \"" + cwd + "\": " + errnoText(ce.err);
      if (switch_user) {
        fatal += " (the service runs as uid " + std::to_string(uid) +
                 ": every directory on the way must be open to it, e.g. chmod o+x)";
      }
    } else if (ce.stage == kSetUser) {
      fatal = "cannot switch to uid " + std::to_string(uid) + " gid " + std::to_string(gid) +
              ": " + errnoText(ce.err);
    } else if (ce.stage == kResolvConf) {
      fatal = "cannot mount " + config_.resolv_conf + " on /etc/resolv.conf: " + errnoText(ce.err);
    } else if (ce.stage == kJoinNetns) {
      fatal = "cannot join network namespace " + config_.netns_path + ": " + errnoText(ce.err);
    } else if (ce.stage == kNoNewPrivs) {
      fatal = "cannot set no_new_privs: " + errnoText(ce.err);
    } else {
      fatal = "run[0] \"" + config_.argv[0] + "\": " + errnoText(ce.err);
    }
  }
  ::close(exec_pipe[0]);
  if (!fatal.empty()) {
    int status;
    ::waitpid(child_, &status, 0);
    pump(out_fd_, out_log, true);
    pump(err_fd_, err_log, true);
    child_ = -1;  // reaped: its pid may be reused, never signal it again
    return failStart(fatal);
  }

  state_.pid = child_;
  state_.pid_start = processStartTime(child_).value_or(0);
  state_.started_at_ms = nowMillis();
  if (Status s = writeFileAtomic(dir_ / kStateFile, encodeState(state_)); !s) {
    logLine("error: " + s.message());
  }
  report(ready_fd_, "ok");
  ready_fd_ = -1;

  ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  bool child_done = false;
  int wait_status = 0;
  while (!child_done) {
    pollfd fds[3] = {{sfd, POLLIN, 0}, {out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    // The timeout covers a SIGCHLD lost before the signalfd existed.
    int n = ::poll(fds, 3, 500);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGTERM) {
          if (adopted_) {
            logLine("SIGTERM: forwarding to the adopted service");
            ::kill(child_, SIGTERM);
          } else {
            logLine("SIGTERM: forwarding to the service's process group");
            ::kill(-child_, SIGTERM);
          }
        }
      }
    }
    if (fds[1].revents) pump(out_fd_, out_log, false);
    if (fds[2].revents) pump(err_fd_, err_log, false);
    while (true) {
      int status;
      pid_t p = ::waitpid(-1, &status, WNOHANG);
      if (p <= 0) break;
      if (p == child_) {
        if (!adopted_ && adopt(status)) continue;  // its successor is the service now
        child_done = true;
        wait_status = status;
      }
    }
  }

  pump(out_fd_, out_log, false);
  pump(err_fd_, err_log, false);
  ExitStatus exit;
  if (WIFSIGNALED(wait_status)) {
    exit.signal = WTERMSIG(wait_status);
    exit.exit_code = 128 + *exit.signal;
  } else {
    exit.exit_code = WEXITSTATUS(wait_status);
  }
  exit.oom_killed = cgroup_.valid() && cgroup_.oomKilled();
  exit.finished_at = fromUnixMillis(nowMillis());
  if (Status s = writeFileAtomic(dir_ / kExitFile, encodeExit(exit)); !s) {
    logLine("error: " + s.message());
  }
  killLeftovers();
  pump(out_fd_, out_log, true);
  pump(err_fd_, err_log, true);
  cgroup_.remove();
  if (sfd >= 0) ::close(sfd);
  return 0;
}

}  // namespace

int supervisorMain(int argc, char** argv) {
  int ready_fd = -1;
  std::string task_dir;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i == 1 && arg == "supervise") continue;
    if (arg.rfind("--ready-fd=", 0) == 0) {
      ready_fd = std::atoi(arg.c_str() + 11);
      continue;
    }
    task_dir = arg;
  }
  if (task_dir.empty()) {
    std::fprintf(stderr, "usage: %s supervise [--ready-fd=N] <task_dir>\n", argv[0]);
    return 2;
  }
  if (ready_fd >= 0) ::fcntl(ready_fd, F_SETFD, FD_CLOEXEC);

  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGCHLD, SIG_DFL);  // an inherited SIG_IGN would make the kernel auto-reap
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);

  int log = ::open((fs::path(task_dir) / kSupervisorLog).c_str(),
                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log >= 0) {
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::close(log);
  }
  Supervisor supervisor(task_dir, ready_fd);
  return supervisor.run();
}

}  // namespace baton::drivers
