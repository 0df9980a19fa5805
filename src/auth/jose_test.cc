#include "auth/jose.h"

#include <gtest/gtest.h>

#include <random>

namespace baton::auth {
namespace {

TEST(Base64url, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 40; ++n) {
    std::string bytes(n, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    std::string enc = base64urlEncode(bytes);
    EXPECT_EQ(enc.find('='), std::string::npos);
    auto dec = base64urlDecode(enc);
    ASSERT_TRUE(dec) << n;
    EXPECT_EQ(*dec, bytes);
  }
}

TEST(Base64url, KnownVectors) {
  EXPECT_EQ(base64urlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(*base64urlDecode("-_8"), "\xfb\xff");
  EXPECT_EQ(base64urlEncode("A"), "QQ");
}

TEST(Base64url, RejectsAnythingNotStrict) {
  EXPECT_FALSE(base64urlDecode("QQ=="));  // padding
  EXPECT_FALSE(base64urlDecode("QQ="));
  EXPECT_FALSE(base64urlDecode("+/8"));   // standard alphabet
  EXPECT_FALSE(base64urlDecode("QQ Q"));  // whitespace
  EXPECT_FALSE(base64urlDecode("QQ\n"));
  EXPECT_FALSE(base64urlDecode("Q"));    // length % 4 == 1
  EXPECT_FALSE(base64urlDecode("QR"));   // non-zero leftover bits: not canonical
  EXPECT_FALSE(base64urlDecode("QUF"));  // "AA" is QUE; F sets leftover bits
  EXPECT_TRUE(base64urlDecode("QUE"));
  EXPECT_FALSE(base64urlDecode(std::string("Q\0Q", 3)));
}

TEST(JsonDepth, CountsOutsideStringsOnly) {
  EXPECT_TRUE(jsonDepthWithin(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(jsonDepthWithin(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_TRUE(jsonDepthWithin(R"({"a":"[[[[[[\"[[["})", 1));
  EXPECT_FALSE(jsonDepthWithin(std::string(100, '['), 16));
}

TEST(ParseCompactJws, SplitsAndDecodesHeader) {
  std::string tok = base64urlEncode(R"({"alg":"ES256","kid":"k1"})") + "." +
                    base64urlEncode(R"({"sub":"a"})") + "." + base64urlEncode("sig");
  auto p = parseCompactJws(tok);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->header.alg, "ES256");
  EXPECT_EQ(p->header.kid, "k1");
  EXPECT_EQ(p->payload, R"({"sub":"a"})");
  EXPECT_EQ(p->signature, "sig");
  EXPECT_EQ(p->signing_input, tok.substr(0, tok.rfind('.')));
}

TEST(ParseCompactJws, RejectsBadForms) {
  auto h = [](std::string_view json) { return base64urlEncode(json); };
  const std::string body = "." + h("{}") + "." + h("s");
  EXPECT_EQ(parseCompactJws("").reason(), Reason::kMissing);
  EXPECT_EQ(parseCompactJws("a.b").reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws("a.b.c.d.e").reason(), Reason::kUnsupported);  // JWE
  EXPECT_EQ(parseCompactJws("..").reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws(h("[1]") + body).reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws(h("{}") + body).reason(), Reason::kMalformed);  // no alg
  EXPECT_EQ(parseCompactJws(h(R"({"alg":1})") + body).reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws(h(R"({"alg":"ES256","kid":5})") + body).reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws(h(R"({"alg":"ES256","crit":["exp"]})") + body).reason(),
            Reason::kUnsupported);
  EXPECT_EQ(parseCompactJws(h(R"({"alg":"ES256","b64":false})") + body).reason(),
            Reason::kUnsupported);
  EXPECT_EQ(parseCompactJws(h(R"({"alg":"RSA-OAEP","enc":"A256GCM"})") + body).reason(),
            Reason::kUnsupported);
  EXPECT_EQ(parseCompactJws(h(R"({"alg":"ES256"})") + "=" + body).reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws(h(R"({"alg":"ES256"})") + body, 10).reason(), Reason::kTooLarge);
  EXPECT_EQ(parseCompactJws(h(std::string(40, '[')) + body).reason(), Reason::kMalformed);
  EXPECT_EQ(parseCompactJws(h("{\"alg\":\"ES256\",\"x\":\"\xff\"}") + body).reason(),
            Reason::kMalformed);  // invalid UTF-8
}

TEST(ParseClaims, TypesRegisteredClaims) {
  auto c = parseClaims(
      R"({"iss":"i","sub":"s","aud":["a","b"],"exp":10.9,"nbf":5,"iat":4,"n":1,"o":{"k":1}})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->iss, "i");
  EXPECT_EQ(c->aud, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c->exp, 10);
  EXPECT_EQ(c->nbf, 5);
  EXPECT_EQ(c->find("n")->text, "1");
  EXPECT_EQ(c->find("o")->text, R"({"k":1})");
  EXPECT_EQ(parseClaims(R"({"aud":"x"})")->aud, std::vector<std::string>{"x"});

  EXPECT_FALSE(parseClaims("[]"));
  EXPECT_FALSE(parseClaims(R"({"iss":1})"));
  EXPECT_FALSE(parseClaims(R"({"aud":[1]})"));
  EXPECT_FALSE(parseClaims(R"({"aud":{}})"));
  EXPECT_FALSE(parseClaims(R"({"exp":"10"})"));
  EXPECT_FALSE(parseClaims(R"({"exp":-1})"));
  EXPECT_FALSE(parseClaims(R"({"exp":1e300})"));
  EXPECT_FALSE(parseClaims(R"({"exp":18446744073709551615})"));
}

}  // namespace
}  // namespace baton::auth
