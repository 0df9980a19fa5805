#include "autoscaler/rhythm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace baton::autoscaler {

using nlohmann::json;

std::string Expectation::describe() const {
  auto s = [](Duration d) { return std::to_string((d.count() + 500) / 1000) + " s"; };
  switch (kind) {
    case Kind::kNone:
      return "no rhythm";
    case Kind::kPeriodic:
      return "period " + s(head);
    case Kind::kGrid:
      return "grid " + s(head) + " up to " + s(tail);
    case Kind::kHistogram:
      return "idle " + s(head) + "-" + s(tail) + " (p5-p99)";
  }
  return "";
}

Rhythm::Rhythm(RhythmParams params) : params_(params), bins_(kBins, 0.0) {}

size_t Rhythm::binOf(Duration gap) {
  const int64_t ms = std::max<int64_t>(0, gap.count());
  if (ms < 60'000) return static_cast<size_t>(ms / 1000);
  return std::min(kBins - 1, kSecondBins + static_cast<size_t>(ms / 60'000) - 1);
}

Duration Rhythm::binStart(size_t bin) {
  return bin < kSecondBins ? Duration(static_cast<int64_t>(bin) * 1000)
                           : Duration(static_cast<int64_t>(bin - kSecondBins + 1) * 60'000);
}

Duration Rhythm::binEnd(size_t bin) {
  return bin + 1 < kBins ? binStart(bin + 1) : kMaxGap;
}

void Rhythm::decayTo(TimePoint now) {
  if (decayed_at_ && now > *decayed_at_ && params_.half_life.count() > 0) {
    const double halves = static_cast<double>((now - *decayed_at_).count()) /
                          static_cast<double>(params_.half_life.count());
    const double f = std::exp2(-halves);
    for (double& b : bins_) b *= f;
    out_of_range_ *= f;
  }
  if (!decayed_at_ || now > *decayed_at_) decayed_at_ = now;
}

void Rhythm::observe(Duration gap, Duration period, TimePoint now) {
  decayTo(now);
  if (gap >= kMaxGap) {
    out_of_range_ += 1;
  } else {
    bins_[binOf(gap)] += 1;
  }
  periods_ms_.push_back(period.count());
  while (periods_ms_.size() > periodsKept()) periods_ms_.pop_front();
}

size_t Rhythm::periodsKept() const {
  return std::max(params_.period_samples, params_.grid_samples);
}

std::optional<Duration> Rhythm::gridStep() const {
  if (params_.grid_samples < 2 || periods_ms_.size() < params_.grid_samples) return std::nullopt;
  const std::vector<int64_t> p(
      periods_ms_.end() - static_cast<std::ptrdiff_t>(params_.grid_samples), periods_ms_.end());
  const int64_t shortest = *std::min_element(p.begin(), p.end());
  // The coarsest step that the shortest period is a whole multiple of and every other period
  // too: try shortest / k, refit the step to all periods (least squares through the origin) and
  // check each within the tolerance.
  const int64_t longest = *std::max_element(p.begin(), p.end());
  for (int64_t k = 1; shortest / k >= params_.min_grid_step.count() &&
                      longest / (shortest / k) <= params_.max_grid_points;
       ++k) {
    const double guess = static_cast<double>(shortest) / static_cast<double>(k);
    double sum_pn = 0, sum_nn = 0;
    std::vector<int64_t> n(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      n[i] = std::llround(static_cast<double>(p[i]) / guess);
      sum_pn += static_cast<double>(p[i] * n[i]);
      sum_nn += static_cast<double>(n[i] * n[i]);
    }
    const double step = sum_pn / sum_nn;
    const double tol = std::max(static_cast<double>(params_.period_slack.count()),
                                step * params_.period_tolerance);
    bool fits = step >= static_cast<double>(params_.min_grid_step.count());
    for (size_t i = 0; i < p.size() && fits; ++i) {
      fits = n[i] >= 1 && std::fabs(static_cast<double>(p[i]) - step * n[i]) <= tol;
    }
    if (fits) return Duration(std::llround(step));
  }
  return std::nullopt;
}

double Rhythm::gridCost(Duration step, Duration window) const {
  if (periods_ms_.empty() || step.count() <= 0) return 0;
  double points = 0;
  for (int64_t p : periods_ms_) {
    points += std::max<double>(1, std::round(static_cast<double>(p) / step.count()));
  }
  return points / static_cast<double>(periods_ms_.size()) * static_cast<double>(window.count());
}

double Rhythm::samples() const {
  double n = out_of_range_;
  for (double b : bins_) n += b;
  return n;
}

Duration Rhythm::percentile(double q) const {
  const double total = samples();
  double seen = 0;
  for (size_t i = 0; i < kBins; ++i) {
    seen += bins_[i];
    if (seen >= q * total - 1e-9 && bins_[i] > 0) return q < 0.5 ? binStart(i) : binEnd(i);
  }
  return kMaxGap;
}

Expectation Rhythm::expect() const {
  Expectation e;
  // Periodic: the last few periods agree.
  if (periods_ms_.size() >= params_.period_samples && params_.period_samples > 0) {
    std::vector<int64_t> p(periods_ms_.end() - static_cast<std::ptrdiff_t>(params_.period_samples),
                           periods_ms_.end());
    std::sort(p.begin(), p.end());
    const int64_t median = p[p.size() / 2];
    const int64_t tol = std::max<int64_t>(params_.period_slack.count(),
                                          static_cast<int64_t>(median * params_.period_tolerance));
    if (median >= params_.min_period.count() && p.back() - p.front() <= tol) {
      e.kind = Expectation::Kind::kPeriodic;
      e.head = Duration(median);
      e.tail = Duration(median);
      return e;
    }
  }
  // A grid: every recent period a whole number of one step.
  if (std::optional<Duration> step = gridStep()) {
    e.kind = Expectation::Kind::kGrid;
    e.head = *step;
    e.tail = Duration(*std::max_element(
        periods_ms_.end() - static_cast<std::ptrdiff_t>(params_.grid_samples), periods_ms_.end()));
    return e;
  }
  // The histogram: enough samples, most in range, concentrated.
  const double total = samples();
  if (total < static_cast<double>(params_.min_samples) || out_of_range_ > total / 2) return e;
  double mean = 0;
  for (double b : bins_) mean += b;
  mean /= static_cast<double>(kBins);
  double var = 0;
  for (double b : bins_) var += (b - mean) * (b - mean);
  var /= static_cast<double>(kBins);
  if (mean <= 0 || std::sqrt(var) / mean < params_.min_cv) return e;
  e.kind = Expectation::Kind::kHistogram;
  e.head = percentile(params_.head_percentile);
  e.tail = percentile(params_.tail_percentile);
  return e;
}

std::optional<Duration> Rhythm::skiRental(Duration penalty, Duration lo, Duration hi) const {
  if (samples() <= 0) return std::nullopt;
  hi = std::max(lo, hi);
  std::vector<int64_t> candidates{lo.count(), hi.count()};
  for (size_t i = 0; i < kBins; ++i) {
    const int64_t t = binEnd(i).count();  // past the whole bin: its gaps are bridged
    if (bins_[i] > 0 && t > lo.count() && t < hi.count()) candidates.push_back(t);
  }
  std::sort(candidates.begin(), candidates.end());
  const double pen = static_cast<double>(penalty.count());
  int64_t best = hi.count();
  double best_cost = std::numeric_limits<double>::max();
  for (int64_t t : candidates) {
    double cost = out_of_range_ * (static_cast<double>(t) + pen);
    for (size_t i = 0; i < kBins; ++i) {
      if (bins_[i] <= 0) continue;
      const double mid = static_cast<double>(binStart(i).count() + binEnd(i).count()) / 2;
      cost += bins_[i] * (binEnd(i).count() <= t ? mid : static_cast<double>(t) + pen);
    }
    if (cost < best_cost - 1e-9) {  // ties: the shorter keep-alive
      best_cost = cost;
      best = t;
    }
  }
  // A keep-alive that bridges every gap seen so far would make each new longest gap a cold
  // start (the longest of n gaps is exceeded by the next about once in n + 1): leave room for
  // one twice as long.
  if (out_of_range_ <= 0 && best < hi.count()) {
    bool bridges_all = true;
    for (size_t i = 0; i < kBins && bridges_all; ++i) {
      if (bins_[i] > 0 && binEnd(i).count() > best) bridges_all = false;
    }
    if (bridges_all) best = std::min(hi.count(), 2 * best);
  }
  return Duration(best);
}

double Rhythm::keepAliveCost(Duration keep_alive, Duration penalty) const {
  const double t = static_cast<double>(keep_alive.count());
  const double pen = static_cast<double>(penalty.count());
  double cost = out_of_range_ * (t + pen), n = out_of_range_;
  for (size_t i = 0; i < kBins; ++i) {
    if (bins_[i] <= 0) continue;
    const double mid = static_cast<double>(binStart(i).count() + binEnd(i).count()) / 2;
    cost += bins_[i] * (mid <= t ? mid : t + pen);
    n += bins_[i];
  }
  return n > 0 ? cost / n : 0;
}

double Rhythm::prewarmCost(Duration from, Duration until, Duration penalty) const {
  const double a = static_cast<double>(from.count()), b = static_cast<double>(until.count());
  const double pen = static_cast<double>(penalty.count());
  double cost = out_of_range_ * (std::max(0.0, b - a) + pen), n = out_of_range_;
  for (size_t i = 0; i < kBins; ++i) {
    if (bins_[i] <= 0) continue;
    const double mid = static_cast<double>(binStart(i).count() + binEnd(i).count()) / 2;
    // Before the window: a cold start; in it: up since `from`; after it: up for the whole
    // window, then a cold start anyway.
    cost += bins_[i] * (mid < a ? pen : mid <= b ? mid - a : (b - a) + pen);
    n += bins_[i];
  }
  return n > 0 ? cost / n : 0;
}

std::string Rhythm::toJson() const {
  json bins = json::object();
  for (size_t i = 0; i < kBins; ++i) {
    // Sparse: a few hundred bytes for a service with a rhythm.
    if (bins_[i] > 0) bins[std::to_string(i)] = bins_[i];
  }
  return json{{"v", 1},
              {"bins", bins},
              {"out_of_range", out_of_range_},
              {"periods_ms", periods_ms_},
              {"at", decayed_at_ ? json(toUnixMillis(*decayed_at_)) : json(nullptr)},
              {"last_burst", last_burst_ ? json(toUnixMillis(*last_burst_)) : json(nullptr)}}
      .dump();
}

Result<Rhythm> Rhythm::fromJson(std::string_view text, RhythmParams params) {
  auto bad = [] { return Status(Code::kInvalidArgument, "malformed rhythm record"); };
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("v", 0) != 1) return bad();
  Rhythm r(params);
  try {
    for (const auto& [k, v] : j.at("bins").items()) {
      size_t i = std::stoul(k);
      double c = v.get<double>();
      if (i >= kBins || !(c >= 0) || !std::isfinite(c)) return bad();
      r.bins_[i] = c;
    }
    r.out_of_range_ = j.at("out_of_range").get<double>();
    if (!(r.out_of_range_ >= 0) || !std::isfinite(r.out_of_range_)) return bad();
    for (int64_t p : j.at("periods_ms").get<std::vector<int64_t>>()) {
      if (p < 0) return bad();
      r.periods_ms_.push_back(p);
    }
    while (r.periods_ms_.size() > r.periodsKept()) r.periods_ms_.pop_front();
    if (!j.at("at").is_null()) r.decayed_at_ = fromUnixMillis(j.at("at").get<int64_t>());
    if (j.contains("last_burst") && !j["last_burst"].is_null()) {
      r.last_burst_ = fromUnixMillis(j["last_burst"].get<int64_t>());
    }
  } catch (const std::exception&) {
    return bad();
  }
  return r;
}

}  // namespace baton::autoscaler
