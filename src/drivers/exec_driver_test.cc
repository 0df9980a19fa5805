// The exec driver: the conformance suite plus what only the exec driver promises (cgroup
// limits, exact env, log rotation, supervisors that outlive the agent).
#include "drivers/exec_driver.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

#include "drivers/cgroup.h"
#include "drivers/exec_internal.h"
#include "drivers/testing/driver_conformance.h"

namespace baton::drivers {
namespace {

namespace fs = std::filesystem;
using testing::DriverConformanceTest;
using testing::DriverHarness;
using testing::DriverHarnessFactory;

constexpr const char* kPath = "/usr/local/bin:/usr/bin:/bin";

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A temp state dir and a cgroup root unique to this test process; tearDown stops and destroys
// every task and removes both.
class ExecHarness : public DriverHarness {
 public:
  ExecHarness() {
    static std::atomic<int> counter{0};
    std::string tmpl = (fs::temp_directory_path() / "baton-exec-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    cgroup_root_ = "baton-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  }
  ~ExecHarness() override { tearDown(); }

  std::string name() const override { return "exec"; }

  ExecDriverOptions options() const {
    ExecDriverOptions o;
    o.state_dir = root_ / "tasks";
    o.supervisor_argv = {BATON_TEST_SUPERVISOR};
    o.cgroup_root = cgroup_root_;
    return o;
  }
  std::unique_ptr<Driver> makeDriver() override { return std::make_unique<ExecDriver>(options()); }

  TaskConfig task(const std::string& id, std::vector<std::string> run,
                  const std::map<std::string, std::string>& env, int port) {
    TaskConfig c;
    c.instance_id = id;
    c.spec.name = "svc";
    c.spec.run = std::move(run);
    c.spec.memory = 256ull << 20;
    c.spec.cpu = 0.5;
    c.env = env;
    c.env["PATH"] = kPath;
    c.env["PORT"] = std::to_string(port);
    c.port = port;
    c.log_dir = root_ / "logs" / id;
    return c;
  }
  TaskConfig shellTask(const std::string& id, const std::string& script,
                       const std::map<std::string, std::string>& env, int port) override {
    return task(id, {"/bin/sh", "-c", script}, env, port);
  }
  TaskConfig missingProgramTask(const std::string& id) override {
    return task(id, {"nosuch"}, {}, 0);
  }
  std::optional<TaskConfig> listenerTask(const std::string& id, int port) override {
    const char* code =
        "import socket, sys\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
        "s.listen()\n"
        "while True: s.accept()[0].close()\n";
    if (!fs::exists("/usr/bin/python3")) return std::nullopt;
    return task(id, {"/usr/bin/python3", "-c", code, "${PORT}"}, {}, port);
  }

  void tearDown() override {
    if (root_.empty()) return;
    ExecDriver driver(options());
    if (auto tasks = driver.recover()) {
      for (const auto& t : *tasks) {
        (void)driver.stop(t.instance_id, Duration(0));
        (void)driver.destroy(t.instance_id);
      }
    }
    TaskCgroup cgroups = TaskCgroup::paths(cgroup_root_, "x");
    for (const auto& dir : cgroups.dirs()) {
      ::rmdir(dir.parent_path().c_str());
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
    root_.clear();
  }

  const fs::path& root() const { return root_; }
  const std::string& cgroupRoot() const { return cgroup_root_; }

 private:
  fs::path root_;
  std::string cgroup_root_;
};

INSTANTIATE_TEST_SUITE_P(Exec, DriverConformanceTest, ::testing::Values(DriverHarnessFactory([] {
                           return std::make_unique<ExecHarness>();
                         })),
                         testing::driverHarnessName);

class ExecDriverTest : public ::testing::Test {
 protected:
  void SetUp() override { driver_ = std::make_unique<ExecDriver>(harness_.options()); }
  void TearDown() override {
    driver_.reset();
    harness_.tearDown();
  }
  exec::SupervisorState state(const std::string& id) {
    auto text = exec::readWholeFile(driver_->taskDir(id) / exec::kStateFile);
    EXPECT_TRUE(text.isOk());
    auto s = exec::decodeState(text.valueOr("{}"));
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    return s.valueOr(exec::SupervisorState{});
  }

  ExecHarness harness_;
  std::unique_ptr<ExecDriver> driver_;
};

// The value of `file` in whichever of the task's cgroup directories has it ("" if none).
std::string controlFile(const TaskCgroup& cg, const std::string& file) {
  for (const auto& d : cg.dirs()) {
    if (fs::exists(d / file)) return readFile(d / file);
  }
  return "";
}

TEST_F(ExecDriverTest, LimitsAreWrittenToTheCgroup) {
  if (TaskCgroup::detect() == TaskCgroup::Version::kNone) GTEST_SKIP() << "no cgroups";
  TaskConfig task = harness_.shellTask("limits", "exec sleep 1000", {}, 0);
  task.spec.memory = 64ull << 20;
  task.spec.cpu = 0.5;  // a weight, not a cap
  task.pids_max = 64;
  ASSERT_TRUE(driver_->start(task).isOk());
  exec::SupervisorState s = state("limits");
  ASSERT_FALSE(s.cgroup_dirs.empty()) << "warnings: " << ::testing::PrintToString(s.warnings);
  TaskCgroup cg(TaskCgroup::versionFromName(s.cgroup_version),
                {s.cgroup_dirs.begin(), s.cgroup_dirs.end()});
  EXPECT_EQ(std::stoull(readFile(cg.memoryLimitFile())), 64ull << 20);
  std::vector<pid_t> pids = cg.pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), s.pid), pids.end());
  EXPECT_EQ(controlFile(cg, "pids.max"), "64\n");
  if (cg.version() == TaskCgroup::Version::kV1) {
    EXPECT_EQ(controlFile(cg, "cpu.shares"), "512\n");
    EXPECT_EQ(controlFile(cg, "cpu.cfs_quota_us"), "-1\n");  // no quota without cpu_limit
  } else {
    EXPECT_EQ(controlFile(cg, "cpu.weight"), "50\n");
    EXPECT_EQ(controlFile(cg, "cpu.max"), "max 100000\n");
  }
  ASSERT_TRUE(driver_->stop("limits", Duration(1000)).isOk());
  for (const auto& d : cg.dirs()) EXPECT_FALSE(fs::exists(d)) << d << " left behind";

