#include "controller/reconcile.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/testing/fake_clock.h"
#include "model/json.h"

namespace baton::controller {
namespace {

using model::InstanceState;
using model::RolloutRecord;
using std::chrono::seconds;

// A table-driven harness: a snapshot, a fake clock, a counter id generator, and an `apply`
// that writes a plan into the snapshot the way the shell writes it into the store. Nodes are
// simulated by setting statuses explicitly.
class Harness {
 public:
  Harness() {
    for (int i = 1; i <= 3; ++i) addNode("node-" + std::to_string(i));
  }

  void addNode(const std::string& id, double cpu = 4, uint64_t mem = 8ull << 30) {
    model::NodeRecord n;
    n.id = id;
    n.cpu = cpu;
    n.memory = mem;
    snap.nodes[id] = n;
  }

  model::ServiceSpec& deploy(int min, int max, const std::string& greeting = "hello") {
    auto& app = snap.apps["shop"];
    app.spec.name = "shop";
    auto& svc = app.spec.services["web"];
    svc.name = "web";
    svc.run = {"server"};
    svc.env["GREETING"] = greeting;
    svc.cpu = 0.5;
    svc.scale.min = min;
    svc.scale.max = max;
    app.version = ++version_;
    return svc;
  }

  ReconcilePlan plan() {
    return reconcile(snap, clock.now(), options, [this](const std::string&, const std::string&) {
      return "i-" + std::to_string(++next_id_);
    });
  }

  // Applies `p` as the shell would.
  void apply(const ReconcilePlan& p) {
    for (const auto& r : p.create) snap.instances[r.id] = {r, std::nullopt};
    for (const auto& s : p.stop) snap.instances.at(s.id).record.desired_running = false;
    for (const auto& id : p.remove) snap.instances.erase(id);
    for (const auto& w : p.rollouts) snap.rollouts[w.app + "/" + w.service] = w.record;
    for (const auto& k : p.delete_rollouts) snap.rollouts.erase(k);
  }

  ReconcilePlan step() {
    ReconcilePlan p = plan();
    apply(p);
    return p;
  }

  void setState(const std::string& id, InstanceState st) {
    auto& o = snap.instances.at(id);
    model::InstanceStatus s;
    s.id = id;
    s.node = o.record.node;
    s.state = st;
    s.message = st == InstanceState::kFailed ? "exited 1 five times" : "";
    o.status = s;
  }

  // The node side: running instances become healthy, stopped ones report stopped.
  void nodesSettle() {
    for (auto& [id, o] : snap.instances) {
      if (o.status && o.status->state == InstanceState::kFailed) continue;
      setState(id, o.record.desired_running ? InstanceState::kHealthy : InstanceState::kStopped);
    }
  }

  // Settles and steps until the plan is empty; returns the number of non-empty passes.
  int converge(int max_passes = 50) {
    for (int i = 0; i < max_passes; ++i) {
      nodesSettle();
      if (step().empty()) return i;
    }
    ADD_FAILURE() << "did not converge";
    return max_passes;
  }

  std::vector<std::string> ids(bool desired_running, const std::string& hash = {}) const {
    std::vector<std::string> out;
    for (const auto& [id, o] : snap.instances) {
      if (o.record.desired_running == desired_running &&
          (hash.empty() || o.record.spec_hash == hash)) {
        out.push_back(id);
      }
    }
    return out;
  }

  int healthyRunning() const {
    int n = 0;
    for (const auto& [id, o] : snap.instances) {
      if (o.record.desired_running && o.status && o.status->state == InstanceState::kHealthy) ++n;
    }
    return n;
  }

  std::string currentHash() const {
    return model::specHash(snap.apps.at("shop").spec.services.at("web"));
  }

  testing::FakeClock clock;
  ControllerSnapshot snap;
  ReconcileOptions options;

