// A service's rhythm (issue 18): what its idle times look like over hours, and from that when an
// instance should be up although no request is there yet. Pure; no clock reads.
//
// Two models, as the hybrid histogram policy of Shahrad et al. (USENIX ATC 2020, "Serverless in
// the Wild"):
//   * Periodic: the last few idle gaps (start of a burst of requests to the next start) agree
//     to within a tolerance: a timer or a cron-like client. The next request is expected one
//     period after the last burst started.
//   * A grid: the last few periods are all whole multiples of one step (a cron-like client that
//     fires on the minute but not every minute, or a timer whose runs land on minute marks 4, 5
//     or 6 minutes apart). The next request is expected at one of the next grid points after the
//     last burst, up to the longest period seen.
//   * The idle-time histogram: 1 s bins up to a minute, then 1 min bins up to 4 h (bounded
//     memory), decayed with a half-life, so that it follows a service that changes. When it is
//     representative (enough samples, concentrated: the coefficient of variation of its bin
//     counts at least 2, as in the paper), the next request is expected between its head (5th
//     percentile) and its tail (99th percentile) of idle time.
// When neither holds, the caller falls back to its keep-alive, chosen by ski rental over the
// histogram (every idle time seen, decayed), not over the last few gaps.
//
// Serialisable (toJson/fromJson) so that what was learned survives an agent restart.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace baton::autoscaler {

struct RhythmParams {
  Duration half_life = Duration(24 * 3'600'000);  // of the histogram's counts
  size_t min_samples = 8;            // idle gaps before the histogram is trusted
  double min_cv = 2.0;               // bin counts' coefficient of variation for "representative"
  double head_percentile = 0.05;
  double tail_percentile = 0.99;
  size_t period_samples = 4;         // gaps that must agree to call it periodic
  double period_tolerance = 0.02;    // relative; and at least period_slack
  Duration period_slack = Duration(2'000);
  Duration min_period = Duration(10'000);  // shorter: not worth predicting
  size_t grid_samples = 8;                 // periods that must share a step for a grid
  Duration min_grid_step = Duration(30'000);  // a finer grid is not predicted (chance matches)
  int64_t max_grid_points = 16;  // a period of more steps: no grid (chance matches, and costly)
};

// Where the next request is expected, relative to the start of the last burst of requests.
// kPeriodic: head = tail = the period. kGrid: head = the step, tail = the longest period seen
// (the last grid point worth expecting). kHistogram: head and tail of the idle time.
struct Expectation {
  enum class Kind { kNone, kPeriodic, kGrid, kHistogram } kind = Kind::kNone;
  Duration head{0};  // earliest expected idle time
  Duration tail{0};  // latest
  // "period 300 s", "grid 60 s up to 360 s", "idle 41-62 s (p5-p99)"
  std::string describe() const;
};

class Rhythm {
 public:
  static constexpr size_t kSecondBins = 60;   // [0,1) s .. [59,60) s
  static constexpr size_t kMinuteBins = 239;  // [1,2) min .. [239,240) min
  static constexpr size_t kBins = kSecondBins + kMinuteBins;
  static constexpr Duration kMaxGap = Duration(240 * 60'000);

  explicit Rhythm(RhythmParams params = {});

  // An idle gap (from the end of one burst of activity to the next request) and the time between
  // the starts of the two bursts (`period`), observed at `now`.
  void observe(Duration gap, Duration period, TimePoint now);
  // A burst of requests started at `at` (the first request after an idle gap, or the first
  // ever): periods are measured from here.
  void burstStarted(TimePoint at) { last_burst_ = at; }
  std::optional<TimePoint> lastBurst() const { return last_burst_; }

  // Where the next request is expected, or kNone.
  Expectation expect() const;
  // The keep-alive T minimising sum(min(gap, T)) + penalty x #(gaps > T) over the histogram
  // (bin midpoints), T in [lo, hi]; nullopt without samples.
  std::optional<Duration> skiRental(Duration penalty, Duration lo, Duration hi) const;

  // Expected cost over the histogram (instance-ms, plus `penalty` per cold start), per idle gap
  // measured from the end of activity: keeping one instance for T after it, or stopping at once
  // and having one up from `from` to `until` (a prewarm window).
  double keepAliveCost(Duration keep_alive, Duration penalty) const;
  double prewarmCost(Duration from, Duration until, Duration penalty) const;
  // Expected instance-ms per burst of being up `window` around each grid point of `step` until
  // the call, over the periods kept (a period of n steps passes n grid points).
  double gridCost(Duration step, Duration window) const;

  double samples() const;  // decayed count
  std::string toJson() const;
  static Result<Rhythm> fromJson(std::string_view json, RhythmParams params = {});

 private:
  static size_t binOf(Duration gap);
  static Duration binStart(size_t bin);
  static Duration binEnd(size_t bin);
  void decayTo(TimePoint now);
  Duration percentile(double q) const;

  RhythmParams params_;
  std::vector<double> bins_;       // decayed counts
  double out_of_range_ = 0;        // gaps past kMaxGap
  size_t periodsKept() const;
  std::optional<Duration> gridStep() const;

  std::deque<int64_t> periods_ms_;  // the last periodsKept() periods
  std::optional<TimePoint> decayed_at_;
  std::optional<TimePoint> last_burst_;
};

}  // namespace baton::autoscaler
