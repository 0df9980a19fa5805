// Strict parsing of the manifest's units. Pure.
//   durations: "250ms", "10s", "5m", "2h", "1d", and sums such as "1h30m"; no spaces, no
//              fractions, no bare numbers.
//   sizes:     "128MiB", "1GiB", "512KiB", "100MB", "1GB", "4096" (bytes); binary (KiB, MiB,
//              GiB, TiB) and decimal (kB, MB, GB, TB) suffixes, integers only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace baton {

// nullopt when `text` is not a valid duration (or overflows).
std::optional<Duration> parseDuration(std::string_view text);
// nullopt when `text` is not a valid size (or overflows 2^63).
std::optional<uint64_t> parseBytes(std::string_view text);

// "1h30m", "250ms", "0s".
std::string formatDuration(Duration d);
// "128MiB" when exact, otherwise bytes.
std::string formatBytes(uint64_t bytes);

}  // namespace baton
