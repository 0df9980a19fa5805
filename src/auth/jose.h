// JOSE parsing (RFC 7515 compact JWS, RFC 7519 claims): a small, strict module fuzzed by
// auth_fuzz. It only parses; signatures are verified by jwt.cc through OpenSSL.
//
// Strictness:
//  - base64url: alphabet [A-Za-z0-9_-] only, no padding ('=' is rejected, as RFC 7515 §2 omits
//    it), no whitespace, length % 4 != 1, and the unused low bits of the last character must be
//    zero (one encoding per byte string: no signature malleability).
//  - JSON: nlohmann-json's non-throwing parser (UTF-8 validated), nesting depth bounded before
//    parsing, the header and the claims set must be objects.
//  - Registered claims have their RFC 7519 types (iss/sub strings, aud string or array of
//    strings, exp/nbf/iat numbers within [0, 1e11]); anything else is kMalformed.
//
// Thread safety: every function is pure and may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_error.h"

namespace baton::auth {

inline constexpr size_t kMaxTokenBytes = 16 * 1024;
inline constexpr int kMaxJsonDepth = 16;

std::string base64urlEncode(std::string_view bytes);
// Strict decode (see above); nullopt on any deviation.
std::optional<std::string> base64urlDecode(std::string_view text);
// Whether the nesting of objects/arrays in `json` stays within `max_depth` (strings honoured).
// A cheap pre-check so that no recursive JSON routine sees deep input.
bool jsonDepthWithin(std::string_view json, int max_depth);

// A claim value, flattened for rules and forwarding (no JSON types in the public API).
struct ClaimValue {
  enum class Kind { kString, kNumber, kBool, kNull, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;                // kString: the string; others: compact JSON text
  std::vector<std::string> items;  // kArray: elements (strings as is, others as JSON text)
};

// A verified claims set. Times are seconds since the Unix epoch.
struct Claims {
  std::string iss;
  std::string sub;
  std::vector<std::string> aud;  // a string aud becomes one element
  std::optional<int64_t> exp;
  std::optional<int64_t> nbf;
  std::optional<int64_t> iat;
  std::map<std::string, ClaimValue, std::less<>> values;  // every claim, registered ones too

  const ClaimValue* find(std::string_view name) const {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second;
  }
};

struct JwsHeader {
  std::string alg;
  std::optional<std::string> kid;
};

// A compact JWS split and its header decoded. Views point into the token passed to
// parseCompactJws, which must outlive this value.
struct ParsedJws {
  JwsHeader header;
  std::string_view signing_input;  // "<b64 header>.<b64 payload>", the bytes that are signed
  std::string payload;             // decoded payload (JSON text, not yet parsed)
  std::string signature;           // decoded signature bytes (may be empty)
};

// Splits a compact JWS (exactly three parts; five parts = JWE -> kUnsupported), decodes the
// parts and parses the header: `alg` string required, `kid` string if present, `crit`, `enc`,
// `zip` and `b64` refused (kUnsupported). `jwk`, `jku`, `x5u`, `x5c` are ignored: keys only
// ever come from the provider's JWKS. Tokens above `max_bytes` -> kTooLarge.
AuthOr<ParsedJws> parseCompactJws(std::string_view token, size_t max_bytes = kMaxTokenBytes);

// Parses a claims set (the JWS payload) with the type rules above.
AuthOr<Claims> parseClaims(std::string_view payload_json);

}  // namespace baton::auth
