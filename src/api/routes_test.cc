#include "api/routes.h"

#include <gtest/gtest.h>

#include "api/acl.h"

namespace baton::api {
namespace {

TEST(Routes, TopLevel) {
  EXPECT_EQ(matchRoute("GET", "/v1/health").id, RouteId::kHealth);
  EXPECT_EQ(matchRoute("GET", "/metrics").id, RouteId::kMetrics);
  EXPECT_EQ(matchRoute("GET", "/v1/apps").id, RouteId::kListApps);
  EXPECT_EQ(matchRoute("GET", "/v1/apps/").id, RouteId::kListApps);
  EXPECT_EQ(matchRoute("GET", "/v1/services").id, RouteId::kListServices);
  EXPECT_EQ(matchRoute("GET", "/v1/instances").id, RouteId::kListInstances);
  EXPECT_EQ(matchRoute("GET", "/v1/nodes").id, RouteId::kListNodes);
  EXPECT_EQ(matchRoute("GET", "/v1/events").id, RouteId::kEvents);
  EXPECT_EQ(matchRoute("HEAD", "/v1/health").id, RouteId::kHealth);
}

TEST(Routes, AppsWithParams) {
  auto m = matchRoute("PUT", "/v1/apps/shop");
  EXPECT_EQ(m.id, RouteId::kPutApp);
  EXPECT_TRUE(m.is_write);
  EXPECT_EQ(m.params.at("app"), "shop");
  EXPECT_EQ(matchRoute("GET", "/v1/apps/shop").id, RouteId::kGetApp);
  EXPECT_FALSE(matchRoute("GET", "/v1/apps/shop").is_write);
  EXPECT_EQ(matchRoute("DELETE", "/v1/apps/shop").id, RouteId::kDeleteApp);

  m = matchRoute("POST", "/v1/apps/shop/services/web/scale");
  EXPECT_EQ(m.id, RouteId::kSetScale);
  EXPECT_EQ(m.params.at("app"), "shop");
  EXPECT_EQ(m.params.at("svc"), "web");
  EXPECT_TRUE(m.is_write);
  EXPECT_EQ(matchRoute("DELETE", "/v1/apps/shop/services/web/scale").id, RouteId::kClearScale);
  m = matchRoute("GET", "/v1/apps/shop/services/web/logs");
  EXPECT_EQ(m.id, RouteId::kLogs);
  EXPECT_EQ(m.params.at("svc"), "web");
}

TEST(Routes, Operator) {
  using acl::kAdmin, acl::kList, acl::Kind, acl::Need, acl::needFor;
  auto m = matchRoute("POST", "/v1/operator/init");
  EXPECT_EQ(m.id, RouteId::kOperatorInit);
  EXPECT_EQ(needFor(m).cap, kAdmin);
  EXPECT_EQ(needFor(m).kind, Kind::kSecrets);
  m = matchRoute("POST", "/v1/operator/unseal");
  EXPECT_EQ(m.id, RouteId::kOperatorUnseal);
  EXPECT_EQ(needFor(m).cap, kAdmin);
  m = matchRoute("GET", "/v1/operator/seal");
  EXPECT_EQ(m.id, RouteId::kSealStatus);
  EXPECT_EQ(needFor(m).what, Need::What::kSome);
  EXPECT_EQ(needFor(m).cap, kList);
  EXPECT_EQ(matchRoute("GET", "/v1/operator/init").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("POST", "/v1/operator/seal").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("POST", "/v1/operator/rekey").id, RouteId::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/operator").id, RouteId::kNotFound);
}

TEST(Routes, PercentDecodedParams) {
  auto m = matchRoute("GET", "/v1/apps/my%2Dapp");
  EXPECT_EQ(m.params.at("app"), "my-app");
}

TEST(Routes, NotFoundAndMethodNotAllowed) {
  EXPECT_EQ(matchRoute("GET", "/").id, RouteId::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v2/apps").id, RouteId::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/nope").id, RouteId::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/apps/shop/services").id, RouteId::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/apps/shop/services/web/other").id, RouteId::kNotFound);
  EXPECT_EQ(matchRoute("POST", "/v1/apps").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("GET", "/v1/apps/shop/services/web/scale").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("PATCH", "/v1/apps/shop").id, RouteId::kMethodNotAllowed);
  EXPECT_FALSE(matchRoute("PATCH", "/v1/apps/shop").is_write);
}

TEST(Routes, ApiKeys) {
  auto m = matchRoute("POST", "/v1/apikeys");
  EXPECT_EQ(m.id, RouteId::kCreateApiKey);
  EXPECT_TRUE(m.is_write);
  m = matchRoute("GET", "/v1/apikeys/");
  EXPECT_EQ(m.id, RouteId::kListApiKeys);
  EXPECT_FALSE(m.is_write);
  m = matchRoute("DELETE", "/v1/apikeys/0123456789abcdef");
  EXPECT_EQ(m.id, RouteId::kDeleteApiKey);
  EXPECT_EQ(m.params.at("id"), "0123456789abcdef");
  EXPECT_EQ(matchRoute("GET", "/v1/apikeys/0123456789abcdef").id, RouteId::kMethodNotAllowed);

  EXPECT_EQ(matchRoute("PUT", "/v1/apikeys").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("DELETE", "/v1/apikeys/a/b").id, RouteId::kNotFound);
  EXPECT_STREQ(routeName(RouteId::kCreateApiKey), "create_apikey");
}

TEST(Routes, Tokens) {
  EXPECT_EQ(matchRoute("POST", "/v1/tokens").id, RouteId::kCreateToken);
  EXPECT_EQ(matchRoute("GET", "/v1/tokens/").id, RouteId::kListTokens);
  EXPECT_EQ(matchRoute("GET", "/v1/tokens/self").id, RouteId::kTokenSelf);
  auto m = matchRoute("DELETE", "/v1/tokens/0123456789abcdef");
  EXPECT_EQ(m.id, RouteId::kRevokeToken);
  EXPECT_TRUE(m.is_write);
  EXPECT_EQ(m.params.at("accessor"), "0123456789abcdef");
  EXPECT_EQ(matchRoute("GET", "/v1/tokens/0123456789abcdef").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("DELETE", "/v1/tokens/self").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("PUT", "/v1/tokens").id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("DELETE", "/v1/tokens/a/b").id, RouteId::kNotFound);
  EXPECT_STREQ(routeName(RouteId::kRevokeToken), "revoke_token");
}

TEST(Routes, Query) {
  auto q = parseQuery("app=shop&state=healthy&x=a+b%21&flag&=v&bad=%zz");
  EXPECT_EQ(q.at("app"), "shop");
  EXPECT_EQ(q.at("state"), "healthy");
  EXPECT_EQ(q.at("x"), "a b!");
  EXPECT_EQ(q.at("flag"), "");
  EXPECT_EQ(q.at("bad"), "%zz");
  EXPECT_TRUE(parseQuery("").empty());
}

TEST(Routes, Names) {
  EXPECT_TRUE(isValidName("shop"));
  EXPECT_TRUE(isValidName("web-2"));
  EXPECT_FALSE(isValidName("2web"));
  EXPECT_FALSE(isValidName("a_b"));
  EXPECT_FALSE(isValidName(""));
  EXPECT_FALSE(isValidName("-x"));
  EXPECT_FALSE(isValidName("Shop"));
  EXPECT_FALSE(isValidName("a/b"));
  EXPECT_FALSE(isValidName(std::string(64, 'a')));
}

}  // namespace
}  // namespace baton::api