  // A hard quota only with cpu_limit.
  task = harness_.shellTask("quota", "exec sleep 1000", {}, 0);
  task.spec.cpu_limit = 0.25;
  ASSERT_TRUE(driver_->start(task).isOk());
  s = state("quota");
  TaskCgroup qcg(TaskCgroup::versionFromName(s.cgroup_version),
                 {s.cgroup_dirs.begin(), s.cgroup_dirs.end()});
  if (qcg.version() == TaskCgroup::Version::kV1) {
    EXPECT_EQ(controlFile(qcg, "cpu.cfs_quota_us"), "25000\n");
  } else {
    EXPECT_EQ(controlFile(qcg, "cpu.max"), "25000 100000\n");
  }
  ASSERT_TRUE(driver_->stop("quota", Duration(1000)).isOk());
}

TEST(CgroupLimits, WritesForEachLayout) {
  CgroupLimits l{.memory_bytes = 1 << 20, .cpu_weight_cores = 2, .cpu_quota_cores = 1.5,
                 .pids_max = 100};
  auto text = [](const std::vector<CgroupWrite>& ws) {
    std::string out;
    for (const auto& w : ws) out += w.file + "=" + w.value + (w.required ? "!" : "") + " ";
    return out;
  };
  EXPECT_EQ(text(TaskCgroup::limitWrites(TaskCgroup::Version::kV1, l)),
            "memory.limit_in_bytes=1048576! memory.memsw.limit_in_bytes=1048576 cpu.shares=2048 "
            "cpu.cfs_period_us=100000 cpu.cfs_quota_us=150000 pids.max=100! ");
  EXPECT_EQ(text(TaskCgroup::limitWrites(TaskCgroup::Version::kV2, l)),
            "memory.max=1048576! memory.swap.max=0 cpu.weight=200 cpu.max=150000 100000 "
            "pids.max=100! ");
  EXPECT_EQ(text(TaskCgroup::limitWrites(TaskCgroup::Version::kV1, {})), "");
  // Tiny weights stay valid.
  EXPECT_EQ(text(TaskCgroup::limitWrites(TaskCgroup::Version::kV1, {.cpu_weight_cores = 0.001})),
            "cpu.shares=2 ");
}

// The service runs as the user it is given, with no_new_privs, and the usual umask.
TEST_F(ExecDriverTest, RunsAsTheGivenUserWithNoNewPrivileges) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  TaskConfig task = harness_.shellTask(
      "who", "grep -E '^(Uid|Gid|Groups|NoNewPrivs):' /proc/self/status; umask", {}, 0);
  task.uid = 1879048999;
  task.gid = 1879048999;
  task.task_dir = "/";
  ASSERT_TRUE(driver_->start(task).isOk());
  auto exit = driver_->wait("who", Duration(5000));
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  std::string out = readFile(harness_.root() / "logs" / "who" / "stdout.log");
  EXPECT_NE(out.find("Uid:\t1879048999\t1879048999\t1879048999\t1879048999"), std::string::npos)
      << out;
  EXPECT_NE(out.find("Gid:\t1879048999\t1879048999"), std::string::npos) << out;
  EXPECT_NE(out.find("Groups:\t \n"), std::string::npos) << out;  // no supplementary groups
  EXPECT_NE(out.find("NoNewPrivs:\t1"), std::string::npos) << out;
  EXPECT_NE(out.find("0022"), std::string::npos) << out;
}