 private:
  int next_id_ = 0;
  int64_t version_ = 0;
};

bool hasEvent(const ReconcilePlan& p, const std::string& message) {
  return std::any_of(p.events.begin(), p.events.end(),
                     [&](const PlanEvent& e) { return e.message == message; });
}

TEST(Bounds, OverrideReplacesManifestUntilItExpires) {
  model::ScaleSpec manifest;
  manifest.min = 1;
  manifest.max = 5;
  TimePoint now = fromUnixMillis(1'000'000);
  EXPECT_EQ(boundsInForce(manifest, nullptr, now).source, "manifest");
  model::ScaleOverride o;
  o.min = 3;
  o.expires_at = now + seconds(10);
  ScaleBounds b = boundsInForce(manifest, &o, now);
  EXPECT_EQ(b.min, 3);
  EXPECT_EQ(b.max, 5);
  EXPECT_EQ(b.source, "override");
  EXPECT_EQ(desiredCount(b), 3);
  EXPECT_EQ(boundsInForce(manifest, &o, now + seconds(10)).min, 1);
  model::ScaleOverride stop_all;
  stop_all.max = 0;
  EXPECT_EQ(desiredCount(boundsInForce(manifest, &stop_all, now)), 0);
  manifest.min = 0;
  EXPECT_EQ(desiredCount(boundsInForce(manifest, nullptr, now)), 0);
}

TEST(Reconcile, ScalesUpFromNothingAndIsIdempotent) {
  Harness h;
  h.deploy(3, 5);
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.create.size(), 3u);
  for (const auto& r : p.create) {
    EXPECT_EQ(r.app, "shop");
    EXPECT_EQ(r.service, "web");
    EXPECT_EQ(r.spec_hash, h.currentHash());
    EXPECT_TRUE(r.desired_running);
    EXPECT_EQ(r.created_at, h.clock.now());
    EXPECT_TRUE(h.snap.nodes.contains(r.node));
  }
  // Spread: three instances on three nodes.
  EXPECT_NE(p.create[0].node, p.create[1].node);
  EXPECT_NE(p.create[1].node, p.create[2].node);
  EXPECT_NE(p.create[0].node, p.create[2].node);
  EXPECT_TRUE(hasEvent(p, "shop/web: scaled 0 -> 3 (manifest)"));
  EXPECT_TRUE(h.plan().empty());  // still pending: nothing more to do
  h.nodesSettle();
  ReconcilePlan again = h.plan();
  EXPECT_TRUE(again.empty());
  EXPECT_TRUE(again.events.empty());
}

TEST(Reconcile, MinZeroMeansNoInstancesForNow) {
  Harness h;
  h.deploy(0, 5);
  EXPECT_TRUE(h.plan().empty());
}

TEST(Reconcile, ScaleDownStopsNonHealthyThenNewestAndDeletesWhenStopped) {
  Harness h;
  h.deploy(4, 10);
  h.converge();
  // i-1 crashes (restarting, unhealthy); i-4 is the newest.
  h.setState("i-1", InstanceState::kUnhealthy);
  h.clock.advance(seconds(1));
  h.snap.instances.at("i-4").record.created_at = h.clock.now();
  model::ScaleOverride o;
  o.min = 2;
  h.snap.overrides["shop/web"] = o;
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.stop.size(), 2u);
  EXPECT_EQ(p.stop[0].id, "i-1");
  EXPECT_EQ(p.stop[1].id, "i-4");
  EXPECT_TRUE(p.create.empty());
  EXPECT_TRUE(hasEvent(p, "shop/web: scaled 4 -> 2 (override)"));
  EXPECT_TRUE(h.plan().empty());  // waiting for the node
  h.setState("i-1", InstanceState::kStopped);
  ReconcilePlan cleanup = h.step();
  EXPECT_EQ(cleanup.remove, std::vector<std::string>{"i-1"});
  h.setState("i-4", InstanceState::kStopped);
  EXPECT_EQ(h.step().remove, std::vector<std::string>{"i-4"});
  EXPECT_TRUE(h.plan().empty());
}

