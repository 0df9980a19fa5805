// JWKS (RFC 7517) -> verification keys, imported into OpenSSL once so that each token costs
// only the signature check.
//
// Accepted keys: kty "RSA" (n, e; 2048..8192 bits), "EC" (crv P-256 or P-384, x, y of the
// curve's full length, point checked on the curve), "OKP" (crv Ed25519, x of 32 bytes). `kid`,
// `alg` and `use` are optional strings; `alg`, if present, must be one that the key type can
// verify, and `use`, if present, must be "sig". Keys with another kty ("oct", ...) or with
// use "enc" are skipped (RFC 7517 §5: ignore what is not understood); a key of a known type
// that is malformed, carries private parameters (`d`, `p`, ...), repeats a (kid, kty) pair, or
// is too weak fails the whole set with a message naming the key's index. Bounds: the document
// <= 256 KiB, <= 100 keys.
//
// Thread safety: a KeySet is immutable after parseJwks; share it through
// shared_ptr<const KeySet>. EVP_PKEY objects are used read-only and may verify concurrently.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace baton::auth {

inline constexpr size_t kMaxJwksBytes = 256 * 1024;
inline constexpr size_t kMaxJwksKeys = 100;
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;

enum class KeyType { kRsa, kEc, kOkp };
enum class Curve { kNone, kP256, kP384, kEd25519 };

// The JWS algorithms Baton verifies. There is deliberately no HMAC and no "none".
enum class Alg { kRS256, kRS384, kRS512, kPS256, kPS384, kPS512, kES256, kES384, kEdDSA };

// "RS256" -> Alg::kRS256; nullopt for anything else (including "none" and "HS256").
std::optional<Alg> algFromName(std::string_view name);
const char* algName(Alg alg);

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct Jwk {
  std::string kid;  // empty when absent
  KeyType kty = KeyType::kRsa;
  Curve crv = Curve::kNone;
  std::optional<Alg> alg;  // the key's own `alg`, if it names one
  std::string use;         // "" or "sig"
  int bits = 0;            // key size (RSA modulus, curve order)
  PkeyPtr pkey;

  // Whether this key may verify `a`: the type and curve fit (RS*/PS* <-> RSA, ES256 <-> P-256,
  // ES384 <-> P-384, EdDSA <-> Ed25519) and the key's own alg, if any, is `a`.
  bool fits(Alg a) const;
};

struct KeySet {
  std::vector<Jwk> keys;
};

// Parses a JWKS document (see the rules above). Errors: kInvalidArgument with what was wrong.
Result<KeySet> parseJwks(std::string_view json_text);

}  // namespace baton::auth
