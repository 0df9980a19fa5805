#include "auth/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <nlohmann/json.hpp>

#include "auth/jose.h"

namespace baton::auth {
namespace {

using nlohmann::json;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PctxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using PctxPtr = std::unique_ptr<EVP_PKEY_CTX, PctxFree>;

// Result of importing one key; an error message without key material.
struct Imported {
  PkeyPtr pkey;
  std::string error;
};

Imported fail(std::string msg) {
  ERR_clear_error();
  return {nullptr, std::move(msg)};
}

// Decodes a required base64url member.
std::optional<std::string> member(const json& k, const char* name, std::string* error) {
  auto it = k.find(name);
  if (it == k.end() || !it->is_string()) {
    *error = std::string("missing string \"") + name + "\"";
    return std::nullopt;
  }
  auto bytes = base64urlDecode(it->get_ref<const std::string&>());
  if (!bytes || bytes->empty()) {
    *error = std::string("\"") + name + "\" is not non-empty base64url";
    return std::nullopt;
  }
  return bytes;
}

PkeyPtr fromData(const char* type, OSSL_PARAM* params) {
  PctxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return nullptr;
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) return nullptr;
  return PkeyPtr(raw);
}

Imported importRsa(const json& k) {
  std::string error;
  auto n = member(k, "n", &error);
  if (!n) return fail(error);
  auto e = member(k, "e", &error);
  if (!e) return fail(error);
  if (n->size() > kMaxRsaBits / 8 + 1) return fail("RSA modulus larger than 8192 bits");
  if (e->size() > 8) return fail("RSA exponent too large");
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                       static_cast<int>(n->size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                       static_cast<int>(e->size()), nullptr));
  if (!bn_n || !bn_e) return fail("cannot read RSA parameters");
  if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()))
    return fail("RSA exponent is not odd and > 1");
  if (BN_num_bits(bn_n.get()) < kMinRsaBits) return fail("RSA key shorter than 2048 bits");
  if (BN_num_bits(bn_n.get()) > kMaxRsaBits) return fail("RSA modulus larger than 8192 bits");
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return fail("cannot build RSA parameters");
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) return fail("cannot build RSA parameters");
  PkeyPtr pkey = fromData("RSA", params.get());
  if (!pkey) return fail("OpenSSL refused the RSA key");
  return {std::move(pkey), {}};
}

Imported importEc(const json& k, Curve crv) {
  std::string error;
  auto x = member(k, "x", &error);
  if (!x) return fail(error);
  auto y = member(k, "y", &error);
  if (!y) return fail(error);
  size_t len = crv == Curve::kP256 ? 32 : 48;
  if (x->size() != len || y->size() != len) {
    return fail("EC coordinates must be " + std::to_string(len) + " bytes");
  }
  std::string point;
  point.reserve(1 + 2 * len);
  point.push_back('\x04');  // uncompressed point (SEC 1 §2.3.3)
  point += *x;
  point += *y;
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  const char* group = crv == Curve::kP256 ? "prime256v1" : "secp384r1";
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return fail("cannot build EC parameters");
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) return fail("cannot build EC parameters");
  PkeyPtr pkey = fromData("EC", params.get());
  if (!pkey) return fail("EC point is not on the curve");
  PctxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return fail("EC public key check failed");
  return {std::move(pkey), {}};
}

Imported importEd25519(const json& k) {
  std::string error;
  auto x = member(k, "x", &error);
  if (!x) return fail(error);
  if (x->size() != 32) return fail("Ed25519 \"x\" must be 32 bytes");
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key_ex(
      nullptr, "ED25519", nullptr, reinterpret_cast<const unsigned char*>(x->data()), x->size()));
  if (!pkey) return fail("OpenSSL refused the Ed25519 key");
  return {std::move(pkey), {}};
}

}  // namespace

void PkeyDeleter::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }

std::optional<Alg> algFromName(std::string_view name) {
  static constexpr std::pair<std::string_view, Alg> kAlgs[] = {
      {"RS256", Alg::kRS256}, {"RS384", Alg::kRS384}, {"RS512", Alg::kRS512},
      {"PS256", Alg::kPS256}, {"PS384", Alg::kPS384}, {"PS512", Alg::kPS512},
      {"ES256", Alg::kES256}, {"ES384", Alg::kES384}, {"EdDSA", Alg::kEdDSA},
  };
  for (const auto& [n, a] : kAlgs) {
    if (n == name) return a;
  }
  return std::nullopt;
}

