#include "controller/autoscaling.h"

#include <gtest/gtest.h>

#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"
#include "model/json.h"
#include "model/keys.h"
#include "state/sqlite_store.h"

namespace baton::controller {
namespace {

namespace keys = model::keys;

class AutoscalingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state::SqliteStoreOptions o;
    o.tick_interval = Duration(0);
    auto s = state::SqliteStore::open(dir_.path() / "store.db", clock_, o);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    AutoscalingOptions opts;
    opts.on_event = [this](const std::string&, const std::string& m) { events_.push_back(m); };
    opts.on_change = [this] { ++changes_; };
    scaling_ = std::make_unique<Autoscaling>(
        *store_, clock_, [this] { return std::exchange(load_, {}); }, opts);
  }

  void deploy(int min, int max, int concurrency) {
    model::AppRecord rec;
    rec.spec.name = "shop";
    model::ServiceSpec web;
    web.name = "web";
    web.run = {"true"};
    web.scale.min = min;
    web.scale.max = max;
    web.scale.concurrency = concurrency;
    web.scale.idle = Duration(60'000);
    rec.spec.services["web"] = web;
    ASSERT_TRUE(store_->put(keys::app("shop"), model::encode(rec)).isOk());
  }

  int desired() {
    auto b = ScaleBounds{0, 0, "manifest", std::nullopt};
    auto apps = store_->get(keys::app("shop"));
    auto rec = model::decode<model::AppRecord>((**apps).value);
    b.min = rec->spec.services["web"].scale.min;
    b.max = rec->spec.services["web"].scale.max;
    return scaling_->desired("shop", "web", b);
  }

  // `seconds` one-second steps with the same load each second.
  void run(int seconds, ServiceLoad each) {
    for (int i = 0; i < seconds; ++i) {
      clock_.advance(Duration(1000));
      load_["shop/web"] = each;
      ASSERT_TRUE(scaling_->stepOnce().isOk());
    }
  }

  baton::testing::TempDir dir_{"baton_autoscaling"};
  baton::testing::FakeClock clock_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<Autoscaling> scaling_;
  std::map<std::string, ServiceLoad> load_;
  std::vector<std::string> events_;
  int changes_ = 0;
};

TEST_F(AutoscalingTest, ScalesFromZeroAtOnceWhenARequestIsParked) {
  deploy(0, 3, 10);
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  EXPECT_EQ(desired(), 0);
  load_["shop/web"] = ServiceLoad{.concurrency = 1, .queued = 1, .arrivals = 1, .parked = 1};
  ASSERT_TRUE(scaling_->stepOnce().isOk());  // no window to wait for
  EXPECT_GE(desired(), 1);
  EXPECT_EQ(changes_, 1);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_NE(events_[0].find("shop/web: desired 0 -> "), std::string::npos) << events_[0];
}

TEST_F(AutoscalingTest, GrowsWithLoadButNeverPastMax) {
  deploy(1, 3, 10);
  run(70, ServiceLoad{.concurrency = 100, .arrivals = 500});
  EXPECT_EQ(desired(), 3);
}

TEST_F(AutoscalingTest, ReturnsToZeroAfterIdle) {
  deploy(0, 3, 10);
  run(5, ServiceLoad{.concurrency = 5, .arrivals = 20});
  EXPECT_GE(desired(), 1);
  run(200, ServiceLoad{});
  EXPECT_EQ(desired(), 0);
}

TEST_F(AutoscalingTest, BoundsFromTheCallerWin) {
  deploy(0, 3, 10);
  run(3, ServiceLoad{});
  ScaleBounds raised{2, 5, "schedule:black-friday", std::nullopt};
  EXPECT_EQ(scaling_->desired("shop", "web", raised), 2);
  EXPECT_EQ(scaling_->desired("other", "svc", raised), 2);  // unknown service: min
}

}  // namespace
}  // namespace baton::controller
