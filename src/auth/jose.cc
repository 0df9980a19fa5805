#include "auth/jose.h"

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "model/json.h"

namespace baton::auth {
namespace {

using nlohmann::json;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> makeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kDecode = makeDecodeTable();

constexpr int64_t kMaxNumericDate = 100'000'000'000;  // year ~5138; beyond is not a date

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ClaimValue toClaimValue(const json& j) {
  ClaimValue v;
  switch (j.type()) {
    case json::value_t::string:
      v.kind = ClaimValue::Kind::kString;
      v.text = j.get_ref<const std::string&>();
      break;
    case json::value_t::boolean:
      v.kind = ClaimValue::Kind::kBool;
      v.text = dumpJson(j);
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      v.kind = ClaimValue::Kind::kNumber;
      v.text = dumpJson(j);
      break;
    case json::value_t::array:
      v.kind = ClaimValue::Kind::kArray;
      v.text = dumpJson(j);
      v.items.reserve(j.size());
      for (const auto& e : j) {
        v.items.push_back(e.is_string() ? e.get_ref<const std::string&>() : dumpJson(e));
      }
      break;
    case json::value_t::object:
      v.kind = ClaimValue::Kind::kObject;
      v.text = dumpJson(j);
      break;
    default:
      v.kind = ClaimValue::Kind::kNull;
      v.text = "null";
      break;
  }
  return v;
}

// NumericDate (RFC 7519 §2): a JSON number, possibly non-integer; truncated to seconds.
std::optional<int64_t> numericDate(const json& j) {
  if (j.is_number_unsigned()) {
    auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(kMaxNumericDate)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) {
    auto i = j.get<int64_t>();
    if (i < 0 || i > kMaxNumericDate) return std::nullopt;
    return i;
  }
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (!std::isfinite(d) || d < 0 || d > static_cast<double>(kMaxNumericDate)) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

// Parses a JSON object with the depth bound; nullopt when not an object.
std::optional<json> parseObject(std::string_view text) {
  if (!jsonDepthWithin(text, kMaxJsonDepth)) return std::nullopt;
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false,
                       /*ignore_comments=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

const char* reasonName(Reason reason) {
  switch (reason) {
    case Reason::kMissing:
      return "missing";
    case Reason::kMalformed:
      return "malformed";
    case Reason::kTooLarge:
      return "too_large";
    case Reason::kUnsupported:
      return "unsupported";
    case Reason::kAlgNotAllowed:
      return "alg_not_allowed";
    case Reason::kKeyMismatch:
      return "key_mismatch";
    case Reason::kUnknownKid:
      return "unknown_kid";
    case Reason::kKeysUnavailable:
      return "keys_unavailable";
    case Reason::kBadSignature:
      return "bad_signature";
    case Reason::kExpired:
      return "expired";
    case Reason::kNotYetValid:
      return "not_yet_valid";
    case Reason::kWrongIssuer:
      return "wrong_issuer";
    case Reason::kWrongAudience:
      return "wrong_audience";
    case Reason::kInvalidKey:
      return "invalid_key";
    case Reason::kInsufficientClaims:
      return "insufficient_claims";
    case Reason::kMisconfigured:
      return "misconfigured";
  }
  return "unknown";
}

std::string base64urlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  auto b = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t n = b(i) << 16;
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t n = (b(i) << 16) | (b(i + 1) << 8);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> base64urlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int8_t v = kDecode[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits (2 or 4) must be zero: exactly one encoding per byte string.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

bool jsonDepthWithin(std::string_view text, int max_depth) {
  return model::checkJsonDepth(text, max_depth).isOk();
}

AuthOr<ParsedJws> parseCompactJws(std::string_view token, size_t max_bytes) {
  if (token.empty()) return {Reason::kMissing, "no token"};
  if (token.size() > max_bytes) {
    return {Reason::kTooLarge, "token larger than " + std::to_string(max_bytes) + " bytes"};
  }
  size_t dots = 0;
  for (char c : token) dots += (c == '.');
  if (dots == 4) return {Reason::kUnsupported, "encrypted tokens (JWE) are not accepted"};
  if (dots != 2) return {Reason::kMalformed, "token is not a compact JWS (three parts)"};
  size_t d1 = token.find('.');
  size_t d2 = token.find('.', d1 + 1);
  std::string_view h64 = token.substr(0, d1);
  std::string_view p64 = token.substr(d1 + 1, d2 - d1 - 1);
  std::string_view s64 = token.substr(d2 + 1);
  if (h64.empty() || p64.empty()) return {Reason::kMalformed, "token has an empty part"};

  auto header_text = base64urlDecode(h64);
  if (!header_text) return {Reason::kMalformed, "header is not base64url"};
  auto payload = base64urlDecode(p64);
  if (!payload) return {Reason::kMalformed, "payload is not base64url"};
  auto signature = base64urlDecode(s64);
  if (!signature) return {Reason::kMalformed, "signature is not base64url"};

  auto header = parseObject(*header_text);
  if (!header) return {Reason::kMalformed, "header is not a JSON object"};
  if (header->contains("crit"))
    return {Reason::kUnsupported, "critical header parameters are not supported"};
  if (header->contains("enc") || header->contains("zip")) {
    return {Reason::kUnsupported, "encrypted tokens (JWE) are not accepted"};
  }
  if (header->contains("b64"))
    return {Reason::kUnsupported, "unencoded payloads are not supported"};

  ParsedJws out;
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string()) {
    return {Reason::kMalformed, "header has no string \"alg\""};
  }
  out.header.alg = alg->get<std::string>();
  auto kid = header->find("kid");
  if (kid != header->end()) {
    if (!kid->is_string()) return {Reason::kMalformed, "header \"kid\" is not a string"};
    out.header.kid = kid->get<std::string>();
  }
  out.signing_input = token.substr(0, d2);
  out.payload = std::move(*payload);
  out.signature = std::move(*signature);
  return out;
}

AuthOr<Claims> parseClaims(std::string_view payload_json) {
  auto j = parseObject(payload_json);
  if (!j) return {Reason::kMalformed, "claims set is not a JSON object"};
  Claims c;
  for (auto it = j->begin(); it != j->end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "iss" || name == "sub") {
      if (!v.is_string()) return {Reason::kMalformed, "claim \"" + name + "\" is not a string"};
      (name == "iss" ? c.iss : c.sub) = v.get<std::string>();
    } else if (name == "aud") {
      if (v.is_string()) {
        c.aud.push_back(v.get<std::string>());
      } else if (v.is_array()) {
        for (const auto& e : v) {
          if (!e.is_string()) return {Reason::kMalformed, "claim \"aud\" has a non-string element"};
          c.aud.push_back(e.get<std::string>());
        }
      } else {
        return {Reason::kMalformed, "claim \"aud\" is neither a string nor an array"};
      }
    } else if (name == "exp" || name == "nbf" || name == "iat") {
      auto t = numericDate(v);
      if (!t) return {Reason::kMalformed, "claim \"" + name + "\" is not a valid NumericDate"};
      (name == "exp" ? c.exp : name == "nbf" ? c.nbf : c.iat) = *t;
    }
    c.values.emplace(name, toClaimValue(v));
  }
  return c;
}

}  // namespace baton::auth
