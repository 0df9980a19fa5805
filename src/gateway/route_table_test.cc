#include "gateway/route_table.h"

#include <gtest/gtest.h>

namespace baton::gateway {
namespace {

model::AppRecord app(std::string name, std::vector<model::Route> routes) {
  model::AppRecord a;
  a.spec.name = std::move(name);
  a.spec.routes = std::move(routes);
  return a;
}

model::Route route(std::string host, std::string path, std::string service, bool strip = false) {
  model::Route r;
  r.host = std::move(host);
  r.path = std::move(path);
  r.service = std::move(service);
  r.strip_prefix = strip;
  return r;
}

std::string matchService(const RouteTable& t, std::string_view host, std::string_view target) {
  int i = t.match(host, target);
  return i < 0 ? "-" : t.entry(i).route.service;
}

TEST(RouteTable, PrefixOnSegmentBoundaries) {
  EXPECT_TRUE(RouteTable::prefixMatches("/api", "/api"));
  EXPECT_TRUE(RouteTable::prefixMatches("/api", "/api/"));
  EXPECT_TRUE(RouteTable::prefixMatches("/api", "/api/x"));
  EXPECT_TRUE(RouteTable::prefixMatches("/api", "/api?q=1"));
  EXPECT_FALSE(RouteTable::prefixMatches("/api", "/apix"));
  EXPECT_FALSE(RouteTable::prefixMatches("/api", "/ap"));
  EXPECT_TRUE(RouteTable::prefixMatches("/", "/anything"));
  EXPECT_FALSE(RouteTable::prefixMatches("/", "*"));
}

TEST(RouteTable, LongestPrefixWins) {
  auto t = RouteTable::build({app("shop", {route("", "/", "web"), route("", "/api", "api"),
                                           route("", "/api/admin/", "admin")})},
                             {});
  EXPECT_EQ(matchService(t, "x", "/"), "web");
  EXPECT_EQ(matchService(t, "x", "/apix"), "web");
  EXPECT_EQ(matchService(t, "x", "/api"), "api");
  EXPECT_EQ(matchService(t, "x", "/api/users?id=1"), "api");
  EXPECT_EQ(matchService(t, "x", "/api/admin"), "admin");  // trailing slash normalized
  EXPECT_EQ(matchService(t, "x", "/api/admin/x"), "admin");
}

TEST(RouteTable, HostExactCaseInsensitivePortStripped) {
  auto t =
      RouteTable::build({app("a", {route("Shop.Example.com", "/", "shop"),
                                   route("", "/", "fallback"), route("", "/static", "static")})},
                        {});
  EXPECT_EQ(matchService(t, "shop.example.com", "/x"), "shop");
  EXPECT_EQ(matchService(t, "SHOP.example.COM:8443", "/x"), "shop");
  EXPECT_EQ(matchService(t, "shop.example.com.", "/x"), "shop");
  EXPECT_EQ(matchService(t, "other.example.com", "/x"), "fallback");
  EXPECT_EQ(matchService(t, "", "/x"), "fallback");
  // A host's own routes take precedence over longer any-host prefixes.
  EXPECT_EQ(matchService(t, "shop.example.com", "/static/a.css"), "shop");
  EXPECT_EQ(matchService(t, "other", "/static/a.css"), "static");
}

TEST(RouteTable, Ipv6HostLiteral) {
  char buf[64];
  size_t n = RouteTable::normalizeHost("[::1]:8080", buf, sizeof buf);
  EXPECT_EQ(std::string_view(buf, n), "[::1]");
}

TEST(RouteTable, NoRoute) {
  auto t = RouteTable::build({app("a", {route("a.com", "/api", "api")})}, {});
  EXPECT_EQ(t.match("b.com", "/api"), -1);
  EXPECT_EQ(t.match("a.com", "/"), -1);
  EXPECT_EQ(RouteTable().match("a", "/"), -1);
}

TEST(RouteTable, StripPrefix) {
  auto r = route("", "/api", "api", true);
  EXPECT_EQ(RouteTable::rewriteTarget(r, "/api/x"), "/x");
  EXPECT_EQ(RouteTable::rewriteTarget(r, "/api"), "/");
  EXPECT_EQ(RouteTable::rewriteTarget(r, "/api?q=1"), "/?q=1");
  EXPECT_EQ(RouteTable::rewriteTarget(r, "/api/x?q=1"), "/x?q=1");
  r.strip_prefix = false;
  EXPECT_EQ(RouteTable::rewriteTarget(r, "/api/x"), "/api/x");
  auto root = route("", "/", "web", true);
  EXPECT_EQ(RouteTable::rewriteTarget(root, "/x"), "/x");
}

TEST(RouteTable, BackendsAttachedPerService) {
  BackendMap b;
  b[{"shop", "web"}] = {{"127.0.0.1", 9000, "i1"}, {"127.0.0.1", 9001, "i2"}};
  auto t = RouteTable::build({app("shop", {route("", "/", "web"), route("", "/api", "api")}),
                              app("blog", {route("blog.com", "/", "web")})},
                             b);
  int web = t.match("x", "/");
  ASSERT_GE(web, 0);
  EXPECT_EQ(t.entry(web).app, "shop");
  EXPECT_EQ(t.entry(web).backends.size(), 2u);
  int api = t.match("x", "/api");
  EXPECT_TRUE(t.entry(api).backends.empty());
  int blog = t.match("blog.com", "/");
  EXPECT_EQ(t.entry(blog).app, "blog");
  EXPECT_TRUE(t.entry(blog).backends.empty());  // (blog, web) has none
}

TEST(RouteTable, TiesGoToFirstAppByName) {
  auto t = RouteTable::build(
      {app("zeta", {route("", "/", "z")}), app("alpha", {route("", "/", "a")})}, {});
  EXPECT_EQ(matchService(t, "h", "/"), "a");
}

}  // namespace
}  // namespace baton::gateway
