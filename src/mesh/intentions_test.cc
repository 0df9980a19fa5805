#include "mesh/intentions.h"

#include <gtest/gtest.h>

namespace baton::mesh {
namespace {

Rule rule(const char* src, const char* dst, Action a) {
  return Rule{Pattern::parse(src).value(), Pattern::parse(dst).value(), a};
}
ServiceRef ref(const char* s) { return parseServiceRef(s).value(); }
Caller caller(const char* s, std::vector<std::string> ups = {}) { return Caller{ref(s), ups}; }

TEST(IntentionsTest, DeclaredUpstreamInTheSameAppIsAllowed) {
  Verdict v = decide({}, caller("shop/web", {"cart"}), ref("shop/cart"));
  EXPECT_TRUE(v.allowed);
  EXPECT_FALSE(v.rule.has_value());
  EXPECT_NE(v.reason.find("upstream of shop/web"), std::string::npos) << v.reason;
}

TEST(IntentionsTest, EverythingElseIsDeniedByDefault) {
  EXPECT_FALSE(decide({}, caller("shop/web", {"cart"}), ref("shop/admin")).allowed);
  EXPECT_FALSE(decide({}, caller("shop/web"), ref("shop/cart")).allowed);
  // The same service name in another app is not the declared one.
  EXPECT_FALSE(decide({}, caller("shop/web", {"cart"}), ref("other/cart")).allowed);
  Verdict v = decide({}, caller("shop/web"), ref("shop/admin"));
  EXPECT_NE(v.reason.find("not an upstream"), std::string::npos) << v.reason;
}

TEST(IntentionsTest, ACrossAppUpstreamNeedsAnExplicitAllow) {
  Caller c = caller("shop/web", {"billing/api"});
  Verdict v = decide({}, c, ref("billing/api"));
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("baton allow shop/web billing/api"), std::string::npos) << v.reason;
  v = decide({rule("shop/web", "billing/api", Action::kAllow)}, c, ref("billing/api"));
  EXPECT_TRUE(v.allowed);
  ASSERT_TRUE(v.rule.has_value());
  EXPECT_EQ(v.reason, "allowed by the rule `baton allow shop/web billing/api`");
}

TEST(IntentionsTest, AnExplicitDenyBeatsADeclaration) {
  Verdict v = decide({rule("shop/web", "shop/cart", Action::kDeny)}, caller("shop/web", {"cart"}),
                     ref("shop/cart"));
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, "denied by the rule `baton deny shop/web shop/cart`");
}

TEST(IntentionsTest, TheMostSpecificRuleWinsDestinationFirst) {
  std::vector<Rule> rules = {rule("*", "*", Action::kDeny), rule("shop/*", "billing/api", Action::kAllow),
                             rule("shop/web", "billing/*", Action::kDeny)};
  // Destination exact (billing/api) outranks a more specific source with a wildcard destination.
  EXPECT_TRUE(decide(rules, caller("shop/web"), ref("billing/api")).allowed);
  EXPECT_FALSE(decide(rules, caller("shop/web"), ref("billing/ledger")).allowed);
  EXPECT_TRUE(decide(rules, caller("shop/cart"), ref("billing/api")).allowed);
  EXPECT_FALSE(decide(rules, caller("other/x"), ref("billing/api")).allowed);
  // The catch-all deny also overrides declarations.
  EXPECT_FALSE(decide(rules, caller("shop/web", {"cart"}), ref("shop/cart")).allowed);
}

TEST(IntentionsTest, DenyWinsATieAndOrderDoesNotMatter) {
  std::vector<Rule> a = {rule("shop/web", "billing/api", Action::kAllow),
                         rule("shop/web", "billing/api", Action::kDeny)};
  std::vector<Rule> b = {a[1], a[0]};
  EXPECT_FALSE(decide(a, caller("shop/web"), ref("billing/api")).allowed);
  EXPECT_FALSE(decide(b, caller("shop/web"), ref("billing/api")).allowed);
}

TEST(IntentionsTest, PatternsAndRefsAreParsedStrictly) {
  EXPECT_TRUE(Pattern::parse("*").isOk());
  EXPECT_TRUE(Pattern::parse("shop/*").isOk());
  EXPECT_TRUE(Pattern::parse("shop/web").isOk());
  for (const char* bad : {"", "shop", "*/web", "shop/", "/web", "Shop/web", "shop/web/x", "shop/w*",
                          "shop/*/", " shop/web"}) {
    EXPECT_FALSE(Pattern::parse(bad).isOk()) << bad;
  }
  EXPECT_FALSE(parseServiceRef("shop/*").isOk());
  EXPECT_FALSE(parseServiceRef("*").isOk());
  EXPECT_EQ(parseServiceRef("shop/web").value(), (ServiceRef{"shop", "web"}));
  EXPECT_EQ(Pattern::parse("shop/*").value().specificity(), 1);
}

TEST(IntentionsTest, DeclaresReadsBothForms) {
  EXPECT_TRUE(declares("shop", "cart", ref("shop/cart")));
  EXPECT_TRUE(declares("shop", "billing/api", ref("billing/api")));
  EXPECT_FALSE(declares("shop", "cart", ref("billing/cart")));
  EXPECT_FALSE(declares("shop", "billing/api", ref("shop/api")));
}

}  // namespace
}  // namespace baton::mesh
