#include "autoscaler/policy.h"

#include <cstdio>

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

}  // namespace

PolicyParams PolicyParams::fromSpec(const model::ScaleSpec& spec) {
  PolicyParams p;
  p.concurrency = std::max(1, spec.concurrency);
  p.idle = spec.idle;
  return p;
}

Autoscaler::Autoscaler(PolicyParams params) : params_(params) {
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
  if (gaps_ms_.size() < params_.min_gap_samples) return std::min(params_.fallback_idle, idle);
  // Ski rental over the observed idle gaps: a keep-alive T costs min(gap, T) instance-time per
  // gap plus the cold-start penalty for every gap longer than T. Pick the cheapest T.
  std::vector<int64_t> candidates{std::min(params_.min_idle, idle).count(), idle.count()};
  for (int64_t g : gaps_ms_) {
    int64_t t = g + 1000;  // one step past the gap, so that gap is bridged
    if (t < idle.count() && t > params_.min_idle.count()) candidates.push_back(t);
  }
  const double penalty = static_cast<double>(params_.cold_start_penalty.count());
  int64_t best = idle.count();
  double best_cost = std::numeric_limits<double>::max();
  std::sort(candidates.begin(), candidates.end());
  for (int64_t t : candidates) {
    double cost = 0;
    for (int64_t g : gaps_ms_) cost += g < t ? static_cast<double>(g) : t + penalty;
    if (cost < best_cost - 1e-9) {  // ties: the shorter keep-alive
      best_cost = cost;
      best = t;
    }
  }
  return Duration(best);
}

Duration Autoscaler::keepAlive() const { return keep_alive_; }

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
  if (requested && now - *last_activity_ >= p.min_gap) {
    gaps_ms_.push_back((now - *last_activity_).count());
    while (gaps_ms_.size() > p.gap_history) gaps_ms_.pop_front();
    keep_alive_ = computeKeepAlive();
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

  // 4. To and from zero.
  if (lo == 0 && !d.panic) {
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
