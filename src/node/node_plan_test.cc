#include "node/node_plan.h"

#include <gtest/gtest.h>

#include <functional>

namespace baton::node {
namespace {

using model::InstanceState;
using std::chrono::seconds;
using Kind = Action::Kind;

const TimePoint kT0 = fromUnixMillis(1'700'000'000'000);

model::InstanceRecord record(const std::string &id, bool running = true) {
  model::InstanceRecord r;
  r.id = id;
  r.app = "shop";
  r.service = "web";
  r.node = "n1";
  r.spec.name = "web";
  r.desired_running = running;
  return r;
}

drivers::TaskStatus runningTask(const std::string &id, int pid = 42) {
  drivers::TaskStatus t;
  t.instance_id = id;
  t.pid = pid;
  t.started_at = kT0;
  return t;
}

drivers::TaskStatus exitedTask(const std::string &id, int code) {
  drivers::TaskStatus t = runningTask(id);
  t.exit = drivers::ExitStatus{code, std::nullopt, false, kT0};
  return t;
}

std::vector<Kind> kinds(const NodePlan &p) {
  std::vector<Kind> out;
  for (const Action &a : p.actions) out.push_back(a.kind);
  return out;
}

const Action *findAction(const NodePlan &p, Kind k) {
  for (const Action &a : p.actions) {
    if (a.kind == k) return &a;
  }
  return nullptr;
}

// The harness plays the shell: it performs a plan on the snapshot the way
// NodeRuntime does (starts make running tasks, stops end them, statuses are
// "written").
class Harness {
 public:
  Harness() {
    snap.node_id = "n1";
    snap.address = "10.0.0.1";
  }
  NodePlan step(TimePoint now) {
    NodePlan plan = planNode(snap, now);
    snap.local = plan.local;
    snap.probes.clear();
    snap.start_errors.clear();
    for (const Action &a : plan.actions) {
      switch (a.kind) {
        case Kind::kStart:
          if (start_error.empty()) {
            auto t = runningTask(a.id, next_pid++);
            t.started_at = now;
            snap.tasks[a.id] = t;
            ++starts;
          } else {
            snap.start_errors[a.id] = start_error;
          }
          break;
        case Kind::kStop:
          if (snap.tasks.count(a.id) && !snap.tasks[a.id].exit) {
            snap.tasks[a.id].exit = drivers::ExitStatus{143, 15, false, now};
          }
          ++stops;
          break;
        case Kind::kDestroy:
          snap.tasks.erase(a.id);
          break;
        case Kind::kWriteStatus:
          snap.written[a.id] = a.status;
          ++writes;
          break;
        case Kind::kDeleteStatus:
          snap.written.erase(a.id);
          break;
      }
    }
    last = plan;
    return plan;
  }
  void probe(const std::string &id, bool ok, TimePoint at) {
    snap.probes[id].push_back({snap.local[id].generation, ok, ok ? "" : "refused", at});
  }
  const model::InstanceStatus &status(const std::string &id) { return snap.written.at(id); }