TEST(Reconcile, OverrideExpiryReturnsToManifest) {
  Harness h;
  h.deploy(1, 5);
  h.converge();
  model::ScaleOverride o;
  o.min = 3;
  o.expires_at = h.clock.now() + seconds(10);
  h.snap.overrides["shop/web"] = o;
  ReconcilePlan up = h.step();
  EXPECT_EQ(up.create.size(), 2u);
  EXPECT_TRUE(hasEvent(up, "shop/web: scaled 1 -> 3 (override)"));
  h.nodesSettle();
  EXPECT_TRUE(h.plan().empty());
  h.clock.advance(seconds(11));
  ReconcilePlan down = h.step();
  EXPECT_EQ(down.stop.size(), 2u);
  EXPECT_TRUE(hasEvent(down, "shop/web: scaled 3 -> 1 (manifest)"));
  h.converge();
  EXPECT_EQ(h.snap.instances.size(), 1u);
}

TEST(Reconcile, RollingUpdateStepByStep) {
  Harness h;
  h.deploy(3, 5);
  h.converge();
  const std::string old_hash = h.currentHash();
  ASSERT_EQ(h.ids(true, old_hash).size(), 3u);

  h.deploy(3, 5, "hi");  // a new spec: version 2
  const std::string new_hash = h.currentHash();
  ASSERT_NE(old_hash, new_hash);

  // Pass 1: the rollout starts with one surge instance; nothing old is stopped.
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.rollouts.size(), 1u);
  EXPECT_EQ(p.rollouts[0].record.phase, RolloutRecord::Phase::kInProgress);
  EXPECT_EQ(p.rollouts[0].record.spec_hash, new_hash);
  EXPECT_EQ(p.rollouts[0].record.version, 2);
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0].spec_hash, new_hash);
  EXPECT_EQ(p.create[0].version, 2);
  EXPECT_TRUE(p.stop.empty());
  EXPECT_TRUE(hasEvent(p, "shop/web: rolling update to version 2 started (3 old instances)"));

  // Until the new instance is healthy nothing happens.
  EXPECT_TRUE(h.plan().empty());
  h.setState(p.create[0].id, InstanceState::kStarting);
  EXPECT_TRUE(h.plan().empty());

  // Each healthy surge instance retires one old instance and starts the next one.
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    h.nodesSettle();
    EXPECT_GE(h.healthyRunning(), 3);
    ReconcilePlan s = h.step();
    ASSERT_EQ(s.stop.size(), 1u);
    EXPECT_NE(h.snap.instances.at(s.stop[0].id).record.spec_hash, new_hash);
    EXPECT_GE(h.healthyRunning(), 3);  // never below desired
    EXPECT_EQ(s.create.size(), round < 2 ? 1u : 0u);
    EXPECT_TRUE(s.rollouts.empty());
    EXPECT_LE(h.ids(true).size(), 4u);  // surge of one
    if (round < 2) {
      EXPECT_TRUE(h.plan().empty());  // waiting for the new instance again
    }
  }
  // The last old instance is stopped; once it is gone the rollout completes.
  h.nodesSettle();
  ReconcilePlan done = h.step();
  EXPECT_EQ(done.remove.size(), 1u);
  ASSERT_EQ(done.rollouts.size(), 1u);
  EXPECT_EQ(done.rollouts[0].record.phase, RolloutRecord::Phase::kComplete);
  EXPECT_TRUE(hasEvent(done, "shop/web: rollout of version 2 complete"));
  h.converge();
  EXPECT_EQ(h.ids(true, new_hash).size(), 3u);
  EXPECT_EQ(h.snap.instances.size(), 3u);
  EXPECT_TRUE(h.plan().empty());
}

