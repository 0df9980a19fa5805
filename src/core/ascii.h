// ASCII case folding for protocol text (header names, tokens, schemes): the locale must never
// matter, and these run on the gateway's hot path.
#pragma once

#include <string>
#include <string_view>

namespace baton {

constexpr char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

inline std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lowerAscii(c);
  return out;
}

// Case-insensitive (ASCII) equality.
constexpr bool iequalsAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
  }
  return true;
}

// Whether `s` starts with `prefix`, ignoring ASCII case.
constexpr bool istartsWithAscii(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequalsAscii(s.substr(0, prefix.size()), prefix);
}

}  // namespace baton
