// The controller shell against a real SqliteStore in a temporary directory.
#include "controller/controller.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"
#include "model/json.h"
#include "model/keys.h"
#include "state/sqlite_store.h"

namespace baton::controller {
namespace {

namespace fs = std::filesystem;
namespace keys = model::keys;
using model::InstanceState;

using TempDir = baton::testing::TempDir;

// Forwards to a real store; can run a hook just before the next txn (to lose a race).
class RacingStore final : public state::Store {
 public:
  explicit RacingStore(state::Store& inner) : inner_(inner) {}
  std::function<void()> before_next_txn;

  Result<std::optional<state::KeyValue>> get(const std::string& key) override {
    return inner_.get(key);
  }
  Result<state::RangeResult> list(const std::string& prefix, size_t limit) override {
    return inner_.list(prefix, limit);
  }
  Result<state::TxnResult> txn(const std::vector<state::Compare>& c,
                               const std::vector<state::Op>& s,
                               const std::vector<state::Op>& f) override {
    if (auto hook = std::exchange(before_next_txn, nullptr)) hook();
    return inner_.txn(c, s, f);
  }
  Result<state::LeaseId> grantLease(Duration ttl) override { return inner_.grantLease(ttl); }
  Status keepAlive(state::LeaseId l) override { return inner_.keepAlive(l); }
  Status revokeLease(state::LeaseId l) override { return inner_.revokeLease(l); }
  Result<std::unique_ptr<state::WatchHandle>> watch(const std::string& prefix, state::Revision from,
                                                    state::WatchCallbacks cb) override {
    return inner_.watch(prefix, from, std::move(cb));
  }
  Result<state::Revision> currentRevision() override { return inner_.currentRevision(); }
  Status compact(state::Revision r) override { return inner_.compact(r); }

 private:
  state::Store& inner_;
};

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state::SqliteStoreOptions opts;
    opts.tick_interval = Duration(0);
    auto s = state::SqliteStore::open(dir_.path() / "store.db", clock_, opts);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    racing_ = std::make_unique<RacingStore>(*store_);
    for (int i = 1; i <= 2; ++i) {
      model::NodeRecord n;
      n.id = "node-" + std::to_string(i);
      n.cpu = 4;
      n.memory = 8ull << 30;
      ASSERT_TRUE(store_->put(keys::node(n.id), model::encode(n)).isOk());
    }
  }

  ControllerOptions options() {
    ControllerOptions o;
    o.ids = [this](const std::string& app, const std::string& svc) {
      return app + "-" + svc + "-" + std::to_string(++next_id_);
    };
    o.on_event = [this](const std::string& kind, const std::string& message) {
      std::lock_guard lock(mu_);
      events_.push_back(kind + ": " + message);
      cv_.notify_all();
    };
    o.debounce = Duration(10);
    return o;
  }

  void putApp(int min, const std::string& greeting, int64_t version) {
    model::AppRecord app;
    app.spec.name = "shop";
    auto& svc = app.spec.services["web"];
    svc.name = "web";
    svc.run = {"server"};
    svc.env["GREETING"] = greeting;
    svc.scale.min = min;
    svc.scale.max = 10;
    app.version = version;
    ASSERT_TRUE(store_->put(keys::app("shop"), model::encode(app)).isOk());
  }

  std::map<std::string, model::InstanceRecord> instances() {
    std::map<std::string, model::InstanceRecord> out;
    auto r = store_->list(std::string(keys::kInstances));
    EXPECT_TRUE(r.isOk());
    for (const auto& kv : r->kvs) {
      auto rec = model::decode<model::InstanceRecord>(kv.value);
      EXPECT_TRUE(rec.isOk());
      out[rec->id] = *rec;
    }
    return out;
  }

  void setStatus(const std::string& id, InstanceState state) {
    model::InstanceStatus st;
    st.id = id;
    st.state = state;
    ASSERT_TRUE(store_->put(keys::status(id), model::encode(st)).isOk());
  }

  void settle() {
    for (const auto& [id, rec] : instances()) {
      setStatus(id, rec.desired_running ? InstanceState::kHealthy : InstanceState::kStopped);
    }
  }

  state::Revision revision() { return store_->currentRevision().valueOr(-1); }

  bool waitForEvent(const std::string& needle) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] {
      for (const auto& e : events_) {
        if (e.find(needle) != std::string::npos) return true;
      }
      return false;
    });
  }

  TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<RacingStore> racing_;
  int next_id_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
};

TEST_F(ControllerTest, CreatesInstancesAndIsIdempotent) {
  putApp(2, "hello", 1);
  Controller c(*store_, clock_, options());
  ASSERT_TRUE(c.reconcileOnce().isOk());
  auto inst = instances();
  ASSERT_EQ(inst.size(), 2u);
  for (const auto& [id, rec] : inst) {
    EXPECT_EQ(rec.app, "shop");
    EXPECT_TRUE(rec.desired_running);
    EXPECT_EQ(rec.spec_hash, model::specHash(rec.spec));
    EXPECT_EQ(rec.created_at, clock_.now());
  }
  EXPECT_NE(inst.begin()->second.node, std::next(inst.begin())->second.node);
  EXPECT_EQ(events_, std::vector<std::string>{"scale: shop/web: scaled 0 -> 2 (manifest)"});

  state::Revision before = revision();
  ASSERT_TRUE(c.reconcileOnce().isOk());
  settle();
  before = revision();
  ASSERT_TRUE(c.reconcileOnce().isOk());
  EXPECT_EQ(revision(), before);  // nothing written
  EXPECT_EQ(c.stats().applied, 1u);
}

