// The node's shell against a real SqliteStore (temp dir) and an in-memory fake
// driver whose tasks listen on a real TCP port, so the real prober sees them.
#include "node/node.h"

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <iterator>

#include <filesystem>
#include <thread>

#include "core/testing/fake_clock.h"
#include "model/json.h"
#include "model/keys.h"
#include "node/testing/fake_driver.h"
#include "state/sqlite_store.h"

namespace baton::node {
namespace {

namespace fs = std::filesystem;
namespace keys = model::keys;
using model::InstanceState;
using std::chrono::milliseconds;
using std::chrono::seconds;

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("baton-node-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    openStore(clock_);
    auto driver = std::make_unique<testing::FakeDriver>(clock_);
    driver_ = driver.get();
    driver_->listen(true);
    registry_.add(std::move(driver));
  }
  void TearDown() override {
    runtime_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void openStore(Clock &clock) {
    state::SqliteStoreOptions opts;
    opts.tick_interval = Duration(0);  // lease expiry only when the test calls tick()
    auto s = state::SqliteStore::open(dir_ / "store.db", clock, opts);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
  }

  // An isolated node's options, with web-1 (shop/web, api = "read") in the store.
  NodeOptions isolatedWithApiGrant() {
    model::InstanceRecord r = webRecord("web-1");
    r.spec.api = "read";
    EXPECT_TRUE(store_->put(keys::instance("web-1"), model::encode(r)).isOk());
    NodeOptions o = options();
    o.upstream_address = [](const std::string &, const std::string &) -> Result<std::string> {
      return std::string("169.254.64.7:80");
    };
    o.network = "isolated";
    return o;
  }

  NodeOptions options() {
    NodeOptions o;
    o.node_id = "n1";
    o.api_address = "127.0.0.1:4646";
    o.data_dir = dir_ / "data";
    o.background = false;
    o.env["EXTRA"] = "1";
    return o;
  }

  NodeRuntime &startRuntime(Clock &clock, NodeOptions o) {
    runtime_ = std::make_unique<NodeRuntime>(*store_, registry_, clock, std::move(o));
    Status s = runtime_->start();
    EXPECT_TRUE(s.isOk()) << s.toString();
    return *runtime_;
  }
  NodeRuntime &startRuntime() { return startRuntime(clock_, options()); }

  // shop/web's instance `id` on n1, running "server".
  static model::InstanceRecord webRecord(const std::string &id) {
    model::InstanceRecord r;
    r.id = id;
    r.app = "shop";
    r.service = "web";
    r.node = "n1";
    r.spec.name = "web";
    r.spec.run = {"server"};
    return r;
  }

  void putRecord(const std::string &id, bool running = true, const std::string &node = "n1") {
    model::InstanceRecord r = webRecord(id);
    r.node = node;
    r.spec.env["GREETING"] = "hello";
    r.spec.health.interval = Duration(1000);
    r.spec.health.timeout = Duration(1000);
    r.desired_running = running;
    ASSERT_TRUE(store_->put(keys::instance(id), model::encode(r)).isOk());
  }

  std::optional<model::InstanceStatus> status(const std::string &id) {
    auto kv = store_->get(keys::status(id));
    EXPECT_TRUE(kv.isOk());
    if (!kv.isOk() || !kv->has_value()) return std::nullopt;
    auto st = model::decode<model::InstanceStatus>((*kv)->value);
    EXPECT_TRUE(st.isOk());
    return st.isOk() ? std::optional(*st) : std::nullopt;
  }
  int64_t statusVersion(const std::string &id) {
    auto kv = store_->get(keys::status(id));
    return kv.isOk() && kv->has_value() ? (*kv)->version : 0;
  }

  // Runs passes (advancing the fake clock by `step` after each) until `id`
  // reports `want`.
  bool runUntil(const std::string &id, InstanceState want, int passes = 10,
                Duration step = Duration(0)) {
    for (int i = 0; i < passes; ++i) {
      EXPECT_TRUE(runtime_->runOnce().isOk());
      auto st = status(id);
      if (st && st->state == want) return true;
      clock_.advance(step);
    }
    return false;
  }

  fs::path dir_;
  baton::testing::FakeClock clock_;
  std::unique_ptr<state::SqliteStore> store_;
  drivers::DriverRegistry registry_;
  testing::FakeDriver *driver_ = nullptr;
  std::unique_ptr<NodeRuntime> runtime_;
};

TEST_F(NodeTest, RegistersUnderALeaseAndReRegistersWhenItIsLost) {
  NodeRuntime &rt = startRuntime();
  auto kv = store_->get(keys::node("n1"));
  ASSERT_TRUE(kv.isOk() && kv->has_value());
  EXPECT_EQ((*kv)->lease, rt.lease());
  auto rec = model::decode<model::NodeRecord>((*kv)->value);
  ASSERT_TRUE(rec.isOk());
  EXPECT_EQ(rec->address, "127.0.0.1");
  EXPECT_EQ(rec->api, "127.0.0.1:4646");
  EXPECT_EQ(rec->drivers, std::vector<std::string>{"exec"});

  // Heartbeats keep the lease alive while time passes in small steps.
  for (int i = 0; i < 10; ++i) {
    clock_.advance(seconds(2));
    ASSERT_TRUE(rt.runOnce().isOk());
    store_->tick();
  }
  kv = store_->get(keys::node("n1"));
  ASSERT_TRUE(kv.isOk() && kv->has_value());

  // The agent stalls past the TTL: the store drops the registration; the next
  // pass restores it.
  state::LeaseId old = rt.lease();
  clock_.advance(seconds(11));
  store_->tick();
  kv = store_->get(keys::node("n1"));
  ASSERT_TRUE(kv.isOk());
  EXPECT_FALSE(kv->has_value());
  ASSERT_TRUE(rt.runOnce().isOk());
  kv = store_->get(keys::node("n1"));
  ASSERT_TRUE(kv.isOk() && kv->has_value());
  EXPECT_NE(rt.lease(), old);
  EXPECT_EQ((*kv)->lease, rt.lease());
}

TEST_F(NodeTest, StartsAnInstanceAndReportsItHealthy) {
  putRecord("web-1");
  NodeRuntime &rt = startRuntime();
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_EQ(driver_->starts(), 1);
  drivers::TaskConfig cfg = driver_->started()[0];
  EXPECT_EQ(cfg.instance_id, "web-1");
  EXPECT_GT(cfg.port, 0);
  EXPECT_EQ(cfg.env["PORT"], std::to_string(cfg.port));
  EXPECT_EQ(cfg.env["BATON_INSTANCE_ID"], "web-1");
  EXPECT_EQ(cfg.env["BATON_APP"], "shop");
  EXPECT_EQ(cfg.env["BATON_SERVICE"], "web");
  EXPECT_EQ(cfg.env["BATON_ADDR"], "http://127.0.0.1:4646");
  EXPECT_EQ(cfg.env["GREETING"], "hello");
  EXPECT_EQ(cfg.env["EXTRA"], "1");
  EXPECT_EQ(cfg.task_dir, fs::path("/"));  // no workdir: not the agent's private data dir
  // Its own dynamic user (the node's agent_uid is 0 here), and the default process limit.
  EXPECT_EQ(cfg.uid, dynamicUidFor("shop", "web"));
  EXPECT_EQ(cfg.gid, cfg.uid);
  EXPECT_EQ(cfg.pids_max, NodeOptions{}.default_pids);
  EXPECT_EQ(cfg.log_dir, dir_ / "data" / "logs" / "shop" / "web" / "web-1");
  EXPECT_TRUE(fs::is_directory(cfg.log_dir));
  EXPECT_EQ(status("web-1")->state, InstanceState::kStarting);

  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  auto st = status("web-1");
  EXPECT_EQ(st->node, "n1");
  EXPECT_EQ(st->port, cfg.port);
  EXPECT_EQ(st->address, "127.0.0.1");
  EXPECT_GE(st->pid, 1000);
  EXPECT_EQ(driver_->starts(), 1);

  // Nothing changes: no status rewrites, however many passes run.
  int64_t version = statusVersion("web-1");
  for (int i = 0; i < 5; ++i) {
    clock_.advance(seconds(1));
    ASSERT_TRUE(rt.runOnce().isOk());
  }
  EXPECT_EQ(statusVersion("web-1"), version);
}

TEST_F(NodeTest, UpstreamsGetTheirMeshAddressesInTheEnvironment) {
  model::InstanceRecord r = webRecord("web-1");
  r.spec.upstreams = {"cart", "billing/api-v2"};
  ASSERT_TRUE(store_->put(keys::instance("web-1"), model::encode(r)).isOk());
  NodeOptions o = options();
  std::vector<std::string> asked;
  o.upstream_address = [&asked](const std::string &app,
                                const std::string &svc) -> Result<std::string> {
    asked.push_back(app + "/" + svc);
    if (svc == "nope") return unavailable("no address left");
    return std::string(app == "shop" ? "169.254.64.7:80" : "169.254.64.9:80");
  };
  o.network = "isolated";
  NodeRuntime &rt = startRuntime(clock_, o);
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_EQ(driver_->starts(), 1);
  drivers::TaskConfig cfg = driver_->started()[0];
  EXPECT_EQ(asked, (std::vector<std::string>{"shop/web", "shop/cart", "billing/api-v2"}))
      << "a caller gets a service address of its own (its connections come from there)";
  EXPECT_EQ(cfg.env["BATON_UPSTREAM_CART"], "169.254.64.7:80");
  EXPECT_EQ(cfg.env["BATON_UPSTREAM_CART_URL"], "http://169.254.64.7:80");
  EXPECT_EQ(cfg.env["BATON_UPSTREAM_BILLING_API_V2"], "169.254.64.9:80");
  EXPECT_EQ(cfg.env.count("BATON_ADDR"), 0u) << "an isolated instance cannot reach the API";
  EXPECT_EQ(cfg.env.count("BATON_TOKEN"), 0u);
  auto node = store_->get(keys::node("n1"));
  ASSERT_TRUE(node.isOk() && node->has_value());
  EXPECT_EQ(model::decode<model::NodeRecord>((*node)->value)->network, "isolated");

  // An address that cannot be had is a start error, named.
  r.id = "web-2";
  r.spec.upstreams = {"nope"};
  ASSERT_TRUE(store_->put(keys::instance("web-2"), model::encode(r)).isOk());
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_TRUE(rt.runOnce().isOk());  // the start error is reported by the next pass
  EXPECT_EQ(driver_->starts(), 1);
  auto st = status("web-2");
  ASSERT_TRUE(st.has_value());
  EXPECT_NE((st->message + st->last_failure).find("upstream nope: no address left"),
            std::string::npos)
      << st->message << " / " << st->last_failure;
}

TEST_F(NodeTest, AnApiGrantGivesTheInstancesApiAndItsAppsToken) {
  NodeOptions o = isolatedWithApiGrant();
  o.instance_api_address = "169.254.127.252:80";
  o.app_token = [](const std::string &app) { return "app." + app + ".mac"; };
  NodeRuntime &rt = startRuntime(clock_, o);
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_EQ(driver_->starts(), 1);
  drivers::TaskConfig cfg = driver_->started()[0];
  EXPECT_EQ(cfg.env["BATON_ADDR"], "http://169.254.127.252:80");
  EXPECT_EQ(cfg.env["BATON_TOKEN"], "app.shop.mac");
}

TEST_F(NodeTest, AnApiGrantWithoutAnInstancesApiIsAStartError) {
  NodeOptions o = isolatedWithApiGrant();
  NodeRuntime &rt = startRuntime(clock_, o);
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_TRUE(rt.runOnce().isOk());
  EXPECT_EQ(driver_->starts(), 0);
  auto st = status("web-1");
  ASSERT_TRUE(st.has_value());
  EXPECT_NE((st->message + st->last_failure).find("no API for instances"), std::string::npos)
      << st->message << " / " << st->last_failure;
}

// A fake secrets store: by path, the current version and its values.
struct FakeSecrets {
  std::map<std::string, SecretRead> current;
  std::vector<std::string> reads;  // "path@version for instance"
  void wire(NodeOptions &o) {
    o.read_secret = [this](const std::string &path, int64_t version,
                           const std::string &instance) -> Result<SecretRead> {
      reads.push_back(path + "@" + std::to_string(version) + " for " + instance);
      auto it = current.find(path);
      if (it == current.end()) return notFound("no secret " + path);
      if (version != 0 && version != it->second.version) return notFound("no such version");
      return it->second;
    };
    o.secret_version = [this](const std::string &path) -> int64_t {
      auto it = current.find(path);
      return it == current.end() ? 0 : it->second.version;
    };
  }
};

std::string fileText(const fs::path &p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_F(NodeTest, SecretsAreTheInstancesFilesAndEnvironment) {
  model::InstanceRecord r = webRecord("web-1");
  r.spec.secrets = {"shop/db"};
  r.spec.secret_versions = {{"shop/db", 2}};
  r.spec.env["DB_PASSWORD"] = "secret:shop/db#password";
  ASSERT_TRUE(store_->put(keys::instance("web-1"), model::encode(r)).isOk());
  FakeSecrets secrets;
  secrets.current["shop/db"] = {2, {{"password", "s3cret-value"}, {"user", "shop"}}};
  NodeOptions o = options();
  secrets.wire(o);
  o.secrets_dir = dir_ / "run-secrets";
  o.secrets_tmpfs = ::geteuid() == 0;
  NodeRuntime &rt = startRuntime(clock_, o);
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_EQ(driver_->starts(), 1);
  drivers::TaskConfig cfg = driver_->started()[0];
  EXPECT_EQ(secrets.reads, std::vector<std::string>{"shop/db@2 for web-1"});
  const fs::path dir = dir_ / "run-secrets" / "host" / "web-1";
  EXPECT_EQ(cfg.secrets_dir, dir);
  EXPECT_EQ(cfg.env["BATON_SECRETS_DIR"], dir.string());
  EXPECT_EQ(cfg.env["DB_PASSWORD"], "s3cret-value");
  EXPECT_EQ(fileText(dir / "shop" / "db" / "password"), "s3cret-value");
  EXPECT_EQ(fileText(dir / "shop" / "db" / "user"), "shop");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "shop" / "db" / "password").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  if (::geteuid() == 0) {
    EXPECT_EQ(static_cast<int64_t>(st.st_uid), cfg.uid) << "the service's user owns its files";
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0500u);
    struct statfs fs_info {};
    ASSERT_EQ(::statfs(dir.c_str(), &fs_info), 0);
    EXPECT_EQ(fs_info.f_type, TMPFS_MAGIC) << "the values are never on a disk";
  }