  NodeSnapshot snap;
  NodePlan last;
  std::string start_error;
  int next_pid = 100;
  int starts = 0;
  int stops = 0;
  int writes = 0;
};

// --- single-pass decisions, table-driven
// ---------------------------------------------------------

struct Case {
  const char *name;
  std::function<void(NodeSnapshot &)> setup;
  std::vector<Kind> want;
  std::optional<InstanceState> state;  // of the written status of "a"
};

TEST(NodePlanTest, SinglePassTable) {
  LocalInstance running;
  running.phase = Phase::kRunning;
  running.port = 5000;
  running.generation = 1;
  running.health.reset(kT0);
  running.restart.onStart(kT0);

  const std::vector<Case> cases = {
      {"new record starts",
       [](NodeSnapshot &s) { s.desired["a"] = record("a"); },
       {Kind::kStart, Kind::kWriteStatus},
       InstanceState::kStarting},
      {"recovered running task is adopted, not restarted",
       [](NodeSnapshot &s) {
         s.desired["a"] = record("a");
         s.tasks["a"] = runningTask("a");
       },
       {Kind::kWriteStatus},
       InstanceState::kStarting},
      {"task that ended while the agent was down is reported, then backs off",
       [](NodeSnapshot &s) {
         s.desired["a"] = record("a");
         s.tasks["a"] = exitedTask("a", 3);
       },
       {Kind::kDestroy, Kind::kWriteStatus},
       InstanceState::kUnhealthy},
      {"unknown task without a record is stopped",
       [](NodeSnapshot &s) { s.tasks["a"] = runningTask("a"); },
       {Kind::kStop},
       std::nullopt},
      {"ended unknown task is destroyed and its status deleted",
       [](NodeSnapshot &s) {
         s.tasks["a"] = exitedTask("a", 0);
         s.written["a"] = model::InstanceStatus{};
       },
       {Kind::kDestroy, Kind::kDeleteStatus},
       std::nullopt},
      {"desired_running=false stops a running task",
       [&](NodeSnapshot &s) {
         s.desired["a"] = record("a", false);
         s.tasks["a"] = runningTask("a");
         s.local["a"] = running;
       },
       {Kind::kStop, Kind::kWriteStatus},
       InstanceState::kStopping},
      {"desired_running=false without a task is stopped at once",
       [](NodeSnapshot &s) { s.desired["a"] = record("a", false); },
       {Kind::kWriteStatus},
       InstanceState::kStopped},
      {"failed instance is left alone",
       [](NodeSnapshot &s) {
         s.desired["a"] = record("a");
         LocalInstance f;
         f.phase = Phase::kFailed;
         s.local["a"] = f;
       },
       {Kind::kWriteStatus},
       InstanceState::kFailed},
      {"running task whose status is current: nothing to do",
       [&](NodeSnapshot &s) {
         s.desired["a"] = record("a");
         s.tasks["a"] = runningTask("a");
         s.local["a"] = running;
         s.written["a"] = statusFor("a", s, running, &s.tasks["a"]);
       },
       {},
       std::nullopt},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    NodeSnapshot s;
    s.node_id = "n1";
    c.setup(s);
    NodePlan p = planNode(s, kT0);
    EXPECT_EQ(kinds(p), c.want);
    if (c.state) {
      const Action *w = findAction(p, Kind::kWriteStatus);
      ASSERT_NE(w, nullptr);
      EXPECT_EQ(w->status.state, *c.state) << toString(w->status.state);
    }
    // Level-triggered: the same snapshot gives the same plan.
    EXPECT_EQ(kinds(planNode(s, kT0)), c.want);
  }
}

// --- multi-pass scenarios
// --------------------------------------------------------------------

TEST(NodePlanTest, StartProbeHealthyAndNoRewrites) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.snap.local["a"].port = 5000;
  NodePlan p = h.step(kT0);
  ASSERT_NE(findAction(p, Kind::kStart), nullptr);
  EXPECT_EQ(findAction(p, Kind::kStart)->port, 5000);
  EXPECT_EQ(h.status("a").state, InstanceState::kStarting);

  p = h.step(kT0 + seconds(1));  // the task now exists: pid known, probe target planned
  EXPECT_EQ(h.status("a").pid, 100);
  ASSERT_EQ(p.probes.size(), 1u);
  EXPECT_EQ(p.probes[0].port, 5000);
  EXPECT_EQ(p.probes[0].address, "127.0.0.1");

  h.probe("a", true, kT0 + seconds(1));
  h.step(kT0 + seconds(2));
  EXPECT_EQ(h.status("a").state, InstanceState::kHealthy);
  EXPECT_EQ(h.status("a").address, "10.0.0.1");
  EXPECT_EQ(h.status("a").port, 5000);

  int writes = h.writes;
  for (int i = 3; i < 20; ++i) {
    h.probe("a", true, kT0 + seconds(i));
    EXPECT_TRUE(h.step(kT0 + seconds(i)).actions.empty());
  }
  EXPECT_EQ(h.writes,
            writes);  // SD-card friendly: nothing changed, nothing written
}

TEST(NodePlanTest, CrashRestartsWithBackoffThenFails) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.snap.tasks["a"].exit = drivers::ExitStatus{1, std::nullopt, false, kT0};
  NodePlan p = h.step(kT0 + seconds(1));
  EXPECT_EQ(kinds(p), (std::vector<Kind>{Kind::kDestroy, Kind::kWriteStatus}));
  EXPECT_EQ(h.status("a").state, InstanceState::kUnhealthy);
  EXPECT_EQ(h.status("a").message, "exited with code 1; restarting in 1s");
  EXPECT_EQ(h.status("a").last_exit_code, 1);
  EXPECT_EQ(p.next_wake, kT0 + seconds(2));

  EXPECT_TRUE(h.step(kT0 + seconds(1) + Duration(999)).actions.empty());  // still backing off
  h.step(kT0 + seconds(2));
  EXPECT_EQ(h.starts, 2);
  EXPECT_EQ(h.status("a").restarts, 1);
  EXPECT_EQ(h.status("a").state, InstanceState::kStarting);
  EXPECT_EQ(h.status("a").last_failure, "exited with code 1");  // kept after the restart

