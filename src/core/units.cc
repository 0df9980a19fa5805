#include "core/units.h"

#include <array>
#include <limits>
#include <utility>

namespace baton {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Reads an unsigned integer at text[pos...]; false on no digits or overflow.
bool readNumber(std::string_view text, size_t& pos, uint64_t& out) {
  size_t start = pos;
  out = 0;
  while (pos < text.size() && isDigit(text[pos])) {
    uint64_t digit = static_cast<uint64_t>(text[pos] - '0');
    if (out > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    out = out * 10 + digit;
    ++pos;
  }
  return pos > start;
}

bool mulChecked(uint64_t a, uint64_t b, uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 5> kUnits{{
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}}};
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  uint64_t total = 0;
  while (pos < text.size()) {
    uint64_t n = 0;
    if (!readNumber(text, pos, n)) return std::nullopt;
    size_t unit_start = pos;
    while (pos < text.size() && !isDigit(text[pos])) ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    bool found = false;
    for (const auto& [name, ms] : kUnits) {
      if (unit == name) {
        uint64_t part = 0;
        if (!mulChecked(n, ms, part)) return std::nullopt;
        if (total > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - part) {
          return std::nullopt;
        }
        total += part;
        found = true;
        break;
      }
    }
    if (!found) return std::nullopt;
  }
  return Duration(static_cast<int64_t>(total));
}

std::optional<uint64_t> parseBytes(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 9> kUnits{{
      {"", 1},
      {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
      {"kB", 1000ull}, {"MB", 1000'000ull}, {"GB", 1000'000'000ull}, {"TB", 1000'000'000'000ull}}};
  size_t pos = 0;
  uint64_t n = 0;
  if (!readNumber(text, pos, n)) return std::nullopt;
  std::string_view unit = text.substr(pos);
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) {
      uint64_t out = 0;
      if (!mulChecked(n, mult, out)) return std::nullopt;
      if (out > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return out;
    }
  }
  return std::nullopt;
}

std::string formatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  static constexpr std::array<std::pair<const char*, int64_t>, 4> kUnits{{
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}}};
  for (const auto& [name, unit] : kUnits) {
    if (ms >= unit) {
      out += std::to_string(ms / unit) + name;
      ms %= unit;
    }
  }
  if (ms > 0) out += std::to_string(ms) + "ms";
  return out;
}

std::string formatBytes(uint64_t bytes) {
  static constexpr std::array<std::pair<const char*, uint64_t>, 4> kUnits{{
      {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}}};
  for (const auto& [name, unit] : kUnits) {
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + name;
  }
  return std::to_string(bytes);
}

}  // namespace baton
