// The oci driver: the conformance suite plus what only it promises (its own network, the image's
// files read-only, an unprivileged user, prepare() in the background). Needs root, runc,
// iproute2 and a static busybox (for the test image); skipped otherwise.
#include "drivers/oci_driver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "drivers/cgroup.h"
#include "drivers/instance_net.h"
#include "drivers/oci_test_image.h"
#include "drivers/testing/driver_conformance.h"

namespace baton::drivers {
namespace {

namespace fs = std::filesystem;
using testing::DriverConformanceTest;
using testing::DriverHarness;
using testing::DriverHarnessFactory;

constexpr int64_t kTestUid = 61234;  // like a node's dynamic per-service UID

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Why the oci driver cannot run here, or "" when it can.
std::string missingPrerequisite() {
  if (::geteuid() != 0) return "needs root (runc, network namespaces)";
  if (!runCommand({"runc", "--version"}).isOk()) return "needs runc";
  if (!runCommand({"ip", "netns", "list"}).isOk()) return "needs iproute2 (ip netns)";
  if (oci::testing::busyboxPath().empty()) return "needs a static busybox (busybox-static)";
  if (TaskCgroup::detect() == TaskCgroup::Version::kNone) return "needs cgroups";
  return "";
}

// One busybox image per test process, shared by every harness (unpacked once per state dir)
// and removed when the process exits.
class BusyboxImage {
 public:
  BusyboxImage() {
    std::string tmpl = (fs::temp_directory_path() / "baton-oci-image-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    if (oci::testing::makeBusyboxArchive(dir_ / "busybox.tar")) archive_ = dir_ / "busybox.tar";
  }
  ~BusyboxImage() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& archive() const { return archive_; }

 private:
  fs::path dir_;
  fs::path archive_;  // empty when it could not be made
};

const fs::path& busyboxArchive() {
  static const BusyboxImage image;
  return image.archive();
}

// A state dir, cgroup parent and netns prefix unique to this harness; tearDown destroys every
// task (which removes its network namespace) and removes the rest.
class OciHarness : public DriverHarness {
 public:
  OciHarness() {
    static std::atomic<int> counter{0};
    std::string tmpl = (fs::temp_directory_path() / "baton-oci-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    tag_ = std::to_string(::getpid()) + "-" + std::to_string(counter++);
  }
  ~OciHarness() override { tearDown(); }

  std::string name() const override { return "oci"; }
  std::string unavailable() const override {
    if (std::string why = missingPrerequisite(); !why.empty()) return why;
    if (busyboxArchive().empty()) return "cannot build the busybox test image";
    return "";
  }

  OciDriverOptions options() const {
    OciDriverOptions o;
    o.state_dir = root_ / "state";
    o.supervisor_argv = {BATON_TEST_SUPERVISOR};
    o.cgroup_parent = "baton-oci-test-" + tag_;
    o.netns_prefix = "bt-test-" + tag_ + "-";
    return o;
  }
  std::unique_ptr<Driver> makeDriver() override { return std::make_unique<OciDriver>(options()); }

  std::string image() const { return "oci-archive:" + busyboxArchive().string(); }

  TaskConfig task(const std::string& id, std::vector<std::string> run,
                  std::map<std::string, std::string> env, int port) {
    TaskConfig t;
    t.instance_id = id;
    t.spec.name = "svc";
    t.spec.driver = "oci";
    t.spec.image = image();
    t.spec.run = std::move(run);
    t.env = std::move(env);
    t.env["PATH"] = "/bin";
    t.env["PORT"] = std::to_string(port);
    t.port = port;
    t.log_dir = root_ / "logs" / id;
    t.log_max_bytes = 1 << 20;
    t.log_max_files = 2;
    t.uid = kTestUid;
    t.gid = kTestUid;
    t.pids_max = 64;
    t.spec.memory = 64ull << 20;
    fs::remove_all(t.log_dir);
    ids_.insert(id);
    return t;
  }
  TaskConfig shellTask(const std::string& id, const std::string& script,
                       const std::map<std::string, std::string>& env, int port) override {
    return task(id, {"sh", "-c", script}, env, port);
  }
  TaskConfig missingProgramTask(const std::string& id) override {
    return task(id, {"nosuch-program-oci", "--flag"}, {}, 0);
  }
  // It listens inside its own network namespace; the suite connects to its status's address.
  std::optional<TaskConfig> listenerTask(const std::string& id, int port) override {
    TaskConfig t = task(id, {"httpd", "-f", "-p", "${PORT}", "-h", "/tmp"}, {}, port);
    t.container_port = port;
    return t;
  }

  // The service runs in a pid namespace: pids it reports itself ($$) are the namespace's. A pid
  // is alive when a process of one of this harness's containers has it, as the host sees it
  // (TaskStatus.pid) or as its namespace sees it (NSpid's last field).
  bool serviceProcessAlive(int pid) override {
    TaskCgroup parent = TaskCgroup::paths("", options().cgroup_parent);
    for (const auto& dir : parent.dirs()) {
      if (dir.string().find("/pids/") == std::string::npos &&
          parent.version() == TaskCgroup::Version::kV1) {
        continue;
      }
      std::error_code ec;
      for (const auto& c : fs::recursive_directory_iterator(dir, ec)) {
        if (c.path().filename() != "cgroup.procs") continue;
        std::istringstream procs(readFile(c.path()));
        int host = 0;
        while (procs >> host) {
          if (!DriverHarness::serviceProcessAlive(host)) continue;
          if (host == pid || namespacePid(host) == pid) return true;
        }
      }
    }
    return false;
  }

  void tearDown() override {
    if (root_.empty()) return;
    {
      auto driver = makeDriver();
      if (auto tasks = driver->recover()) {
        for (const auto& t : *tasks) ids_.insert(t.instance_id);
      }
      for (const auto& id : ids_) (void)driver->destroy(id);
    }
    TaskCgroup::paths("", options().cgroup_parent).remove();
    TaskCgroup::paths("", options().cgroup_parent + "-runc").remove();
    std::error_code ec;
    fs::remove_all(root_, ec);
    root_.clear();
  }

  const fs::path& root() const { return root_; }

 private:
  static int namespacePid(int host) {
    std::istringstream status(readFile("/proc/" + std::to_string(host) + "/status"));
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("NSpid:", 0) != 0) continue;
      std::istringstream fields(line.substr(6));
      int pid = 0, last = 0;
      while (fields >> pid) last = pid;
      return last;
    }
    return 0;
  }