TEST(Reconcile, FailedRolloutKeepsOldAndIsNotRetried) {
  Harness h;
  h.deploy(2, 5);
  h.converge();
  const std::string old_hash = h.currentHash();
  h.deploy(2, 5, "broken");
  const std::string bad_hash = h.currentHash();
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.create.size(), 1u);
  h.setState(p.create[0].id, InstanceState::kFailed);

  ReconcilePlan f = h.step();
  ASSERT_EQ(f.rollouts.size(), 1u);
  EXPECT_EQ(f.rollouts[0].record.phase, RolloutRecord::Phase::kFailed);
  EXPECT_EQ(f.rollouts[0].record.spec_hash, bad_hash);
  EXPECT_EQ(f.remove, std::vector<std::string>{p.create[0].id});
  EXPECT_TRUE(f.stop.empty());  // the old instances keep serving
  EXPECT_TRUE(f.create.empty());
  EXPECT_TRUE(hasEvent(f, "shop/web: rollout of version 2 failed: instance " + p.create[0].id +
                              " failed (exited 1 five times); keeping the previous version"));
  EXPECT_TRUE(h.plan().empty());  // not retried
  EXPECT_EQ(h.ids(true, old_hash).size(), 2u);

  // Scaling while held adds instances of the old version.
  model::ScaleOverride o;
  o.min = 3;
  h.snap.overrides["shop/web"] = o;
  ReconcilePlan scaled = h.step();
  ASSERT_EQ(scaled.create.size(), 1u);
  EXPECT_EQ(scaled.create[0].spec_hash, old_hash);
  EXPECT_EQ(scaled.create[0].version, 1);
  h.nodesSettle();
  EXPECT_TRUE(h.plan().empty());

  // Redeploying the same broken spec (a new app version, same hash) is still not retried.
  h.deploy(2, 5, "broken");
  EXPECT_TRUE(h.plan().empty());

  // A fixed spec rolls again.
  h.deploy(2, 5, "fixed");
  ReconcilePlan again = h.step();
  ASSERT_EQ(again.rollouts.size(), 1u);
  EXPECT_EQ(again.rollouts[0].record.phase, RolloutRecord::Phase::kInProgress);
  EXPECT_EQ(again.create.size(), 1u);
  h.converge();
  EXPECT_EQ(h.ids(true, h.currentHash()).size(), 3u);
  EXPECT_EQ(h.snap.rollouts.at("shop/web").phase, RolloutRecord::Phase::kComplete);
}

TEST(Reconcile, RolloutFailsWhenNewInstanceStaysUnhealthyPastDeadline) {
  Harness h;
  h.options.rollout_deadline = seconds(60);
  h.deploy(2, 5);
  h.converge();
  h.deploy(2, 5, "slow");
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.create.size(), 1u);
  const std::string fresh = p.create[0].id;
  h.setState(fresh, InstanceState::kStarting);
  h.clock.advance(seconds(60));
  EXPECT_TRUE(h.plan().empty());
  h.clock.advance(seconds(1));
  ReconcilePlan f = h.step();
  ASSERT_EQ(f.rollouts.size(), 1u);
  EXPECT_EQ(f.rollouts[0].record.phase, RolloutRecord::Phase::kFailed);
  EXPECT_EQ(f.rollouts[0].record.message, "instance " + fresh + " not healthy after 1m");
  ASSERT_EQ(f.stop.size(), 1u);
  EXPECT_EQ(f.stop[0].id, fresh);
  h.converge();
  EXPECT_EQ(h.snap.instances.size(), 2u);
  EXPECT_EQ(h.healthyRunning(), 2);
}

// The user goes back to the previous manifest after a failed rollout: the instances already run
// that spec, so there is nothing to roll, but the record (which names the failed spec) must
// say the current spec is rolled out, or the API reports it `pending` for ever.
TEST(Reconcile, RevertAfterFailedRolloutCompletesAtOnce) {
  Harness h;
  h.deploy(2, 5);
  h.converge();
  const std::string good_hash = h.currentHash();
  const std::vector<std::string> serving = h.ids(true, good_hash);
  h.deploy(2, 5, "broken");  // version 2
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.create.size(), 1u);
  const std::string broken = p.create[0].id;
  h.setState(broken, InstanceState::kFailed);
  ASSERT_EQ(h.step().rollouts.at(0).record.phase, RolloutRecord::Phase::kFailed);
  h.converge();

  h.deploy(2, 5);  // version 3: version 1's spec again
  ASSERT_EQ(h.currentHash(), good_hash);
  ReconcilePlan r = h.step();
  ASSERT_EQ(r.rollouts.size(), 1u);
  const RolloutRecord& rec = r.rollouts[0].record;
  EXPECT_EQ(rec.phase, RolloutRecord::Phase::kComplete);
  EXPECT_EQ(rec.spec_hash, good_hash);
  EXPECT_EQ(rec.version, 3);
  EXPECT_EQ(rec.message, "all instances run version 3; the rollout of version 2 had failed: " +
                             ("instance " + broken + " failed (exited 1 five times)"));
  EXPECT_TRUE(hasEvent(r, "shop/web: rollout of version 3 complete"));
  // The instances serving version 1's spec are kept: nothing to create, stop or delete.
  EXPECT_TRUE(r.create.empty());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_TRUE(r.remove.empty());
  EXPECT_TRUE(h.plan().empty());
  EXPECT_EQ(h.ids(true, good_hash), serving);

  // The record now protects nothing: the broken spec, deployed again, is a new rollout.
  h.deploy(2, 5, "broken");
  ReconcilePlan again = h.step();
  ASSERT_EQ(again.rollouts.size(), 1u);
  EXPECT_EQ(again.rollouts[0].record.phase, RolloutRecord::Phase::kInProgress);
  EXPECT_EQ(again.create.size(), 1u);
}