const char* algName(Alg alg) {
  switch (alg) {
    case Alg::kRS256:
      return "RS256";
    case Alg::kRS384:
      return "RS384";
    case Alg::kRS512:
      return "RS512";
    case Alg::kPS256:
      return "PS256";
    case Alg::kPS384:
      return "PS384";
    case Alg::kPS512:
      return "PS512";
    case Alg::kES256:
      return "ES256";
    case Alg::kES384:
      return "ES384";
    case Alg::kEdDSA:
      return "EdDSA";
  }
  return "?";
}

bool Jwk::fits(Alg a) const {
  if (alg && *alg != a) return false;
  switch (a) {
    case Alg::kRS256:
    case Alg::kRS384:
    case Alg::kRS512:
    case Alg::kPS256:
    case Alg::kPS384:
    case Alg::kPS512:
      return kty == KeyType::kRsa;
    case Alg::kES256:
      return kty == KeyType::kEc && crv == Curve::kP256;
    case Alg::kES384:
      return kty == KeyType::kEc && crv == Curve::kP384;
    case Alg::kEdDSA:
      return kty == KeyType::kOkp && crv == Curve::kEd25519;
  }
  return false;
}

Result<KeySet> parseJwks(std::string_view json_text) {
  if (json_text.size() > kMaxJwksBytes) return invalidArgument("JWKS larger than 256 KiB");
  if (!jsonDepthWithin(json_text, kMaxJsonDepth)) return invalidArgument("JWKS nested too deeply");
  json doc = json::parse(json_text.begin(), json_text.end(), nullptr, false, false);
  if (doc.is_discarded() || !doc.is_object()) return invalidArgument("JWKS is not a JSON object");
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) {
    return invalidArgument("JWKS has no \"keys\" array");
  }
  if (keys->size() > kMaxJwksKeys) return invalidArgument("JWKS has more than 100 keys");

  KeySet set;
  for (size_t i = 0; i < keys->size(); ++i) {
    const json& k = (*keys)[i];
    auto where = [&](const std::string& what) {
      return invalidArgument("JWKS key " + std::to_string(i) + ": " + what);
    };
    if (!k.is_object()) return where("not a JSON object");
    auto kty = k.find("kty");
    if (kty == k.end() || !kty->is_string()) return where("missing string \"kty\"");
    const auto& kty_s = kty->get_ref<const std::string&>();

    Jwk jwk;
    for (const char* opt : {"kid", "use", "alg", "crv"}) {
      auto it = k.find(opt);
      if (it != k.end() && !it->is_string())
        return where(std::string("\"") + opt + "\" is not a string");
    }
    if (auto it = k.find("use"); it != k.end()) {
      jwk.use = it->get<std::string>();
      if (jwk.use != "sig") continue;  // an encryption key: not ours to use
    }
    if (kty_s != "RSA" && kty_s != "EC" && kty_s != "OKP") continue;  // "oct", unknown: ignored
    for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
      if (k.contains(priv)) return where("contains private key material; publish public keys only");
    }
    if (auto it = k.find("kid"); it != k.end()) jwk.kid = it->get<std::string>();
    std::string crv = k.contains("crv") ? k["crv"].get<std::string>() : std::string();

    Imported imp;
    if (kty_s == "RSA") {
      jwk.kty = KeyType::kRsa;
      imp = importRsa(k);
    } else if (kty_s == "EC") {
      jwk.kty = KeyType::kEc;
      if (crv == "P-256") {
        jwk.crv = Curve::kP256;
      } else if (crv == "P-384") {
        jwk.crv = Curve::kP384;
      } else {
        return where("EC curve must be P-256 or P-384");
      }
      imp = importEc(k, jwk.crv);
    } else {
      jwk.kty = KeyType::kOkp;
      if (crv != "Ed25519") return where("OKP curve must be Ed25519");
      jwk.crv = Curve::kEd25519;
      imp = importEd25519(k);
    }
    if (!imp.pkey) return where(imp.error);
    jwk.pkey = std::move(imp.pkey);
    jwk.bits = EVP_PKEY_get_bits(jwk.pkey.get());

    if (auto it = k.find("alg"); it != k.end()) {
      jwk.alg = algFromName(it->get_ref<const std::string&>());
      if (!jwk.alg) return where("\"alg\" is not a supported signature algorithm");
      Alg a = *jwk.alg;
      jwk.alg.reset();  // check the type fit without the key's own alg
      if (!jwk.fits(a)) return where("\"alg\" does not fit the key type");
      jwk.alg = a;
    }
    for (const auto& other : set.keys) {
      if (other.kid == jwk.kid && other.kty == jwk.kty && other.crv == jwk.crv) {
        return where(jwk.kid.empty() ? "repeats a key type without a kid"
                                     : "repeats kid \"" + jwk.kid + "\" for the same key type");
      }
    }
    set.keys.push_back(std::move(jwk));
  }
  return set;
}

}  // namespace baton::auth
