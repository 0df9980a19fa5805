#include "auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>

#include "spec/agent_config.h"

namespace baton::auth {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct SigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

// Digests fetched once (explicit fetch: no per-call provider lookup).
const EVP_MD* digest(const char* name) { return EVP_MD_fetch(nullptr, name, nullptr); }
const EVP_MD* sha256() {
  static const EVP_MD* md = digest("SHA256");
  return md;
}
const EVP_MD* sha384() {
  static const EVP_MD* md = digest("SHA384");
  return md;
}
const EVP_MD* sha512() {
  static const EVP_MD* md = digest("SHA512");
  return md;
}

const EVP_MD* digestFor(Alg alg) {
  switch (alg) {
    case Alg::kRS256:
    case Alg::kPS256:
    case Alg::kES256:
      return sha256();
    case Alg::kRS384:
    case Alg::kPS384:
    case Alg::kES384:
      return sha384();
    case Alg::kRS512:
    case Alg::kPS512:
      return sha512();
    case Alg::kEdDSA:
      return nullptr;
  }
  return nullptr;
}

// JWS ECDSA signatures are r||s, each the curve's byte length (RFC 7518 §3.4); OpenSSL wants
// DER. Returns empty on a wrong length.
std::string rawToDer(std::string_view raw, size_t coord_len) {
  if (raw.size() != 2 * coord_len) return {};
  std::unique_ptr<ECDSA_SIG, SigFree> sig(ECDSA_SIG_new());
  if (!sig) return {};
  auto p = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(p, static_cast<int>(coord_len), nullptr);
  BIGNUM* s = BN_bin2bn(p + coord_len, static_cast<int>(coord_len), nullptr);
  if (!r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return {};
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return {};
  std::string der(static_cast<size_t>(len), '\0');
  auto out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return {};
  return der;
}

bool isPss(Alg a) { return a == Alg::kPS256 || a == Alg::kPS384 || a == Alg::kPS512; }

bool verifyImpl(Alg alg, EVP_PKEY* key, std::string_view input, std::string_view signature) {
  std::string der;
  if (alg == Alg::kES256 || alg == Alg::kES384) {
    der = rawToDer(signature, alg == Alg::kES256 ? 32 : 48);
    if (der.empty()) return false;
    signature = der;
  }
  if (signature.empty()) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  const EVP_MD* md = digestFor(alg);
  if (alg != Alg::kEdDSA && md == nullptr) return false;
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) != 1) return false;
  if (isPss(alg)) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
      return false;
    }
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
}

}  // namespace

bool verifySignature(Alg alg, EVP_PKEY* key, std::string_view signing_input,
                     std::string_view signature) {
  bool ok = key != nullptr && verifyImpl(alg, key, signing_input, signature);
  if (!ok) ERR_clear_error();  // failures leave entries on this thread's error queue
  return ok;
}

Result<VerifierConfig> VerifierConfig::fromSpec(const spec::IdentityProvider& spec) {
  VerifierConfig cfg;
  const std::string where = "identity provider \"" + spec.name + "\": ";
  if (spec.issuer.empty()) return invalidArgument(where + "issuer is required");
  if (spec.audiences.empty()) return invalidArgument(where + "at least one audience is required");
  if (spec.algorithms.empty()) return invalidArgument(where + "algorithms must be pinned");
  cfg.issuer = spec.issuer;
  cfg.audiences = spec.audiences;
  for (const auto& name : spec.algorithms) {
    auto alg = algFromName(name);
    if (!alg) {
      return invalidArgument(where + "algorithm \"" + name +
                             "\" is not supported (RS256/384/512, PS256/384/512, ES256, ES384, "
                             "EdDSA; no HMAC, no none)");
    }
    cfg.algorithms.push_back(*alg);
  }
  return cfg;
}

std::optional<AuthError> checkValidityTimes(const Claims& c, const VerifierConfig& cfg,
                                            TimePoint now) {
  if (!c.exp) return AuthError{Reason::kMalformed, "token has no exp"};
  const int64_t now_ms = toUnixMillis(now);
  const int64_t skew_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.clock_skew).count();
  if (now_ms >= *c.exp * 1000 + skew_ms) return AuthError{Reason::kExpired, "token expired"};
  if (c.nbf && now_ms + skew_ms < *c.nbf * 1000) {
    return AuthError{Reason::kNotYetValid, "token not valid yet (nbf)"};
  }
  if (c.iat && now_ms + skew_ms < *c.iat * 1000) {
    return AuthError{Reason::kNotYetValid, "token issued in the future (iat)"};
  }
  return std::nullopt;
}

AuthOr<Claims> verifyJwt(std::string_view token, const VerifierConfig& cfg, const KeySet& keys,
                         TimePoint now) {
  auto parsed = parseCompactJws(token, cfg.max_token_bytes);
  if (!parsed) return parsed.error();
  const ParsedJws& jws = parsed.value();

  // 2. Algorithm: only pinned asymmetric algorithms. "none" and HS* never map to an Alg.
  auto alg = algFromName(jws.header.alg);
  if (!alg) return {Reason::kAlgNotAllowed, "token algorithm is not accepted"};
  if (std::find(cfg.algorithms.begin(), cfg.algorithms.end(), *alg) == cfg.algorithms.end()) {
    return {Reason::kAlgNotAllowed,
            std::string("algorithm ") + algName(*alg) + " is not allowed for this provider"};
  }

  // 3. Key selection.
  const Jwk* key = nullptr;
  if (jws.header.kid) {
    bool kid_seen = false;
    for (const auto& k : keys.keys) {
      if (k.kid != *jws.header.kid) continue;
      kid_seen = true;
      if (k.fits(*alg)) {
        key = &k;
        break;
      }
    }
    if (!key) {
      if (kid_seen) {
        return {Reason::kKeyMismatch,
                std::string("the key named by kid cannot verify ") + algName(*alg)};
      }
      return {Reason::kUnknownKid, "no key with the token's kid"};
    }
  } else {
    size_t fitting = 0;
    for (const auto& k : keys.keys) {
      if (k.fits(*alg)) {
        key = &k;
        ++fitting;
      }
    }
    if (fitting != 1) {
      if (fitting == 0) {
        return {Reason::kKeyMismatch, std::string("no key can verify ") + algName(*alg)};
      }
      return {Reason::kUnknownKid, "token has no kid and several keys fit"};
    }
  }

  // 4. Signature.
  if (!verifySignature(*alg, key->pkey.get(), jws.signing_input, jws.signature)) {
    return {Reason::kBadSignature, "signature does not verify"};
  }

  // 5. Claims.
  auto claims = parseClaims(jws.payload);
  if (!claims) return claims.error();
  const Claims& c = claims.value();
  if (c.iss.empty() && !c.find("iss")) return {Reason::kWrongIssuer, "token has no iss"};
  if (c.iss != cfg.issuer) return {Reason::kWrongIssuer, "token issuer is not the provider's"};
  if (c.aud.empty()) return {Reason::kWrongAudience, "token has no aud"};
  bool aud_ok = false;
  for (const auto& a : c.aud) {
    if (std::find(cfg.audiences.begin(), cfg.audiences.end(), a) != cfg.audiences.end()) {
      aud_ok = true;
      break;
    }
  }
  if (!aud_ok) return {Reason::kWrongAudience, "token audience is not accepted"};
  if (auto err = checkValidityTimes(c, cfg, now)) return std::move(*err);
  return std::move(claims).value();
}

}  // namespace baton::auth