// Going back while the failed release's instances are still being stopped (here: it never got
// healthy, so its rollout failed on the deadline).
TEST(Reconcile, RevertWhileTheFailedInstancesStopStillCompletes) {
  Harness h;
  h.options.rollout_deadline = seconds(60);
  h.deploy(2, 5);
  h.converge();
  const std::string good_hash = h.currentHash();
  h.deploy(2, 5, "slow");
  const std::string fresh = h.step().create.at(0).id;
  h.setState(fresh, InstanceState::kStarting);
  h.clock.advance(seconds(61));
  ASSERT_EQ(h.step().stop.at(0).id, fresh);  // failed; asked to stop; not stopped yet

  h.deploy(2, 5);
  ReconcilePlan r = h.step();
  ASSERT_EQ(r.rollouts.size(), 1u);
  EXPECT_EQ(r.rollouts[0].record.phase, RolloutRecord::Phase::kComplete);
  EXPECT_EQ(r.rollouts[0].record.spec_hash, good_hash);
  EXPECT_NE(r.rollouts[0].record.message.find("not healthy after 1m"), std::string::npos);
  EXPECT_TRUE(r.create.empty());
  h.converge();
  EXPECT_EQ(h.snap.instances.size(), 2u);
  EXPECT_EQ(h.ids(true, good_hash).size(), 2u);
  EXPECT_EQ(h.snap.rollouts.at("shop/web").phase, RolloutRecord::Phase::kComplete);
}

// Going back while the new release is still rolling (not failed yet): its instances are the
// "old" ones now and are replaced by the spec that serves.
TEST(Reconcile, RevertDuringRolloutStopsTheNewInstances) {
  Harness h;
  h.deploy(2, 5);
  h.converge();
  const std::string good_hash = h.currentHash();
  h.deploy(2, 5, "slow");
  const std::string fresh = h.step().create.at(0).id;
  h.setState(fresh, InstanceState::kStarting);
  h.deploy(2, 5);
  ReconcilePlan r = h.step();
  ASSERT_EQ(r.stop.size(), 1u);
  EXPECT_EQ(r.stop[0].id, fresh);
  EXPECT_TRUE(r.create.empty());
  h.converge();
  EXPECT_EQ(h.ids(true, good_hash).size(), 2u);
  EXPECT_EQ(h.snap.instances.size(), 2u);
  EXPECT_EQ(h.snap.rollouts.at("shop/web").phase, RolloutRecord::Phase::kComplete);
  EXPECT_EQ(h.snap.rollouts.at("shop/web").spec_hash, good_hash);
}

