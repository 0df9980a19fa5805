#include "auth/claims.h"

#include <gtest/gtest.h>

namespace baton::auth {
namespace {

Claims claimsOf(std::string_view json) {
  auto c = parseClaims(json);
  EXPECT_TRUE(c) << json;
  return c ? std::move(c).value() : Claims{};
}

TEST(ClaimRules, ExactArrayAndScopeWords) {
  Claims c = claimsOf(
      R"({"sub":"alice","groups":["dev","ops"],"scope":"shop:read shop:write","n":42,"b":true,)"
      R"("o":{"a":1}})");
  EXPECT_TRUE(claimSatisfied(c, "sub", "alice"));
  EXPECT_FALSE(claimSatisfied(c, "sub", "ali"));
  EXPECT_TRUE(claimSatisfied(c, "groups", "ops"));
  EXPECT_FALSE(claimSatisfied(c, "groups", "admin"));
  EXPECT_TRUE(claimSatisfied(c, "scope", "shop:read"));
  EXPECT_TRUE(claimSatisfied(c, "scope", "shop:write"));
  EXPECT_TRUE(claimSatisfied(c, "scope", "shop:read shop:write"));
  EXPECT_FALSE(claimSatisfied(c, "scope", "shop"));
  EXPECT_FALSE(claimSatisfied(c, "scope", ""));
  EXPECT_TRUE(claimSatisfied(c, "n", "42"));
  EXPECT_TRUE(claimSatisfied(c, "b", "true"));
  EXPECT_FALSE(claimSatisfied(c, "o", "{\"a\":1}"));
  EXPECT_FALSE(claimSatisfied(c, "missing", "x"));

  EXPECT_EQ(firstUnmetRule(c, {{"scope", "shop:read"}, {"sub", "alice"}}), std::nullopt);
  EXPECT_EQ(firstUnmetRule(c, {{"scope", "shop:admin"}, {"sub", "alice"}}), "scope");
}

TEST(ClaimForwarder, ForwardsVerifiedClaimsAsHeaders) {
  auto f = ClaimForwarder::create({{"sub", "X-User"},
                                   {"groups", "X-Groups"},
                                   {"n", "X-N"},
                                   {"b", "X-B"},
                                   {"o", "X-O"},
                                   {"nul", "X-Null"},
                                   {"absent", "X-Absent"},
                                   {"evil", "X-Evil"}});
  ASSERT_TRUE(f) << f.status().toString();
  Claims c = claimsOf(
      R"({"sub":"alice","groups":["dev",1,"ops"],"n":1.5,"b":false,"o":{"a":"b"},"nul":null,)"
      R"("evil":"x\r\nX-Admin: 1"})");
  HeaderList h = f->headers(c);
  HeaderList expected = {{"X-B", "false"},
                         {"X-Groups", "dev,1,ops"},
                         {"X-N", "1.5"},
                         {"X-O", R"({"a":"b"})"},
                         {"X-User", "alice"}};
  EXPECT_EQ(h, expected);
  EXPECT_EQ(f->stripHeaders(), (std::vector<std::string>{"x-absent", "x-b", "x-evil", "x-groups",
                                                         "x-n", "x-null", "x-o", "x-user"}));
}

TEST(ClaimForwarder, RefusesBadHeaderNames) {
  EXPECT_FALSE(ClaimForwarder::create({{"sub", "X User"}}));
  EXPECT_FALSE(ClaimForwarder::create({{"sub", "X-User\r\n"}}));
  EXPECT_FALSE(ClaimForwarder::create({{"sub", ""}}));
  EXPECT_FALSE(ClaimForwarder::create({{"sub", "Authorization"}}));
  EXPECT_FALSE(ClaimForwarder::create({{"sub", "host"}}));
  EXPECT_FALSE(ClaimForwarder::create({{"sub", "X-A"}, {"email", "x-a"}}));
}

}  // namespace
}  // namespace baton::auth
