// FNV-1a (64-bit): a fast, stable hash for identities and names (a spec's version, a label, an
// interface name). Not a security boundary: use OpenSSL where an attacker chooses the input and
// collisions matter.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace baton {

constexpr uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// The hash as 16 lower-case hex digits.
inline std::string fnv1a64Hex(std::string_view s) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(fnv1a64(s)));
  return out;
}

}  // namespace baton