// A spec changed while the service has no instance has nothing to roll: its rollout is complete.
TEST(Reconcile, SpecChangedAtZeroInstancesIsRolledOut) {
  Harness h;
  h.deploy(1, 5);
  h.converge();
  h.deploy(1, 5, "v2");
  h.converge();
  model::ScaleOverride o;
  o.max = 0;
  h.snap.overrides["shop/web"] = o;
  h.converge();
  ASSERT_TRUE(h.snap.instances.empty());
  h.deploy(1, 5, "v3");
  ReconcilePlan r = h.step();
  ASSERT_EQ(r.rollouts.size(), 1u);
  EXPECT_EQ(r.rollouts[0].record.phase, RolloutRecord::Phase::kComplete);
  EXPECT_EQ(r.rollouts[0].record.spec_hash, h.currentHash());
  EXPECT_EQ(r.rollouts[0].record.message, "all instances run version 3");
  EXPECT_TRUE(h.plan().empty());
}

TEST(Reconcile, NodeLossReplacesInstances) {
  Harness h;
  h.deploy(3, 3);
  h.converge();
  std::string lost_node = h.snap.instances.begin()->second.record.node;
  std::string lost_id = h.snap.instances.begin()->first;
  h.snap.nodes.erase(lost_node);
  ReconcilePlan p = h.step();
  EXPECT_EQ(p.remove, std::vector<std::string>{lost_id});
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_NE(p.create[0].node, lost_node);
  EXPECT_TRUE(hasEvent(
      p, "shop/web: instance " + lost_id + " lost with node " + lost_node + "; replacing"));
  h.nodesSettle();
  EXPECT_TRUE(h.plan().empty());
}

TEST(Reconcile, FailedInstanceOfCurrentVersionIsReplaced) {
  Harness h;
  h.deploy(2, 2);
  h.converge();
  h.setState("i-1", InstanceState::kFailed);
  ReconcilePlan p = h.step();
  EXPECT_EQ(p.remove, std::vector<std::string>{"i-1"});
  EXPECT_EQ(p.create.size(), 1u);
  EXPECT_TRUE(p.rollouts.empty());
  h.nodesSettle();
  EXPECT_TRUE(h.plan().empty());
}

TEST(Reconcile, StoppedWhileItShouldRunIsReplaced) {
  Harness h;
  h.deploy(1, 1);
  h.converge();
  h.setState("i-1", InstanceState::kStopped);
  ReconcilePlan p = h.step();
  EXPECT_EQ(p.remove, std::vector<std::string>{"i-1"});
  EXPECT_EQ(p.create.size(), 1u);
  EXPECT_TRUE(hasEvent(p, "shop/web: replacing instance i-1 stopped"));
}

TEST(Reconcile, RemovedAppStopsEverythingThenCleansUp) {
  Harness h;
  h.deploy(2, 2);
  h.converge();
  h.deploy(2, 2, "v2");
  h.converge();
  ASSERT_TRUE(h.snap.rollouts.contains("shop/web"));
  h.snap.apps.erase("shop");
  ReconcilePlan p = h.step();
  EXPECT_EQ(p.stop.size(), 2u);
  EXPECT_EQ(p.stop[0].reason, "app shop was removed");
  EXPECT_TRUE(p.delete_rollouts.empty());  // instances remain
  h.converge();
  EXPECT_TRUE(h.snap.instances.empty());
  EXPECT_TRUE(h.snap.rollouts.empty());
}

TEST(Reconcile, UnplaceableInstancesAreWarningsNotActions) {
  Harness h;
  h.snap.nodes.clear();
  h.addNode("tiny", 1.0);
  h.deploy(3, 3);  // 0.5 cpu each: only two fit
  ReconcilePlan p = h.step();
  EXPECT_EQ(p.create.size(), 2u);
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(p.warnings[0].message,
            "shop/web: cannot place 1 of 3 new instances: no node has 0.50 cpu free; largest "
            "free: 0.00 on tiny");
  h.nodesSettle();
  ReconcilePlan again = h.plan();
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(again.warnings.size(), 1u);
}

TEST(Reconcile, StopRequestedButNeverReportedIsDeletedAfterGrace) {
  Harness h;
  h.deploy(1, 1);
  h.step();  // created, the node never reports
  h.snap.apps.erase("shop");
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.stop.size(), 1u);
  EXPECT_TRUE(h.plan().empty());
  h.clock.advance(h.options.stop_grace);
  EXPECT_EQ(h.step().remove.size(), 1u);
}

