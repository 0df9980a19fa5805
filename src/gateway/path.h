// The one form of a request's path that the gateway routes on and forwards (RFC 3986 §6.2.2
// syntax-based normalization, with Boost.URL). Pure; no I/O.
//
// normalizeTarget() takes an origin-form target ("/path?query") and:
//  - refuses (so that no backend can read the path differently from the route that matched it)
//    a backslash, `;` (path parameters), `%2F` / `%5C` (encoded separators) and `%00` in the
//    path, and any target that is not valid origin-form (bad percent-encoding, raw non-ASCII,
//    a fragment);
//  - merges repeated slashes ("//admin" -> "/admin");
//  - decodes percent-encoded characters that a path may hold unencoded ("%61" -> "a", "%7E" ->
//    "~", "%2B" -> "+"; Boost.URL decodes sub-delimiters too) and upper-cases the remaining
//    percent-encodings' hex digits; a `;` that this decoding produces ("%3B") is refused like a
//    raw one;
//  - removes dot segments, also encoded ones, and ".." above the root ("/x/../a", "/%2e%2e/a"
//    -> "/a").
// The query is kept as sent (validated). The result is what routing sees and what the backend
// receives.
#pragma once

#include <string>
#include <string_view>

namespace baton::gateway {

enum class PathError {
  kNone,
  kSyntax,        // not origin-form
  kEncodedSlash,  // %2F
  kBackslash,     // "\" or %5C
  kSemicolon,     // ";" in the path
  kNul,           // %00
};
const char* pathErrorText(PathError e);

// Writes the normalized target to `*out` (its capacity is reused).
PathError normalizeTarget(std::string_view target, std::string* out);

}  // namespace baton::gateway