  h.snap.tasks["a"].exit = drivers::ExitStatus{1, std::nullopt, false, kT0};
  h.step(kT0 + seconds(3));
  EXPECT_EQ(h.status("a").message, "exited with code 1; restarting in 2s");
  h.step(kT0 + seconds(5));
  EXPECT_EQ(h.starts, 3);

  h.snap.tasks["a"].exit = drivers::ExitStatus{137, 9, false, kT0};
  h.step(kT0 + seconds(6));
  EXPECT_EQ(h.status("a").state, InstanceState::kFailed);
  EXPECT_EQ(h.status("a").message, "killed by signal 9; crashed 3 times without becoming healthy");
  h.step(kT0 + seconds(600));
  EXPECT_EQ(h.starts, 3);  // gives up for good
}

TEST(NodePlanTest, StartErrorsFollowTheRestartPolicy) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.start_error = "no such program: ./nope";
  h.step(kT0);
  h.step(kT0);
  EXPECT_EQ(h.status("a").message, "failed to start: no such program: ./nope; restarting in 1s");
  h.step(kT0 + seconds(1));
  h.step(kT0 + seconds(1));
  h.step(kT0 + seconds(3));
  h.step(kT0 + seconds(3));
  EXPECT_EQ(h.status("a").state, InstanceState::kFailed);
}

TEST(NodePlanTest, AnImageBeingPulledStaysPendingWithItsProgressThenStarts) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.snap.preparing["a"] = "pulling image nginx:1.25: 1 layer, 1.0 of 4.0 MB";
  h.step(kT0);
  h.step(kT0 + seconds(60));  // a slow pull is not a failure: no startup deadline runs yet
  EXPECT_EQ(h.starts, 0);
  EXPECT_EQ(h.status("a").state, InstanceState::kPending);
  EXPECT_EQ(h.status("a").message, "pulling image nginx:1.25: 1 layer, 1.0 of 4.0 MB");
  h.snap.preparing.clear();
  h.step(kT0 + seconds(61));
  EXPECT_EQ(h.starts, 1);
  h.probe("a", true, kT0 + seconds(61));
  h.step(kT0 + seconds(61));
  EXPECT_EQ(h.status("a").state, InstanceState::kHealthy);
  EXPECT_EQ(h.status("a").restarts, 0);
}

TEST(NodePlanTest, AFailedPullIsAStartFailureWithBackoff) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.snap.start_errors["a"] = "pulling image x:1: manifest unknown";  // from prepare(), this pass
  NodePlan p = h.step(kT0);
  EXPECT_EQ(findAction(p, Kind::kStart), nullptr);
  EXPECT_EQ(h.status("a").message,
            "failed to start: pulling image x:1: manifest unknown; restarting in 1s");
  h.step(kT0 + seconds(1));  // the next try starts (prepare said ready)
  EXPECT_EQ(h.starts, 1);
  EXPECT_EQ(h.status("a").restarts, 1);
}

TEST(NodePlanTest, AContainersFixedPortIsInsideItsNetwork) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.snap.desired["a"].spec.driver = "docker";
  h.snap.desired["a"].spec.port = 80;
  h.snap.own_network_drivers = {"docker"};
  NodePlan p = h.step(kT0);
  const Action *start = findAction(p, Kind::kStart);
  ASSERT_NE(start, nullptr);
  EXPECT_NE(start->port, 80);  // the node's side: the shell allocates a free port
}

TEST(NodePlanTest, UnhealthyTooLongIsRestarted) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.probe("a", true, kT0);
  h.step(kT0);
  EXPECT_EQ(h.status("a").state, InstanceState::kHealthy);
  for (int i = 1; i <= 3; ++i) h.probe("a", false, kT0 + seconds(i));
  h.step(kT0 + seconds(3));
  EXPECT_EQ(h.status("a").state, InstanceState::kUnhealthy);
  EXPECT_EQ(h.stops, 0);
  h.probe("a", false, kT0 + seconds(20));
  h.step(kT0 + seconds(20));
  EXPECT_EQ(h.stops, 0);
  NodePlan p = h.step(kT0 + seconds(33));
  const Action *stop = findAction(p, Kind::kStop);
  ASSERT_NE(stop, nullptr);
  EXPECT_TRUE(stop->restart);
  h.step(kT0 + seconds(34));  // the stopped task is seen ended: backoff
  EXPECT_EQ(h.status("a").message, "unhealthy for 30s; restarting; restarting in 1s");
  h.step(kT0 + seconds(35));
  EXPECT_EQ(h.starts, 2);
  EXPECT_EQ(h.status("a").restarts, 1);
}

