// The JWT attack matrix (issue 3): keys generated at test time by OpenSSL.
#include "auth/jwt.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "auth/testing/test_keys.h"
#include "spec/agent_config.h"

namespace baton::auth {
namespace {

using nlohmann::json;
using testing::TestKey;

constexpr int64_t kNow = 1'700'000'000;  // seconds
const TimePoint kNowTp = fromUnixMillis(kNow * 1000);

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new TestKey(testing::makeRsaKey("rsa1"));
    ec_ = new TestKey(testing::makeEcKey("ec1"));
    ec384_ = new TestKey(testing::makeEcKey("ec384", "P-384"));
    ed_ = new TestKey(testing::makeEd25519Key("ed1"));
    auto set = parseJwks(testing::jwksOf({rsa_, ec_, ec384_, ed_}));
    ASSERT_TRUE(set) << set.status().toString();
    keys_ = new KeySet(std::move(set).value());
  }

  void SetUp() override {
    cfg_.issuer = "https://id.example.com/";
    cfg_.audiences = {"shop", "other"};
    cfg_.algorithms = {Alg::kRS256, Alg::kRS384, Alg::kRS512, Alg::kPS256, Alg::kPS384,
                       Alg::kPS512, Alg::kES256, Alg::kES384, Alg::kEdDSA};
  }

  static json claims() {
    return {{"iss", "https://id.example.com/"}, {"aud", "shop"},     {"sub", "alice"},
            {"email", "alice@example.com"},     {"exp", kNow + 300}, {"iat", kNow - 10}};
  }
  static std::string header(const char* alg, const std::string& kid) {
    json h = {{"alg", alg}, {"typ", "JWT"}};
    if (!kid.empty()) h["kid"] = kid;
    return h.dump();
  }
  static std::string token(Alg alg, const TestKey& key, const json& payload,
                           std::optional<std::string> kid = std::nullopt) {
    return testing::signJwt(header(algName(alg), kid.value_or(key.kid)), payload.dump(), alg,
                            key.pkey.get());
  }
  AuthOr<Claims> verify(std::string_view tok) { return verifyJwt(tok, cfg_, *keys_, kNowTp); }
  void expectReason(std::string_view tok, Reason want) {
    auto r = verify(tok);
    ASSERT_FALSE(r) << "accepted a token that should fail with " << reasonName(want);
    EXPECT_EQ(r.reason(), want) << r.error().message;
    // Messages never echo the token or any part of it.
    auto dot = tok.find('.');
    if (dot != std::string_view::npos && dot > 8) {
      EXPECT_EQ(r.error().message.find(tok.substr(0, dot)), std::string::npos);
    }
  }

  static TestKey* rsa_;
  static TestKey* ec_;
  static TestKey* ec384_;
  static TestKey* ed_;
  static KeySet* keys_;
  VerifierConfig cfg_;
};
TestKey* JwtTest::rsa_;
TestKey* JwtTest::ec_;
TestKey* JwtTest::ec384_;
TestKey* JwtTest::ed_;
KeySet* JwtTest::keys_;

TEST_F(JwtTest, AcceptsEveryPinnedAlgorithm) {
  struct Case {
    Alg alg;
    const TestKey* key;
  };
  for (Case c : {Case{Alg::kRS256, rsa_}, Case{Alg::kRS384, rsa_}, Case{Alg::kRS512, rsa_},
                 Case{Alg::kPS256, rsa_}, Case{Alg::kPS384, rsa_}, Case{Alg::kPS512, rsa_},
                 Case{Alg::kES256, ec_}, Case{Alg::kES384, ec384_}, Case{Alg::kEdDSA, ed_}}) {
    auto r = verify(token(c.alg, *c.key, claims()));
    ASSERT_TRUE(r) << algName(c.alg) << ": " << r.error().message;
    EXPECT_EQ(r->sub, "alice");
    EXPECT_EQ(r->find("email")->text, "alice@example.com");
  }
}

TEST_F(JwtTest, NoToken) { expectReason("", Reason::kMissing); }

TEST_F(JwtTest, AlgNoneRefused) {
  for (const char* none : {"none", "None", "NONE"}) {
    std::string tok =
        base64urlEncode(header(none, "")) + "." + base64urlEncode(claims().dump()) + ".";
    expectReason(tok, Reason::kAlgNotAllowed);
    expectReason(tok + "c2ln", Reason::kAlgNotAllowed);
  }
}