TEST_F(ControllerTest, RollingUpdateThroughTheStore) {
  putApp(2, "hello", 1);
  Controller c(*store_, clock_, options());
  ASSERT_TRUE(c.reconcileOnce().isOk());
  settle();
  putApp(2, "v2", 2);
  ASSERT_TRUE(c.reconcileOnce().isOk());
  auto ro = store_->get(keys::rollout("shop", "web"));
  ASSERT_TRUE(ro.isOk() && ro->has_value());
  auto rec = model::decode<model::RolloutRecord>((*ro)->value);
  ASSERT_TRUE(rec.isOk());
  EXPECT_EQ(rec->phase, model::RolloutRecord::Phase::kInProgress);
  EXPECT_EQ(rec->version, 2);
  EXPECT_EQ(instances().size(), 3u);

  // Play the node until the rollout completes.
  for (int pass = 0; pass < 10; ++pass) {
    settle();
    ASSERT_TRUE(c.reconcileOnce().isOk());
  }
  auto done = store_->get(keys::rollout("shop", "web"));
  ASSERT_TRUE(done.isOk() && done->has_value());
  EXPECT_EQ(model::decode<model::RolloutRecord>((*done)->value)->phase,
            model::RolloutRecord::Phase::kComplete);
  auto inst = instances();
  ASSERT_EQ(inst.size(), 2u);
  for (const auto& [id, r] : inst) EXPECT_EQ(r.spec.env.at("GREETING"), "v2");
  // Deleted instances took their status keys with them.
  auto statuses = store_->list(std::string(keys::kStatus));
  ASSERT_TRUE(statuses.isOk());
  EXPECT_EQ(statuses->kvs.size(), 2u);
}

TEST_F(ControllerTest, ScaleDownStopsThenDeletesRecordAndStatus) {
  putApp(2, "hello", 1);
  Controller c(*store_, clock_, options());
  ASSERT_TRUE(c.reconcileOnce().isOk());
  settle();
  model::ScaleOverride o;
  o.min = 1;
  ASSERT_TRUE(store_->put(keys::scale("shop", "web"), model::encode(o)).isOk());
  ASSERT_TRUE(c.reconcileOnce().isOk());
  std::string stopped;
  for (const auto& [id, r] : instances()) {
    if (!r.desired_running) stopped = id;
  }
  ASSERT_FALSE(stopped.empty());
  setStatus(stopped, InstanceState::kStopped);
  ASSERT_TRUE(c.reconcileOnce().isOk());
  EXPECT_EQ(instances().size(), 1u);
  auto st = store_->get(keys::status(stopped));
  ASSERT_TRUE(st.isOk());
  EXPECT_FALSE(st->has_value());
}

TEST_F(ControllerTest, LostRaceDropsThePlanAndRetries) {
  putApp(1, "hello", 1);
  Controller c(*racing_, clock_, options());
  // The app changes between the snapshot and the write: the guarded plan must not land.
  racing_->before_next_txn = [this] { putApp(3, "hello", 2); };
  Status s = c.reconcileOnce();
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_TRUE(instances().empty());
  EXPECT_TRUE(events_.empty());
  EXPECT_EQ(c.stats().conflicts, 1u);
  ASSERT_TRUE(c.reconcileOnce().isOk());
  EXPECT_EQ(instances().size(), 3u);
}

TEST_F(ControllerTest, NodeRegistrationChangeIsGuarded) {
  putApp(1, "hello", 1);
  Controller c(*racing_, clock_, options());
  // Both nodes vanish after the snapshot: the create must not point at a missing node.
  racing_->before_next_txn = [this] {
    ASSERT_TRUE(store_->del(keys::node("node-1")).isOk());
    ASSERT_TRUE(store_->del(keys::node("node-2")).isOk());
  };
  EXPECT_EQ(c.reconcileOnce().code(), Code::kConflict);
  EXPECT_TRUE(instances().empty());
}

TEST_F(ControllerTest, LoopReactsToWatchedChanges) {
  ControllerOptions o = options();
  o.resync = Duration(60'000);  // only the watch can wake it in time
  Controller c(*store_, clock_, o);
  c.start();
  putApp(2, "hello", 1);
  EXPECT_TRUE(waitForEvent("scaled 0 -> 2"));
  c.stop();
  EXPECT_EQ(instances().size(), 2u);
}

TEST_F(ControllerTest, MalformedRecordsAreReportedOnceAndSkipped) {
  ASSERT_TRUE(store_->put(keys::app("bad"), "{not json").isOk());
  putApp(1, "hello", 1);
  Controller c(*store_, clock_, options());
  ASSERT_TRUE(c.reconcileOnce().isOk());
  ASSERT_TRUE(c.reconcileOnce().isOk());
  int malformed = 0;
  for (const auto& e : events_) {
    malformed += e.find("store: ignoring /baton/apps/bad (malformed record") != std::string::npos;
  }
  EXPECT_EQ(malformed, 1);
  EXPECT_EQ(instances().size(), 1u);
}

}  // namespace
}  // namespace baton::controller