TEST_F(ExecDriverTest, AWorkdirTheUserCannotEnterIsAClearStartError) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  fs::path closed = harness_.root() / "closed";
  fs::create_directories(closed);
  fs::permissions(closed, fs::perms::owner_all);
  TaskConfig task = harness_.shellTask("closed", "true", {}, 0);
  task.uid = 1879048999;
  task.gid = 1879048999;
  task.task_dir = closed;
  auto st = driver_->start(task);
  ASSERT_FALSE(st.isOk());
  EXPECT_NE(st.status().message().find("cannot enter working directory"), std::string::npos)
      << st.status().toString();
  EXPECT_NE(st.status().message().find("uid 1879048999"), std::string::npos);
}

TEST_F(ExecDriverTest, EnvIsExactlyTheTaskEnv) {
  TaskConfig task = harness_.task("env", {"env"}, {{"A", "1"}}, 8080);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(driver_->wait("env", Duration(10'000)).isOk());
  std::istringstream in(readFile(task.log_dir / "stdout.log"));
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"A=1", std::string("PATH=") + kPath, "PORT=8080"}));
}

TEST_F(ExecDriverTest, ServiceRunsInTaskDirWithStdinFromDevNull) {
  TaskConfig task = harness_.shellTask("cwd", "pwd; cat; echo eof", {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(driver_->wait("cwd", Duration(10'000)).isOk());
  EXPECT_EQ(readFile(task.log_dir / "stdout.log"),
            fs::canonical(driver_->taskDir("cwd")).string() + "\neof\n");
}

TEST_F(ExecDriverTest, UnknownVariableInRunIsAnErrorAtStart) {
  TaskConfig task = harness_.task("unknown-var", {"/bin/echo", "${NOPE}"}, {}, 0);
  auto started = driver_->start(task);
  ASSERT_FALSE(started.isOk());
  EXPECT_EQ(started.status().code(), Code::kInvalidArgument);
  EXPECT_NE(started.status().message().find("${NOPE}"), std::string::npos);
  EXPECT_NE(started.status().message().find("run[1]"), std::string::npos);
}

TEST_F(ExecDriverTest, MissingProgramMessageNamesIt) {
  auto started = driver_->start(harness_.missingProgramTask("missing"));
  ASSERT_FALSE(started.isOk());
  EXPECT_EQ(started.status().message(), "run[0] \"nosuch\": no such file or directory");
  auto st = driver_->inspect("missing");
  ASSERT_TRUE(st.isOk());
  ASSERT_TRUE(st->exit.has_value());
  EXPECT_EQ(st->exit->exit_code, 127);
}

TEST_F(ExecDriverTest, LogsRotateBySizeAndKeepABoundedNumberOfFiles) {
  TaskConfig task = harness_.shellTask(
      "rotate",
      "i=0; while [ $i -lt 500 ]; do echo \"line $i 0123456789012345678901234567890123456789\"; "
      "i=$((i+1)); done",
      {}, 0);
  task.log_max_bytes = 4096;
  task.log_max_files = 2;
  ASSERT_TRUE(driver_->start(task).isOk());
  auto exit = driver_->wait("rotate", Duration(10'000));
  ASSERT_TRUE(exit.isOk());
  ASSERT_EQ(exit->exit_code, 0);
  for (const char* name : {"stdout.log", "stdout.log.1", "stdout.log.2"}) {
    ASSERT_TRUE(fs::exists(task.log_dir / name)) << name;
    EXPECT_LE(fs::file_size(task.log_dir / name), 4096u) << name;
  }
  EXPECT_FALSE(fs::exists(task.log_dir / "stdout.log.3"));
  EXPECT_NE(readFile(task.log_dir / "stdout.log").find("line 499 "), std::string::npos);
}

TEST_F(ExecDriverTest, StartLeavesNoZombieInTheAgent) {
  ASSERT_TRUE(driver_->start(harness_.shellTask("zombie", "exec sleep 1000", {}, 0)).isOk());
  int status;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "the agent has a child: the supervisor was not detached";
  ASSERT_TRUE(driver_->stop("zombie", Duration(1000)).isOk());
}

TEST_F(ExecDriverTest, SupervisorIgnoresHangupAndInterrupt) {
  TaskConfig task = harness_.shellTask("hup", "echo ready; exec sleep 1000", {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  exec::SupervisorState s = state("hup");
  ASSERT_EQ(::kill(s.supervisor_pid, SIGHUP), 0);
  ASSERT_EQ(::kill(s.supervisor_pid, SIGINT), 0);
  // A task that ends is the proof the supervisor lived: stop goes through it, and its exit
  // status (SIGTERM, forwarded) is what the supervisor writes.
  ASSERT_TRUE(driver_->stop("hup", Duration(5000)).isOk());
  auto exit = driver_->wait("hup", Duration(1000));
  ASSERT_TRUE(exit.isOk());
  ASSERT_TRUE(exit->signal.has_value());
  EXPECT_EQ(*exit->signal, SIGTERM);
}

TEST_F(ExecDriverTest, StopStillKillsTheServiceWhenTheSupervisorDied) {
  TaskConfig task = harness_.shellTask("orphaned", "echo ready; exec sleep 1000", {}, 0);
  auto started = driver_->start(task);
  ASSERT_TRUE(started.isOk());
  exec::SupervisorState s = state("orphaned");
  ASSERT_EQ(::kill(s.supervisor_pid, SIGKILL), 0);
  ASSERT_TRUE(driver_->stop("orphaned", Duration(200)).isOk());
  EXPECT_FALSE(exec::processAlive(started->pid, s.pid_start));
  auto st = driver_->inspect("orphaned");
  ASSERT_TRUE(st.isOk());
  EXPECT_TRUE(st->exit.has_value());
}

// The agent is a forked child: it starts a task and is SIGKILLed; a new driver on the same
// state dir (the restarted agent) re-adopts the still-running task.
TEST_F(ExecDriverTest, SupervisorOutlivesTheAgent) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t agent = ::fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    ::close(pipefd[0]);
    ExecDriver driver(harness_.options());
    auto st = driver.start(harness_.shellTask("survivor", "echo ready; exec sleep 1000", {}, 0));
    int pid = st.isOk() ? st->pid : -1;
    ssize_t n = ::write(pipefd[1], &pid, sizeof pid);
    (void)n;
    while (true) ::pause();
  }
  ::close(pipefd[1]);
  int pid = 0;
  ASSERT_EQ(::read(pipefd[0], &pid, sizeof pid), static_cast<ssize_t>(sizeof pid));
  ::close(pipefd[0]);
  ::kill(agent, SIGKILL);
  int status;
  ASSERT_EQ(::waitpid(agent, &status, 0), agent);
  ASSERT_GT(pid, 0) << "the agent could not start the task";

  ExecDriver restarted(harness_.options());
  auto tasks = restarted.recover();
  ASSERT_TRUE(tasks.isOk());
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].instance_id, "survivor");
  EXPECT_EQ((*tasks)[0].pid, pid);
  EXPECT_FALSE((*tasks)[0].exit.has_value());
  EXPECT_TRUE(exec::processAlive(pid, 0));

  ASSERT_TRUE(restarted.stop("survivor", Duration(2000)).isOk());
  auto st = restarted.inspect("survivor");
  ASSERT_TRUE(st.isOk());
  ASSERT_TRUE(st->exit.has_value());
  EXPECT_EQ(st->exit->exit_code, 128 + SIGTERM);
  EXPECT_FALSE(exec::processAlive(pid, 0));
}

}  // namespace
}  // namespace baton::drivers
