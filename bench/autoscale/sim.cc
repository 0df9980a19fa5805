#include "sim.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "autoscaler/calendar.h"
#include "autoscaler/policy.h"

namespace baton::autoscale_sim {
namespace {

using namespace std::chrono_literals;

// Portable distributions over mt19937_64 (std:: distributions differ between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform() {
    return (static_cast<double>(gen_() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  }
  double exponential(double mean) { return -std::log(uniform()) * mean; }

 private:
  std::mt19937_64 gen_;
};

TimePoint utc(int y, unsigned mo, unsigned d, int h) {
  int64_t days = 0;
  {
    // days from civil (H. Hinnant's algorithm)
    int yy = y - (mo <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    unsigned yoe = static_cast<unsigned>(yy - era * 400);
    unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + static_cast<int64_t>(doe) - 719468;
  }
  return fromUnixMillis((days * 86400 + h * 3600) * 1000);
}

// Non-homogeneous Poisson arrivals from a piecewise-constant (per second) rate.
class RateStream final : public ArrivalStream {
 public:
  RateStream(std::function<double(double)> rate, double duration, double service_mean,
             uint64_t seed)
      : rate_(std::move(rate)), duration_(duration), mean_(service_mean), rng_(seed) {}
  bool next(double& arrival, double& service) override {
    while (t_ < duration_) {
      double second = std::floor(t_);
      double r = rate_(second);
      if (r <= 0) {
        t_ = second + 1;
        continue;
      }
      double t = t_ + rng_.exponential(1.0 / r);
      if (t >= second + 1) {  // memoryless: restart at the boundary with the next rate
        t_ = second + 1;
        continue;
      }
      t_ = t;
      arrival = t;
      service = rng_.exponential(mean_);
      return true;
    }
    return false;
  }

 private:
  std::function<double(double)> rate_;
  double duration_;
  double mean_;
  Rng rng_;
  double t_ = 0;
};

class ListStream final : public ArrivalStream {
 public:
  ListStream(std::shared_ptr<const std::vector<double>> times, double mean, uint64_t seed)
      : times_(std::move(times)), mean_(mean), rng_(seed) {}
  bool next(double& arrival, double& service) override {
    if (i_ >= times_->size()) return false;
    arrival = (*times_)[i_++];
    service = rng_.exponential(mean_);
    return true;
  }

 private:
  std::shared_ptr<const std::vector<double>> times_;
  size_t i_ = 0;
  double mean_;
  Rng rng_;
};

// --- built-in scenarios ---------------------------------------------------------------------

// A shop's week in America/Detroit from Monday 2026-11-23: daily cycle (quiet nights), quieter
// weekend, and Black Friday (Nov 27): a 10x ramp over 15 minutes at 09:00 held to 13:00, covered
// by a schedule entry that raises min (and max) from 08:30 to 14:00.
Scenario shopWeek(uint64_t seed) {
  Scenario s;
  s.name = "shop-week";
  s.description = "7 days, daily+weekly cycle, Black Friday 10x ramp (schedule min 6, max 40)";
  s.scale.min = 0;
  s.scale.max = 8;
  s.scale.concurrency = 10;
  s.scale.idle = Duration(300'000);
  model::ScheduleEntry bf;
  bf.name = "black-friday";
  bf.start = "2026-11-27 08:30";
  bf.end = "2026-11-27 14:00";
  bf.timezone = "America/Detroit";
  bf.min = 6;
  bf.max = 40;
  s.scale.schedule.push_back(bf);
  s.epoch = utc(2026, 11, 23, 5);  // 00:00 EST
  s.duration_s = 7 * 86400;
  s.cold_start_s = 2.0;
  s.service_mean_s = 0.2;
  auto rate = [](double t) {
    int day = static_cast<int>(t / 86400);
    double h = std::fmod(t, 86400) / 3600;
    double peak = day >= 5 ? 12.0 : 40.0;  // Sat, Sun quieter
    double r = 0.01;                       // nights: a request every ~100 s
    if (h >= 6) {
      double x = std::sin(M_PI * (h - 6) / 18);
      r += peak * x * x;
    }
    if (day == 4) {  // Black Friday
      double f = 1;
      if (h >= 9 && h < 9.25)
        f = 1 + 9 * (h - 9) / 0.25;
      else if (h >= 9.25 && h < 13)
        f = 10;
      else if (h >= 13 && h < 13.25)
        f = 10 - 9 * (h - 13) / 0.25;
      r *= f;
    }
    return r;
  };
  s.make = [rate, seed, d = s.duration_s, m = s.service_mean_s] {
    return std::make_unique<RateStream>(rate, d, m, seed);
  };
  return s;
}

// Bursts of 1,000 rps for 10 s onto a service at zero, at random times (mean gap 8 minutes).
Scenario bursts(uint64_t seed) {
  Scenario s;
  s.name = "bursts";
  s.description = "4 h, 1000 rps x 10 s bursts onto zero, mean gap 8 min";
  s.scale.min = 0;
  s.scale.max = 20;
  s.scale.concurrency = 10;
  s.scale.idle = Duration(300'000);
  s.epoch = utc(2026, 6, 1, 0);
  s.duration_s = 4 * 3600;
  s.cold_start_s = 2.0;
  s.service_mean_s = 0.05;
  auto starts = std::make_shared<std::vector<double>>();
  Rng rng(seed ^ 0xb0b5);
  for (double t = 60; t < s.duration_s - 20; t += 10 + rng.exponential(480)) starts->push_back(t);
  auto rate = [starts](double t) {
    auto it = std::upper_bound(starts->begin(), starts->end(), t);
    if (it == starts->begin()) return 0.0;
    return t < *(it - 1) + 10 ? 1000.0 : 0.0;
  };
  s.make = [rate, seed, d = s.duration_s, m = s.service_mean_s] {
    return std::make_unique<RateStream>(rate, d, m, seed);
  };
  return s;
}

// A spiky low-traffic API: short sessions of a few requests (seconds apart), sessions a few
// minutes apart, and a 30 s spike of 40 rps about every two hours.
Scenario spikyApi(uint64_t seed) {
  Scenario s;
  s.name = "spiky-api";
  s.description = "24 h, sessions (~6 req, 2 s apart) every ~3 min, 40 rps x 30 s spikes ~2 h";
  s.scale.min = 0;
  s.scale.max = 5;
  s.scale.concurrency = 4;
  s.scale.idle = Duration(300'000);
  s.epoch = utc(2026, 6, 1, 0);
  s.duration_s = 86400;
  s.cold_start_s = 1.0;
  s.service_mean_s = 0.1;
  auto times = std::make_shared<std::vector<double>>();
  Rng rng(seed ^ 0x5b1c);
  for (double t = rng.exponential(180); t < s.duration_s; t += rng.exponential(180)) {
    double u = t;
    do {
      times->push_back(u);
      u += rng.exponential(2.0);
    } while (rng.uniform() > 1.0 / 6 && u < s.duration_s);
  }
  for (double t = rng.exponential(7200); t < s.duration_s - 30; t += rng.exponential(7200)) {
    for (double u = t; u < t + 30; u += rng.exponential(1.0 / 40)) times->push_back(u);
  }
  std::sort(times->begin(), times->end());
  s.make = [times, seed, m = s.service_mean_s] {
    return std::make_unique<ListStream>(times, m, seed);
  };
  return s;
}

// --- CSV ----------------------------------------------------------------------------------

std::vector<std::string> splitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t");
  size_t b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Seconds since 1970 (or the number itself). nullopt if unparsable.
std::optional<double> parseTimestamp(const std::string& raw) {
  std::string s = trim(raw);
  if (s.empty()) return std::nullopt;
  bool numeric = s.find_first_not_of("0123456789.+-eE") == std::string::npos;
  if (numeric) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  }
  int y, mo, d, h, mi;
  double sec;
  char sep;
  if (std::sscanf(s.c_str(), "%d-%d-%d%c%d:%d:%lf", &y, &mo, &d, &sep, &h, &mi, &sec) != 7 ||
      (sep != ' ' && sep != 'T') || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      sec < 0 || sec >= 61) {
    return std::nullopt;
  }
  return static_cast<double>(
             toUnixMillis(utc(y, static_cast<unsigned>(mo), static_cast<unsigned>(d), h))) /
             1000 +
         mi * 60 + sec;
}

// --- policies -----------------------------------------------------------------------------

struct Obs {
  double concurrency = 0;  // average (in service + queued) over the tick
  double queued = 0;       // of which waiting for a slot
  int64_t arrivals = 0;
  int parked = 0;
  int ready = 0;
  int current = 0;  // ready + starting
  int min = 0;
  int max = 0;
};

class Controller {
 public:
  virtual ~Controller() = default;
  virtual int step(const Obs& o, double t, TimePoint now, bool tick) = 0;
  // When the controller wants to be stepped next although nothing happens (a planned change);
  // infinity: at ticks and at the hold-at-zero signal only.
  virtual double wakeAt() const { return INFINITY; }
};

class BatonController final : public Controller {
 public:
  // The node measures a service's cold start; here it is the scenario's.
  BatonController(const model::ScaleSpec& spec, const SimOptions& opt, double cold_start_s)
      : as_(params(spec, opt)), cold_start_(static_cast<int64_t>(cold_start_s * 1000)) {}
  static autoscaler::PolicyParams params(const model::ScaleSpec& spec, const SimOptions& opt) {
    autoscaler::PolicyParams p = autoscaler::PolicyParams::fromSpec(spec);
    if (opt.baton_penalty_s >= 0)
      p.cold_start_penalty = Duration(int64_t(opt.baton_penalty_s * 1000));
    if (opt.baton_min_idle_s >= 0) p.min_idle = Duration(int64_t(opt.baton_min_idle_s * 1000));
    auto dur = [](double s) { return Duration(static_cast<int64_t>(s * 1000)); };
    for (const auto& [k, v] : opt.baton_set) {
      if (k == "target_utilization")
        p.target_utilization = v;
      else if (k == "stable_window")
        p.stable_window = dur(v);
      else if (k == "panic_window")
        p.panic_window = dur(v);
      else if (k == "scale_down_window")
        p.scale_down_window = dur(v);
      else if (k == "scale_down_delay")
        p.scale_down_delay = dur(v);
      else if (k == "little_law")
        p.little_law = v != 0;
      else if (k == "adaptive_idle")
        p.adaptive_idle = v != 0;
      else if (k == "min_idle")
        p.min_idle = dur(v);
      else if (k == "fallback_idle")
        p.fallback_idle = dur(v);
      else if (k == "cold_start_penalty")
        p.cold_start_penalty = dur(v);
      else if (k == "tolerance")
        p.tolerance = v;
      else if (k == "max_scale_down_rate")
        p.max_scale_down_rate = v;
      else if (k == "rhythm")
        p.rhythm = v != 0;
    }
    return p;
  }
  int step(const Obs& o, double, TimePoint now, bool) override {
    autoscaler::Observation obs;
    obs.concurrency = o.concurrency;
    obs.arrivals = o.arrivals;
    obs.parked = o.parked;
    obs.queued = o.queued;
    obs.ready = o.ready;
    obs.desired = o.current;
    obs.min = o.min;
    obs.max = o.max;
    obs.cold_start = cold_start_;
    return as_.step(obs, now).desired;
  }

 private:
  autoscaler::Autoscaler as_;
  Duration cold_start_;
};

class StaticMax final : public Controller {
 public:
  int step(const Obs& o, double, TimePoint, bool) override { return o.max; }
};

// Kubernetes HPA (autoscaling/v2 defaults): every 15 s, desired = ceil(current * metric /
// target) unless |metric/target - 1| <= 0.1; scale-up at most max(100%, 4 pods) per period;
// scale-down stabilization 300 s (the max recommendation of the window); min 1.
class Hpa final : public Controller {
 public:
  explicit Hpa(const model::ScaleSpec& spec) : target_(spec.concurrency * 0.7) {}
  int step(const Obs& o, double t, TimePoint, bool tick) override {
    if (tick) {
      sum_ += o.concurrency;
      ++n_;
    }
    int lo = std::max(1, o.min);
    int hi = std::max(lo, o.max);
    if (desired_ == 0) desired_ = std::max(lo, o.current);
    if (tick && t >= next_) {
      next_ = t + 15;
      double avg = n_ > 0 ? sum_ / n_ : 0;
      sum_ = 0;
      n_ = 0;
      int current = desired_;
      // Kubernetes' replica calculator for a Pods metric: the average over the pods that report
      // it (ready ones); ceil(ratio * ready) outside the tolerance. Pods still starting report
      // nothing yet ("missing"): when scaling up they count as 0 and the ratio is recomputed over
      // all pods; if that falls back within the tolerance, no change.
      int ready = std::max(1, o.ready);
      int missing = std::max(0, current - o.ready);
      double ratio = avg / ready / target_;
      int rec = current;
      if (missing == 0 || ratio <= 1) {
        if (std::fabs(ratio - 1) > 0.1) rec = static_cast<int>(std::ceil(ratio * ready - 1e-9));
      } else {
        double all = avg / (ready + missing) / target_;
        if (all > 1.1) rec = static_cast<int>(std::ceil(all * (ready + missing) - 1e-9));
      }
      rec = std::min(rec, std::max(current * 2, current + 4));
      recs_.emplace_back(t, rec);
      while (!recs_.empty() && recs_.front().first <= t - 300) recs_.pop_front();
      if (rec < current) {
        for (const auto& r : recs_) rec = std::max(rec, r.second);
        rec = std::min(rec, current);
      }
      desired_ = rec;
    }
    desired_ = std::clamp(desired_, lo, hi);
    return desired_;
  }

 private:
  double target_;
  double sum_ = 0;
  int n_ = 0;
  double next_ = 0;
  int desired_ = 0;
  std::deque<std::pair<double, int>> recs_;
};

// Knative KPA defaults: every 2 s; stable 60 s and panic 6 s averages; target 70% of the
// container concurrency; panic when panic desired / ready >= 2 and for 60 s after; no
// scale-down in panic; scale-down at most halving, scale-up at most 1000x; scale to zero once
// the stable desired is 0 for the 30 s grace period; the activator pokes at once when a request
// is parked at zero.
class Kpa final : public Controller {
 public:
  explicit Kpa(const model::ScaleSpec& spec) : target_(spec.concurrency * 0.7) {}
  int step(const Obs& o, double t, TimePoint, bool tick) override {
    int lo = std::max(0, o.min);
    int hi = std::max(lo, o.max);
    if (tick) samples_.emplace_back(t, o.concurrency);
    while (!samples_.empty() && samples_.front().first <= t - 60) samples_.pop_front();
    if (o.parked > 0 && o.ready == 0) {  // activator
      desired_ = std::max(desired_, static_cast<int>(std::ceil(o.parked / target_ - 1e-9)));
      desired_ = std::clamp(std::max(1, desired_), lo, hi);
      zero_since_ = -1;
      return desired_;
    }
    if (!tick || t < next_) return std::clamp(desired_, lo, hi);
    next_ = t + 2;
    double stable = 0, panic = 0;
    int ns = 0, np = 0;
    for (const auto& [st, v] : samples_) {
      stable += v;
      ++ns;
      if (st > t - 6) {
        panic += v;
        ++np;
      }
    }
    stable = ns ? stable / ns : 0;
    panic = np ? panic / np : 0;
    double ready = std::max(1, o.ready);
    double dspc = std::ceil(stable / target_ - 1e-9);
    double dppc = std::ceil(panic / target_ - 1e-9);
    double up = std::ceil(1000 * ready);
    double down = o.ready > 0 ? std::floor(o.ready / 2.0) : 0;
    int ds = static_cast<int>(std::clamp(dspc, down, up));
    int dp = static_cast<int>(std::clamp(dppc, down, up));
    bool over = dppc / ready >= 2;
    if (panic_since_ < 0 && over) {
      panic_since_ = t;
      max_panic_ = o.ready;
    } else if (over) {
      panic_since_ = t;
    } else if (panic_since_ >= 0 && panic_since_ + 60 <= t) {
      panic_since_ = -1;
    }
    int d = ds;
    if (panic_since_ >= 0) {
      max_panic_ = std::max(max_panic_, dp);
      d = std::max(max_panic_, desired_);
    }
    if (d == 0 && desired_ > 0) {
      if (zero_since_ < 0) zero_since_ = t;
      if (t - zero_since_ < 30) d = 1;
    } else if (d > 0) {
      zero_since_ = -1;
    }
    desired_ = std::clamp(d, lo, hi);
    return desired_;
  }

 private:
  double target_;
  std::deque<std::pair<double, double>> samples_;
  double next_ = 0;
  double panic_since_ = -1;
  int max_panic_ = 0;
  double zero_since_ = -1;
  int desired_ = 0;
};

// Perfect foresight (sim.h): from the scenario's whole arrival stream, a plan of instance runs
// per level (the k-th instance is needed while more than (k - 1) x concurrency requests are in
// service); each run starts exactly one cold start before its level is needed and ends when the
// level is idle, unless the level is needed again within one cold start (bridging that gap costs
// no more than stopping and starting again). step() returns the planned count; wakeAt() makes the
// simulator apply each change at its exact time rather than at the next tick.
class Oracle final : public Controller {
 public:
  Oracle(const Scenario& sc, const autoscaler::Calendar& calendar) {
    const double cs = sc.cold_start_s;
    const int conc = std::max(1, sc.scale.concurrency);
    auto levelsFor = [conc](int busy) { return (busy + conc - 1) / conc; };
    // The largest start time whose instance is ready (start + cold start) by `need`, exactly
    // as the simulator adds it.
    auto startFor = [cs](double need) {
      double from = need - cs;
      while (from + cs > need) from = std::nextafter(from, -INFINITY);
      return from;
    };
    struct Level {
      bool open = false;     // a run is planned and not yet closed
      double need_from = 0;  // first need of the open run
      double last_end = 0;   // the open run's last need ended here
    };
    std::vector<Level> levels;
    std::vector<std::pair<double, int>> edges;  // (time, +1 run starts / -1 run ends)
    auto close = [&](const Level& l) {
      edges.emplace_back(startFor(l.need_from), +1);
      edges.emplace_back(l.last_end, -1);
    };
    int busy = 0;
    auto setBusy = [&](double t, int b) {
      const int before = levelsFor(busy), after = levelsFor(b);
      if (static_cast<size_t>(after) > levels.size()) levels.resize(static_cast<size_t>(after));
      for (int k = before; k < after; ++k) {  // level k + 1 needed from t
        Level& l = levels[static_cast<size_t>(k)];
        if (l.open && t - l.last_end <= cs) continue;  // bridged
        if (l.open) close(l);
        l.open = true;
        l.need_from = t;
      }
      for (int k = after; k < before; ++k) levels[static_cast<size_t>(k)].last_end = t;
      busy = b;
    };
    // Requests served FIFO at once while the max in force has a free slot, else when the
    // earliest one frees: the same discipline as the simulator's.
    using Event = std::pair<double, int>;  // (time, -1 a request ends / +1 starts): ends first
    std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
    std::priority_queue<double, std::vector<double>, std::greater<>> slots;  // busy until
    auto flush = [&](double until) {
      while (!events.empty() && events.top().first <= until) {
        auto [t, delta] = events.top();
        events.pop();
        setBusy(t, busy + delta);
      }
    };
    autoscaler::BoundsInForce bounds = calendar.at(sc.epoch);
    std::unique_ptr<ArrivalStream> stream = sc.make();
    double a = 0, service = 0;
    while (stream->next(a, service) && a < sc.duration_s) {
      flush(a);
      while (!slots.empty() && slots.top() <= a) slots.pop();
      const TimePoint now = sc.epoch + Duration(static_cast<int64_t>(std::llround(a * 1000)));
      if (bounds.until && now >= *bounds.until) bounds = calendar.at(now);
      const size_t cap = static_cast<size_t>(std::max(0, bounds.max)) * static_cast<size_t>(conc);
      if (cap == 0) continue;  // max 0: nothing may serve it
      double start = a;
      if (slots.size() >= cap) {
        start = slots.top();
        slots.pop();
      }
      slots.push(start + service);
      events.emplace(start, +1);
      events.emplace(start + service, -1);
    }
    flush(INFINITY);
    for (const Level& l : levels) {
      if (l.open) close(l);
    }
    std::sort(edges.begin(), edges.end());
    int count = 0;
    for (const auto& [t, delta] : edges) {
      count += delta;
      if (!plan_.empty() && plan_.back().first == t) {
        plan_.back().second = count;
      } else {
        plan_.emplace_back(t, count);
      }
    }
  }
  int step(const Obs& o, double t, TimePoint, bool) override {
    while (next_ < plan_.size() && plan_[next_].first <= t) count_ = plan_[next_++].second;
    const int lo = std::max(0, o.min);
    return std::clamp(count_, lo, std::max(lo, o.max));
  }
  double wakeAt() const override { return next_ < plan_.size() ? plan_[next_].first : INFINITY; }

 private:
  std::vector<std::pair<double, int>> plan_;  // (time, planned count from then on), ascending
  size_t next_ = 0;
  int count_ = 0;
};

std::unique_ptr<Controller> makeController(const std::string& name, const Scenario& sc,
                                           const SimOptions& opt,
                                           const autoscaler::Calendar& calendar) {
  if (name == "baton") return std::make_unique<BatonController>(sc.scale, opt, sc.cold_start_s);
  if (name == "static-max") return std::make_unique<StaticMax>();
  if (name == "hpa") return std::make_unique<Hpa>(sc.scale);
  if (name == "kpa") return std::make_unique<Kpa>(sc.scale);
  if (name == "oracle") return std::make_unique<Oracle>(sc, calendar);
  return nullptr;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::vector<std::string> builtinNames() { return {"shop-week", "bursts", "spiky-api"}; }

std::optional<Scenario> builtin(const std::string& name, uint64_t seed) {
  if (name == "shop-week") return shopWeek(seed);
  if (name == "bursts") return bursts(seed);
  if (name == "spiky-api") return spikyApi(seed);
  return std::nullopt;
}

std::vector<std::string> policyNames() { return {"baton", "static-max", "hpa", "kpa"}; }
std::vector<std::string> allPolicyNames() {
  return {"baton", "static-max", "hpa", "kpa", "oracle"};
}

std::vector<double> placeArrivals(const std::vector<int>& minute_labels,
                                  const std::vector<int64_t>& counts, bool timer, uint64_t seed,
                                  const std::string& function_hash) {
  Rng rng(fnv1a(std::to_string(seed) + ":" + function_hash));
  std::vector<double> out;
  std::vector<double> offsets;
  for (size_t i = 0; i < minute_labels.size() && i < counts.size(); ++i) {
    const int64_t k = counts[i];
    if (k <= 0) continue;
    const double start = (minute_labels[i] - 1) * 60.0;
    offsets.clear();
    for (int64_t j = 0; j < k; ++j) {
      offsets.push_back(timer ? static_cast<double>(j) * 60.0 / static_cast<double>(k)
                              : rng.uniform() * 60.0);
    }
    std::sort(offsets.begin(), offsets.end());
    for (double o : offsets) out.push_back(start + o);
  }
  return out;
}

// Reads a CSV file's header row (a UTF-8 byte order mark dropped) into `header`; false with
// `error` set when the file cannot be read or is empty.
bool openCsv(const std::string& path, std::ifstream& in, std::vector<std::string>& header,
             std::string& error) {
  if (!in) {
    error = "cannot open " + path;
    return false;
  }
  std::string line;
  if (!std::getline(in, line)) {
    error = path + ": empty file";
    return false;
  }
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
  header = splitCsv(line);
  return true;
}

LoadedFunctions loadFunctions(const std::string& invocations_path,
                              const std::string& durations_path, const TraceOptions& opt) {
  LoadedFunctions out;
  std::ifstream in(invocations_path);
  std::string line;
  std::vector<std::string> header;
  if (!openCsv(invocations_path, in, header, out.error)) return out;
  const std::vector<std::string> meta = {"HashOwner", "HashApp", "HashFunction", "Trigger"};
  if (header.size() < 5 ||
      !std::equal(meta.begin(), meta.end(), header.begin(),
                  [](const std::string& m, const std::string& h) { return m == trim(h); })) {
    out.error = invocations_path + ": expected the columns " +
                "HashOwner,HashApp,HashFunction,Trigger,<minutes...>";
    return out;
  }
  std::vector<int> minutes;
  for (size_t i = 4; i < header.size(); ++i) {
    char* end = nullptr;
    const std::string h = trim(header[i]);
    const long m = std::strtol(h.c_str(), &end, 10);
    if (h.empty() || *end != '\0' || m < 1 || (!minutes.empty() && m <= minutes.back())) {
      out.error = invocations_path + ": minute column " + std::to_string(i + 1) +
                  " is not an ascending minute number (\"" + h + "\")";
      return out;
    }
    minutes.push_back(static_cast<int>(m));
  }

  std::unordered_map<std::string, double> average_ms;  // by owner,app,function
  if (!durations_path.empty()) {
    std::ifstream din(durations_path);
    if (!din || !std::getline(din, line)) {
      out.error = "cannot read " + durations_path;
      return out;
    }
    const std::vector<std::string> dh = splitCsv(line);
    int avg = -1;
    for (size_t i = 0; i < dh.size(); ++i) {
      if (trim(dh[i]) == "Average") avg = static_cast<int>(i);
    }
    if (dh.size() < 3 || avg < 3) {
      out.error = durations_path + ": expected HashOwner,HashApp,HashFunction,...,Average,...";
      return out;
    }
    while (std::getline(din, line)) {
      const std::vector<std::string> f = splitCsv(line);
      if (f.size() <= static_cast<size_t>(avg)) continue;
      char* end = nullptr;
      const double v = std::strtod(f[static_cast<size_t>(avg)].c_str(), &end);
      if (end == f[static_cast<size_t>(avg)].c_str() || !std::isfinite(v)) continue;
      average_ms[f[0] + "," + f[1] + "," + f[2]] = v;
    }
  }

  const double lead = std::max(kFunctionsLeadSeconds, std::ceil(opt.cold_start_s));
  const double t0 = (minutes.front() - 1) * 60.0 - lead;  // seconds since midnight at t = 0
  const double duration = (minutes.back() - minutes.front() + 1) * 60.0 + lead;
  size_t row = 0;
  while (std::getline(in, line)) {
    if (trim(line).empty()) continue;
    const std::vector<std::string> f = splitCsv(line);
    if (f.size() < 4) {
      out.error = invocations_path + ": data row " + std::to_string(row) + " is too short";
      return out;
    }
    std::vector<int64_t> counts;
    for (size_t i = 4; i < f.size() && counts.size() < minutes.size(); ++i) {
      const std::string c = trim(f[i]);
      char* end = nullptr;
      const long long k = c.empty() ? 0 : std::strtoll(c.c_str(), &end, 10);
      if (!c.empty() && (*end != '\0' || k < 0)) {
        out.error = invocations_path + ": data row " + std::to_string(row) + ", minute " +
                    std::to_string(minutes[counts.size()]) + ": not a count (\"" + c + "\")";
        return out;
      }
      counts.push_back(k);
    }
    FunctionTrace ft;
    ft.row = row++;
    ft.hash = trim(f[2]);
    ft.trigger = trim(f[3]);
    auto d = average_ms.find(trim(f[0]) + "," + trim(f[1]) + "," + ft.hash);
    ft.has_duration = d != average_ms.end();
    ft.service_ms = ft.has_duration ? std::max(1.0, d->second) : opt.service_mean_s * 1000;
    auto times = std::make_shared<std::vector<double>>(
        placeArrivals(minutes, counts, ft.trigger == "timer", opt.seed, ft.hash));
    for (double& t : *times) t -= t0;
    ft.requests = times->size();
    Scenario& s = ft.scenario;
    s.name = "row " + std::to_string(ft.row);
    s.description =
        ft.trigger + " " + ft.hash.substr(0, 12) + ", " + std::to_string(ft.requests) + " requests";
    s.scale.min = opt.min;
    s.scale.max = opt.max;
    s.scale.concurrency = opt.concurrency;
    s.scale.idle = Duration(static_cast<int64_t>(opt.idle_s * 1000));
    s.epoch = fromUnixMillis(static_cast<int64_t>(std::llround(t0 * 1000)));
    s.duration_s = duration;
    s.cold_start_s = opt.cold_start_s;
    s.service_mean_s = ft.service_ms / 1000;
    s.make = [times, seed = fnv1a(std::to_string(opt.seed) + ":" + ft.hash + ":service"),
              m = s.service_mean_s] { return std::make_unique<ListStream>(times, m, seed); };
    out.functions.push_back(std::move(ft));
  }
  if (out.functions.empty()) out.error = invocations_path + ": no functions";
  return out;
}

LoadedTrace loadCsvTrace(const std::string& path, const TraceOptions& opt) {
  LoadedTrace out;
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> header;
  if (!openCsv(path, in, header, out.error)) return out;
  int col = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    std::string h = trim(header[i]);
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::toupper(c); });
    if (h == "TIMESTAMP") col = static_cast<int>(i);
  }
  if (col < 0) {
    out.error = path + ": no TIMESTAMP column in the header";
    return out;
  }
  auto times = std::make_shared<std::vector<double>>();
  while (std::getline(in, line)) {
    if (trim(line).empty()) continue;
    std::vector<std::string> f = splitCsv(line);
    std::optional<double> t;
    if (static_cast<size_t>(col) < f.size()) t = parseTimestamp(f[static_cast<size_t>(col)]);
    if (t) {
      times->push_back(*t);
    } else {
      ++out.skipped;
    }
  }
  if (times->empty()) {
    out.error = path + ": no parsable timestamps";
    return out;
  }
  std::sort(times->begin(), times->end());
  double t0 = times->front();
  for (double& t : *times) t -= t0;
  Scenario& s = out.scenario;
  std::string base =
      path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  s.name = base;
  s.description = std::to_string(times->size()) + " requests from " + path;
  s.scale.min = opt.min;
  s.scale.max = opt.max;
  s.scale.concurrency = opt.concurrency;
  s.scale.idle = Duration(static_cast<int64_t>(opt.idle_s * 1000));
  s.epoch = fromUnixMillis(static_cast<int64_t>(t0 * 1000));
  s.duration_s = times->back() + 1;
  s.cold_start_s = opt.cold_start_s;
  s.service_mean_s = opt.service_mean_s;
  s.make = [times, seed = opt.seed, m = opt.service_mean_s] {
    return std::make_unique<ListStream>(times, m, seed);
  };
  return out;
}

Result simulate(const Scenario& sc, const std::string& policy, const SimOptions& opt) {
  Result r;
  r.scenario = sc.name;
  r.policy = policy;
  autoscaler::Calendar calendar(sc.scale);
  std::unique_ptr<Controller> ctl = makeController(policy, sc, opt, calendar);
  if (!ctl) return r;
  std::unique_ptr<ArrivalStream> stream = sc.make();
  const int conc = std::max(1, sc.scale.concurrency);

  double t = 0;
  int ready = 0;
  int busy = 0;
  std::deque<double> starting;                                            // ready times, ascending
  std::deque<std::pair<double, double>> queue;                            // (arrival, service)
  std::priority_queue<double, std::vector<double>, std::greater<>> done;  // completions
  std::vector<uint64_t> hist(60'001, 0);                                  // waits, 1 ms buckets
  double conc_integral = 0;
  double queue_integral = 0;
  int64_t arrivals = 0;
  double next_tick = 0;
  uint64_t tick_index = 0;
  uint64_t hash = 1469598103934665603ull;
  int last_desired = -1;
  autoscaler::BoundsInForce bounds;
  bool have_bounds = false;

  double next_arrival = 0, next_service = 0;
  bool more = stream->next(next_arrival, next_service);
  const double end = sc.duration_s + opt.drain_s;

  auto current = [&] { return ready + static_cast<int>(starting.size()); };
  auto advance = [&](double to) {
    double dt = to - t;
    if (dt <= 0) return;
    conc_integral += (busy + static_cast<double>(queue.size())) * dt;
    queue_integral += static_cast<double>(queue.size()) * dt;
    int draining = busy > ready * conc ? (busy - ready * conc + conc - 1) / conc : 0;
    r.instance_seconds += (current() + draining) * dt;
    r.instance_s_by_hour[static_cast<size_t>(std::fmod(t, 86400) / 3600) % 24] +=
        (current() + draining) * dt;
    t = to;
  };
  auto serve = [&](double arrival, double service) {
    double wait = t - arrival;
    if (wait > 0.1) ++r.over_100ms;
    ++hist[static_cast<size_t>(std::min(60'000.0, wait * 1000))];
    ++r.served;
    ++busy;
    done.push(t + service);
  };
  auto dispatch = [&] {
    while (!queue.empty() && busy < ready * conc) {
      auto [a, s] = queue.front();
      queue.pop_front();
      if (t - a > opt.hold_timeout_s) {
        ++r.lost;
      } else {
        serve(a, s);
      }
    }
  };
  auto boundsNow = [&](TimePoint now) {
    if (!have_bounds || (bounds.until && now >= *bounds.until)) {
      bounds = calendar.at(now);
      have_bounds = true;
    }
    return bounds;
  };
  auto control = [&](bool tick) {
    TimePoint now = sc.epoch + Duration(static_cast<int64_t>(std::llround(t * 1000)));
    autoscaler::BoundsInForce b = boundsNow(now);
    Obs o;
    o.concurrency = tick ? conc_integral / opt.tick_s : busy + static_cast<double>(queue.size());
    o.queued = tick ? queue_integral / opt.tick_s : static_cast<double>(queue.size());
    o.arrivals = arrivals;
    o.parked = ready == 0 ? static_cast<int>(queue.size()) : 0;
    o.ready = ready;
    o.current = current();
    o.min = b.min;
    o.max = b.max;
    if (tick) {
      conc_integral = 0;
      queue_integral = 0;
      arrivals = 0;
    }
    int d = std::max(0, ctl->step(o, t, now, tick));
    int cur = current();
    for (int i = cur; i < d; ++i) {
      starting.push_back(t + sc.cold_start_s);
      ++r.starts;
    }
    for (int i = d; i < cur; ++i) {
      if (!starting.empty()) {
        starting.pop_back();
      } else {
        --ready;
      }
    }
    r.peak_instances = std::max(r.peak_instances, d);
    if (d != last_desired) {
      last_desired = d;
      for (uint64_t v : {tick_index, static_cast<uint64_t>(d)}) {
        hash = (hash ^ v) * 1099511628211ull;
      }
      if (opt.record_decisions) r.decisions.emplace_back(t, d);
    }
  };

  while (true) {
    double ta = more && next_arrival < sc.duration_s ? next_arrival : INFINITY;
    double tc = done.empty() ? INFINITY : done.top();
    double ts = starting.empty() ? INFINITY : starting.front();
    double tw = ctl->wakeAt();
    double tt = next_tick;
    double tn = std::min({ta, tc, ts, tw, tt});
    if (tn > end) break;
    advance(tn);
    if (tn == tc) {
      done.pop();
      --busy;
      dispatch();
    } else if (tn == ts) {
      starting.pop_front();
      ++ready;
      dispatch();
    } else if (tn == ta) {
      ++r.requests;
      ++arrivals;
      if (queue.empty() && busy < ready * conc) {
        serve(next_arrival, next_service);
      } else if (queue.size() >= opt.queue_limit) {
        ++r.lost;
      } else {
        if (ready == 0 && queue.empty()) {
          ++r.cold_starts;
          ++r.cold_starts_by_hour[static_cast<size_t>(std::fmod(t, 86400) / 3600) % 24];
        }
        queue.emplace_back(next_arrival, next_service);
        if (ready == 0 && starting.empty()) control(/*tick=*/false);  // hold-at-zero signal
      }
      more = stream->next(next_arrival, next_service);
    } else if (tn == tw) {
      control(/*tick=*/false);  // a planned change (the oracle's)
    } else {
      while (!queue.empty() && t - queue.front().first > opt.hold_timeout_s) {
        queue.pop_front();
        ++r.lost;
      }
      control(/*tick=*/true);
      ++tick_index;
      next_tick += opt.tick_s;
    }
  }
  r.lost += queue.size();
  r.decision_hash = hash;
  uint64_t target = static_cast<uint64_t>(std::ceil(0.99 * static_cast<double>(r.served)));
  uint64_t seen = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    seen += hist[i];
    if (seen >= target && target > 0) {
      r.p99_wait_ms = static_cast<double>(i);
      break;
    }
  }
  return r;
}

}  // namespace baton::autoscale_sim