TEST(Reconcile, ScaleUpDuringRolloutUsesNewVersion) {
  Harness h;
  h.deploy(2, 10);
  h.converge();
  h.deploy(2, 10, "v2");
  h.step();  // surge one
  model::ScaleOverride o;
  o.min = 4;
  h.snap.overrides["shop/web"] = o;
  ReconcilePlan p = h.step();
  ASSERT_EQ(p.create.size(), 1u);  // 2 old + 1 surge -> 4
  EXPECT_EQ(p.create[0].spec_hash, h.currentHash());
  h.converge();
  EXPECT_EQ(h.ids(true, h.currentHash()).size(), 4u);
  EXPECT_EQ(h.snap.instances.size(), 4u);
}

TEST(Reconcile, DeterministicForSameInputs) {
  Harness a, b;
  a.deploy(5, 5);
  b.deploy(5, 5);
  ReconcilePlan pa = a.plan(), pb = b.plan();
  ASSERT_EQ(pa.create.size(), pb.create.size());
  for (size_t i = 0; i < pa.create.size(); ++i) {
    EXPECT_EQ(pa.create[i].id, pb.create[i].id);
    EXPECT_EQ(pa.create[i].node, pb.create[i].node);
  }
}

// A service that lists secrets pins their versions in its instances; a new version of one of
// them is a rolling update (the manifest unchanged); a service that is signalled instead does
// not roll.
TEST(Reconcile, ANewSecretVersionRollsTheServicesThatUseIt) {
  Harness h;
  model::ServiceSpec& web = h.deploy(2, 2);
  web.secrets = {"shop/db"};
  h.snap.secret_versions["shop/db"] = 1;
  h.snap.secret_versions["other/x"] = 7;
  h.converge();
  ASSERT_EQ(h.ids(true).size(), 2u);
  for (const auto& [id, o] : h.snap.instances) {
    EXPECT_EQ(o.record.spec.secret_versions, (std::map<std::string, int64_t>{{"shop/db", 1}}));
  }
  const std::string first = h.snap.instances.begin()->second.record.spec_hash;

  h.snap.secret_versions["other/x"] = 8;  // not this service's
  h.nodesSettle();
  EXPECT_TRUE(h.step().empty());

  h.snap.secret_versions["shop/db"] = 2;
  h.nodesSettle();
  ReconcilePlan p = h.step();
  EXPECT_TRUE(hasEvent(p, "shop/web: rolling update to version 1 started (2 old instances; "
                          "secrets shop/db v2)"))
      << (p.events.empty() ? "" : p.events[0].message);
  h.converge();
  auto running = h.ids(true);
  ASSERT_EQ(running.size(), 2u);
  for (const auto& id : running) {
    EXPECT_EQ(h.snap.instances.at(id).record.spec.secret_versions.at("shop/db"), 2);
    EXPECT_NE(h.snap.instances.at(id).record.spec_hash, first);
  }
  // The app's own spec is never pinned.
  EXPECT_TRUE(h.snap.apps.at("shop").spec.services.at("web").secret_versions.empty());

  // A deleted secret (no readable version) is version 0: a rollout too, whose instances fail
  // to start with a message the node gives.
  h.snap.secret_versions.erase("shop/db");
  h.nodesSettle();
  p = h.step();
  ASSERT_FALSE(p.create.empty());
  EXPECT_EQ(p.create[0].spec.secret_versions.at("shop/db"), 0);
}

TEST(Reconcile, ASignalledServiceDoesNotRollOnASecretChange) {
  Harness h;
  model::ServiceSpec& web = h.deploy(1, 1);
  web.secrets = {"shop/db"};
  web.on_secret_change = "SIGHUP";
  h.snap.secret_versions["shop/db"] = 1;
  h.converge();
  ASSERT_EQ(h.ids(true).size(), 1u);
  EXPECT_TRUE(h.snap.instances.begin()->second.record.spec.secret_versions.empty());
  h.snap.secret_versions["shop/db"] = 2;
  h.nodesSettle();
  EXPECT_TRUE(h.step().empty());
}

}  // namespace
}  // namespace baton::controller
