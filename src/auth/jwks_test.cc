#include "auth/jwks.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "auth/jose.h"
#include "auth/testing/test_keys.h"

namespace baton::auth {
namespace {

using nlohmann::json;
using testing::TestKey;

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new TestKey(testing::makeRsaKey("rsa1"));
    ec_ = new TestKey(testing::makeEcKey("ec1"));
    ec384_ = new TestKey(testing::makeEcKey("ec384", "P-384"));
    ed_ = new TestKey(testing::makeEd25519Key("ed1"));
  }
  static json jwk(const TestKey* k) { return json::parse(k->jwk_json); }
  static std::string setOf(std::vector<json> keys) { return json{{"keys", keys}}.dump(); }
  static void expectError(const std::string& doc, const std::string& needle) {
    auto r = parseJwks(doc);
    ASSERT_FALSE(r) << doc.substr(0, 200);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  }
  static TestKey* rsa_;
  static TestKey* ec_;
  static TestKey* ec384_;
  static TestKey* ed_;
};
TestKey* JwksTest::rsa_;
TestKey* JwksTest::ec_;
TestKey* JwksTest::ec384_;
TestKey* JwksTest::ed_;

TEST_F(JwksTest, ParsesEveryKeyType) {
  auto set = parseJwks(testing::jwksOf({rsa_, ec_, ec384_, ed_}));
  ASSERT_TRUE(set) << set.status().toString();
  ASSERT_EQ(set->keys.size(), 4u);
  EXPECT_EQ(set->keys[0].kty, KeyType::kRsa);
  EXPECT_EQ(set->keys[0].bits, 2048);
  EXPECT_TRUE(set->keys[0].fits(Alg::kRS256));
  EXPECT_TRUE(set->keys[0].fits(Alg::kPS512));
  EXPECT_FALSE(set->keys[0].fits(Alg::kES256));
  EXPECT_EQ(set->keys[1].crv, Curve::kP256);
  EXPECT_TRUE(set->keys[1].fits(Alg::kES256));
  EXPECT_FALSE(set->keys[1].fits(Alg::kES384));
  EXPECT_TRUE(set->keys[2].fits(Alg::kES384));
  EXPECT_EQ(set->keys[3].kid, "ed1");
  EXPECT_TRUE(set->keys[3].fits(Alg::kEdDSA));
}

TEST_F(JwksTest, KeyAlgAndUse) {
  json k = jwk(rsa_);
  k["alg"] = "RS256";
  k["use"] = "sig";
  auto set = parseJwks(setOf({k}));
  ASSERT_TRUE(set) << set.status().toString();
  EXPECT_TRUE(set->keys[0].fits(Alg::kRS256));
  EXPECT_FALSE(set->keys[0].fits(Alg::kPS256));
  k["alg"] = "ES256";
  expectError(setOf({k}), "does not fit");
  k["alg"] = "HS256";
  expectError(setOf({k}), "not a supported");
}

TEST_F(JwksTest, SkipsKeysThatAreNotOurs) {
  json enc = jwk(rsa_);
  enc["use"] = "enc";
  json oct = {{"kty", "oct"}, {"k", "c2VjcmV0"}};
  json other = {{"kty", "XYZ"}};
  auto set = parseJwks(setOf({enc, oct, other, jwk(ec_)}));
  ASSERT_TRUE(set) << set.status().toString();
  ASSERT_EQ(set->keys.size(), 1u);
  EXPECT_EQ(set->keys[0].kid, "ec1");
}

TEST_F(JwksTest, RejectsMalformedDocuments) {
  expectError("", "not a JSON object");
  expectError("[]", "not a JSON object");
  expectError("{\"keys\":{}}", "no \"keys\" array");
  expectError(std::string(300 * 1024, ' '), "larger than 256 KiB");
  std::vector<json> many(101, jwk(ec_));
  expectError(setOf(many), "more than 100 keys");
  expectError(setOf({json(1)}), "key 0: not a JSON object");
  expectError(setOf({json{{"n", "x"}}}), "missing string \"kty\"");
}

TEST_F(JwksTest, RejectsMalformedKeys) {
  json k = jwk(rsa_);
  k.erase("n");
  expectError(setOf({k}), "missing string \"n\"");
  k = jwk(rsa_);
  k["n"] = "AQAB=";
  expectError(setOf({k}), "\"n\" is not");
  k = jwk(rsa_);
  k["e"] = base64urlEncode(std::string("\x01\x00\x00", 3));  // even exponent
  expectError(setOf({k}), "exponent");
  k = jwk(rsa_);
  k["d"] = "AQAB";
  expectError(setOf({k}), "private key material");
  k = jwk(rsa_);
  k["kid"] = 7;
  expectError(setOf({k}), "\"kid\" is not a string");

  TestKey weak = testing::makeRsaKey("weak", 1024);
  expectError(testing::jwksOf({&weak}), "shorter than 2048");

  json e = jwk(ec_);
  e["crv"] = "P-521";
  expectError(setOf({e}), "P-256 or P-384");
  e = jwk(ec_);
  e["x"] = base64urlEncode(std::string(31, 'a'));
  expectError(setOf({e}), "32 bytes");
  e = jwk(ec_);
  auto y = *base64urlDecode(e["y"].get<std::string>());
  y[31] = static_cast<char>(y[31] ^ 1);  // off the curve
  e["y"] = base64urlEncode(y);
  expectError(setOf({e}), "EC");

  json d = jwk(ed_);
  d["x"] = base64urlEncode(std::string(31, 'a'));
  expectError(setOf({d}), "32 bytes");
  d = jwk(ed_);
  d["crv"] = "X25519";
  expectError(setOf({d}), "Ed25519");

  expectError(setOf({jwk(ec_), jwk(ec_)}), "repeats kid");
}

}  // namespace
}  // namespace baton::auth