TEST_F(JwtTest, Hs256WithThePublicKeyAsSecretRefused) {
  const std::string pem = testing::publicPem(rsa_->pkey.get());
  const std::string jwk = rsa_->jwk_json;
  for (const std::string& secret : {pem, jwk}) {
    for (const std::string kid : {"rsa1", ""}) {
      expectReason(testing::signHs256(header("HS256", kid), claims().dump(), secret),
                   Reason::kAlgNotAllowed);
    }
  }
  expectReason(testing::signHs256(header("HS512", "rsa1"), claims().dump(), pem),
               Reason::kAlgNotAllowed);
  spec::IdentityProvider spec{"corp", "https://id/", {"shop"}, "jwks.json", {"RS256", "HS256"}, {}};
  EXPECT_FALSE(VerifierConfig::fromSpec(spec));
  spec.algorithms = {"none"};
  EXPECT_FALSE(VerifierConfig::fromSpec(spec));
}

TEST_F(JwtTest, UnknownKid) {
  expectReason(token(Alg::kES256, *ec_, claims(), "no-such-key"), Reason::kUnknownKid);
}

TEST_F(JwtTest, ExpiredWithSkew) {
  json c = claims();
  c["exp"] = kNow - 61;
  expectReason(token(Alg::kES256, *ec_, c), Reason::kExpired);
  c["exp"] = kNow - 60;  // exactly at the skew edge: expired
  expectReason(token(Alg::kES256, *ec_, c), Reason::kExpired);
  c["exp"] = kNow - 30;  // within skew
  EXPECT_TRUE(verify(token(Alg::kES256, *ec_, c)));
  cfg_.clock_skew = std::chrono::seconds(0);
  expectReason(token(Alg::kES256, *ec_, c), Reason::kExpired);
}

TEST_F(JwtTest, MissingExpRefused) {
  json c = claims();
  c.erase("exp");
  expectReason(token(Alg::kES256, *ec_, c), Reason::kMalformed);
}

TEST_F(JwtTest, NotYetValid) {
  json c = claims();
  c["nbf"] = kNow + 120;
  expectReason(token(Alg::kES256, *ec_, c), Reason::kNotYetValid);
  c["nbf"] = kNow + 30;  // within skew
  EXPECT_TRUE(verify(token(Alg::kES256, *ec_, c)));
  c.erase("nbf");
  c["iat"] = kNow + 3600;  // issued in the future
  expectReason(token(Alg::kES256, *ec_, c), Reason::kNotYetValid);
}

TEST_F(JwtTest, WrongIssuer) {
  json c = claims();
  c["iss"] = "https://evil.example.com/";
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongIssuer);
  c["iss"] = "https://id.example.com";  // no trailing slash: exact match only
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongIssuer);
  c.erase("iss");
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongIssuer);
}

TEST_F(JwtTest, WrongAudience) {
  json c = claims();
  c["aud"] = "billing";
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongAudience);
  c["aud"] = json::array({"billing", "crm"});
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongAudience);
  c["aud"] = json::array();
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongAudience);
  c.erase("aud");
  expectReason(token(Alg::kES256, *ec_, c), Reason::kWrongAudience);
  c["aud"] = json::array({"billing", "other"});
  EXPECT_TRUE(verify(token(Alg::kES256, *ec_, c)));
}

TEST_F(JwtTest, TamperedPayload) {
  for (auto [alg, key] :
       {std::pair{Alg::kRS256, rsa_}, std::pair{Alg::kES256, ec_}, std::pair{Alg::kEdDSA, ed_}}) {
    std::string tok = token(alg, *key, claims());
    json evil = claims();
    evil["sub"] = "admin";
    size_t d1 = tok.find('.'), d2 = tok.rfind('.');
    std::string forged = tok.substr(0, d1 + 1) + base64urlEncode(evil.dump()) + tok.substr(d2);
    expectReason(forged, Reason::kBadSignature);
  }
}

TEST_F(JwtTest, TamperedSignature) {
  for (auto [alg, key] :
       {std::pair{Alg::kRS256, rsa_}, std::pair{Alg::kPS256, rsa_}, std::pair{Alg::kES256, ec_},
        std::pair{Alg::kES384, ec384_}, std::pair{Alg::kEdDSA, ed_}}) {
    std::string tok = token(alg, *key, claims());
    std::string flipped = tok;
    size_t i = tok.rfind('.') + 5;
    flipped[i] = flipped[i] == 'A' ? 'B' : 'A';
    expectReason(flipped, Reason::kBadSignature);
    size_t dot = tok.rfind('.');
    std::string sig = *base64urlDecode(tok.substr(dot + 1));
    expectReason(tok.substr(0, dot + 1) + base64urlEncode(sig.substr(0, sig.size() - 1)),
                 Reason::kBadSignature);                                     // truncated
    expectReason(tok.substr(0, tok.rfind('.') + 1), Reason::kBadSignature);  // stripped
  }
  // A DER signature where JWS wants r||s.
  std::string tok = token(Alg::kES256, *ec_, claims());
  expectReason(tok.substr(0, tok.rfind('.') + 1) + base64urlEncode(std::string(70, '\x30')),
               Reason::kBadSignature);
}

