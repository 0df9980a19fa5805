// JWT verification (RFC 7519 over RFC 7515 compact JWS) against a provider's key set.
//
// Order of checks (each failure is a Reason, see auth_error.h):
//  1. size bound, three-part compact form (JWE refused), strict base64url, header object,
//     `crit`/`b64`/`enc`/`zip` refused                                    (jose.h)
//  2. alg: `none`, HS* and unknown names are always refused; the alg must be pinned in
//     VerifierConfig::algorithms                                          -> kAlgNotAllowed
//  3. key: by kid (no key with that kid -> kUnknownKid; a key with that kid that cannot verify
//     the alg -> kKeyMismatch); without kid, exactly one key must fit the alg
//  4. signature, by OpenSSL (ES256/ES384 raw r||s converted to DER; PS* with salt = hash
//     length)                                                             -> kBadSignature
//  5. claims, only once the signature holds: iss exact, aud contains a configured audience,
//     exp required, nbf and iat honoured, all with clock_skew
//
// Thread safety: verifyJwt is reentrant; a KeySet may be shared by concurrent calls.
#pragma once

#include <chrono>
#include <string>
#include <optional>
#include <string_view>
#include <vector>

#include "auth/auth_error.h"
#include "auth/jose.h"
#include "auth/jwks.h"
#include "core/clock.h"
#include "core/result.h"

namespace baton::spec {
struct IdentityProvider;
}

namespace baton::auth {

struct VerifierConfig {
  std::string issuer;                  // exact match with `iss`
  std::vector<std::string> audiences;  // `aud` must contain one of them
  std::vector<Alg> algorithms;         // pinned
  std::chrono::seconds clock_skew{60};
  size_t max_token_bytes = kMaxTokenBytes;

  // From baton.toml's [[identity]]: issuer and audiences must be non-empty, algorithms must be
  // non-empty and each one a supported asymmetric alg (so "HS256" or "none" is a config error).
  static Result<VerifierConfig> fromSpec(const spec::IdentityProvider& spec);
};

AuthOr<Claims> verifyJwt(std::string_view token, const VerifierConfig& cfg, const KeySet& keys,
                         TimePoint now);

// The time checks of verifyJwt alone (exp required; exp, nbf, iat with cfg.clock_skew): what a
// cached verification must still pass on every use. nullopt when they hold.
std::optional<AuthError> checkValidityTimes(const Claims& claims, const VerifierConfig& cfg,
                                            TimePoint now);

// The signature check alone (step 4), for tests and benchmarks: true iff `signature` is a
// valid `alg` signature of `signing_input` under `key`.
bool verifySignature(Alg alg, EVP_PKEY* key, std::string_view signing_input,
                     std::string_view signature);

}  // namespace baton::auth
