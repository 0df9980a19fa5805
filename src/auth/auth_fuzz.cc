// libFuzzer target over everything in auth that reads bytes from outside: compact JWS
// parsing and verification, JWKS parsing, claims parsing, claim rules and forwarding, API key
// parsing, Authorization header parsing. Run by scripts/fuzz.sh.
//
// The first byte selects the mode; the rest is the input:
//   0  a token, verified against a fixed key set (RSA, P-256, Ed25519)
//   1  a JWKS document
//   2  base64url round trip + a claims set + rules + forwarding
//   3  "<header JSON>\n<payload JSON>\n<signature bytes>" assembled into a token and verified
//      (reaches header and claims parsing without the fuzzer having to learn base64url)
//   4  an Authorization header value: bearer parsing and API key parsing
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/claims.h"
#include "auth/jose.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/provider.h"
#include "auth/testing/test_keys.h"

namespace {

using namespace baton::auth;

struct Fixture {
  testing::TestKey rsa = testing::makeRsaKey("rsa1");
  testing::TestKey ec = testing::makeEcKey("ec1");
  testing::TestKey ed = testing::makeEd25519Key("");
  KeySet keys;
  VerifierConfig cfg;
  ClaimForwarder forwarder;
  std::map<std::string, std::string> rules = {{"scope", "read"}, {"groups", "dev"}, {"n", "1"}};

  Fixture() {
    auto set = parseJwks(testing::jwksOf({&rsa, &ec, &ed}));
    if (!set) std::abort();
    keys = std::move(set).value();
    cfg.issuer = "iss";
    cfg.audiences = {"aud"};
    cfg.algorithms = {Alg::kRS256, Alg::kPS256, Alg::kES256, Alg::kEdDSA};
    auto f = ClaimForwarder::create({{"sub", "X-User"}, {"groups", "X-Groups"}, {"o", "X-O"}});
    if (!f) std::abort();
    forwarder = std::move(f).value();
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

const baton::TimePoint kNow = baton::fromUnixMillis(1'700'000'000'000);

void useClaims(const Claims& c) {
  Fixture& f = fixture();
  (void)firstUnmetRule(c, f.rules);
  for (const auto& [name, value] : f.forwarder.headers(c)) {
    for (char ch : value) {
      if (ch == '\r' || ch == '\n' || ch == '\0') std::abort();  // header injection
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& f = fixture();
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto r = verifyJwt(in, f.cfg, f.keys, kNow);
      if (r) useClaims(r.value());
      (void)parseCompactJws(in);
      break;
    }
    case 1: {
      auto set = parseJwks(in);
      if (set) {
        for (const auto& k : set->keys) {
          if (!k.pkey) std::abort();
        }
      }
      break;
    }
    case 2: {
      if (auto d = base64urlDecode(in)) {
        if (base64urlEncode(*d) != in) std::abort();  // strict: one encoding per byte string
      }
      auto c = parseClaims(in);
      if (c) useClaims(c.value());
      break;
    }
    case 3: {
      size_t a = in.find('\n');
      if (a == std::string_view::npos) return 0;
      size_t b = in.find('\n', a + 1);
      if (b == std::string_view::npos) return 0;
      std::string token = base64urlEncode(in.substr(0, a)) + "." +
                          base64urlEncode(in.substr(a + 1, b - a - 1)) + "." +
                          base64urlEncode(in.substr(b + 1));
      auto r = verifyJwt(token, f.cfg, f.keys, kNow);
      if (r) std::abort();  // nobody can forge a signature from fuzz input
      auto p = parseCompactJws(token);
      if (p) {
        auto c = parseClaims(p->payload);
        if (c) useClaims(c.value());
      }
      break;
    }
    case 4: {
      std::string_view cred = bearerCredentials(in);
      (void)parseApiKey(cred);
      (void)parseApiKey(in);
      break;
    }
  }
  return 0;
}