  // Gone with the instance (and its tmpfs with it).
  r.desired_running = false;
  ASSERT_TRUE(store_->put(keys::instance("web-1"), model::encode(r)).isOk());
  for (int i = 0; i < 5 && fs::exists(dir); ++i) {
    ASSERT_TRUE(rt.runOnce().isOk());
    clock_.advance(Duration(2000));
  }
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(NodeTest, ASecretThatCannotBeReadIsAStartErrorNamingIt) {
  model::InstanceRecord r = webRecord("web-1");
  r.spec.secrets = {"shop/db"};
  r.spec.secret_versions = {{"shop/db", 0}};  // the controller saw none
  ASSERT_TRUE(store_->put(keys::instance("web-1"), model::encode(r)).isOk());
  FakeSecrets secrets;
  NodeOptions o = options();
  secrets.wire(o);
  o.secrets_dir = dir_ / "run-secrets";
  NodeRuntime &rt = startRuntime(clock_, o);
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_TRUE(rt.runOnce().isOk());
  EXPECT_EQ(driver_->starts(), 0);
  auto st = status("web-1");
  ASSERT_TRUE(st.has_value());
  EXPECT_NE((st->message + st->last_failure).find("secret shop/db has no version to read"),
            std::string::npos)
      << st->message << " / " << st->last_failure;
}

TEST_F(NodeTest, ASignalledServiceGetsNewFilesThenItsSignal) {
  model::InstanceRecord r = webRecord("web-1");
  r.spec.secrets = {"shop/db"};
  r.spec.on_secret_change = "SIGHUP";
  ASSERT_TRUE(store_->put(keys::instance("web-1"), model::encode(r)).isOk());
  FakeSecrets secrets;
  secrets.current["shop/db"] = {1, {{"password", "one"}, {"old_key", "x"}}};
  NodeOptions o = options();
  secrets.wire(o);
  o.secrets_dir = dir_ / "run-secrets";
  NodeRuntime &rt = startRuntime(clock_, o);
  ASSERT_TRUE(rt.runOnce().isOk());
  ASSERT_EQ(driver_->starts(), 1);
  const fs::path db = dir_ / "run-secrets" / "host" / "web-1" / "shop" / "db";
  EXPECT_EQ(fileText(db / "password"), "one");
  ASSERT_TRUE(rt.runOnce().isOk());
  EXPECT_TRUE(driver_->signals().empty()) << "nothing changed";

  secrets.current["shop/db"] = {2, {{"password", "two"}}};
  ASSERT_TRUE(rt.runOnce().isOk());
  EXPECT_EQ(fileText(db / "password"), "two");
  EXPECT_FALSE(fs::exists(db / "old_key")) << "a key gone from the secret is gone from the files";
  EXPECT_EQ(driver_->signals(), std::vector<std::string>{"web-1 " + std::to_string(SIGHUP)});
  EXPECT_EQ(driver_->starts(), 1) << "signalled, not restarted";

  // A new version with the same values: nothing to tell the service.
  secrets.current["shop/db"].version = 3;
  ASSERT_TRUE(rt.runOnce().isOk());
  EXPECT_EQ(driver_->signals().size(), 1u);

  // After an agent restart the runtime compares what the files hold: no spurious signal.
  runtime_.reset();
  NodeRuntime &again = startRuntime(clock_, o);
  ASSERT_TRUE(again.runOnce().isOk());
  ASSERT_TRUE(again.runOnce().isOk());
  EXPECT_EQ(driver_->signals().size(), 1u);
  secrets.current["shop/db"] = {4, {{"password", "four"}}};
  ASSERT_TRUE(again.runOnce().isOk());
  EXPECT_EQ(fileText(db / "password"), "four");
  EXPECT_EQ(driver_->signals().size(), 2u);
}

TEST(UpstreamEnvName, UpperCaseWithUnderscores) {
  EXPECT_EQ(upstreamEnvName("cart"), "BATON_UPSTREAM_CART");
  EXPECT_EQ(upstreamEnvName("billing/api-v2"), "BATON_UPSTREAM_BILLING_API_V2");
}

TEST_F(NodeTest, IgnoresInstancesOfOtherNodes) {
  putRecord("web-9", true, "n2");
  NodeRuntime &rt = startRuntime();
  ASSERT_TRUE(rt.runOnce().isOk());
  EXPECT_EQ(driver_->starts(), 0);
  EXPECT_FALSE(status("web-9").has_value());
}

TEST_F(NodeTest, StopsWhenNotDesiredAndCleansUpWhenTheRecordGoes) {
  putRecord("web-1");
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  putRecord("web-1", /*running=*/false);
  ASSERT_TRUE(runUntil("web-1", InstanceState::kStopped));
  EXPECT_EQ(driver_->stops(), std::vector<std::string>{"web-1"});
  EXPECT_FALSE(driver_->known("web-1"));  // destroyed
  EXPECT_EQ(status("web-1")->last_exit_code, 143);

  // The controller deletes the instance record; the node removes what is left.
  ASSERT_TRUE(store_->del(keys::instance("web-1")).isOk());
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_FALSE(status("web-1").has_value());
  EXPECT_EQ(driver_->starts(), 1);
}

TEST_F(NodeTest, RecordDeletedWhileRunningStopsTheTask) {
  putRecord("web-1");
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  ASSERT_TRUE(store_->del(keys::instance("web-1")).isOk());
  ASSERT_TRUE(runtime_->runOnce().isOk());
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_FALSE(driver_->known("web-1"));
  EXPECT_FALSE(status("web-1").has_value());
}

TEST_F(NodeTest, CrashRestartsAfterBackoff) {
  putRecord("web-1");
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  int port = status("web-1")->port;

  driver_->crash("web-1", 1);
  ASSERT_TRUE(runtime_->runOnce().isOk());
  auto st = status("web-1");
  EXPECT_EQ(st->state, InstanceState::kUnhealthy);
  EXPECT_EQ(st->last_exit_code, 1);
  EXPECT_EQ(st->message, "exited with code 1; restarting in 1s");
  EXPECT_EQ(st->pid, 0);

  clock_.advance(milliseconds(500));
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_EQ(driver_->starts(), 1);  // still backing off
  clock_.advance(milliseconds(500));
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_EQ(driver_->starts(), 2);
  EXPECT_EQ(driver_->started()[1].port, port);  // keeps its port
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  EXPECT_EQ(status("web-1")->restarts, 1);
}

TEST_F(NodeTest, GivesUpAfterRepeatedStartFailures) {
  putRecord("web-1");
  driver_->failStarts(invalidArgument("program \"server\" not found"));
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kFailed, 20, seconds(1)));
  auto st = status("web-1");
  EXPECT_EQ(st->message,
            "failed to start: program \"server\" not found; "
            "crashed 3 times without becoming "
            "healthy");
  EXPECT_EQ(st->restarts, 2);
}

