// Why an identity check failed, as a value (STYLE.md: errors are values with a per-module enum).
// AuthOr<T> is a T or an AuthError; it mirrors baton::Result but carries a Reason the gateway
// maps to a status code and a WWW-Authenticate error. Messages never contain the token, a
// claim value taken from the token, or key material: they are safe to log and to send.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace baton::auth {

enum class Reason {
  kMissing,             // no credentials presented
  kMalformed,           // not a well-formed compact JWS / claims set / API key
  kTooLarge,            // token above the size bound
  kUnsupported,         // JWE, `crit` header, unsupported feature
  kAlgNotAllowed,       // alg not pinned for the provider, `none`, HS*, unknown
  kKeyMismatch,         // the selected key cannot verify this alg (wrong type / curve / key alg)
  kUnknownKid,          // no key with this kid (or no kid and not exactly one key fits)
  kKeysUnavailable,     // the provider has no usable key set (JWKS never loaded)
  kBadSignature,        // the signature does not verify
  kExpired,             // exp (+ skew) has passed
  kNotYetValid,         // nbf or iat in the future (beyond skew)
  kWrongIssuer,         // iss missing or not the provider's issuer
  kWrongAudience,       // aud missing or contains none of the provider's audiences
  kInvalidKey,          // API key unknown or its secret does not match
  kInsufficientClaims,  // verified, but a route's claim rule is not met (403)
  kMisconfigured,       // route names an unknown provider, API keys not configured, ...
};

// "bad_signature", "unknown_kid", ...: stable names for logs and metrics.
const char* reasonName(Reason reason);

struct AuthError {
  Reason reason = Reason::kMalformed;
  std::string message;  // what was expected; safe to log and to show to the client
};

template <typename T>
class [[nodiscard]] AuthOr {
 public:
  AuthOr(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  AuthOr(AuthError error) : v_(std::move(error)) {}  // NOLINT
  AuthOr(Reason reason, std::string message) : v_(AuthError{reason, std::move(message)}) {}

  bool isOk() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return isOk(); }
  T& value() & {
    assert(isOk());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(isOk());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(isOk());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const AuthError& error() const {
    assert(!isOk());
    return std::get<AuthError>(v_);
  }
  Reason reason() const { return error().reason; }

 private:
  std::variant<T, AuthError> v_;
};

}  // namespace baton::auth
