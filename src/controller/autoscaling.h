// The autoscaling loop: the I/O shell around autoscaler::Autoscaler (one per service). Every
// `tick`, and at once when the gateway parks a request (kick), it reads the apps, overrides and
// instance states from the store, takes the gateway's load per service from an injected
// LoadSource, steps each service's policy within the bounds in force (autoscaler/bounds.h:
// manifest, schedule calendar, override) and keeps the desired counts. The controller asks for
// them through desired() (its ReconcileOptions::desired_count hook) and is poked on a change.
//
// Cold start: each service's start-to-ready time is measured here (the pass that asked for an
// instance with none ready, to the pass that saw one ready; a moving average) and given to its
// policy (Observation::cold_start), which prewarms that much, and half again, ahead.
//
// Rhythm: what each policy learned of its service's rhythm (autoscaler/rhythm.h) is kept under
// /baton/rhythm/<app>/<service>, written at most every 10 s when it changed, and read back when
// the service is first seen (an agent restart, a new leader), so the learning is not lost.
//
// Restart: the desired counts are not stored. When a service is first seen (the first pass after
// the agent starts, or a new deploy) its count is seeded from the instances the store says should
// run (records with desired_running), clamped to the bounds in force; so an agent restarted, even
// after kill -9, keeps an autoscaled service at the count it ran at. A policy with no load
// history (a service first seen, or a policy re-created because `concurrency` or `idle` changed)
// that starts above min does not scale down for one scale-down window
// (PolicyParams::scale_down_window, 60 s): an empty window would read as no load. Scale-up, and
// the bounds in force, apply at once.
//
// Data flow:  gateway stats --LoadSource--> Autoscaling --desired()--> controller --> store
//             gateway hold-at-zero --kick()--^                         (instances)
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "autoscaler/policy.h"
#include "controller/controller.h"
#include "controller/reconcile.h"
#include "core/clock.h"
#include "state/store.h"

namespace baton::controller {

// One service's load since the previous LoadSource call (the gateway's counters).
struct ServiceLoad {
  double concurrency = 0;  // average in-flight requests, including parked ones
  double queued = 0;       // average parked (waiting for an instance)
  int64_t arrivals = 0;    // requests that arrived
  int parked = 0;          // parked right now
};
// Keyed by "app/service". Services with no entry had no traffic.
using LoadSource = std::function<std::map<std::string, ServiceLoad>()>;

struct AutoscalingOptions {
  Duration tick = Duration(500);
  EventSink on_event;               // "autoscale", "shop/web: 1 -> 3 (reason)"
  std::function<void()> on_change;  // a desired count changed (poke the controller)
};

class Autoscaling {
 public:
  Autoscaling(state::Store& store, Clock& clock, LoadSource load, AutoscalingOptions options);
  ~Autoscaling();  // stop()
  Autoscaling(const Autoscaling&) = delete;
  Autoscaling& operator=(const Autoscaling&) = delete;

  // The desired count of app/service inside `bounds`: the policy's answer, or bounds.min before
  // the policy has spoken for it.
  int desired(const std::string& app, const std::string& service, const ScaleBounds& bounds);
  // Whether the bounds in force for app/service, at the last pass, were max = 0 (the gateway
  // then answers 503 at once instead of holding requests). False for a service not seen yet.
  bool scaledOff(const std::string& app, const std::string& service);
  // A request was parked for app/service: decide now instead of at the next tick.
  void kick(const std::string& app, const std::string& service);

  // One pass over every service. Errors: the store could not be read (nothing changed).
  Status stepOnce();
  // Runs a first pass at once, which seeds the counts of the services that run (see above), then
  // starts the loop. Call it before the controller starts, so that the controller's first pass
  // does not see bounds.min for a service it would then scale down. Errors: the first pass could
  // not read the store (the loop is not started).
  Status start();
  void stop();

 private:
  struct PerService {
    std::unique_ptr<autoscaler::Autoscaler> policy;
    autoscaler::PolicyParams params;
    int desired = 0;
    int max_in_force = -1;  // bounds.max at the last pass
    // A policy created above min (no load history) scales down from this instant on.
    TimePoint no_scale_down_until{};
    std::string reason;
    // The rhythm as last written to the store (its last burst) and when.
    std::optional<TimePoint> saved_burst;
    TimePoint saved_at{};
    // Its measured cold start: from the pass that asked for an instance while none was ready to
    // the pass that saw one ready (a moving average; 0 until measured: the policy's default).
    std::optional<TimePoint> cold_since;
    Duration cold_start{0};
  };
  static void measureColdStart(PerService& svc, int ready, TimePoint now);
  void loop();

  state::Store& store_;
  Clock& clock_;
  LoadSource load_;
  AutoscalingOptions options_;

  std::mutex mu_;  // guards services_, kicked_, stop_
  std::map<std::string, PerService> services_;  // by "app/service"
  bool kicked_ = false;
  bool stop_ = false;
  std::condition_variable cv_;
  std::thread thread_;
  std::mutex step_mu_;  // one stepOnce() at a time
};

}  // namespace baton::controller
