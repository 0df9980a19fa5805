#include "autoscaler/calendar.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>

#include "spec/calendar.h"

namespace baton::autoscaler {

struct Calendar::Entry {
  std::string name;
  std::optional<int> min;
  std::optional<int> max;
  bool recurring = false;
  TimePoint start{};  // one-off
  TimePoint end{};
  spec::CronExpr cron;  // recurring
  Duration duration{0};
  const date::time_zone* zone = nullptr;
};

namespace {

using date::local_days;
using date::local_seconds;
using std::chrono::hours;
using std::chrono::minutes;

const date::time_zone* findZone(const std::string& name) {
  try {
    return date::locate_zone(name.empty() ? "UTC" : name);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// Local wall time -> instant. Nonexistent (spring forward): the instant the clock jumps.
// Ambiguous (fall back): the earliest of the two instants. Monotonic non-decreasing.
TimePoint toSys(const date::time_zone* zone, local_seconds lt) {
  date::local_info info = zone->get_info(lt);
  date::sys_seconds s;
  if (info.result == date::local_info::nonexistent) {
    s = info.first.end;
  } else {
    s = date::sys_seconds{lt.time_since_epoch() - info.first.offset};
  }
  return std::chrono::time_point_cast<Duration>(s);
}

bool dayMatches(const spec::CronExpr& c, local_days day) {
  date::year_month_day ymd{day};
  if (!c.months[static_cast<unsigned>(ymd.month())]) return false;
  bool dom = c.days_of_month[static_cast<unsigned>(ymd.day())];
  bool dow = c.days_of_week[date::weekday{day}.c_encoding()];
  if (!c.dom_any && !c.dow_any) return dom || dow;  // Vixie cron: either day field
  return dom && dow;
}

constexpr int kMaxDaysForward = 366 * 8 + 2;
// Largest |UTC offset change| worth of slack when mapping `now` to local minutes.
constexpr hours kSlack{3};

// The cron match (as an instant) nearest to `now` in the given direction: forward, the first
// with instant > now; backward, the last with instant <= now, searching back at most
// `max_back_days` days.
std::optional<TimePoint> findCron(const Calendar::Entry& e, TimePoint now, bool forward,
                                  int max_back_days) {
  auto now_s = std::chrono::floor<std::chrono::seconds>(now);
  local_seconds local_now = e.zone->to_local(now_s);
  auto anchor = std::chrono::floor<minutes>(local_now) + (forward ? -kSlack : kSlack);
  local_days day0 = std::chrono::floor<date::days>(anchor);
  int m0 = static_cast<int>((anchor - day0).count());  // minute of day
  int limit = forward ? kMaxDaysForward : max_back_days;
  for (int k = 0; k <= limit; ++k) {
    local_days day = forward ? day0 + date::days{k} : day0 - date::days{k};
    if (!dayMatches(e.cron, day)) continue;
    if (forward) {
      int h0 = k == 0 ? m0 / 60 : 0;
      for (int h = h0; h < 24; ++h) {
        if (!e.cron.hours[static_cast<size_t>(h)]) continue;
        int mi0 = (k == 0 && h == h0) ? m0 % 60 : 0;
        for (int mi = mi0; mi < 60; ++mi) {
          if (!e.cron.minutes[static_cast<size_t>(mi)]) continue;
          TimePoint t = toSys(e.zone, local_seconds{day} + hours{h} + minutes{mi});
          if (t > now) return t;
        }
      }
    } else {
      int h0 = k == 0 ? m0 / 60 : 23;
      for (int h = h0; h >= 0; --h) {
        if (!e.cron.hours[static_cast<size_t>(h)]) continue;
        int mi0 = (k == 0 && h == h0) ? m0 % 60 : 59;
        for (int mi = mi0; mi >= 0; --mi) {
          if (!e.cron.minutes[static_cast<size_t>(mi)]) continue;
          TimePoint t = toSys(e.zone, local_seconds{day} + hours{h} + minutes{mi});
          if (t <= now) return t;
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Calendar::Calendar(const model::ScaleSpec& spec) : min_(spec.min), max_(spec.max) {
  for (size_t i = 0; i < spec.schedule.size(); ++i) {
    const model::ScheduleEntry& s = spec.schedule[i];
    auto e = std::make_shared<Entry>();
    e->name = s.name.empty() ? "#" + std::to_string(i + 1) : s.name;
    e->min = s.min;
    e->max = s.max;
    e->zone = findZone(s.timezone);
    if (e->zone == nullptr) continue;
    if (!s.cron.empty()) {
      Result<spec::CronExpr> cron = spec::parseCron(s.cron);
      if (!cron.isOk() || !s.duration || *s.duration <= Duration(0)) continue;
      e->recurring = true;
      e->cron = *cron;
      e->duration = *s.duration;
    } else {
      auto start = spec::parseLocalDateTime(s.start);
      auto end = spec::parseLocalDateTime(s.end);
      if (!start || !end) continue;
      e->start = toSys(e->zone, local_seconds{std::chrono::seconds{start->seconds}});
      e->end = toSys(e->zone, local_seconds{std::chrono::seconds{end->seconds}});
      if (e->end <= e->start) continue;
    }
    entries_.push_back(std::move(e));
  }
}

std::optional<Calendar::Window> Calendar::activeWindow(size_t i, TimePoint now) const {
  const Entry& e = *entries_.at(i);
  if (!e.recurring) {
    if (e.start <= now && now < e.end) return Window{e.start, e.end};
    return std::nullopt;
  }
  int back_days = static_cast<int>(e.duration / hours{24}) + 2;
  auto s = findCron(e, now, /*forward=*/false, back_days);
  if (s && now < *s + e.duration) return Window{*s, *s + e.duration};
  return std::nullopt;
}

std::optional<TimePoint> Calendar::nextStart(size_t i, TimePoint now) const {
  const Entry& e = *entries_.at(i);
  if (!e.recurring) {
    if (e.start > now) return e.start;
    return std::nullopt;
  }
  return findCron(e, now, /*forward=*/true, 0);
}

BoundsInForce Calendar::at(TimePoint now) const {
  BoundsInForce b;
  b.min = min_;
  b.max = max_;
  std::string names;
  auto earlier = [&](std::optional<TimePoint> t) {
    if (t && *t > now && (!b.until || *t < *b.until)) b.until = t;
  };
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = *entries_[i];
    if (auto w = activeWindow(i, now)) {
      if (e.min) b.min = *e.min;
      if (e.max) b.max = *e.max;
      if (e.min || e.max) names += (names.empty() ? "" : ",") + e.name;
      earlier(w->end);
    }
    earlier(nextStart(i, now));
  }
  if (!names.empty()) b.source = "schedule:" + names;
  b.min = std::max(0, b.min);
  if (b.max < b.min) b.max = b.min;
  return b;
}

BoundsInForce boundsAt(const model::ScaleSpec& spec, TimePoint now) {
  return Calendar(spec).at(now);
}

}  // namespace baton::autoscaler
