#include "autoscaler/policy.h"

#include <cstdio>
#include <ctime>

#include <algorithm>
#include <cmath>
#include <limits>

namespace baton::autoscaler {
namespace {

std::string secs(Duration d) { return std::to_string(d.count() / 1000) + "s"; }
// "12.5" (one decimal), for reasons shown to users.
std::string oneDecimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// "12:05:00Z": the time of day in UTC, as scale events show a predicted request.
std::string formatUtc(TimePoint t) {
  const std::time_t secs = static_cast<std::time_t>(toUnixMillis(t) / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02dZ", tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace

PolicyParams PolicyParams::fromSpec(const model::ScaleSpec& spec) {
  PolicyParams p;
  p.concurrency = std::max(1, spec.concurrency);
  p.idle = spec.idle;
  return p;
}

Autoscaler::Autoscaler(PolicyParams params) : params_(params), rhythm_(params.rhythm_params) {
  params_.concurrency = std::max(1, params_.concurrency);
  keep_alive_ = computeKeepAlive();
}

Autoscaler::Window Autoscaler::average(Duration window, TimePoint now) const {
  // Time-weighted mean concurrency and the arrival rate over the samples whose interval ends
  // inside (now - window, now]; the time not yet covered (a young autoscaler) does not dilute
  // them.
  double sum = 0;
  double arrivals = 0;
  double queued = 0;
  double weight = 0;
  TimePoint from = now - window;
  for (auto it = samples_.rbegin(); it != samples_.rend() && it->end > from; ++it) {
    sum += it->value * it->weight_ms;
    arrivals += it->arrivals;
    queued += it->queued * it->weight_ms;
    weight += it->weight_ms;
  }
  Window w;
  if (weight > 0) {
    w.concurrency = sum / weight;
    w.rate = arrivals * 1000.0 / weight;
    w.queued = queued / weight;
  }
  return w;
}

Duration Autoscaler::computeKeepAlive() const {
  Duration idle = std::max(Duration(0), params_.idle);
  if (!params_.adaptive_idle) return idle;
  if (rhythm_.samples() < static_cast<double>(params_.min_gap_samples)) {
    return std::min(params_.fallback_idle, idle);
  }
  // Ski rental over every idle gap seen (the rhythm's decayed histogram): a keep-alive T costs
  // min(gap, T) instance-time per gap plus the cold-start penalty for every gap longer than T.
  auto t = rhythm_.skiRental(params_.cold_start_penalty, std::min(params_.min_idle, idle), idle);
  return t ? *t : std::min(params_.fallback_idle, idle);
}

Duration Autoscaler::keepAlive() const { return keep_alive_; }

void Autoscaler::restore(Rhythm rhythm) {
  rhythm_ = std::move(rhythm);
  // Until it sees a request: idle since the last burst it knew of.
  if (!last_activity_ && rhythm_.lastBurst()) last_activity_ = rhythm_.lastBurst();
  keep_alive_ = computeKeepAlive();
}

std::optional<Autoscaler::WarmWindow> Autoscaler::warmWindow(TimePoint now,
                                                             Duration cold_start) const {
  const std::optional<TimePoint> burst = rhythm_.lastBurst();
  if (!params_.rhythm || !last_activity_ || !burst) return std::nullopt;
  const Expectation e = rhythm_.expect();
  if (e.kind == Expectation::Kind::kNone) return std::nullopt;
  // Up this long before the expected request: the start, and half of it again for a slow one.
  const Duration lead = cold_start + std::max(Duration(1000), cold_start / 2);
  WarmWindow w;
  if (e.kind == Expectation::Kind::kPeriodic) {
    const TimePoint expected = *burst + e.head;
    const Duration slack = std::max(params_.rhythm_params.period_slack,
                                    Duration(static_cast<int64_t>(
                                        e.head.count() * params_.rhythm_params.period_tolerance)));
    w.from = expected - lead;
    w.until = expected + slack;
    w.why = "prewarm: " + e.describe() + ", next expected " + formatUtc(expected);
  } else if (e.kind == Expectation::Kind::kGrid) {
    // The next grid point after the last burst whose window is not over, up to the longest
    // period seen; only where being up around each grid point until the call costs less than
    // the keep-alive on what was seen.
    const Duration slack = std::max(
        params_.rhythm_params.period_slack,
        Duration(static_cast<int64_t>(e.head.count() * params_.rhythm_params.period_tolerance)));
    if (rhythm_.gridCost(e.head, lead + slack) >=
        rhythm_.keepAliveCost(keep_alive_, params_.cold_start_penalty)) {
      return std::nullopt;
    }
    const int64_t k = std::max<int64_t>(1, (now - *burst - slack).count() / e.head.count() + 1);
    if (e.head * k > e.tail + slack) return std::nullopt;  // past every period seen
    const TimePoint expected = *burst + e.head * k;
    w.from = expected - lead;
    w.until = expected + slack;
    w.why = "prewarm: " + e.describe() + ", next expected " + formatUtc(expected);
  } else {
    // Only where it beats the keep-alive on what was seen: memoryless gaps have a long tail,
    // and keeping an instance up to it costs more than the cold starts it saves.
    const Duration from = std::max(Duration(0), e.head - lead);
    if (rhythm_.prewarmCost(from, e.tail, params_.cold_start_penalty) >=
        rhythm_.keepAliveCost(keep_alive_, params_.cold_start_penalty)) {
      return std::nullopt;
    }
    w.from = *last_activity_ + from;
    w.until = *last_activity_ + e.tail;
    w.why = "prewarm: " + e.describe() + ", expected from " + formatUtc(*last_activity_ + e.head);
  }
  if (now > w.until) return std::nullopt;  // missed: the keep-alive decides
  // Going to zero saves the time from the linger (min_gap) to the window; when that is no more
  // than one cold start, a stop and a start are not worth it (the oracle's break-even in
  // bench/autoscale): stay up. The start itself is inside the lead, not an extra cost.
  if (w.from - *last_activity_ < cold_start + params_.min_gap) {
    w.from = *last_activity_;
    w.why = "keepalive: " + e.describe() + " (shorter than going to zero and back)";
  }
  return w;
}

std::optional<TimePoint> Autoscaler::nextExpected() const {
  const std::optional<TimePoint> burst = rhythm_.lastBurst();
  if (!params_.rhythm || !last_activity_ || !burst) return std::nullopt;
  const Expectation e = rhythm_.expect();
  if (e.kind == Expectation::Kind::kPeriodic) return *burst + e.head;
  if (e.kind == Expectation::Kind::kGrid) {
    const int64_t k =
        std::max<int64_t>(1, (last_step_.value_or(*burst) - *burst).count() / e.head.count() + 1);
    if (e.head * k <= e.tail) return *burst + e.head * k;
    return std::nullopt;
  }
  if (e.kind == Expectation::Kind::kHistogram) return *last_activity_ + e.head;
  return std::nullopt;
}

Decision Autoscaler::step(const Observation& obs, TimePoint now) {
  const PolicyParams& p = params_;
  const int lo = std::max(0, obs.min);
  const int hi = std::max(lo, obs.max);

  // 1. Record the observation.
  Duration dt = last_step_ ? now - *last_step_ : Duration(1000);
  if (dt > Duration(0)) {
    samples_.push_back({now, static_cast<double>(dt.count()), std::max(0.0, obs.concurrency),
                        static_cast<double>(std::max<int64_t>(0, obs.arrivals)),
                        std::clamp(obs.queued, 0.0, std::max(0.0, obs.concurrency))});
  } else if (!samples_.empty()) {
    samples_.back().value = std::max(samples_.back().value, obs.concurrency);
    samples_.back().arrivals += static_cast<double>(std::max<int64_t>(0, obs.arrivals));
  }
  TimePoint horizon = now - std::max(p.stable_window, p.panic_window);
  while (!samples_.empty() && samples_.front().end <= horizon) samples_.pop_front();
  last_step_ = now;
  if (!last_activity_) last_activity_ = now;

  const bool requested = obs.arrivals > 0 || obs.parked > 0;
  const bool active = requested || obs.concurrency > 0;
  if (requested && (now - *last_activity_ >= p.min_gap || !rhythm_.lastBurst())) {
    // The first request after an idle gap starts a burst: the gap and the time since the last
    // burst started (a timer's period) teach the rhythm.
    if (auto last = rhythm_.lastBurst()) {
      rhythm_.observe(now - *last_activity_, now - *last, now);
      keep_alive_ = computeKeepAlive();
    }
    rhythm_.burstStarted(now);
  }
  if (active) last_activity_ = now;
  const Duration idle_for = now - *last_activity_;

  // 2. KPA: stable and panic desired counts, rate limited against the ready count.
  const double ready = std::max(1, obs.ready);
  const double target = std::max(1e-9, p.concurrency * p.target_utilization);
  const Window sw = average(p.stable_window, now);
  const Window pw = average(p.panic_window, now);
  const double stable = sw.concurrency;
  double panic = pw.concurrency;
  if (p.little_law && sw.rate > 0) {
    // Little's law: the time a request spends in the system, from the stable window, times the
    // arrival rate of the panic window. A rising rate shows here a step before the in-flight
    // count catches up.
    // Waiting time is left out when the gateway reports it (a cold start's queue is not work).
    panic = std::max(panic, pw.rate * ((sw.concurrency - sw.queued) / sw.rate));
  }
  double dspc = std::ceil(stable / target - 1e-9);
  const double dppc = std::ceil(panic / target - 1e-9);
  if (p.scale_down_window < p.stable_window) {
    // Faster scale-down: a shorter average may lower the stable count, never below the panic
    // window's demand (which still guards bursts).
    const double recent = std::max(average(p.scale_down_window, now).concurrency, panic);
    dspc = std::min(dspc, std::ceil(recent / target - 1e-9));
  }
  if (p.tolerance > 0 && obs.desired > 0 && dspc > obs.desired &&
      stable <= obs.desired * target * (1 + p.tolerance)) {
    dspc = obs.desired;  // within the tolerance band: keep the count (the panic window still
                         // reacts to a real burst)
  }
  const double max_up = std::ceil(p.max_scale_up_rate * ready);
  const double max_down = obs.ready > 0 ? std::floor(obs.ready / p.max_scale_down_rate) : 0;
  const int desired_stable = static_cast<int>(std::min(std::max(dspc, max_down), max_up));
  const int desired_panic = static_cast<int>(std::min(std::max(dppc, max_down), max_up));
  const bool over = dppc / ready >= p.panic_threshold;
  if (!panic_since_ && over) {
    panic_since_ = now;
    max_panic_pods_ = obs.ready;
  } else if (over) {
    panic_since_ = now;
  } else if (panic_since_ && *panic_since_ + p.stable_window <= now) {
    panic_since_.reset();
    max_panic_pods_ = 0;
  }

  Decision d;
  if (panic_since_) {
    max_panic_pods_ = std::max(max_panic_pods_, desired_panic);
    d.desired = max_panic_pods_;
    d.panic = true;
    d.reason = "panic: " + oneDecimal(panic) + " in flight over " + secs(p.panic_window);
  } else {
    d.desired = desired_stable;
    d.reason = "stable: " + oneDecimal(stable) + " in flight over " + secs(p.stable_window);
  }

  // 3. Scale-down delay: the max over the delay window.
  if (p.scale_down_delay > Duration(0)) {
    delay_window_.emplace_back(now, d.desired);
    while (!delay_window_.empty() && delay_window_.front().first <= now - p.scale_down_delay) {
      delay_window_.pop_front();
    }
    int held = d.desired;
    for (const auto& [t, v] : delay_window_) held = std::max(held, v);
    if (held > d.desired) {
      d.desired = held;
      d.reason += "; scale-down delayed " + secs(p.scale_down_delay);
    }
  }

  // 4. To and from zero: a learned rhythm first, else the keep-alive.
  const Duration cold_start = obs.cold_start > Duration(0) ? obs.cold_start : p.cold_start;
  const std::optional<WarmWindow> warm =
      lo == 0 && !d.panic && !active ? warmWindow(now, cold_start) : std::nullopt;
  if (warm) {
    if (now >= warm->from && now <= warm->until) {
      d.desired = std::max(d.desired, 1);
      d.reason = warm->why;
    } else if (idle_for >= p.min_gap) {
      d.desired = 0;
      d.reason = "idle until the next expected request (" + warm->why.substr(warm->why.find(':') + 2) + ")";
    } else {
      d.desired = std::max(d.desired, std::min(1, std::max(obs.desired, obs.ready)));
    }
  } else if (lo == 0 && !d.panic) {
    if (!active && idle_for >= keep_alive_) {
      if (d.desired > 0 || obs.desired > 0) {
        d.reason = "idle " + secs(idle_for) + " >= keep-alive " + secs(keep_alive_);
      }
      d.desired = 0;
    } else if (d.desired == 0 && (obs.desired > 0 || obs.ready > 0)) {
      d.desired = 1;
      d.reason = "keep warm: idle " + secs(idle_for) + " < keep-alive " + secs(keep_alive_);
    }
  }
  if (obs.parked > 0) {
    int need = std::max(1, static_cast<int>(std::ceil(obs.parked / target - 1e-9)));
    if (obs.ready == 0 && d.desired < need) {
      d.desired = need;
      d.reason = "scale from zero: " + std::to_string(obs.parked) + " parked";
    }
  }
  if (active && d.desired == 0) d.desired = 1;

  // 5. The bounds in force always win.
  if (d.desired < lo) {
    d.desired = lo;
    d.reason += "; raised to min " + std::to_string(lo);
  } else if (d.desired > hi) {
    d.desired = hi;
    d.reason += "; capped at max " + std::to_string(hi);
  }
  if (d.panic && d.desired < obs.desired && obs.desired <= hi) {
    d.desired = obs.desired;  // no scale-down while panicking
  }
  return d;
}

}  // namespace baton::autoscaler
