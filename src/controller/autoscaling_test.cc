#include "controller/autoscaling.h"

#include <gtest/gtest.h>

#include "autoscaler/bounds.h"
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

  void deploy(int min, int max, int concurrency, Duration idle = Duration(60'000)) {
    model::AppRecord rec;
    rec.spec.name = "shop";
    model::ServiceSpec web;
    web.name = "web";
    web.run = {"true"};
    web.scale.min = min;
    web.scale.max = max;
    web.scale.concurrency = concurrency;
    web.scale.idle = idle;
    rec.spec.services["web"] = web;
    ASSERT_TRUE(store_->put(keys::app("shop"), model::encode(rec)).isOk());
  }

  // What the controller asks: the desired count inside the bounds in force (manifest and
  // override) now.
  int desired() {
    auto apps = store_->get(keys::app("shop"));
    auto rec = model::decode<model::AppRecord>((**apps).value);
    auto ov_kv = store_->get(keys::scale("shop", "web"));
    std::optional<model::ScaleOverride> ov;
    if (ov_kv.isOk() && *ov_kv) ov = *model::decode<model::ScaleOverride>((**ov_kv).value);
    ScaleBounds b = autoscaler::boundsInForce(rec->spec.services["web"].scale, ov ? &*ov : nullptr,
                                              clock_.now());
    return scaling_->desired("shop", "web", b);
  }

  // `n` instances of shop/web that should run (and are healthy), as a previous agent left them.
  void running(int n) {
    for (int i = 0; i < n; ++i) {
      model::InstanceRecord rec;
      rec.id = "shop-web-" + std::to_string(i);
      rec.app = "shop";
      rec.service = "web";
      rec.node = "n1";
      ASSERT_TRUE(store_->put(keys::instance(rec.id), model::encode(rec)).isOk());
      model::InstanceStatus st;
      st.id = rec.id;
      st.node = "n1";
      st.state = model::InstanceState::kHealthy;
      ASSERT_TRUE(store_->put(keys::status(rec.id), model::encode(st)).isOk());
    }
  }

  void setOverride(std::optional<int> min, std::optional<int> max) {
    model::ScaleOverride o;
    o.min = min;
    o.max = max;
    o.set_at = clock_.now();
    ASSERT_TRUE(store_->put(keys::scale("shop", "web"), model::encode(o)).isOk());
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

// Issue 18: what the policy learned of a service's rhythm is in the store, and an agent that
// starts over (a restart, a new leader) prewarms for the next call at once.
TEST_F(AutoscalingTest, TheRhythmIsKeptAndRestoredAfterARestart) {
  deploy(0, 3, 10, Duration(300'000));
  for (int call = 0; call < 8; ++call) {
    run(1, ServiceLoad{.concurrency = 0.5, .arrivals = 1});
    run(119, ServiceLoad{});
  }
  auto kv = store_->get(std::string(keys::kRhythm) + "shop/web");
  ASSERT_TRUE(kv.isOk() && kv->has_value()) << "the rhythm is in the store";
  EXPECT_EQ(desired(), 1) << "prewarmed for the call due in a second";
  // A new agent, mid-gap.
  run(1, ServiceLoad{.concurrency = 0.5, .arrivals = 1});
  run(60, ServiceLoad{});
  scaling_ = std::make_unique<Autoscaling>(*store_, clock_,
                                           [this] { return std::exchange(load_, {}); },
                                           AutoscalingOptions{});
  run(1, ServiceLoad{});
  EXPECT_EQ(desired(), 0) << "idle between calls";
  run(58, ServiceLoad{});
  EXPECT_EQ(desired(), 1) << "up before the call due 120 s after the last";
  // A service removed: its rhythm goes too.
  ASSERT_TRUE(store_->del(keys::app("shop")).isOk());
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  kv = store_->get(std::string(keys::kRhythm) + "shop/web");
  ASSERT_TRUE(kv.isOk());
  EXPECT_FALSE(kv->has_value());
}

// Issue 18: the policy prewarms by the service's measured cold start, not a default. A service
// called every 120 s whose instances take 8 s to become ready is up 8 s + 4 s before each call
// once learned (the default, 2 s, would start it 3 s ahead: 5 s too late), and at zero between.
TEST_F(AutoscalingTest, TheMeasuredColdStartSetsHowEarlyAPrewarmStarts) {
  deploy(0, 3, 10, Duration(300'000));
  const Duration start_takes(8'000);
  bool started = false;  // the fake controller's one instance, started at started_at
  TimePoint started_at{};
  bool ready = false;
  std::vector<int> desired_at;       // per second
  auto second = [&](bool call) {
    clock_.advance(Duration(1000));
    load_["shop/web"] = call ? ServiceLoad{.concurrency = 0.5, .arrivals = 1, .parked = ready ? 0 : 1}
                             : ServiceLoad{};
    ASSERT_TRUE(scaling_->stepOnce().isOk());
    const int d = desired();
    desired_at.push_back(d);
    if (d > 0 && !started) {
      started = true;
      started_at = clock_.now();
      running(1);
      model::InstanceStatus st;
      st.id = "shop-web-0";
      st.state = model::InstanceState::kStarting;
      ASSERT_TRUE(store_->put(keys::status(st.id), model::encode(st)).isOk());
    } else if (d == 0 && started) {
      ASSERT_TRUE(store_->del(keys::instance("shop-web-0")).isOk());
      ASSERT_TRUE(store_->del(keys::status("shop-web-0")).isOk());
      started = false;
    }
    ready = started && clock_.now() - started_at >= start_takes;
    if (ready) running(1);  // healthy now
  };
  for (int t = 0; t < 12 * 120; ++t) second(t % 120 == 0);
  // The last period: up at 12 s before the call, not 13 s; down in the middle.
  ASSERT_EQ(desired_at.size(), 12u * 120);
  const size_t call = 11 * 120;
  EXPECT_EQ(desired_at[call - 60], 0) << "at zero between the calls";
  EXPECT_EQ(desired_at[call - 12], 1) << "prewarmed by the measured cold start and half of it";
  EXPECT_EQ(desired_at[call - 14], 0);
  EXPECT_TRUE(ready) << "ready when the call came";
}

TEST_F(AutoscalingTest, BoundsFromTheCallerWin) {
  deploy(0, 3, 10);
  run(3, ServiceLoad{});
  ScaleBounds raised{2, 5, "schedule:black-friday", std::nullopt};
  EXPECT_EQ(scaling_->desired("shop", "web", raised), 2);
  EXPECT_EQ(scaling_->desired("other", "svc", raised), 2);  // unknown service: min
}

// Issue 10: an agent restart must not scale an autoscaled service down to min.
TEST_F(AutoscalingTest, RestoredCountHoldsForTheStableWindowThenScalesDown) {
  deploy(1, 5, 10);
  running(3);
  ASSERT_TRUE(scaling_->stepOnce().isOk());  // the restarted agent's first pass: no history
  EXPECT_EQ(desired(), 3);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_NE(events_[0].find("shop/web: desired 3 (restored: 3 instances running"),
            std::string::npos)
      << events_[0];
  const Duration window = autoscaler::PolicyParams{}.scale_down_window;
  ASSERT_EQ(window, Duration(60'000));
  for (int s = 1; s < 60; ++s) {  // no load at all, for one second less than the window
    run(1, ServiceLoad{});
    ASSERT_EQ(desired(), 3) << "after " << s << " s";
  }
  EXPECT_EQ(events_.size(), 1u);
  run(1, ServiceLoad{});  // the window has passed: the policy's own (empty) average decides
  EXPECT_LT(desired(), 3);
  run(5, ServiceLoad{});
  EXPECT_EQ(desired(), 1);
}

TEST_F(AutoscalingTest, RestoredCountStaysWithinTheBoundsInForce) {
  deploy(1, 5, 10);
  running(7);  // more than max runs (e.g. max was lowered while no agent ran)
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  EXPECT_EQ(desired(), 5);
  setOverride(std::nullopt, 2);  // an operator lowers max during the hold: it applies at once
  run(1, ServiceLoad{});
  EXPECT_EQ(desired(), 2);
  ASSERT_FALSE(events_.empty());
  EXPECT_NE(events_.back().find("shop/web: desired 5 -> 2"), std::string::npos) << events_.back();
  setOverride(4, std::nullopt);  // ... and raising min too
  run(1, ServiceLoad{});
  EXPECT_EQ(desired(), 4);
  setOverride(0, 0);  // max 0 stops the service even during the hold
  run(1, ServiceLoad{});
  EXPECT_EQ(desired(), 0);
}

TEST_F(AutoscalingTest, RestoredCountBelowMinIsRaisedToMin) {
  deploy(2, 5, 10);
  running(1);
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  EXPECT_EQ(desired(), 2);
  EXPECT_TRUE(events_.empty());  // the count is min: nothing was restored
}

TEST_F(AutoscalingTest, ScaleUpIsNotHeldAfterARestart) {
  deploy(1, 5, 10);
  running(2);
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  EXPECT_EQ(desired(), 2);
  run(5, ServiceLoad{.concurrency = 100, .arrivals = 500});  // well inside the hold
  EXPECT_EQ(desired(), 5);
}

TEST_F(AutoscalingTest, NewServiceAtMinIsNotHeld) {
  deploy(0, 3, 10, Duration(3'000));  // nothing runs: starts at min, nothing to hold
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  EXPECT_EQ(desired(), 0);
  run(2, ServiceLoad{.concurrency = 1, .arrivals = 2});
  EXPECT_EQ(desired(), 1);
  run(20, ServiceLoad{});  // well inside a window of the first pass: back to zero after `idle`
  EXPECT_EQ(desired(), 0);
}

TEST_F(AutoscalingTest, StoppedInstancesAreNotRestored) {
  deploy(1, 5, 10);
  running(3);
  auto kv = store_->get(keys::instance("shop-web-2"));
  auto rec = model::decode<model::InstanceRecord>((**kv).value);
  rec->desired_running = false;  // being scaled down when the agent stopped
  ASSERT_TRUE(store_->put(keys::instance(rec->id), model::encode(*rec)).isOk());
  ASSERT_TRUE(scaling_->stepOnce().isOk());
  EXPECT_EQ(desired(), 2);
}

TEST_F(AutoscalingTest, StartSeedsTheCountsBeforeReturning) {
  deploy(1, 5, 10);
  running(3);
  ASSERT_TRUE(scaling_->start().isOk());
  EXPECT_EQ(desired(), 3);  // the controller, started next, never sees min
  scaling_->stop();
}

}  // namespace
}  // namespace baton::controller