TEST(NodePlanTest, NeverHealthyWithinStartupDeadlineFails) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.probe("a", false, kT0 + seconds(1));
  h.step(kT0 + seconds(59));
  EXPECT_EQ(h.status("a").state, InstanceState::kStarting);
  NodePlan p = h.step(kT0 + seconds(60));
  EXPECT_NE(findAction(p, Kind::kStop), nullptr);
  EXPECT_EQ(h.status("a").state, InstanceState::kFailed);
  EXPECT_EQ(h.status("a").message, "not healthy within 1m (health check failing: refused)");
  h.step(kT0 + seconds(61));
  EXPECT_TRUE(h.snap.tasks.empty());  // stopped and destroyed
}

TEST(NodePlanTest, StaleProbeResultsAreIgnored) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.snap.probes["a"].push_back({h.snap.local["a"].generation - 1, true, "", kT0});
  h.step(kT0);
  EXPECT_EQ(h.status("a").state, InstanceState::kStarting);
}

TEST(NodePlanTest, DesiredStopThenRecordDeleted) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.snap.desired["a"].desired_running = false;
  h.step(kT0 + seconds(1));
  EXPECT_EQ(h.status("a").state, InstanceState::kStopping);
  h.step(kT0 + seconds(2));
  EXPECT_EQ(h.status("a").state, InstanceState::kStopped);
  EXPECT_EQ(h.status("a").last_exit_code, 143);
  EXPECT_TRUE(h.snap.tasks.empty());
  EXPECT_TRUE(h.step(kT0 + seconds(3)).actions.empty());

  h.snap.desired.erase("a");
  NodePlan p = h.step(kT0 + seconds(4));
  EXPECT_EQ(kinds(p), std::vector<Kind>{Kind::kDeleteStatus});
  EXPECT_TRUE(h.snap.local.empty());
  EXPECT_TRUE(h.step(kT0 + seconds(5)).actions.empty());
}

TEST(NodePlanTest, RecordDeletedWhileRunningStopsAndDestroys) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.snap.desired.clear();
  EXPECT_EQ(kinds(h.step(kT0)), (std::vector<Kind>{Kind::kStop, Kind::kDeleteStatus}));
  EXPECT_EQ(kinds(h.step(kT0)), std::vector<Kind>{Kind::kDestroy});
  EXPECT_TRUE(h.step(kT0).actions.empty());
}

TEST(NodePlanTest, AdoptedTaskThatWasHealthyStaysHealthy) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.snap.tasks["a"] = runningTask("a", 42);
  model::InstanceStatus old;
  old.id = "a";
  old.node = "n1";
  old.address = "10.0.0.1";
  old.state = InstanceState::kHealthy;
  old.pid = 42;
  old.started_at = kT0;
  h.snap.written["a"] = old;
  EXPECT_TRUE(h.step(kT0 + seconds(5)).actions.empty());
  EXPECT_EQ(h.snap.local["a"].health.state(), InstanceState::kHealthy);
  // A different process (pid) under the same id starts over as starting.
  h.snap.local.clear();
  h.snap.tasks["a"].pid = 43;
  h.step(kT0 + seconds(6));
  EXPECT_EQ(h.status("a").state, InstanceState::kStarting);
}

TEST(NodePlanTest, FixedPortFromSpec) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.snap.desired["a"].spec.port = 8000;
  NodePlan p = h.step(kT0);
  EXPECT_EQ(findAction(p, Kind::kStart)->port, 8000);
  EXPECT_EQ(h.status("a").port, 8000);
}

TEST(NodePlanTest, HealthyForAMinuteResetsBackoff) {
  Harness h;
  h.snap.desired["a"] = record("a");
  h.step(kT0);
  h.snap.tasks["a"].exit = drivers::ExitStatus{1, std::nullopt, false, kT0};
  h.step(kT0);  // backoff 1 s
  h.step(kT0 + seconds(1));
  h.probe("a", true, kT0 + seconds(2));
  h.step(kT0 + seconds(2));
  h.step(kT0 + seconds(70));
  h.snap.tasks["a"].exit = drivers::ExitStatus{1, std::nullopt, false, kT0};
  h.step(kT0 + seconds(71));
  EXPECT_EQ(h.status("a").message, "exited with code 1; restarting in 1s");
}

}  // namespace
}  // namespace baton::node
