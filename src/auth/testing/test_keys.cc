#include "auth/testing/test_keys.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "auth/jose.h"

namespace baton::auth::testing {
namespace {

using nlohmann::json;

[[noreturn]] void die(const char* what) {
  fprintf(stderr, "test_keys: %s failed\n", what);
  std::abort();
}

std::string b64(const unsigned char* p, size_t n) {
  return base64urlEncode(std::string_view(reinterpret_cast<const char*>(p), n));
}

std::string bnParam(EVP_PKEY* k, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) die(name);
  int len = pad > 0 ? pad : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(len), '\0');
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len) != len) die("bn2bin");
  BN_free(bn);
  return base64urlEncode(out);
}

std::string finish(json j, const std::string& kid) {
  if (!kid.empty()) j["kid"] = kid;
  return j.dump();
}

}  // namespace

TestKey makeRsaKey(std::string kid, int bits) {
  TestKey k;
  k.kid = std::move(kid);
  k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
  if (!k.pkey) die("RSA keygen");
  k.jwk_json = finish({{"kty", "RSA"},
                       {"n", bnParam(k.pkey.get(), OSSL_PKEY_PARAM_RSA_N, 0)},
                       {"e", bnParam(k.pkey.get(), OSSL_PKEY_PARAM_RSA_E, 0)}},
                      k.kid);
  return k;
}

TestKey makeEcKey(std::string kid, const char* group) {
  TestKey k;
  k.kid = std::move(kid);
  const bool p256 = std::string_view(group) == "P-256";
  k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", p256 ? "P-256" : "P-384"));
  if (!k.pkey) die("EC keygen");
  int len = p256 ? 32 : 48;
  k.jwk_json = finish({{"kty", "EC"},
                       {"crv", p256 ? "P-256" : "P-384"},
                       {"x", bnParam(k.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, len)},
                       {"y", bnParam(k.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, len)}},
                      k.kid);
  return k;
}

TestKey makeEd25519Key(std::string kid) {
  TestKey k;
  k.kid = std::move(kid);
  k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!k.pkey) die("Ed25519 keygen");
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(k.pkey.get(), raw, &len) != 1) die("raw public key");
  k.jwk_json = finish({{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", b64(raw, len)}}, k.kid);
  return k;
}

std::string jwksOf(const std::vector<const TestKey*>& keys) {
  json arr = json::array();
  for (const auto* k : keys) arr.push_back(json::parse(k->jwk_json));
  return json{{"keys", arr}}.dump();
}

std::string signJwt(std::string_view header_json, std::string_view payload_json, Alg alg,
                    EVP_PKEY* key) {
  std::string input = base64urlEncode(header_json) + "." + base64urlEncode(payload_json);
  const EVP_MD* md = nullptr;
  switch (alg) {
    case Alg::kRS256:
    case Alg::kPS256:
    case Alg::kES256:
      md = EVP_sha256();
      break;
    case Alg::kRS384:
    case Alg::kPS384:
    case Alg::kES384:
      md = EVP_sha384();
      break;
    case Alg::kRS512:
    case Alg::kPS512:
      md = EVP_sha512();
      break;
    case Alg::kEdDSA:
      md = nullptr;
      break;
  }
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key) != 1) die("DigestSignInit");
  if (alg == Alg::kPS256 || alg == Alg::kPS384 || alg == Alg::kPS512) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
      die("PSS setup");
    }
  }
  size_t len = 0;
  auto in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1) die("DigestSign size");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     input.size()) != 1) {
    die("DigestSign");
  }
  sig.resize(len);
  if (alg == Alg::kES256 || alg == Alg::kES384) {  // DER -> r||s
    int n = alg == Alg::kES256 ? 32 : 48;
    auto p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (!es) die("d2i_ECDSA_SIG");
    std::string raw(static_cast<size_t>(2 * n), '\0');
    auto out = reinterpret_cast<unsigned char*>(raw.data());
    BN_bn2binpad(ECDSA_SIG_get0_r(es), out, n);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), out + n, n);
    ECDSA_SIG_free(es);
    sig = raw;
  }
  return input + "." + base64urlEncode(sig);
}

std::string signHs256(std::string_view header_json, std::string_view payload_json,
                      std::string_view secret) {
  std::string input = base64urlEncode(header_json) + "." + base64urlEncode(payload_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                 reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                 sizeof mac, &len)) {
    die("HMAC");
  }
  return input + "." + b64(mac, len);
}

std::string publicPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (PEM_write_bio_PUBKEY(bio.get(), key) != 1) die("PEM_write_bio_PUBKEY");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace baton::auth::testing
