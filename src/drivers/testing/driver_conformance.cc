#include "drivers/testing/driver_conformance.h"

#include "core/testing/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace baton::drivers::testing {
namespace {

using std::chrono::steady_clock;

constexpr Duration kLong = Duration(10'000);
constexpr const char* kReadyThenSleep = "echo ready; exec sleep 1000";
constexpr const char* kReadyThenLoop = "echo ready; while :; do sleep 0.1; done";

Duration since(steady_clock::time_point start) {
  return std::chrono::duration_cast<Duration>(steady_clock::now() - start);
}

std::optional<int> parsePidAfter(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return std::nullopt;
  int pid = std::atoi(text.c_str() + at + prefix.size());
  return pid > 0 ? std::optional<int>(pid) : std::nullopt;
}

}  // namespace

bool DriverHarness::serviceProcessAlive(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return false;
  char state = text[close + 2];
  return state != 'Z' && state != 'X';
}

std::string driverHarnessName(const ::testing::TestParamInfo<DriverHarnessFactory>& info) {
  return info.param()->name();
}

void DriverConformanceTest::SetUp() {
  harness_ = GetParam()();
  if (std::string why = harness_->unavailable(); !why.empty()) GTEST_SKIP() << why;
  driver_ = harness_->makeDriver();
}

void DriverConformanceTest::TearDown() {
  driver_.reset();
  if (harness_->unavailable().empty()) harness_->tearDown();
  harness_.reset();
}

std::string DriverConformanceTest::readLog(const TaskConfig& task, const std::string& file) {
  std::ifstream in(task.log_dir / file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool DriverConformanceTest::waitForLog(const TaskConfig& task, const std::string& file,
                                       const std::string& needle, Duration timeout) {
  auto start = steady_clock::now();
  while (since(start) < timeout) {
    if (readLog(task, file).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int DriverConformanceTest::freePort() { return baton::testing::unusedLoopbackPort(); }

TEST_P(DriverConformanceTest, StartReportsRunningTaskWithPid) {
  TaskConfig task = harness_->shellTask("conf-start", kReadyThenSleep, {}, 0);
  auto started = driver_->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  EXPECT_EQ(started->instance_id, "conf-start");
  EXPECT_GT(started->pid, 0);
  EXPECT_FALSE(started->exit.has_value());
  EXPECT_GT(toUnixMillis(started->started_at), 0);
  EXPECT_TRUE(harness_->serviceProcessAlive(started->pid));

  auto inspected = driver_->inspect("conf-start");
  ASSERT_TRUE(inspected.isOk()) << inspected.status().toString();
  EXPECT_EQ(inspected->pid, started->pid);
  EXPECT_FALSE(inspected->exit.has_value());
  EXPECT_TRUE(driver_->stop("conf-start", Duration(1000)).isOk());
}

TEST_P(DriverConformanceTest, StartOfRunningIdIsAlreadyExists) {
  TaskConfig task = harness_->shellTask("conf-twice", kReadyThenSleep, {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  auto again = driver_->start(task);
  ASSERT_FALSE(again.isOk());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists) << again.status().toString();
  EXPECT_TRUE(driver_->stop("conf-twice", Duration(1000)).isOk());
}

TEST_P(DriverConformanceTest, InspectOfUnknownIdIsNotFound) {
  auto st = driver_->inspect("conf-nobody");
  ASSERT_FALSE(st.isOk());
  EXPECT_EQ(st.status().code(), Code::kNotFound);
}

TEST_P(DriverConformanceTest, EnvAndPortReachTheService) {
  TaskConfig task = harness_->shellTask(
      "conf-env", "echo \"port=$PORT greeting=$GREETING\"; echo \"argv-port=${PORT}\"",
      {{"GREETING", "hello world"}}, 12345);
  ASSERT_TRUE(driver_->start(task).isOk());
  auto exit = driver_->wait("conf-env", kLong);
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  EXPECT_EQ(exit->exit_code, 0);
  std::string out = readLog(task, "stdout.log");
  EXPECT_NE(out.find("port=12345 greeting=hello world"), std::string::npos) << out;
  EXPECT_NE(out.find("argv-port=12345"), std::string::npos) << out;
}

// The node's secret files (node/secret_files.h): a container sees them read-only at
// kContainerSecretsDir through a bind mount; an exec service reads the node's directory.
TEST_P(DriverConformanceTest, SecretFilesAreReadableAndNotWritable) {
  char tmpl[] = "/tmp/baton-conf-secrets-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  std::filesystem::create_directories(dir / "shop" / "db");
  { std::ofstream(dir / "shop" / "db" / "PASSWORD") << "conf-s3cret"; }
  std::filesystem::permissions(dir / "shop" / "db" / "PASSWORD", std::filesystem::perms(0444));
  for (auto p : {dir / "shop" / "db", dir / "shop", dir}) {
    std::filesystem::permissions(p, std::filesystem::perms(0555));
  }
  const std::string seen_at =
      driver_->imageUsers() ? std::string(kContainerSecretsDir) : dir.string();
  TaskConfig task = harness_->shellTask(
      "conf-secrets",
      "cat \"$S/shop/db/PASSWORD\"; echo; "
      "if (echo x > \"$S/shop/db/PASSWORD\") 2>/dev/null; then echo writable; "
      "else echo not-writable; fi",
      {{"S", seen_at}}, 0);
  task.secrets_dir = dir;
  ASSERT_TRUE(driver_->start(task).isOk());
  auto exit = driver_->wait("conf-secrets", kLong);
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  std::string out = readLog(task, "stdout.log");
  EXPECT_NE(out.find("conf-s3cret\n"), std::string::npos) << out;
  // A read-only mount stops even a container's root; an exec service is stopped by the modes
  // (the harness may run it as root, which modes do not stop).
  if (driver_->imageUsers() || task.uid > 0) {
    EXPECT_NE(out.find("not-writable"), std::string::npos) << out;
  }
  (void)driver_->destroy("conf-secrets");
  for (auto p : {dir / "shop" / "db", dir / "shop", dir}) {
    std::filesystem::permissions(p, std::filesystem::perms(0700));
  }
  std::filesystem::remove_all(dir);
}

TEST_P(DriverConformanceTest, ServiceListensOnPort) {
  int port = freePort();
  auto task = harness_->listenerTask("conf-listen", port);
  if (!task) GTEST_SKIP() << "the harness has no listener service";
  auto started = driver_->start(*task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  // Where the node reaches it: 127.0.0.1:port, or the address and port the driver reports (a
  // task in a network namespace of its own).
  std::string address = started->address.empty() ? "127.0.0.1" : started->address;
  int reach_port = started->port ? started->port : port;
  bool connected = false;
  auto start = steady_clock::now();
  while (!connected && since(start) < kLong) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ASSERT_EQ(::inet_pton(AF_INET, address.c_str(), &addr.sin_addr), 1) << address;
    addr.sin_port = htons(static_cast<uint16_t>(reach_port));
    connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(connected) << "nothing listens on " << address << ":" << reach_port;
  EXPECT_TRUE(driver_->stop("conf-listen", Duration(2000)).isOk());
}

TEST_P(DriverConformanceTest, StdoutAndStderrLandInLogFiles) {
  TaskConfig task =
      harness_->shellTask("conf-logs", "echo to-stdout; echo to-stderr >&2; exit 0", {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(driver_->wait("conf-logs", kLong).isOk());
  std::string out = readLog(task, "stdout.log");
  std::string err = readLog(task, "stderr.log");
  EXPECT_NE(out.find("to-stdout"), std::string::npos) << out;
  EXPECT_EQ(out.find("to-stderr"), std::string::npos) << out;
  EXPECT_NE(err.find("to-stderr"), std::string::npos) << err;
}

TEST_P(DriverConformanceTest, StopWithGraceLetsServiceExitCleanly) {
  TaskConfig task = harness_->shellTask(
      "conf-grace",
      "trap 'echo term-received; exit 0' TERM; echo ready; while :; do sleep 0.1; done", {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(waitForLog(task, "stdout.log", "ready"));
  auto start = steady_clock::now();
  ASSERT_TRUE(driver_->stop("conf-grace", Duration(20'000)).isOk());
  EXPECT_LT(since(start), Duration(10'000)) << "stop waited for the whole grace";
  auto exit = driver_->wait("conf-grace", Duration(1000));
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_FALSE(exit->signal.has_value());
  EXPECT_NE(readLog(task, "stdout.log").find("term-received"), std::string::npos);
}

TEST_P(DriverConformanceTest, StopKillsServiceThatIgnoresTermAfterGrace) {
  TaskConfig task =
      harness_->shellTask("conf-stubborn", std::string("trap '' TERM; ") + kReadyThenLoop, {}, 0);
  auto started = driver_->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  ASSERT_TRUE(waitForLog(task, "stdout.log", "ready"));
  auto start = steady_clock::now();
  ASSERT_TRUE(driver_->stop("conf-stubborn", Duration(300)).isOk());
  EXPECT_GE(since(start), Duration(300));
  auto exit = driver_->wait("conf-stubborn", Duration(1000));
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  ASSERT_TRUE(exit->signal.has_value());
  EXPECT_EQ(*exit->signal, SIGKILL);
  EXPECT_EQ(exit->exit_code, 128 + SIGKILL);
  EXPECT_FALSE(harness_->serviceProcessAlive(started->pid));
}

TEST_P(DriverConformanceTest, NoProcessIsLeftAfterStopIncludingSetsidGrandchild) {
  TaskConfig task = harness_->shellTask(
      "conf-orphans",
      "setsid sh -c 'echo grandchild=$$; exec sleep 1000' & echo ready; exec sleep 1000", {}, 0);
  auto started = driver_->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  ASSERT_TRUE(waitForLog(task, "stdout.log", "grandchild="));
  auto grandchild = parsePidAfter(readLog(task, "stdout.log"), "grandchild=");
  ASSERT_TRUE(grandchild.has_value());
  EXPECT_TRUE(harness_->serviceProcessAlive(*grandchild));

  ASSERT_TRUE(driver_->stop("conf-orphans", Duration(1000)).isOk());
  EXPECT_FALSE(harness_->serviceProcessAlive(started->pid));
  EXPECT_FALSE(harness_->serviceProcessAlive(*grandchild)) << "grandchild " << *grandchild;
  EXPECT_TRUE(driver_->inspect("conf-orphans")->exit.has_value());
}

TEST_P(DriverConformanceTest, CrashIsReportedWithItsExitCode) {
  TaskConfig task = harness_->shellTask("conf-crash", "echo bye; exit 3", {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  auto exit = driver_->wait("conf-crash", kLong);
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_FALSE(exit->signal.has_value());
  EXPECT_FALSE(exit->oom_killed);
  EXPECT_GT(toUnixMillis(exit->finished_at), 0);
  auto st = driver_->inspect("conf-crash");
  ASSERT_TRUE(st.isOk());
  ASSERT_TRUE(st->exit.has_value());
  EXPECT_EQ(st->exit->exit_code, 3);
}

TEST_P(DriverConformanceTest, WaitTimesOutWhileRunning) {
  TaskConfig task = harness_->shellTask("conf-wait", kReadyThenSleep, {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  auto exit = driver_->wait("conf-wait", Duration(50));
  ASSERT_FALSE(exit.isOk());
  EXPECT_EQ(exit.status().code(), Code::kTimeout);
  EXPECT_TRUE(driver_->stop("conf-wait", Duration(1000)).isOk());
}

TEST_P(DriverConformanceTest, RecoverAfterDriverRestartFindsRunningAndEndedTasks) {
  TaskConfig running = harness_->shellTask("conf-rec-run", kReadyThenSleep, {}, 0);
  TaskConfig ended = harness_->shellTask("conf-rec-end", "exit 7", {}, 0);
  auto started = driver_->start(running);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  ASSERT_TRUE(driver_->start(ended).isOk());
  ASSERT_TRUE(driver_->wait("conf-rec-end", kLong).isOk());

  driver_.reset();                   // the agent goes away...
  driver_ = harness_->makeDriver();  // ...and comes back
  auto tasks = driver_->recover();
  ASSERT_TRUE(tasks.isOk()) << tasks.status().toString();
  auto find = [&](const std::string& id) -> const TaskStatus* {
    for (const auto& t : *tasks)
      if (t.instance_id == id) return &t;
    return nullptr;
  };
  const TaskStatus* run = find("conf-rec-run");
  const TaskStatus* end = find("conf-rec-end");
  ASSERT_NE(run, nullptr);
  ASSERT_NE(end, nullptr);
  EXPECT_EQ(run->pid, started->pid);
  EXPECT_FALSE(run->exit.has_value());
  ASSERT_TRUE(end->exit.has_value());
  EXPECT_EQ(end->exit->exit_code, 7);

  ASSERT_TRUE(driver_->stop("conf-rec-run", Duration(1000)).isOk());
  auto exit = driver_->wait("conf-rec-run", Duration(1000));
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  EXPECT_FALSE(harness_->serviceProcessAlive(started->pid));
}

TEST_P(DriverConformanceTest, StartOfMissingProgramIsAClearError) {
  TaskConfig task = harness_->missingProgramTask("conf-missing");
  auto started = driver_->start(task);
  ASSERT_FALSE(started.isOk());
  const std::string& msg = started.status().message();
  EXPECT_NE(msg.find("no such file or directory"), std::string::npos) << msg;
  if (!task.spec.run.empty()) {
    EXPECT_NE(msg.find(task.spec.run[0]), std::string::npos) << msg;
  }
}

TEST_P(DriverConformanceTest, DestroyIsIdempotent) {
  TaskConfig task = harness_->shellTask("conf-destroy", "exit 0", {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(driver_->wait("conf-destroy", kLong).isOk());
  EXPECT_TRUE(driver_->destroy("conf-destroy").isOk());
  EXPECT_TRUE(driver_->destroy("conf-destroy").isOk());
  EXPECT_TRUE(driver_->destroy("conf-never-started").isOk());
  auto st = driver_->inspect("conf-destroy");
  ASSERT_FALSE(st.isOk());
  EXPECT_EQ(st.status().code(), Code::kNotFound);
}

// What a service that rereads its secret files on SIGHUP gets (on_secret_change = "SIGHUP").
TEST_P(DriverConformanceTest, SignalReachesTheServiceAndNotAnEndedTask) {
  TaskConfig task = harness_->shellTask(
      "conf-signal",
      "trap 'echo hup-received' HUP; trap 'echo usr1-received' USR1; echo ready; "
      "while :; do sleep 0.1; done",
      {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(waitForLog(task, "stdout.log", "ready"));
  ASSERT_TRUE(driver_->signal("conf-signal", SIGHUP).isOk());
  EXPECT_TRUE(waitForLog(task, "stdout.log", "hup-received"));
  ASSERT_TRUE(driver_->signal("conf-signal", SIGUSR1).isOk());
  EXPECT_TRUE(waitForLog(task, "stdout.log", "usr1-received"));
  auto still = driver_->inspect("conf-signal");
  ASSERT_TRUE(still.isOk());
  EXPECT_FALSE(still->exit.has_value()) << "a handled signal ended the task";
  ASSERT_TRUE(driver_->stop("conf-signal", Duration(1000)).isOk());
  Status ended = driver_->signal("conf-signal", SIGHUP);
  EXPECT_EQ(ended.code(), Code::kFailedPrecondition) << ended.toString();
  EXPECT_EQ(driver_->signal("conf-never-started", SIGHUP).code(), Code::kNotFound);
}

TEST_P(DriverConformanceTest, StopIsIdempotent) {
  TaskConfig task = harness_->shellTask("conf-stop2", kReadyThenSleep, {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  EXPECT_TRUE(driver_->stop("conf-stop2", Duration(1000)).isOk());
  EXPECT_TRUE(driver_->stop("conf-stop2", Duration(1000)).isOk());
  EXPECT_TRUE(driver_->stop("conf-never-started", Duration(1000)).isOk());
  EXPECT_TRUE(driver_->inspect("conf-stop2")->exit.has_value());
}

TEST_P(DriverConformanceTest, StatsReportMemoryOfRunningTask) {
  // The shell holds ~1 MB in a variable, so the task's memory is clearly above zero.
  TaskConfig task = harness_->shellTask(
      "conf-stats", std::string("x=$(head -c 1000000 /dev/zero | tr '\\0' a); ") + kReadyThenLoop,
      {}, 0);
  ASSERT_TRUE(driver_->start(task).isOk());
  ASSERT_TRUE(waitForLog(task, "stdout.log", "ready"));
  auto stats = driver_->stats("conf-stats");
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_GT(stats->memory_bytes, 0u);
  EXPECT_GE(stats->processes, 1);
  EXPECT_TRUE(driver_->stop("conf-stats", Duration(1000)).isOk());
}

}  // namespace baton::drivers::testing