TEST_F(NodeTest, RestartedRuntimeReadoptsWithoutRestarting) {
  putRecord("web-1");
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  auto before = status("web-1");
  runtime_->stop();
  runtime_.reset();
  EXPECT_TRUE(driver_->running("web-1"));  // instances outlive the agent

  int64_t version = statusVersion("web-1");
  startRuntime();
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_EQ(status("web-1")->state, InstanceState::kHealthy);
  EXPECT_EQ(statusVersion("web-1"), version);  // adoption rewrites nothing
  EXPECT_EQ(driver_->starts(), 1);
  auto after = status("web-1");
  EXPECT_EQ(after->port, before->port);
  EXPECT_EQ(after->pid, before->pid);
  EXPECT_EQ(after->restarts, 0);
}

TEST_F(NodeTest, InstanceThatEndedWhileTheAgentWasDownIsReportedThenRestarted) {
  putRecord("web-1");
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  // Make it crash once before, so the restart count must survive the agent
  // restart.
  driver_->crash("web-1", 2);
  ASSERT_TRUE(runtime_->runOnce().isOk());
  clock_.advance(seconds(1));
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  EXPECT_EQ(status("web-1")->restarts, 1);
  int port = status("web-1")->port;
  runtime_.reset();

  driver_->crash("web-1", 7);
  startRuntime();
  ASSERT_TRUE(runtime_->runOnce().isOk());
  auto st = status("web-1");
  EXPECT_EQ(st->state, InstanceState::kUnhealthy);
  EXPECT_EQ(st->last_exit_code, 7);
  EXPECT_EQ(driver_->starts(), 2);
  clock_.advance(seconds(1));
  ASSERT_TRUE(runUntil("web-1", InstanceState::kHealthy));
  EXPECT_EQ(driver_->starts(), 3);
  EXPECT_EQ(status("web-1")->restarts, 2);
  EXPECT_EQ(status("web-1")->port, port);
}

