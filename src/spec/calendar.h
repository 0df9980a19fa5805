// The calendar syntax of schedule entries (DESIGN.md §1, [[services.X.scale.schedule]]):
// 5-field cron expressions and "YYYY-MM-DD HH:MM[:SS]" local date-times. Pure; thread-safe.
// The manifest parser uses these to validate; the schedule calendar can use them to evaluate.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace baton::spec {

// A parsed cron expression: the set of allowed values per field.
//   minute 0-59 · hour 0-23 · day-of-month 1-31 · month 1-12 (JAN-DEC) · day-of-week 0-6
//   (SUN-SAT; 7 is also Sunday). Each field: `*`, N, N-M, lists "a,b", steps "*/n", "N-M/n",
//   "N/n" (N to the field's maximum). Names are case-insensitive.
// As in Vixie cron, when both day fields are restricted a day matches if either matches.
struct CronExpr {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // bit 0 unused
  std::bitset<13> months;         // bit 0 unused
  std::bitset<7> days_of_week;    // 0 = Sunday
  bool dom_any = false;           // the day-of-month field was `*`
  bool dow_any = false;           // the day-of-week field was `*`
};

// An InvalidArgument status whose message names the field and what is wrong, e.g.
// `day-of-week: unknown name "FRY" (expected SUN-SAT or 0-7)`.
Result<CronExpr> parseCron(std::string_view text);

// A wall-clock instant with no zone: seconds since 1970-01-01 00:00:00 of the same calendar.
struct LocalDateTime {
  int64_t seconds = 0;
  bool operator==(const LocalDateTime&) const = default;
  auto operator<=>(const LocalDateTime&) const = default;
};

// "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS", a real calendar date, 24-hour time. nullopt
// otherwise.
std::optional<LocalDateTime> parseLocalDateTime(std::string_view text);

// True when `name` is an IANA time zone known to the system's tz database ("Europe/Berlin").
bool isKnownTimeZone(std::string_view name);

}  // namespace baton::spec
