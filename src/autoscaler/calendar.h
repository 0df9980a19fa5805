// The schedule calendar (issue 4): which min/max bounds are in force at an instant, given a
// service's scale spec and its [[scale.schedule]] entries. Pure, no I/O; the tz database is read
// through howardhinnant-date (the system's zoneinfo).
//
// Semantics (README.md "Calendar"):
//   * One-off entry: active on [start, end), both local wall times in the entry's time zone.
//   * Recurring entry: each cron match (a local wall-clock minute in the zone) starts a window
//     of `duration` real (elapsed) time.
//   * DST: a local time that does not exist (spring forward, e.g. 02:30 in America/Detroit on
//     the second Sunday of March) maps to the instant the clock jumps (03:00 local); a local time
//     that occurs twice (fall back) maps to its EARLIEST occurrence, so a cron fires once.
//   * Entries layer in order over the manifest's min/max: each active entry overrides the
//     bounds it sets, so the last matching entry wins. If the result has min > max, max is
//     raised to min. Entries that fail to parse (bad cron, unknown zone) are skipped.
//
// Thread safety: a Calendar is immutable after construction; at() is const and thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "model/app.h"

namespace baton::autoscaler {

struct BoundsInForce {
  int min = 0;
  int max = 0;
  std::string source = "manifest";  // or "schedule:<name>" (",<name>" for each further entry)
  std::optional<TimePoint> until;   // next instant the answer may change; nullopt: never
  bool operator==(const BoundsInForce&) const = default;
};

class Calendar {
 public:
  explicit Calendar(const model::ScaleSpec& spec);
  BoundsInForce at(TimePoint now) const;

  // For tests and `baton ps`: the active window of entry `i` containing `now`, if any.
  struct Window {
    TimePoint start;
    TimePoint end;
  };
  std::optional<Window> activeWindow(size_t i, TimePoint now) const;
  // The first window start of entry `i` strictly after `now`, if any (within ~8 years).
  std::optional<TimePoint> nextStart(size_t i, TimePoint now) const;
  size_t entries() const { return entries_.size(); }

  struct Entry;  // parsed entry (calendar.cc)

 private:
  int min_;
  int max_;
  std::vector<std::shared_ptr<const Entry>> entries_;
};

// Convenience: Calendar(spec).at(now).
BoundsInForce boundsAt(const model::ScaleSpec& spec, TimePoint now);

}  // namespace baton::autoscaler
