// The request decisions alone: header filter, routing on the normalized path, the identity
// verdict and the upstream head, with a fake Authorizer.
#include "gateway/exchange.h"

#include <gtest/gtest.h>

namespace baton::gateway {
namespace {

class FakeAuthorizer : public Authorizer {
 public:
  AuthDecision authorize(std::string_view authorization, const model::Route& route) override {
    ++calls;
    last_route = route.path;
    AuthDecision d;
    if (authorization != "Bearer good") {
      d.status = 401;
      d.www_authenticate = "Bearer realm=\"t\"";
      return d;
    }
    d.add_headers = {{"X-User", "alice"}, {"X-Evil", "a\r\nX-Injected: 1"}};
    return d;
  }
  const std::vector<std::string>& strippedHeaders() const override { return stripped; }
  std::vector<std::string> stripped{"x-user"};
  int calls = 0;
  std::string last_route;
};

RouteTable table() {
  model::AppRecord a;
  a.spec.name = "shop";
  model::Route pub;
  pub.path = "/";
  pub.service = "pub";
  model::Route adm;
  adm.path = "/admin";
  adm.service = "adm";
  adm.auth = "api-key";
  model::Route api;
  api.path = "/api";
  api.service = "pub";
  api.strip_prefix = true;
  model::Route fwd;
  fwd.path = "/fwd";
  fwd.service = "adm";
  fwd.auth = "api-key";
  fwd.forward_authorization = true;
  a.spec.routes = {pub, adm, api, fwd};
  return RouteTable::build({a}, {});
}

class ExchangeTest : public ::testing::Test {
 protected:
  // Parses, checks and routes `head`; returns the plan.
  RequestPlan plan(const std::string& head) {
    size_t resume = 0;
    size_t end = http1::findHeadEnd(head, &resume);
    EXPECT_GT(end, 0u);
    http1::Error e = req_.parse(std::string_view(head).substr(0, end), http1::Limits{});
    RequestPlan p;
    ForwardPolicy policy;
    policy.identity_headers = auth_.stripped;
    if (checkRequest(req_, e, policy, &p)) routeRequest(req_, table_, &auth_, &p);
    return p;
  }
  std::string upstream(const RequestPlan& p) {
    std::string out;
    buildUpstreamHead(req_, p, ClientInfo{"10.0.0.7", "https"}, &out);
    return out;
  }
  http1::RequestHead req_;
  FakeAuthorizer auth_;
  RouteTable table_ = table();
};

TEST_F(ExchangeTest, FramingErrorsMapToStatuses) {
  EXPECT_EQ(plan("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status, 400);
  EXPECT_EQ(plan("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n").status, 400);
  EXPECT_EQ(plan("GET / HTTP/3.0\r\nHost: a\r\n\r\n").status, 505);
  EXPECT_EQ(plan("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
  EXPECT_EQ(plan("GET /a;b HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
  RequestPlan p = plan("GET / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\n\r\n");
  EXPECT_EQ(p.status, 400);
  EXPECT_TRUE(p.close);
  EXPECT_EQ(auth_.calls, 0);
}

TEST_F(ExchangeTest, ClientCannotSendIdentityOrForwardingHeaders) {
  RequestPlan p = plan(
      "GET /x HTTP/1.1\r\nHost: shop\r\nX-User: admin\r\nx-user: admin2\r\nX_User: admin3\r\n"
      "X-Baton-Role: root\r\nX_Baton_Role: root\r\nX-Forwarded-For: 6.6.6.6\r\n"
      "Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n"
      "Content_Length: 5\r\nTransfer_Encoding: chunked\r\nMy_Header: kept\r\n"
      "Authorization: Bearer app-own\r\n\r\n");
  ASSERT_EQ(p.status, 0);
  std::string up = upstream(p);
  EXPECT_EQ(up,
            "GET /x HTTP/1.1\r\nHost: shop\r\nMy_Header: kept\r\nAuthorization: Bearer app-own\r\n"
            "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop\r\n"
            "\r\n");
}

TEST_F(ExchangeTest, RoutesOnTheNormalizedPathAndChecksIdentityThere) {
  for (const char* target : {"//admin", "/%61dmin", "/x/../admin", "/./admin", "/%2e%2e/admin"}) {
    RequestPlan p = plan(std::string("GET ") + target + " HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(p.status, 401) << target;
    EXPECT_EQ(p.www_authenticate, "Bearer realm=\"t\"");
    EXPECT_EQ(table_.entry(p.route).route.service, "adm") << target;
    EXPECT_FALSE(p.close);  // no body: the connection can stay
  }
  EXPECT_EQ(plan("POST //admin HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n").close, true);
}

TEST_F(ExchangeTest, CredentialsAreConsumedAndClaimsForwarded) {
  RequestPlan p = plan("GET //admin//x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n"
                       "X-User: forged\r\n\r\n");
  ASSERT_EQ(p.status, 0);
  EXPECT_EQ(auth_.last_route, "/admin");
  EXPECT_EQ(upstream(p),
            "GET /admin/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.7\r\n"
            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\nX-User: alice\r\n\r\n");
}

TEST_F(ExchangeTest, ARouteCanAskForTheCredentials) {
  RequestPlan p = plan("GET /fwd HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n\r\n");
  ASSERT_EQ(p.status, 0);
  EXPECT_NE(upstream(p).find("\r\nAuthorization: Bearer good\r\n"), std::string::npos);
}

TEST_F(ExchangeTest, StripPrefixAppliesToTheNormalizedTarget) {
  RequestPlan p = plan("GET /api//%7Eu/../v?q=/.. HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(p.status, 0);
  EXPECT_EQ(p.target, "/api/v?q=/..");
  EXPECT_EQ(p.upstream_target, "/v?q=/..");
}

TEST_F(ExchangeTest, Http10WithoutHostGetsOneUpstream) {
  RequestPlan p = plan("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.status, 0);
  EXPECT_EQ(upstream(p),
            "GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 10.0.0.7\r\n"
            "X-Forwarded-Proto: https\r\n\r\n");
}

TEST(SameHeaderName, CaseAndUnderscore) {
  EXPECT_TRUE(sameHeaderName("X_User", "x-user"));
  EXPECT_TRUE(sameHeaderName("X-USER", "x-user"));
  EXPECT_FALSE(sameHeaderName("X-Users", "x-user"));
}

}  // namespace
}  // namespace baton::gateway