TEST_F(JwtTest, WrongAlgorithmForKey) {
  // RS256 header naming the EC key (signed with RSA: the header is what matters).
  expectReason(token(Alg::kRS256, *rsa_, claims(), "ec1"), Reason::kKeyMismatch);
  // ES256 header naming the RSA key, ES384 naming a P-256 key, EdDSA naming an EC key.
  expectReason(token(Alg::kES256, *ec_, claims(), "rsa1"), Reason::kKeyMismatch);
  expectReason(token(Alg::kES384, *ec384_, claims(), "ec1"), Reason::kKeyMismatch);
  expectReason(token(Alg::kEdDSA, *ed_, claims(), "ec1"), Reason::kKeyMismatch);
  // ES256 against a provider that pins only RS256.
  cfg_.algorithms = {Alg::kRS256};
  expectReason(token(Alg::kES256, *ec_, claims()), Reason::kAlgNotAllowed);
  EXPECT_TRUE(verify(token(Alg::kRS256, *rsa_, claims())));
  // PS256 is not RS256 even with the same key.
  expectReason(token(Alg::kPS256, *rsa_, claims()), Reason::kAlgNotAllowed);
}

TEST_F(JwtTest, KeyWithItsOwnAlg) {
  json k = json::parse(rsa_->jwk_json);
  k["alg"] = "RS256";
  auto set = parseJwks(json{{"keys", {k}}}.dump());
  ASSERT_TRUE(set);
  EXPECT_TRUE(verifyJwt(token(Alg::kRS256, *rsa_, claims()), cfg_, *set, kNowTp));
  auto r = verifyJwt(token(Alg::kPS256, *rsa_, claims()), cfg_, *set, kNowTp);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.reason(), Reason::kKeyMismatch);
}

TEST_F(JwtTest, NoKidNeedsExactlyOneFittingKey) {
  EXPECT_TRUE(verify(token(Alg::kES256, *ec_, claims(), "")));  // one P-256 key
  TestKey ec2 = testing::makeEcKey("ec2");
  auto set = parseJwks(testing::jwksOf({ec_, &ec2}));
  ASSERT_TRUE(set);
  auto r = verifyJwt(token(Alg::kES256, *ec_, claims(), ""), cfg_, *set, kNowTp);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.reason(), Reason::kUnknownKid);
}

TEST_F(JwtTest, EmbeddedKeysInTheHeaderAreIgnored) {
  // An attacker signs with their own key and embeds it (jwk) or points at it (jku, x5u).
  TestKey evil = testing::makeEcKey("");
  json h = {{"alg", "ES256"},
            {"jwk", json::parse(evil.jwk_json)},
            {"jku", "https://evil.example.com/jwks.json"}};
  std::string tok = testing::signJwt(h.dump(), claims().dump(), Alg::kES256, evil.pkey.get());
  expectReason(tok, Reason::kBadSignature);
  h["kid"] = "evil";
  tok = testing::signJwt(h.dump(), claims().dump(), Alg::kES256, evil.pkey.get());
  expectReason(tok, Reason::kUnknownKid);
}

TEST_F(JwtTest, StructuralAttacks) {
  std::string tok = token(Alg::kES256, *ec_, claims());
  expectReason(tok + ".x.y", Reason::kUnsupported);  // five parts: JWE
  expectReason(tok + ".x", Reason::kMalformed);
  expectReason(tok + "=", Reason::kMalformed);
  expectReason(" " + tok, Reason::kMalformed);
  json h = {{"alg", "ES256"}, {"kid", "ec1"}, {"crit", {"exp"}}, {"exp", 1}};
  expectReason(testing::signJwt(h.dump(), claims().dump(), Alg::kES256, ec_->pkey.get()),
               Reason::kUnsupported);
  json big = claims();
  big["pad"] = std::string(20000, 'a');
  expectReason(token(Alg::kES256, *ec_, big), Reason::kTooLarge);
  // A signed payload that is not an object, or has mistyped registered claims.
  expectReason(testing::signJwt(header("ES256", "ec1"), "[1]", Alg::kES256, ec_->pkey.get()),
               Reason::kMalformed);
  json c = claims();
  c["exp"] = "tomorrow";
  expectReason(token(Alg::kES256, *ec_, c), Reason::kMalformed);
}

TEST_F(JwtTest, EmptyKeySetRefusesEverything) {
  KeySet empty;
  auto r = verifyJwt(token(Alg::kES256, *ec_, claims()), cfg_, empty, kNowTp);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.reason(), Reason::kUnknownKid);
}

}  // namespace
}  // namespace baton::auth
