// The per-service autoscaling policy (issue 4): a pure state machine. The controller (or the
// benchmark simulator) calls step() about once a second with what the gateway observed since the
// previous call, and at once when the gateway parks a request for a service at zero. step()
// returns the desired instance count, already clamped to the bounds in force, with a reason.
//
// The core is Knative's KPA (stable 60 s / panic 6 s windows of observed concurrency, panic at
// 2x, no scale-down while panicking, scale-down rate limited); on top of it (README.md):
//   * HPA's 10% tolerance band on stable scale-up, and a Little's-law term (arrival rate x
//     service time) in the panic window;
//   * scale from zero at once, sized by the number of parked requests;
//   * an adaptive keep-alive: the idle time before going to zero is chosen from the history of
//     observed idle gaps (ski-rental rule, bounded by the manifest's `idle`), so a service whose
//     requests come back quickly keeps one warm instance and one whose gaps are long goes to
//     zero early.
//
// Thread safety: none; one Autoscaler per service, used from one thread. No I/O, no clock
// reads: `now` is an argument and must not go backwards.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "autoscaler/rhythm.h"
#include "core/clock.h"
#include "model/app.h"

namespace baton::autoscaler {

struct PolicyParams {
  // From the manifest ([services.X.scale]).
  int concurrency = 100;              // target in-flight requests per instance
  Duration idle = Duration(300'000);  // longest idle time before scaling to zero
  // KPA core (Knative defaults).
  double target_utilization = 0.7;            // aim at 70% of `concurrency`
  Duration stable_window = Duration(60'000);  // averaging window for the stable decision
  Duration panic_window = Duration(6'000);    // averaging window for bursts
  double panic_threshold = 2.0;               // panic when panic desired >= 2x ready
  double max_scale_up_rate = 1000.0;          // at most ceil(rate * ready) per step
  double max_scale_down_rate = 2.0;           // at least floor(ready / rate) per step: halve
  Duration scale_down_delay = Duration(0);    // a lower count must hold this long first
  // Beyond KPA (README.md); defaults measured across all simulator traces (BENCHMARKS.md).
  bool little_law = true;  // panic demand also from arrival rate x service time (Little's law)
  double tolerance = 0.1;  // stable mode: no scale-up while the stable demand is within this
                           // fraction above what the current count serves (HPA's band)
  Duration scale_down_window = Duration(60'000);  // < stable_window: scale down on this shorter
                                                  // average (never below the panic demand)
  // Scale to zero (min = 0 only).
  bool adaptive_idle = true;                        // false: keep-alive is exactly `idle`
  Duration min_idle = Duration(10'000);             // shortest keep-alive the adaptive rule picks
  Duration fallback_idle = Duration(90'000);        // keep-alive until enough gaps were seen
                                                    // (never above `idle`); 90 s ~ KPA's 60 + 30
  Duration cold_start_penalty = Duration(120'000);  // one cold start is worth this much of one
                                                    // warm instance (ski-rental price)
  Duration min_gap = Duration(2'000);               // gaps shorter than this are not idle periods
  size_t min_gap_samples = 6;                       // before the adaptive rule is trusted
  // The service's rhythm (rhythm.h, issue 18): an instance up just before a predicted request
  // and gone between them; the adaptive keep-alive is then ski rental over its histogram.
  bool rhythm = true;
  RhythmParams rhythm_params;
  Duration cold_start = Duration(2'000);  // start to ready when the observation does not say

  // Params for a manifest's scale spec, the rest at the defaults above.
  static PolicyParams fromSpec(const model::ScaleSpec& spec);
};

// What the gateway and the node saw since the previous step.
struct Observation {
  double concurrency = 0;  // average in-flight requests (incl. queued) over the interval
  int64_t arrivals = 0;    // requests that arrived in the interval
  int parked = 0;          // requests held at zero right now (the gateway's hold queue)
  double queued = 0;       // of `concurrency`, the average waiting for a slot (held or queued);
                           // lets Little's law use the service time only. 0 if unknown.
  int ready = 0;           // instances ready to serve
  int desired = 0;         // the desired count currently in force
  int min = 0;             // bounds in force (calendar.h / operator override)
  int max = 1;
  Duration cold_start{0};  // this service's measured start-to-ready; 0: unknown (the params')
};

struct Decision {
  int desired = 0;
  std::string reason;  // one line for events and `baton ps`
  bool panic = false;
};

class Autoscaler {
 public:
  explicit Autoscaler(PolicyParams params);

  Decision step(const Observation& obs, TimePoint now);

  // The keep-alive the policy would use now (for `baton ps` and tests).
  Duration keepAlive() const;
  // When the next request is expected (a learned rhythm), for `baton ps`; nullopt: no rhythm.
  std::optional<TimePoint> nextExpected() const;
  // What it learned, to keep in the store and restore after a restart.
  const Rhythm& rhythm() const { return rhythm_; }
  void restore(Rhythm rhythm);
  bool panicking() const { return panic_since_.has_value(); }
  const PolicyParams& params() const { return params_; }

 private:
  struct Sample {
    TimePoint end;
    double weight_ms;
    double value;     // average concurrency over the interval
    double arrivals;  // requests that arrived in the interval
    double queued;    // average waiting for a slot over the interval
  };
  struct Window {
    double concurrency = 0;  // time-weighted mean
    double rate = 0;         // arrivals per second
    double queued = 0;       // time-weighted mean of waiting requests
  };
  Window average(Duration window, TimePoint now) const;
  Duration computeKeepAlive() const;
  // When an instance should be up although idle (a predicted request), from the rhythm.
  struct WarmWindow {
    TimePoint from, until;
    std::string why;
  };
  std::optional<WarmWindow> warmWindow(TimePoint now, Duration cold_start) const;

  PolicyParams params_;
  std::deque<Sample> samples_;  // covers the stable window
  std::optional<TimePoint> last_step_;
  std::optional<TimePoint> last_activity_;  // last arrival, parked or in-flight request
  std::optional<TimePoint> panic_since_;
  int max_panic_pods_ = 0;
  std::deque<std::pair<TimePoint, int>> delay_window_;  // for scale_down_delay
  Rhythm rhythm_;                                       // idle gaps, periods, last burst
  Duration keep_alive_;                                 // derived from rhythm_
};

}  // namespace baton::autoscaler
