// Names of apps and services, as the manifest allows them and as DNS labels carry them.
#pragma once

#include <string_view>

namespace baton::model {

// [a-z][a-z0-9-]{0,62}: a DNS label, lowercase, starting with a letter.
inline bool isValidName(std::string_view s) {
  if (s.empty() || s.size() > 63 || s[0] < 'a' || s[0] > 'z') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

inline constexpr std::string_view kNameRule =
    "a name of 1 to 63 characters: a-z, 0-9 and '-', starting with a letter";

}  // namespace baton::model