TEST_F(NodeTest, UnknownRecoveredTaskIsStoppedAndDestroyed) {
  driver_->addOrphan("ghost", 4242);
  startRuntime();
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_EQ(driver_->stops(), std::vector<std::string>{"ghost"});
  ASSERT_TRUE(runtime_->runOnce().isOk());
  EXPECT_FALSE(driver_->known("ghost"));
}

TEST_F(NodeTest, FailedInstanceStaysFailedAcrossAgentRestarts) {
  putRecord("web-1");
  driver_->failStarts(invalidArgument("nope"));
  startRuntime();
  ASSERT_TRUE(runUntil("web-1", InstanceState::kFailed, 20, seconds(1)));
  runtime_.reset();
  driver_->failStarts(Status::ok());
  startRuntime();
  for (int i = 0; i < 3; ++i) {
    clock_.advance(seconds(5));
    ASSERT_TRUE(runtime_->runOnce().isOk());
  }
  EXPECT_EQ(driver_->starts(), 0);
  EXPECT_EQ(status("web-1")->state, InstanceState::kFailed);
}

TEST_F(NodeTest, RunOnceBeforeStartIsAnError) {
  NodeRuntime rt(*store_, registry_, clock_, options());
  EXPECT_EQ(rt.runOnce().code(), Code::kFailedPrecondition);
  NodeOptions o = options();
  o.node_id.clear();
  NodeRuntime bad(*store_, registry_, clock_, o);
  EXPECT_EQ(bad.start().code(), Code::kInvalidArgument);
}

// The background threads: the watch wakes the loop, the probe thread probes,
// stops run on their own thread. Real time (the waits are for threads doing
// I/O, bounded by a deadline).
class NodeBackgroundTest : public NodeTest {};

TEST_F(NodeBackgroundTest, LoopStartsProbesAndStopsOnItsOwn) {
  store_.reset();
  openStore(SystemClock::instance());
  NodeOptions o = options();
  o.background = true;
  o.loop_interval = Duration(100);
  startRuntime(SystemClock::instance(), o);

  auto waitFor = [&](InstanceState want) {
    auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto st = status("web-1");
      if (st && st->state == want) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  };
  putRecord("web-1");
  ASSERT_TRUE(waitFor(InstanceState::kHealthy));
  EXPECT_EQ(driver_->starts(), 1);
  putRecord("web-1", /*running=*/false);
  ASSERT_TRUE(waitFor(InstanceState::kStopped));
  EXPECT_FALSE(driver_->running("web-1"));
  runtime_->stop();
  runtime_.reset();
}

}  // namespace
}  // namespace baton::node
