// ASCII case folding for protocol text (header names, tokens, schemes): the locale must never
// matter, and these run on the gateway's hot path. And percent-encoding for URLs we build.
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

// Percent-encodes everything but RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~): a
// query value or a path segment of a URL this program builds.
inline std::string percentEncode(std::string_view s) {
  static constexpr const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace baton
