// IPv4 addresses as host-order integers and dotted quads: one parser and one formatter for the
// instance networks, the mesh's service addresses and DNS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace baton {

// 0xA9FE8007 -> "169.254.128.7".
inline std::string formatIpv4(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
         std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
}

// "169.254.128.7" -> 0xA9FE8007; nullopt unless exactly four parts of 1-3 digits, each <= 255,
// without leading zeros ("010" would be octal to some readers and decimal to others).
inline std::optional<uint32_t> parseIpv4(std::string_view text) {
  uint32_t ip = 0;
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
    const size_t start = i;
    uint32_t v = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 3) {
      v = v * 10 + static_cast<uint32_t>(text[i] - '0');
      ++i;
    }
    if (i == start || v > 255 || (i - start > 1 && text[start] == '0')) return std::nullopt;
    ip = (ip << 8) | v;
  }
  if (i != text.size()) return std::nullopt;
  return ip;
}

}  // namespace baton
