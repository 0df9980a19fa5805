#include "gateway/catalog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "model/json.h"
#include "model/keys.h"
#include "state/sqlite_store.h"

namespace baton::gateway {
namespace {

namespace fs = std::filesystem;

model::Route route(std::string path, std::string service, bool strip = false) {
  model::Route r;
  r.path = std::move(path);
  r.service = std::move(service);
  r.strip_prefix = strip;
  return r;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gw_catalog_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto s = state::SqliteStore::open(dir_ / "store.db", SystemClock::instance());
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  void putApp(const std::string& name, std::vector<model::Route> routes) {
    model::AppRecord a;
    a.spec.name = name;
    a.spec.routes = std::move(routes);
    ASSERT_TRUE(store_->put(model::keys::app(name), model::encode(a)).isOk());
  }
  void putInstance(const std::string& id, const std::string& app, const std::string& svc,
                   bool running = true) {
    model::InstanceRecord r;
    r.id = id;
    r.app = app;
    r.service = svc;
    r.desired_running = running;
    ASSERT_TRUE(store_->put(model::keys::instance(id), model::encode(r)).isOk());
  }
  void putStatus(const std::string& id, model::InstanceState st, int port) {
    model::InstanceStatus s;
    s.id = id;
    s.state = st;
    s.address = "127.0.0.1";
    s.port = port;
    ASSERT_TRUE(store_->put(model::keys::status(id), model::encode(s)).isOk());
  }

  std::shared_ptr<const RouteTable> table() {
    std::lock_guard lock(mu_);
    return table_;
  }
  // Waits (bounded) for the published table to satisfy `pred`; returns the time it took.
  template <class Pred>
  std::chrono::milliseconds waitFor(Pred pred) {
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
      auto t = table();
      if (t && pred(*t)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }

  fs::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
  std::mutex mu_;
  std::shared_ptr<const RouteTable> table_;
};

size_t backendsOf(const RouteTable& t, std::string_view path) {
  int i = t.match("any", path);
  return i < 0 ? 0 : t.entry(i).backends.size();
}

TEST_F(CatalogTest, BuildsFromStoreAndFollowsChangesWithin100ms) {
  putApp("shop", {route("/", "web")});
  putInstance("i1", "shop", "web");
  putStatus("i1", model::InstanceState::kHealthy, 9001);
  putInstance("i2", "shop", "web");
  putStatus("i2", model::InstanceState::kStarting, 9002);
  putInstance("i3", "shop", "web", /*running=*/false);
  putStatus("i3", model::InstanceState::kHealthy, 9003);

  CatalogWatcher w(*store_, [this](std::shared_ptr<const RouteTable> t) {
    std::lock_guard lock(mu_);
    table_ = std::move(t);
  });
  ASSERT_TRUE(w.start().isOk());
  auto t = table();
  ASSERT_TRUE(t);
  int i = t->match("h", "/x");
  ASSERT_GE(i, 0);
  ASSERT_EQ(t->entry(i).backends.size(), 1u);
  EXPECT_EQ(t->entry(i).backends[0].port, 9001);

  // i2 becomes healthy: live within 100 ms.
  putStatus("i2", model::InstanceState::kHealthy, 9002);
  auto took = waitFor([](const RouteTable& t) { return backendsOf(t, "/") == 2; });
  EXPECT_EQ(backendsOf(*table(), "/"), 2u);
  EXPECT_LT(took.count(), 100);

  // i1 unhealthy, a new route: both reflected.
  putStatus("i1", model::InstanceState::kUnhealthy, 9001);
  putApp("shop", {route("/", "web"), route("/api", "api", true)});
  took = waitFor([](const RouteTable& t) {
    return backendsOf(t, "/") == 1 && t.match("h", "/api/x") >= 0 &&
           t.entry(t.match("h", "/api/x")).route.service == "api";
  });
  EXPECT_LT(took.count(), 100);
  // Instance deleted: gone.
  ASSERT_TRUE(store_->del(model::keys::instance("i2")).isOk());
  took = waitFor([](const RouteTable& t) { return backendsOf(t, "/") == 0; });
  EXPECT_EQ(backendsOf(*table(), "/"), 0u);
  EXPECT_LT(took.count(), 100);
  w.stop();
}

TEST_F(CatalogTest, RecoversFromCompaction) {
  putApp("shop", {route("/", "web")});
  CatalogWatcher w(*store_, [this](std::shared_ptr<const RouteTable> t) {
    std::lock_guard lock(mu_);
    table_ = std::move(t);
  });
  ASSERT_TRUE(w.start().isOk());
  // Many writes and a compaction while watching; the watcher must end up current.
  for (int k = 0; k < 50; ++k)
    putStatus("x" + std::to_string(k), model::InstanceState::kHealthy, 1);
  auto rev = store_->currentRevision();
  ASSERT_TRUE(rev.isOk());
  ASSERT_TRUE(store_->compact(*rev).isOk());
  putInstance("i1", "shop", "web");
  putStatus("i1", model::InstanceState::kHealthy, 9001);
  waitFor([](const RouteTable& t) { return backendsOf(t, "/") == 1; });
  EXPECT_EQ(backendsOf(*table(), "/"), 1u);
}

TEST(BuildRouteTable, SkipsMalformedRecords) {
  std::vector<state::KeyValue> apps = {{"/baton/apps/bad", "{not json"}};
  auto t = buildRouteTable(apps, {}, {});
  EXPECT_TRUE(t.empty());
}

}  // namespace
}  // namespace baton::gateway
