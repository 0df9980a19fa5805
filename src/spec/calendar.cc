#include "spec/calendar.h"

#include <date/date.h>
#include <date/tz.h>

#include <array>
#include <cctype>
#include <vector>

namespace baton::spec {
namespace {

struct FieldDef {
  const char* name;
  int lo;
  int hi;
  const char* const* names;  // nullptr or (hi - lo + 1) names, for `lo`..
  const char* expect;
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"};

constexpr std::array<FieldDef, 5> kFields{{
    {"minute", 0, 59, nullptr, "0-59"},
    {"hour", 0, 23, nullptr, "0-23"},
    {"day-of-month", 1, 31, nullptr, "1-31"},
    {"month", 1, 12, kMonthNames, "1-12 or JAN-DEC"},
    {"day-of-week", 0, 7, kDayNames, "0-7 or SUN-SAT"},
}};

Status fieldError(const FieldDef& f, std::string_view part, const std::string& why) {
  return invalidArgument(std::string(f.name) + ": \"" + std::string(part) + "\": " + why);
}

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A single value: digits or a name. Sets `out` or returns an error message.
std::optional<std::string> readValue(const FieldDef& f, std::string_view s, int& out) {
  if (allDigits(s)) {
    if (s.size() > 3) return "value " + std::string(s) + " out of range " + f.expect;
    int v = 0;
    for (char c : s) v = v * 10 + (c - '0');
    if (v < f.lo || v > f.hi) return "value " + std::to_string(v) + " out of range " + f.expect;
    out = v;
    return std::nullopt;
  }
  if (f.names != nullptr && s.size() == 3) {
    std::string up;
    for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int i = 0; i <= f.hi - f.lo; ++i) {
      if (up == f.names[i]) {
        out = f.lo + i;
        return std::nullopt;
      }
    }
  }
  return "unknown value \"" + std::string(s) + "\" (expected " + f.expect + ")";
}

Status parseField(const FieldDef& f, std::string_view text, std::vector<bool>& bits, bool& any) {
  any = text == "*";
  if (text.empty()) return invalidArgument(std::string(f.name) + ": empty field");
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string_view part = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) return fieldError(f, text, "empty list element");
    std::string_view base = part;
    int step = 1;
    bool has_step = false;
    if (size_t slash = part.find('/'); slash != std::string_view::npos) {
      base = part.substr(0, slash);
      std::string_view s = part.substr(slash + 1);
      if (!allDigits(s) || s.size() > 3) return fieldError(f, part, "step must be a number");
      step = 0;
      for (char c : s) step = step * 10 + (c - '0');
      if (step < 1 || step > f.hi - f.lo + 1) {
        return fieldError(f, part, "step must be from 1 to " + std::to_string(f.hi - f.lo + 1));
      }
      has_step = true;
    }
    int lo = f.lo;
    int hi = f.hi;
    if (base == "*") {
      // whole range
    } else if (size_t dash = base.find('-'); dash != std::string_view::npos) {
      if (auto e = readValue(f, base.substr(0, dash), lo)) return fieldError(f, part, *e);
      if (auto e = readValue(f, base.substr(dash + 1), hi)) return fieldError(f, part, *e);
      if (lo > hi) return fieldError(f, part, "range start is after its end");
    } else {
      if (auto e = readValue(f, base, lo)) return fieldError(f, part, *e);
      hi = has_step ? f.hi : lo;
    }
    for (int v = lo; v <= hi; v += step) bits[static_cast<size_t>(v)] = true;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return Status::ok();
}

std::vector<std::string_view> splitSpaces(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

}  // namespace

Result<CronExpr> parseCron(std::string_view text) {
  std::vector<std::string_view> fields = splitSpaces(text);
  if (fields.size() != 5) {
    return invalidArgument("has " + std::to_string(fields.size()) +
                           " fields, expected 5 (minute hour day-of-month month day-of-week)");
  }
  CronExpr out;
  std::array<std::vector<bool>, 5> bits;
  std::array<bool, 5> any{};
  for (size_t i = 0; i < 5; ++i) {
    bits[i].assign(static_cast<size_t>(kFields[i].hi) + 1, false);
    Status s = parseField(kFields[i], fields[i], bits[i], any[i]);
    if (!s.isOk()) return s;
  }
  for (size_t v = 0; v < 60; ++v) out.minutes[v] = bits[0][v];
  for (size_t v = 0; v < 24; ++v) out.hours[v] = bits[1][v];
  for (size_t v = 1; v < 32; ++v) out.days_of_month[v] = bits[2][v];
  for (size_t v = 1; v < 13; ++v) out.months[v] = bits[3][v];
  for (size_t v = 0; v < 7; ++v) out.days_of_week[v] = bits[4][v];
  if (bits[4][7]) out.days_of_week[0] = true;
  out.dom_any = any[2];
  out.dow_any = any[4];
  // A day-of-month restriction alone (day-of-week `*`) must be reachable in a selected month.
  if (out.dow_any && !out.dom_any) {
    static constexpr std::array<int, 13> kMaxDays{0,  31, 29, 31, 30, 31, 30,
                                                  31, 31, 30, 31, 30, 31};
    bool reachable = false;
    for (size_t m = 1; m < 13 && !reachable; ++m) {
      if (!out.months[m]) continue;
      for (int d = 1; d <= kMaxDays[m]; ++d) {
        if (out.days_of_month[static_cast<size_t>(d)]) {
          reachable = true;
          break;
        }
      }
    }
    if (!reachable) return invalidArgument("never matches: no selected month has the selected day");
  }
  return out;
}

std::optional<LocalDateTime> parseLocalDateTime(std::string_view text) {
  // YYYY-MM-DD HH:MM[:SS]
  if (text.size() != 16 && text.size() != 19) return std::nullopt;
  auto digits = [&](size_t pos, size_t n, int& out) {
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!digits(0, 4, y) || text[4] != '-' || !digits(5, 2, mo) || text[7] != '-' ||
      !digits(8, 2, d) || text[10] != ' ' || !digits(11, 2, h) || text[13] != ':' ||
      !digits(14, 2, mi)) {
    return std::nullopt;
  }
  if (text.size() == 19 && (text[16] != ':' || !digits(17, 2, s))) return std::nullopt;
  if (h > 23 || mi > 59 || s > 59) return std::nullopt;
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)},
                           date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  int64_t days = date::sys_days{ymd}.time_since_epoch().count();
  return LocalDateTime{days * 86400 + h * 3600 + mi * 60 + s};
}

bool isKnownTimeZone(std::string_view name) {
  if (name.empty()) return false;
  try {
    return date::locate_zone(name) != nullptr;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace baton::spec
