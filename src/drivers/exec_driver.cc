#include "drivers/exec_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <thread>

#include "drivers/cgroup.h"
#include "drivers/exec_internal.h"

namespace baton::drivers {
namespace fs = std::filesystem;
using namespace exec;

namespace {

constexpr Duration kKillWait = Duration(10'000);  // SIGKILL -> exit.json and supervisor gone
constexpr int kLostExitCode = 255;                // supervisor died without writing exit.json

bool validId(const std::string& id) { return validTaskId(id); }

// What the task dir says right now.
struct TaskFiles {
  bool exists = false;
  std::optional<SupervisorState> state;
  std::optional<ExitStatus> exit;
};

TaskFiles load(const fs::path& dir) {
  TaskFiles t;
  std::error_code ec;
  t.exists = fs::exists(dir / kConfigFile, ec);
  if (!t.exists) return t;
  // exit.json first: the supervisor writes it after state.json, so a task seen as ended here
  // really ended.
  if (auto text = readWholeFile(dir / kExitFile)) {
    if (auto e = decodeExit(*text)) t.exit = *e;
  }
  if (auto text = readWholeFile(dir / kStateFile)) {
    if (auto s = decodeState(*text)) t.state = *s;
  }
  return t;
}

bool supervisorAlive(const SupervisorState& s) {
  return processAlive(s.supervisor_pid, s.supervisor_start);
}
bool serviceAlive(const SupervisorState& s) {
  return s.pid > 0 && processAlive(s.pid, s.pid_start);
}

TaskCgroup cgroupOf(const SupervisorState& s) {
  std::vector<fs::path> dirs(s.cgroup_dirs.begin(), s.cgroup_dirs.end());
  return TaskCgroup(TaskCgroup::versionFromName(s.cgroup_version), std::move(dirs));
}

uint64_t rssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

ExecDriver::ExecDriver(ExecDriverOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  std::error_code ec;
  fs::create_directories(options_.state_dir, ec);
}

std::string ExecDriver::addressOf(const std::string& id) {
  if (options_.networks == nullptr) return "";
  std::lock_guard lock(addresses_mu_);
  if (auto it = addresses_.find(id); it != addresses_.end()) return it->second;
  // A task started by an earlier agent: config.json says, once.
  std::string address;
  if (auto text = readWholeFile(taskDir(id) / kConfigFile)) {
    if (auto c = decodeConfig(*text)) address = c->address;
  }
  addresses_[id] = address;
  return address;
}

void ExecDriver::sleepPoll() const { std::this_thread::sleep_for(options_.poll_interval); }

Result<TaskStatus> ExecDriver::start(const TaskConfig& config) {
  if (!validId(config.instance_id)) {
    return invalidArgument("instance id \"" + config.instance_id +
                           "\" is not filesystem-safe ([A-Za-z0-9._-])");
  }
  if (config.spec.run.empty()) {
    return invalidArgument("service \"" + config.spec.name + "\": run is empty");
  }
  if (options_.supervisor_argv.empty()) {
    return Status(Code::kFailedPrecondition, "exec driver: no supervisor command configured");
  }
  return starting_.run(config.instance_id, [&] { return spawn(config); });
}

Result<TaskStatus> ExecDriver::spawn(const TaskConfig& config) {
  auto argv = expandArgv(config.spec.run, config.env);
  if (!argv) return argv.status();

  fs::path dir = taskDir(config.instance_id);
  TaskFiles existing = load(dir);
  if (existing.exists && !existing.exit) {
    auto st = inspect(config.instance_id);
    if (st && !st->exit) {
      return Status(Code::kAlreadyExists, "task \"" + config.instance_id + "\" is running");
    }
  }
  std::error_code ec;
  if (existing.exists) {
    for (const char* f : {kConfigFile, kStateFile, kExitFile}) fs::remove(dir / f, ec);
  }
  SupervisorConfig sc;
  sc.instance_id = config.instance_id;
  sc.argv = std::move(argv.value());
  sc.env = config.env;
  sc.cwd = config.task_dir.empty() ? dir : config.task_dir;
  sc.log_dir = config.log_dir.empty() ? dir / "logs" : config.log_dir;
  sc.log_max_bytes = config.log_max_bytes;
  sc.log_max_files = config.log_max_files;
  sc.cgroup_root = options_.cgroup_root;
  sc.memory_bytes = config.spec.memory;
  sc.cpu_cores = config.spec.cpu;
  sc.cpu_limit_cores = config.spec.cpu_limit;
  sc.pids_max = config.pids_max;
  sc.uid = config.uid;
  sc.gid = config.gid;
  sc.groups = config.groups;
  sc.adopt_pid_file = config.adopt_pid_file.string();
  if (options_.networks != nullptr) {
    auto link = options_.networks->create(options_.netns_prefix + config.instance_id);
    if (!link) return link.status();
    sc.netns_path = link->netnsPath();
    sc.address = link->instance_ip;
    if (!options_.resolv_conf.empty()) sc.resolv_conf = (dir / "resolv.conf").string();
  }
  for (const fs::path& d : {dir, sc.cwd, sc.log_dir}) {
    fs::create_directories(d, ec);
    if (ec) return ioError("cannot create " + d.string() + ": " + ec.message());
  }
  if (!sc.resolv_conf.empty()) {
    // Readable by the service alone (it is bind-mounted, so only the file's own mode counts).
    if (Status s = writeFileAtomic(sc.resolv_conf, options_.resolv_conf); !s) return s;
    if (config.uid >= 0 && ::chown(sc.resolv_conf.c_str(), static_cast<uid_t>(config.uid),
                                   static_cast<gid_t>(config.gid >= 0 ? config.gid : 0)) != 0) {
      return ioError("chown " + sc.resolv_conf + ": " + errnoText(errno));
    }
    fs::permissions(sc.resolv_conf, fs::perms(0400), ec);
  }
  if (Status s = writeFileAtomic(dir / kConfigFile, encodeConfig(sc)); !s) return s;
  {
    std::lock_guard lock(addresses_mu_);
    addresses_[config.instance_id] = sc.address;
  }

  // Everything the forked children use is prepared here: after fork only async-signal-safe
  // calls are allowed (the agent is multi-threaded).
  std::vector<std::string> args = options_.supervisor_argv;
  args.push_back("--ready-fd=3");
  args.push_back(dir.string());
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  rlimit nofile{};
  const bool set_nofile = options_.child_nofile > 0 && ::getrlimit(RLIMIT_NOFILE, &nofile) == 0;
  if (set_nofile) nofile.rlim_cur = std::min<rlim_t>(options_.child_nofile, nofile.rlim_max);
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return ioError("pipe: " + errnoText(errno));
  pid_t middle = ::fork();
  if (middle < 0) {
    int err = errno;
    ::close(ready[0]);
    ::close(ready[1]);
    return ioError("fork: " + errnoText(err));
  }
  if (middle == 0) {
    // Intermediate: fork the supervisor and exit at once, so the supervisor is re-parented
    // (to init or the nearest subreaper) and never becomes the agent's zombie.
    pid_t sup = ::fork();
    if (sup != 0) ::_exit(sup < 0 ? 1 : 0);
    ::setsid();
    if (set_nofile) ::setrlimit(RLIMIT_NOFILE, &nofile);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int r = ::fcntl(ready[1], F_DUPFD, 10);
    int nul = ::open("/dev/null", O_RDWR);
    if (nul >= 0) {
      ::dup2(nul, 0);
      ::dup2(nul, 1);
      ::dup2(nul, 2);
    }
    ::dup2(r, 3);  // dup2 clears FD_CLOEXEC on the new fd
    ::close_range(4, ~0U, 0);
    ::execv(cargs[0], cargs.data());
    ::_exit(127);
  }
  ::close(ready[1]);
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }

  std::string reply;
  SteadyPoint deadline = clock_.steadyNow() + options_.start_timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Duration>(deadline - clock_.steadyNow()).count();
    if (left <= 0) break;
    pollfd p{ready[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(ready[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the supervisor closed its end (reported or died)
    reply.append(buf, static_cast<size_t>(got));
  }
  ::close(ready[0]);

  if (reply.rfind("error: ", 0) == 0) {
    return Status(Code::kFailedPrecondition, reply.substr(7));
  }
  if (reply != "ok") {
    (void)stop(config.instance_id, Duration(0));  // a supervisor that is merely slow: end it
    std::string why = reply.empty() ? "exited without reporting" : "reported \"" + reply + "\"";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) why = "could not be forked";
    return unavailable("supervisor for \"" + config.instance_id + "\" " + why + " (see " +
                       (dir / kSupervisorLog).string() + ")");
  }
  return inspect(config.instance_id);
}

Result<TaskStatus> ExecDriver::inspect(const std::string& id) {
  if (!validId(id)) return notFound("no task \"" + id + "\"");
  TaskFiles t = load(taskDir(id));
  if (!t.exists) return notFound("no task \"" + id + "\"");
  TaskStatus st;
  st.instance_id = id;
  st.address = addressOf(id);
  if (t.state) {
    st.pid = t.state->pid;
    st.started_at = fromUnixMillis(t.state->started_at_ms);
  }
  if (t.exit) {
    st.exit = t.exit;
    return st;
  }
  bool starting = starting_.contains(id);
  if (!t.state) {
    if (starting) return st;  // the supervisor has not reported yet
    ExitStatus lost;
    lost.exit_code = kLostExitCode;
    st.exit = lost;
    return st;
  }
  if (supervisorAlive(*t.state) || serviceAlive(*t.state)) return st;
  // Both gone: maybe the supervisor wrote exit.json just now.
  if (auto text = readWholeFile(taskDir(id) / kExitFile)) {
    if (auto e = decodeExit(*text)) {
      st.exit = *e;
      return st;
    }
  }
  ExitStatus lost;
  lost.exit_code = kLostExitCode;
  st.exit = lost;
  return st;
}

Result<ExitStatus> ExecDriver::wait(const std::string& id, Duration timeout) {
  SteadyPoint deadline = clock_.steadyNow() + timeout;
  while (true) {
    auto st = inspect(id);
    if (!st) return st.status();
    if (st->exit) return *st->exit;
    if (clock_.steadyNow() >= deadline) {
      return Status(Code::kTimeout, "task \"" + id + "\" still running after " +
                                        std::to_string(timeout.count()) + "ms");
    }
    sleepPoll();
  }
}

Status ExecDriver::signal(const std::string& id, int sig) {
  TaskFiles t = validId(id) ? load(taskDir(id)) : TaskFiles{};
  if (!t.exists || !t.state) return Status(Code::kNotFound, "no task " + id);
  if (t.exit || !serviceAlive(*t.state)) {
    return Status(Code::kFailedPrecondition, "task " + id + " is not running");
  }
  if (::kill(t.state->pid, sig) != 0) {
    return Status(Code::kFailedPrecondition, "signalling task " + id + ": " + exec::errnoText(errno));
  }
  return Status::ok();
}

Status ExecDriver::stop(const std::string& id, Duration grace) {
  if (!validId(id)) return Status::ok();
  fs::path dir = taskDir(id);
  TaskFiles t = load(dir);
  if (!t.exists || !t.state) return Status::ok();
  const SupervisorState& s = *t.state;
  TaskCgroup cgroup = cgroupOf(s);
  bool killed = false;

  if (!t.exit) {
    if (supervisorAlive(s)) {
      ::kill(s.supervisor_pid, SIGTERM);  // forwarded to the service's process group
    } else if (serviceAlive(s)) {
      ::kill(-s.pid, SIGTERM);
    }
    SteadyPoint deadline = clock_.steadyNow() + grace;
    while (clock_.steadyNow() < deadline) {
      t = load(dir);
      if (t.exit || (!supervisorAlive(s) && !serviceAlive(s))) break;
      sleepPoll();
    }
    t = load(dir);
    if (!t.exit) {
      if (serviceAlive(s)) ::kill(-s.pid, SIGKILL);
      cgroup.killAll();
      killed = true;
    }
  }
  // The supervisor writes exit.json, kills what the service left and removes the cgroup;
  // wait for it to finish, then clean up after it if it could not.
  SteadyPoint deadline = clock_.steadyNow() + kKillWait;
  while (supervisorAlive(s) && clock_.steadyNow() < deadline) sleepPoll();
  if (!supervisorAlive(s)) {
    if (serviceAlive(s)) ::kill(-s.pid, SIGKILL);
    cgroup.killAll();
    cgroup.remove();
    t = load(dir);
    if (!t.exit) {
      ExitStatus e;
      e.exit_code = killed ? 128 + SIGKILL : kLostExitCode;
      if (killed) e.signal = SIGKILL;
      e.finished_at = clock_.now();
      (void)writeFileAtomic(dir / kExitFile, encodeExit(e, "supervisor lost"));
    }
    return Status::ok();
  }
  return Status(Code::kTimeout, "supervisor of \"" + id + "\" (pid " +
                                    std::to_string(s.supervisor_pid) + ") did not exit");
}

Status ExecDriver::destroy(const std::string& id) {
  if (!validId(id)) return Status::ok();
  auto st = inspect(id);
  if (!st) return Status::ok();  // unknown: nothing to forget
  // Makes sure nothing of the task runs and its cgroup is gone (a no-op for ended tasks).
  if (Status s = stop(id, Duration(0)); !s) return s;
  if (options_.networks != nullptr) {
    if (Status s = options_.networks->remove(options_.netns_prefix + id); !s) return s;
    std::lock_guard lock(addresses_mu_);
    addresses_.erase(id);
  }
  std::error_code ec;
  fs::remove_all(taskDir(id), ec);
  if (ec) return ioError("cannot remove " + taskDir(id).string() + ": " + ec.message());
  return Status::ok();
}

Result<std::vector<TaskStatus>> ExecDriver::recover() {
  std::vector<TaskStatus> out;
  std::error_code ec;
  fs::directory_iterator it(options_.state_dir, ec);
  if (ec) return ioError("cannot list " + options_.state_dir.string() + ": " + ec.message());
  for (const auto& entry : it) {
    if (!entry.is_directory(ec)) continue;
    std::string id = entry.path().filename().string();
    if (!validId(id)) continue;
    auto st = inspect(id);
    if (st) out.push_back(std::move(st.value()));
  }
  std::sort(out.begin(), out.end(),
            [](const TaskStatus& a, const TaskStatus& b) { return a.instance_id < b.instance_id; });
  return out;
}

Result<TaskStats> ExecDriver::stats(const std::string& id) {
  auto st = inspect(id);
  if (!st) return st.status();
  TaskStats out;
  if (st->exit) return out;
  TaskFiles t = load(taskDir(id));
  if (!t.state) return out;
  TaskCgroup cgroup = cgroupOf(*t.state);
  if (cgroup.valid()) {
    CgroupUsage u = cgroup.usage();
    out.memory_bytes = u.memory_bytes;
    out.cpu_usage_ns = u.cpu_usage_ns;
    out.processes = u.processes;
    out.throttled_periods = u.throttled_periods;
    if (out.memory_bytes > 0) return out;
  }
  // No cgroup: the supervisor's descendants are the task's processes.
  if (!supervisorAlive(*t.state)) return out;
  std::vector<pid_t> frontier = {t.state->supervisor_pid};
  out.processes = 0;
  out.memory_bytes = 0;
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    for (pid_t c : childrenOf(p)) {
      out.memory_bytes += rssBytes(c);
      ++out.processes;
      frontier.push_back(c);
    }
  }
  return out;
}

}  // namespace baton::drivers