  fs::path root_;
  std::string tag_;
  std::set<std::string> ids_;
};

INSTANTIATE_TEST_SUITE_P(Oci, DriverConformanceTest, ::testing::Values(DriverHarnessFactory([] {
                           return std::unique_ptr<DriverHarness>(std::make_unique<OciHarness>());
                         })),
                         testing::driverHarnessName);

// ---- what only the oci driver promises -----------------------------------------------------

class OciDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_ = std::make_unique<OciHarness>();
    if (std::string why = harness_->unavailable(); !why.empty()) GTEST_SKIP() << why;
    driver_ = std::make_unique<OciDriver>(harness_->options());
  }
  void TearDown() override {
    driver_.reset();
    harness_.reset();
  }
  std::string runToEnd(TaskConfig task) {
    auto started = driver_->start(task);
    if (!started) return "start failed: " + started.status().toString();
    auto exit = driver_->wait(task.instance_id, Duration(10'000));
    if (!exit) return "wait failed: " + exit.status().toString();
    return readFile(task.log_dir / "stdout.log") + readFile(task.log_dir / "stderr.log");
  }

  std::unique_ptr<OciHarness> harness_;
  std::unique_ptr<OciDriver> driver_;
};

TEST_F(OciDriverTest, OwnsItsNetworkAndUsesImageUsers) {
  EXPECT_TRUE(driver_->ownNetwork());
  EXPECT_TRUE(driver_->imageUsers());
  EXPECT_EQ(driver_->name(), "oci");
}

TEST_F(OciDriverTest, ServiceIsReachableAtItsAddress) {
  int port = 18080;
  TaskConfig task = harness_->shellTask("oci-listen", "exec httpd -f -p ${PORT} -h /tmp", {}, port);
  task.container_port = port;
  auto started = driver_->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  ASSERT_FALSE(started->address.empty());
  EXPECT_EQ(started->port, port);
  auto ip = parseIpv4(started->address);
  ASSERT_TRUE(ip.has_value()) << started->address;
  EXPECT_TRUE(slotOf(*ip).has_value()) << started->address << " is not in the instance pool";
  EXPECT_EQ(*ip % 2, 1u) << "the instance end is the odd address";

  bool connected = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!connected && std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(*ip);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(connected) << "nothing listens on " << started->address << ":" << port;

  auto inspected = driver_->inspect("oci-listen");
  ASSERT_TRUE(inspected.isOk());
  EXPECT_EQ(inspected->address, started->address);
  std::string netns = driver_->netnsName("oci-listen");
  EXPECT_TRUE(fs::exists("/var/run/netns/" + netns));
  ASSERT_TRUE(driver_->destroy("oci-listen").isOk());
  EXPECT_FALSE(fs::exists("/var/run/netns/" + netns)) << "the namespace outlived destroy";
}

TEST_F(OciDriverTest, RunsAsTheGivenUserWithAReadOnlyRootAndAWritableTmp) {
  TaskConfig task =
      harness_->shellTask("oci-fs",
                          "echo uid=$(id -u) gid=$(id -g); "
                          "touch /x 2>/dev/null && echo root-writable || echo root-readonly; "
                          "echo hi > /tmp/f && echo tmp-writable; "
                          "echo image-env=$FROM_IMAGE; echo nofile=$(ulimit -n); echo cwd=$(pwd); "
                          "grep -q '^CapEff:.0000000000000000' /proc/self/status && echo no-caps; "
                          "grep -q '^NoNewPrivs:.1' /proc/self/status && echo no-new-privs; "
                          "ip -4 -o addr show dev eth0 | grep -q 169.254. && echo has-eth0",
                          {}, 0);
  std::string out = runToEnd(task);
  EXPECT_NE(out.find("uid=61234 gid=61234"), std::string::npos) << out;
  EXPECT_NE(out.find("root-readonly"), std::string::npos) << out;
  EXPECT_NE(out.find("tmp-writable"), std::string::npos) << out;
  EXPECT_NE(out.find("image-env=yes"), std::string::npos) << out;
  EXPECT_NE(out.find("nofile=1024"), std::string::npos) << out;
  EXPECT_NE(out.find("cwd=/"), std::string::npos) << out;
  EXPECT_NE(out.find("no-caps"), std::string::npos) << out;
  EXPECT_NE(out.find("no-new-privs"), std::string::npos) << out;
  EXPECT_NE(out.find("has-eth0"), std::string::npos) << out;
}

TEST_F(OciDriverTest, ImageRootBecomesNobodyAndImageCmdIsTheDefault) {
  TaskConfig task = harness_->shellTask("oci-nobody", "", {}, 0);
  task.uid = task.gid = -1;
  task.spec.run.clear();  // the image's Cmd: ["sh"], which exits at once on /dev/null input
  auto started = driver_->start(task);
  ASSERT_TRUE(started.isOk()) << started.status().toString();
  auto exit = driver_->wait("oci-nobody", Duration(10'000));
  ASSERT_TRUE(exit.isOk()) << exit.status().toString();
  EXPECT_EQ(exit->exit_code, 0);

  TaskConfig who = harness_->shellTask("oci-who", "id -u; id -g", {}, 0);
  who.uid = who.gid = -1;
  std::string out = runToEnd(who);
  EXPECT_NE(out.find("65534\n65534"), std::string::npos) << out;

  TaskConfig named = harness_->shellTask("oci-named", "id -u", {}, 0);
  named.uid = named.gid = -1;
  named.spec.user = "app";
  out = runToEnd(named);
  EXPECT_NE(out.find("1000"), std::string::npos) << out;
}

TEST_F(OciDriverTest, PrepareUnpacksInTheBackground) {
  model::ServiceSpec spec;
  spec.name = "svc";
  spec.image = harness_->image();
  auto p = driver_->prepare(spec);
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  if (!p->ready) {
    EXPECT_NE(p->progress.find("unpacking image"), std::string::npos);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (p.isOk() && !p->ready && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    p = driver_->prepare(spec);
  }
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  EXPECT_TRUE(p->ready);

  spec.image = "oci-archive:/nonexistent/app.tar";
  Result<Preparation> missing = driver_->prepare(spec);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (missing.isOk() && !missing->ready && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    missing = driver_->prepare(spec);
  }
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().message(), "image oci-archive:/nonexistent/app.tar: no such file");

  TaskConfig task = harness_->shellTask("oci-noimage", "true", {}, 0);
  task.spec.image = "oci-archive:/nonexistent/app.tar";
  auto started = driver_->start(task);
  ASSERT_FALSE(started.isOk());
  EXPECT_NE(started.status().message().find("no such file"), std::string::npos);
}

TEST_F(OciDriverTest, LimitsReachTheContainersCgroup) {
  TaskConfig task = harness_->shellTask("oci-limits", "echo ready; exec sleep 1000", {}, 0);
  task.spec.memory = 48ull << 20;
  task.pids_max = 33;
  ASSERT_TRUE(driver_->start(task).isOk());
  TaskCgroup cg = TaskCgroup::paths(harness_->options().cgroup_parent, "oci-limits");
  bool memory = false, pids = false;
  for (const auto& dir : cg.dirs()) {
    if (fs::exists(dir / "memory.limit_in_bytes")) {
      memory = readFile(dir / "memory.limit_in_bytes") == std::to_string(48ull << 20) + "\n";
    }
    if (fs::exists(dir / "memory.max")) {
      memory = readFile(dir / "memory.max") == std::to_string(48ull << 20) + "\n";
    }
    if (fs::exists(dir / "pids.max")) pids = readFile(dir / "pids.max") == "33\n";
  }
  EXPECT_TRUE(memory);
  EXPECT_TRUE(pids);
  EXPECT_TRUE(driver_->stop("oci-limits", Duration(0)).isOk());
  for (const auto& dir : cg.dirs()) EXPECT_FALSE(fs::exists(dir)) << dir;
}

TEST_F(OciDriverTest, RuncFailureIsAClearError) {
  TaskConfig task = harness_->shellTask("oci-runc-fails", "true", {}, 0);
  task.spec.memory = 4096;  // below what any process needs: runc cannot even start init
  auto started = driver_->start(task);
  ASSERT_FALSE(started.isOk());
  EXPECT_NE(started.status().message().find("runc could not start the container: "),
            std::string::npos)
      << started.status().message();
  auto st = driver_->inspect("oci-runc-fails");
  ASSERT_TRUE(st.isOk());
  EXPECT_TRUE(st->exit.has_value());
}

}  // namespace
}  // namespace baton::drivers
