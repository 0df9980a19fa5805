#include "api/acl.h"

#include <gtest/gtest.h>

namespace baton::api::acl {
namespace {

std::vector<Rule> rules(std::initializer_list<std::string_view> texts) {
  std::vector<Rule> out;
  for (auto t : texts) {
    auto r = parseRule(t);
    EXPECT_TRUE(r.isOk()) << t << ": " << r.status().message();
    if (r) out.push_back(*r);
  }
  return out;
}

TEST(Acl, ParseRuleAcceptsTheDocumentedForms) {
  struct Case {
    std::string_view text;
    Kind kind;
    std::string_view pattern;
    Caps caps;
  };
  for (const Case& c : std::vector<Case>{
           {"secrets:shop/*:read,list", Kind::kSecrets, "shop/*", kRead | kList},
           {"secrets:shop/db:read", Kind::kSecrets, "shop/db", kRead},
           {"apps:shop:read,write", Kind::kApps, "shop", kRead | kWrite},
           {"apps:shop-*:delete", Kind::kApps, "shop-*", kDelete},
           {"apps:*:list", Kind::kApps, "*", kList},
           {"intentions:*:write", Kind::kIntentions, "*", kWrite},
           {"nodes:*:read", Kind::kNodes, "*", kRead},
           {"tokens:*:admin", Kind::kTokens, "*", kAdmin},
           {"audit:*:read", Kind::kAudit, "*", kRead},
           {"*:*:admin", Kind::kAll, "*", kAdmin},
           {"secrets:a.b_c-d/E*:read,read", Kind::kSecrets, "a.b_c-d/E*", kRead},
       }) {
    auto r = parseRule(c.text);
    ASSERT_TRUE(r.isOk()) << c.text << ": " << r.status().message();
    EXPECT_EQ(r->kind, c.kind) << c.text;
    EXPECT_EQ(r->pattern, c.pattern) << c.text;
    EXPECT_EQ(r->caps, c.caps) << c.text;
  }
  EXPECT_EQ(ruleText(*parseRule("secrets:shop/*:list,read")), "secrets:shop/*:read,list");
}

TEST(Acl, ParseRuleRefusesWithAClearMessage) {
  struct Case {
    std::string_view text;
    std::string_view says;
  };
  for (const Case& c : std::vector<Case>{
           {"", "KIND:PATTERN:CAP"},
           {"secrets:shop/*", "KIND:PATTERN:CAP"},
           {"secrets:shop:read:extra", "KIND:PATTERN:CAP"},
           {"vaults:shop:read", "unknown kind \"vaults\""},
           {"secrets:shop:sudo", "unknown capability \"sudo\""},
           {"secrets:shop:", "unknown capability \"\""},
           {"secrets:shop:read,", "unknown capability \"\""},
           {"secrets::read", "empty pattern"},
           {"secrets:sh*p:read", "'*' only at the end"},
           {"secrets:**:read", "'*' only at the end"},
           {"secrets:shop db:read", "expected [A-Za-z0-9_.-/]"},
           {"apps:shop/*:read", "app names have no '/'"},
           {"nodes:n1:read", "nodes has no names"},
           {"tokens:alice:admin", "tokens has no names"},
           {"*:shop:admin", "* has no names"},
       }) {
    auto r = parseRule(c.text);
    ASSERT_FALSE(r.isOk()) << c.text;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos)
        << c.text << ": " << r.status().message();
  }
  EXPECT_FALSE(parseRule("secrets:" + std::string(201, 'a') + ":read").isOk());
}

TEST(Acl, Patterns) {
  struct Case {
    std::string_view pattern, name;
    bool matches;
  };
  for (const Case& c : std::vector<Case>{
           {"shop", "shop", true},
           {"shop", "shop2", false},
           {"shop", "sho", false},
           {"shop/*", "shop/db", true},
           {"shop/*", "shop/a/b", true},
           {"shop/*", "shop/", true},
           {"shop/*", "shop", false},
           {"shop/*", "shopping/db", false},
           {"shop*", "shopping/db", true},
           {"*", "anything/at/all", true},
           {"*", "*", true},
           {"shop", "*", false},
           {"s*", "*", false},
       }) {
    EXPECT_EQ(patternMatches(c.pattern, c.name), c.matches) << c.pattern << " ~ " << c.name;
  }
  struct Cover {
    std::string_view outer, inner;
    bool covers;
  };
  for (const Cover& c : std::vector<Cover>{
           {"*", "*", true},
           {"*", "shop/*", true},
           {"*", "shop", true},
           {"shop/*", "shop/db", true},
           {"shop/*", "shop/a/*", true},
           {"shop/*", "shop/*", true},
           {"shop/*", "shop*", false},
           {"shop/*", "*", false},
           {"shop/*", "shop", false},
           {"shop", "shop", true},
           {"shop", "shop*", false},
           {"shop", "*", false},
       }) {
    EXPECT_EQ(patternCovers(c.outer, c.inner), c.covers) << c.outer << " >= " << c.inner;
  }
}

// Every route maps to the need docs/tokens.md lists.
TEST(Acl, EveryRouteNeedsWhatTheDocsSay) {
  struct Case {
    std::string_view method, path;
    Need::What what;
    Kind kind;
    std::string_view name;
    Capability cap;
  };
  using W = Need::What;
  for (const Case& c : std::vector<Case>{
           {"GET", "/metrics", W::kOne, Kind::kNodes, "*", kRead},
           {"GET", "/v1/apps", W::kSome, Kind::kApps, "", kList},
           {"GET", "/v1/services", W::kSome, Kind::kApps, "", kList},
           {"GET", "/v1/instances", W::kSome, Kind::kApps, "", kList},
           {"GET", "/v1/apps/shop", W::kOne, Kind::kApps, "shop", kRead},
           {"PUT", "/v1/apps/shop", W::kOne, Kind::kApps, "shop", kWrite},
           {"DELETE", "/v1/apps/shop", W::kOne, Kind::kApps, "shop", kDelete},
           {"POST", "/v1/apps/shop/services/web/scale", W::kOne, Kind::kApps, "shop", kWrite},
           {"DELETE", "/v1/apps/shop/services/web/scale", W::kOne, Kind::kApps, "shop", kWrite},
           {"GET", "/v1/apps/shop/services/web/logs", W::kOne, Kind::kApps, "shop", kRead},
           {"GET", "/v1/events", W::kOne, Kind::kApps, "*", kRead},
           {"GET", "/v1/nodes", W::kOne, Kind::kNodes, "*", kList},
           {"POST", "/v1/apikeys", W::kOne, Kind::kTokens, "*", kWrite},
           {"GET", "/v1/apikeys", W::kOne, Kind::kTokens, "*", kList},
           {"DELETE", "/v1/apikeys/0123456789abcdef", W::kOne, Kind::kTokens, "*", kDelete},
           {"GET", "/v1/intentions", W::kOne, Kind::kIntentions, "*", kList},
           {"PUT", "/v1/intentions", W::kOne, Kind::kIntentions, "*", kWrite},
           {"DELETE", "/v1/intentions", W::kOne, Kind::kIntentions, "*", kDelete},
           {"GET", "/v1/intentions/check", W::kOne, Kind::kIntentions, "*", kRead},
           {"GET", "/v1/secrets", W::kSome, Kind::kSecrets, "", kList},
           {"GET", "/v1/secrets/data/shop/db", W::kOne, Kind::kSecrets, "shop/db", kRead},
           {"PUT", "/v1/secrets/data/shop/db", W::kOne, Kind::kSecrets, "shop/db", kWrite},
           {"DELETE", "/v1/secrets/data/shop/db", W::kOne, Kind::kSecrets, "shop/db", kDelete},
           {"POST", "/v1/secrets/undelete/shop/db", W::kOne, Kind::kSecrets, "shop/db", kWrite},
           {"POST", "/v1/secrets/destroy/shop/db", W::kOne, Kind::kSecrets, "shop/db", kDelete},
           {"GET", "/v1/secrets/metadata/shop/db", W::kOne, Kind::kSecrets, "shop/db", kList},
           {"PUT", "/v1/secrets/metadata/shop/db", W::kOne, Kind::kSecrets, "shop/db", kWrite},
           {"DELETE", "/v1/secrets/metadata/shop/db", W::kOne, Kind::kSecrets, "shop/db", kDelete},
           {"GET", "/v1/audit", W::kOne, Kind::kAudit, "*", kRead},
           {"POST", "/v1/tokens", W::kOne, Kind::kTokens, "*", kAdmin},
           {"GET", "/v1/tokens", W::kOne, Kind::kTokens, "*", kAdmin},
           {"DELETE", "/v1/tokens/0123456789abcdef", W::kOne, Kind::kTokens, "*", kAdmin},
       }) {
    Need n = needFor(matchRoute(c.method, c.path));
    const std::string at = std::string(c.method) + " " + std::string(c.path);
    EXPECT_EQ(n.what, c.what) << at;
    EXPECT_EQ(n.kind, c.kind) << at;
    EXPECT_EQ(n.name, c.name) << at;
    EXPECT_EQ(n.cap, c.cap) << at;
  }
  EXPECT_EQ(needFor(matchRoute("GET", "/v1/health")).what, Need::What::kNothing);
  EXPECT_EQ(needFor(matchRoute("GET", "/v1/tokens/self")).what, Need::What::kAnyToken);
}

TEST(Acl, DecideIsDefaultDenyAndNamesTheRule) {
  const auto shop = rules({"secrets:shop/*:read,list", "apps:shop:read,write", "apps:*:list"});
  struct Case {
    std::string_view method, path;
    bool allowed;
    std::optional<size_t> rule;
  };
  for (const Case& c : std::vector<Case>{
           {"GET", "/v1/secrets/data/shop/db", true, 0},
           {"GET", "/v1/secrets/metadata/shop/db", true, 0},
           {"GET", "/v1/secrets/data/billing/key", false, {}},
           {"PUT", "/v1/secrets/data/shop/db", false, {}},  // read does not imply write
           {"DELETE", "/v1/secrets/data/shop/db", false, {}},
           {"GET", "/v1/secrets", true, 0},
           {"GET", "/v1/apps/shop", true, 1},
           {"PUT", "/v1/apps/shop", true, 1},
           {"DELETE", "/v1/apps/shop", false, {}},
           {"GET", "/v1/apps/billing", false, {}},
           {"GET", "/v1/apps", true, 2},
           {"GET", "/v1/events", false, {}},  // needs read on every app
           {"GET", "/v1/nodes", false, {}},
           {"GET", "/v1/audit", false, {}},
           {"POST", "/v1/tokens", false, {}},
           {"GET", "/v1/tokens/self", true, {}},
           {"GET", "/v1/health", true, {}},
       }) {
    Decision d = decide(shop, needFor(matchRoute(c.method, c.path)));
    EXPECT_EQ(d.allowed, c.allowed) << c.method << " " << c.path;
    EXPECT_EQ(d.rule, c.rule) << c.method << " " << c.path;
  }
  EXPECT_FALSE(decide({}, needFor(matchRoute("GET", "/v1/apps"))).allowed);
  EXPECT_FALSE(decide({}, needFor(matchRoute("GET", "/v1/secrets/data/a"))).allowed);
}

TEST(Acl, AdminImpliesEverythingAndStarKindCoversEveryKind) {
  const auto admin_shop = rules({"apps:shop:admin"});
  EXPECT_TRUE(allows(admin_shop, Kind::kApps, "shop", kDelete));
  EXPECT_TRUE(allows(admin_shop, Kind::kApps, "shop", kRead));
  EXPECT_FALSE(allows(admin_shop, Kind::kApps, "billing", kRead));
  EXPECT_FALSE(allows(admin_shop, Kind::kSecrets, "shop", kRead));
  const auto all = managementRules();
  for (const char* path : {"/v1/apps", "/v1/secrets/data/x/y", "/v1/audit", "/v1/events",
                           "/v1/nodes", "/metrics", "/v1/intentions"}) {
    EXPECT_TRUE(decide(all, needFor(matchRoute("GET", path))).allowed) << path;
  }
  EXPECT_TRUE(decide(all, needFor(matchRoute("POST", "/v1/tokens"))).allowed);
  const auto tokens_admin = rules({"tokens:*:admin"});
  EXPECT_TRUE(decide(tokens_admin, needFor(matchRoute("POST", "/v1/tokens"))).allowed);
  EXPECT_TRUE(decide(tokens_admin, needFor(matchRoute("POST", "/v1/apikeys"))).allowed);
  EXPECT_FALSE(decide(tokens_admin, needFor(matchRoute("GET", "/v1/apps/shop"))).allowed);
  const auto tokens_write = rules({"tokens:*:read,write,list,delete"});
  EXPECT_FALSE(decide(tokens_write, needFor(matchRoute("POST", "/v1/tokens"))).allowed);
}

TEST(Acl, TheReadOnlyBuiltInReadsButNoValuesKeysOrAudit) {
  const auto ro = readOnlyRules();
  for (auto [method, path] : std::vector<std::pair<const char*, const char*>>{
           {"GET", "/v1/apps"},
           {"GET", "/v1/apps/shop"},
           {"GET", "/v1/services"},
           {"GET", "/v1/instances"},
           {"GET", "/v1/nodes"},
           {"GET", "/metrics"},
           {"GET", "/v1/events"},
           {"GET", "/v1/intentions"},
           {"GET", "/v1/intentions/check"},
           {"GET", "/v1/secrets"},
           {"GET", "/v1/secrets/metadata/shop/db"},
           {"GET", "/v1/apps/shop/services/web/logs"}}) {
    EXPECT_TRUE(decide(ro, needFor(matchRoute(method, path))).allowed) << path;
  }
  for (auto [method, path] :
       std::vector<std::pair<const char*, const char*>>{{"GET", "/v1/secrets/data/shop/db"},
                                                        {"GET", "/v1/apikeys"},
                                                        {"GET", "/v1/audit"},
                                                        {"GET", "/v1/tokens"},
                                                        {"PUT", "/v1/apps/shop"},
                                                        {"DELETE", "/v1/apps/shop"},
                                                        {"PUT", "/v1/intentions"},
                                                        {"POST", "/v1/apikeys"},
                                                        {"PUT", "/v1/secrets/data/a"}}) {
    EXPECT_FALSE(decide(ro, needFor(matchRoute(method, path))).allowed) << method << path;
  }
  EXPECT_FALSE(allows(ro, Kind::kApps, "shop", kWrite));  // env values stay hidden
}

TEST(Acl, DescribeNamesWhatWasNeeded) {
  EXPECT_EQ(describe(needFor(matchRoute("GET", "/v1/secrets/data/shop/db"))),
            "\"read\" on secrets \"shop/db\"");
  EXPECT_EQ(describe(needFor(matchRoute("PUT", "/v1/apps/shop"))), "\"write\" on apps \"shop\"");
  EXPECT_EQ(describe(needFor(matchRoute("GET", "/v1/apps"))), "\"list\" on some apps");
  EXPECT_EQ(describe(needFor(matchRoute("GET", "/v1/audit"))), "\"read\" on audit");
  EXPECT_EQ(describe(needFor(matchRoute("POST", "/v1/tokens"))), "\"admin\" on tokens");
  EXPECT_EQ(describe(needFor(matchRoute("GET", "/v1/events"))),
            "\"read\" on apps \"*\" (all of them)");
}

TEST(Acl, NoEscalation) {
  struct Case {
    std::vector<std::string_view> parent, child;
    std::vector<std::string_view> missing;
  };
  for (const Case& c : std::vector<Case>{
           {{"*:*:admin"}, {"secrets:shop/*:read", "tokens:*:admin", "*:*:admin"}, {}},
           {{"secrets:shop/*:read,list"}, {"secrets:shop/db:read"}, {}},
           {{"secrets:shop/*:read,list"}, {"secrets:shop/a/*:list,read"}, {}},
           {{"secrets:shop/*:read"}, {"secrets:shop/db:read,write"}, {"secrets:shop/db:write"}},
           {{"secrets:shop/*:read"}, {"secrets:*:read"}, {"secrets:*:read"}},
           {{"secrets:shop/*:read"}, {"secrets:shop*:read"}, {"secrets:shop*:read"}},
           {{"secrets:shop/*:read"}, {"apps:shop:read"}, {"apps:shop:read"}},
           {{"secrets:shop/*:read", "secrets:*:write"}, {"secrets:shop/db:read,write"}, {}},
           {{"apps:shop:read,write,list,delete"}, {"apps:shop:admin"}, {"apps:shop:admin"}},
           {{"apps:shop:admin"}, {"apps:shop:read,write,admin"}, {}},
           {{"apps:*:admin", "secrets:*:admin"}, {"*:*:read"}, {"*:*:read"}},
           {{"tokens:*:admin"}, {"tokens:*:admin", "secrets:x:read"}, {"secrets:x:read"}},
           {{}, {"nodes:*:read"}, {"nodes:*:read"}},
       }) {
    std::vector<Rule> parent, child;
    for (auto t : c.parent) parent.push_back(*parseRule(t));
    for (auto t : c.child) child.push_back(*parseRule(t));
    std::vector<std::string> got, want(c.missing.begin(), c.missing.end());
    for (const auto& r : notCovered(parent, child)) got.push_back(ruleText(r));
    EXPECT_EQ(got, want) << (c.child.empty() ? "" : c.child[0]);
  }
}

}  // namespace
}  // namespace baton::api::acl
