#include "api/handlers.h"
#include "autoscaler/rhythm.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "api/event_bus.h"
#include "auth/api_keys.h"
#include "core/testing/fake_clock.h"
#include "secrets/seal.h"
#include "model/json.h"
#include "model/keys.h"
#include "state/sqlite_store.h"

namespace baton::api {
namespace {

using nlohmann::json;
namespace keys = model::keys;

constexpr std::string_view kShopV1 = R"(app = "shop"

[services.web]
run = ["python3", "-m", "http.server", "${PORT}"]

[services.web.scale]
min = 1
max = 5
)";

constexpr std::string_view kShopV2 = R"(app = "shop"

[services.web]
run = ["python3", "-m", "http.server", "${PORT}"]
env = { GREETING = "hello" }

[services.web.scale]
min = 1
max = 5
)";

std::string putBody(std::string_view manifest, std::string filename = "app.toml") {
  return json{{"manifest", manifest}, {"filename", filename}}.dump();
}

class HandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/baton-api-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = state::SqliteStore::open(dir_ / "state.db", clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    handlers_ = std::make_unique<Handlers>(ApiDeps{*store_, clock_, &bus_, {}, {}},
                                           ApiOptions{.dev = true});
  }
  void TearDown() override {
    handlers_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  ApiResponse call(std::string method, std::string_view target, std::string body = {}) {
    return handlers_->handle(ApiRequest::make(std::move(method), target, std::move(body)));
  }
  static json body(const ApiResponse& r) { return json::parse(r.body); }

  void putInstance(const std::string& id, const std::string& svc, int64_t version,
                   const std::string& hash, std::optional<model::InstanceState> state) {
    model::InstanceRecord rec;
    rec.id = id;
    rec.app = "shop";
    rec.service = svc;
    rec.node = "n1";
    rec.version = version;
    rec.spec_hash = hash;
    rec.created_at = clock_.now();
    ASSERT_TRUE(store_->put(keys::instance(id), model::encode(rec)).isOk());
    if (state) {
      model::InstanceStatus st;
      st.id = id;
      st.node = "n1";
      st.state = *state;
      st.address = "10.0.0.1";
      st.port = 31000;
      st.pid = 4242;
      st.last_exit_code = 137;
      st.started_at = clock_.now();
      ASSERT_TRUE(store_->put(keys::status(id), model::encode(st)).isOk());
    }
  }

  std::string currentHash() {
    auto kv = store_->get(keys::app("shop"));
    auto rec = model::decode<model::AppRecord>((*kv)->value);
    return model::specHash(rec->spec.services.at("web"));
  }

  testing::FakeClock clock_;
  EventBus bus_{clock_};
  std::filesystem::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<Handlers> handlers_;
};

TEST_F(HandlersTest, PutAppWritesVersionOneThenOnlyOnChange) {
  auto r = call("PUT", "/v1/apps/shop", putBody(kShopV1));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r), (json{{"app", "shop"}, {"version", 1}, {"changed", true}}));
  auto kv = store_->get(keys::app("shop"));
  ASSERT_TRUE(kv.isOk() && kv->has_value());
  auto rec = model::decode<model::AppRecord>((*kv)->value);
  ASSERT_TRUE(rec.isOk());
  EXPECT_EQ(rec->version, 1);
  EXPECT_EQ(rec->spec.name, "shop");
  EXPECT_EQ(rec->source, kShopV1);
  auto rev = (*kv)->mod_revision;

  r = call("PUT", "/v1/apps/shop", putBody(kShopV1));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r), (json{{"app", "shop"}, {"version", 1}, {"changed", false}}));
  EXPECT_EQ((*store_->get(keys::app("shop")))->mod_revision, rev);

  r = call("PUT", "/v1/apps/shop", putBody(kShopV2));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r), (json{{"app", "shop"}, {"version", 2}, {"changed", true}}));
  rec = model::decode<model::AppRecord>((*store_->get(keys::app("shop")))->value);
  EXPECT_EQ(rec->version, 2);
  EXPECT_EQ(rec->spec.services.at("web").env.at("GREETING"), "hello");
}

TEST_F(HandlersTest, BadManifestIs400WithLineAndKeyAndWritesNothing) {
  auto before = store_->currentRevision();
  std::string bad = "app = \"shop\"\n\n[services.web]\nrun = [\"x\"]\nport = \"http\"\n";
  auto r = call("PUT", "/v1/apps/shop", putBody(bad, "shop.toml"));
  ASSERT_EQ(r.status, 400) << r.body;
  json j = body(r);
  ASSERT_TRUE(j["errors"].is_array());
  ASSERT_FALSE(j["errors"].empty());
  EXPECT_EQ(j["errors"][0]["file"], "shop.toml");
  EXPECT_EQ(j["errors"][0]["line"], 5);
  EXPECT_EQ(j["errors"][0]["key"], "services.web.port");
  EXPECT_FALSE(j["errors"][0]["message"].get<std::string>().empty());
  EXPECT_EQ(*store_->currentRevision(), *before + 1) << "nothing but the audit entry";
  EXPECT_EQ(store_->list("/baton/audit/")->kvs.size(), 1u);
  EXPECT_FALSE(store_->get(keys::app("shop"))->has_value());
}

TEST_F(HandlersTest, PutAppRejectsMalformedBodiesAndNameMismatch) {
  EXPECT_EQ(call("PUT", "/v1/apps/shop", "{not json").status, 400);
  EXPECT_EQ(call("PUT", "/v1/apps/shop", "[1,2]").status, 400);
  EXPECT_EQ(call("PUT", "/v1/apps/shop", R"({"manifest": 3})").status, 400);
  EXPECT_EQ(call("PUT", "/v1/apps/shop", R"({"manifest": "", "filename": 1})").status, 400);
  auto r = call("PUT", "/v1/apps/other", putBody(kShopV1));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["errors"][0]["key"], "app");
  EXPECT_EQ(call("PUT", "/v1/apps/Bad%20Name", putBody(kShopV1)).status, 400);
  EXPECT_FALSE(store_->get(keys::app("shop"))->has_value());
}

TEST_F(HandlersTest, DeepJsonBodiesAre400) {
  for (const char* open : {"[", "{\"a\":"}) {
    std::string deep;
    for (int i = 0; i < 100'000; ++i) deep += open;
    for (const char* target : {"/v1/apps/shop", "/v1/apps/shop/services/web/scale"}) {
      auto r = call(std::string(target).ends_with("scale") ? "POST" : "PUT", target, deep);
      EXPECT_EQ(r.status, 400) << target;
      EXPECT_NE(r.body.find("nesting deeper than"), std::string::npos) << r.body;
    }
  }
}

TEST_F(HandlersTest, ARouteNamingAnUnknownIdentityProviderIsRefused) {
  Handlers h(ApiDeps{*store_, clock_, nullptr, {}, {}},
             ApiOptions{.dev = true, .identity_providers = std::vector<std::string>{"corp"}});
  auto put = [&](const std::string& auth) {
    std::string m = std::string(kShopV1) + "\n[[routes]]\npath = \"/\"\nservice = \"web\"\nauth = \"" +
                    auth + "\"\n";
    return h.handle(ApiRequest::make("PUT", "/v1/apps/shop", putBody(m)));
  };
  auto r = put("okta");
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(body(r)["errors"][0]["key"], "routes[0].auth");
  EXPECT_NE(r.body.find("corp"), std::string::npos) << r.body;
  EXPECT_EQ(put("corp").status, 200);
}

TEST_F(HandlersTest, GetListAndDeleteApps) {
  EXPECT_EQ(call("GET", "/v1/apps/shop").status, 404);
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  auto r = call("GET", "/v1/apps");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["apps"][0]["app"], "shop");
  EXPECT_EQ(body(r)["apps"][0]["services"], json::array({"web"}));
  r = call("GET", "/v1/apps/shop");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["version"], 1);
  EXPECT_EQ(body(r)["spec"]["name"], "shop");
  EXPECT_EQ(body(r)["services"][0]["service"], "web");

  ASSERT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"min":2})").status, 200);
  ASSERT_EQ(call("DELETE", "/v1/apps/shop").status, 200);
  EXPECT_FALSE(store_->get(keys::app("shop"))->has_value());
  EXPECT_FALSE(store_->get(keys::scale("shop", "web"))->has_value());
  EXPECT_EQ(call("DELETE", "/v1/apps/shop").status, 404);
}

TEST_F(HandlersTest, ScaleOverrideValidation) {
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  // Unknown app and service.
  EXPECT_EQ(call("POST", "/v1/apps/nope/services/web/scale", R"({"min":1})").status, 404);
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/db/scale", R"({"min":1})").status, 404);
  // Bad bodies.
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/web/scale", "{}").status, 400);
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"min":-1})").status, 400);
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"min":"2"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"min":1,"for":"soon"})").status,
            400);
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"mix":1})").status, 400);
  // min above the manifest's max (5).
  auto r = call("POST", "/v1/apps/shop/services/web/scale", R"({"min":6})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(body(r)["error"].get<std::string>().find("must not exceed"), std::string::npos);
  EXPECT_FALSE(store_->get(keys::scale("shop", "web"))->has_value());

  // A valid override, then one merged into it.
  r = call("POST", "/v1/apps/shop/services/web/scale", R"({"max":10,"for":"2h"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["max"], 10);
  EXPECT_EQ(body(r)["expires_at"], toUnixMillis(clock_.now()) + 2 * 3600 * 1000);
  r = call("POST", "/v1/apps/shop/services/web/scale", R"({"min":8})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["min"], 8);
  EXPECT_EQ(body(r)["max"], 10);
  // Against the override now in force.
  EXPECT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"min":11})").status, 400);

  r = call("GET", "/v1/services?app=shop");
  ASSERT_EQ(r.status, 200);
  auto row = body(r)["services"][0];
  EXPECT_EQ(row["min"], 8);
  EXPECT_EQ(row["max"], 10);
  EXPECT_EQ(row["source"], "override");

  ASSERT_EQ(call("DELETE", "/v1/apps/shop/services/web/scale").status, 200);
  row = body(call("GET", "/v1/services"))["services"][0];
  EXPECT_EQ(row["min"], 1);
  EXPECT_EQ(row["max"], 5);
  EXPECT_EQ(row["source"], "manifest");
}

TEST_F(HandlersTest, ExpiredOverrideIsNotInForce) {
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  ASSERT_EQ(call("POST", "/v1/apps/shop/services/web/scale", R"({"max":9,"for":"1h"})").status,
            200);
  EXPECT_EQ(body(call("GET", "/v1/services"))["services"][0]["max"], 9);
  clock_.advance(std::chrono::hours(2));
  auto row = body(call("GET", "/v1/services"))["services"][0];
  EXPECT_EQ(row["max"], 5);
  EXPECT_EQ(row["source"], "manifest");
}

// Issue 18: a service whose autoscaler learned a period shows when it expects the next call.
TEST_F(HandlersTest, AServiceWithALearnedPeriodShowsItsNextExpectedCall) {
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  auto row = body(call("GET", "/v1/services"))["services"][0];
  EXPECT_TRUE(row["next_expected"].is_null());
  EXPECT_EQ(row["rhythm"], "");
  autoscaler::Rhythm r;
  const Duration period(300'000);
  TimePoint t = clock_.now() - 5 * period;
  r.burstStarted(t);
  for (int i = 0; i < 4; ++i) {
    t += period;
    r.observe(Duration(290'000), period, t);
    r.burstStarted(t);
  }
  ASSERT_TRUE(store_->put(std::string(keys::kRhythm) + "shop/web", r.toJson()).isOk());
  row = body(call("GET", "/v1/services"))["services"][0];
  // The last burst was one period ago: the next call is due now.
  EXPECT_EQ(row["next_expected"], toUnixMillis(t + period));
  EXPECT_EQ(row["rhythm"], "period 300 s");
  // A late call: the next one, a period on.
  clock_.advance(Duration(1000));
  row = body(call("GET", "/v1/services"))["services"][0];
  EXPECT_EQ(row["next_expected"], toUnixMillis(t + 2 * period));
}

TEST_F(HandlersTest, InstancesJoinRecordsAndStatus) {
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  std::string hash = currentHash();
  putInstance("i-1", "web", 1, hash, model::InstanceState::kHealthy);
  putInstance("i-2", "web", 1, hash, std::nullopt);  // no status yet: pending
  auto r = call("GET", "/v1/instances?app=shop");
  ASSERT_EQ(r.status, 200) << r.body;
  auto rows = body(r)["instances"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["id"], "i-1");
  EXPECT_EQ(rows[0]["state"], "healthy");
  EXPECT_EQ(rows[0]["address"], "10.0.0.1");
  EXPECT_EQ(rows[0]["port"], 31000);
  EXPECT_EQ(rows[0]["pid"], 4242);
  EXPECT_EQ(rows[0]["version"], 1);
  EXPECT_EQ(rows[0]["node"], "n1");
  EXPECT_EQ(rows[0]["last_exit_code"], 137);
  EXPECT_EQ(rows[0]["started_at"], toUnixMillis(clock_.now()));
  for (const char* k : {"app", "service", "restarts", "message"}) EXPECT_TRUE(rows[0].contains(k));
  EXPECT_EQ(rows[1]["state"], "pending");

  EXPECT_EQ(body(call("GET", "/v1/instances?state=healthy"))["instances"].size(), 1u);
  EXPECT_EQ(body(call("GET", "/v1/instances?service=db"))["instances"].size(), 0u);
  EXPECT_EQ(call("GET", "/v1/instances?state=bogus").status, 400);

  auto row = body(call("GET", "/v1/services"))["services"][0];
  EXPECT_EQ(row["desired"], 2);
  EXPECT_EQ(row["ready"], 1);
  EXPECT_EQ(row["current"], 2);
}

// "w" may write, "r" may only read.
Access twoTokens(std::string_view t) {
  if (t == "w") return Access::kWrite;
  if (t == "r") return Access::kRead;
  return Access::kNone;
}

TEST_F(HandlersTest, OutsideDevModeEveryCallButHealthNeedsAToken) {
  Handlers h(ApiDeps{*store_, clock_, nullptr, {}, {}},
             ApiOptions{.dev = false, .check_token = twoTokens});
  auto send = [&](std::string method, std::string target, std::string auth, std::string b = {}) {
    return h.handle(ApiRequest::make(std::move(method), target, std::move(b), std::move(auth)));
  };
  auto put = [&](std::string auth) { return send("PUT", "/v1/apps/shop", auth, putBody(kShopV2)); };
  EXPECT_EQ(put("").status, 401);
  EXPECT_EQ(put("Bearer nope").status, 401);
  EXPECT_EQ(put("Basic w").status, 401);
  EXPECT_EQ(put("Bearer r").status, 403);  // a read token cannot write
  EXPECT_EQ(put("Bearer w").status, 200);
  // Reads need a token too; health does not.
  for (const char* target : {"/v1/apps", "/v1/apps/shop", "/v1/services", "/v1/instances",
                             "/v1/nodes", "/metrics", "/v1/events"}) {
    EXPECT_EQ(send("GET", target, "").status, 401) << target;
    EXPECT_EQ(send("GET", target, "Bearer nope").status, 401) << target;
  }
  EXPECT_EQ(send("GET", "/v1/health", "").status, 200);
  EXPECT_EQ(send("GET", "/v1/apps", "Bearer r").status, 200);
  EXPECT_EQ(send("DELETE", "/v1/apps/shop", "Bearer r").status, 403);
  EXPECT_EQ(send("GET", "/v1/apikeys", "Bearer r").status, 403);

  // Env values (passwords, until secrets exist) only for a write token.
  auto read = send("GET", "/v1/apps/shop", "Bearer r");
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(read.body.find("hello"), std::string::npos) << read.body;
  EXPECT_NE(read.body.find("GREETING"), std::string::npos) << read.body;
  EXPECT_FALSE(body(read).contains("source"));
  auto full = send("GET", "/v1/apps/shop", "Bearer w");
  EXPECT_NE(full.body.find("hello"), std::string::npos) << full.body;
  EXPECT_TRUE(body(full).contains("source"));
}

TEST_F(HandlersTest, DevModeAnswersLocalClientsOnly) {
  auto send = [&](bool loopback, std::string host, std::string origin) {
    ApiRequest r = ApiRequest::make("GET", "/v1/apps");
    r.peer_loopback = loopback;
    r.host = std::move(host);
    r.origin = std::move(origin);
    return handlers_->handle(r).status;
  };
  EXPECT_EQ(send(true, "127.0.0.1:4646", ""), 200);
  EXPECT_EQ(send(true, "localhost:4646", ""), 200);
  EXPECT_EQ(send(true, "[::1]:4646", ""), 200);
  EXPECT_EQ(send(true, "", ""), 200);  // HTTP/1.0 without Host
  EXPECT_EQ(send(true, "localhost:4646", "http://localhost:3000"), 200);
  EXPECT_EQ(send(false, "127.0.0.1:4646", ""), 403);     // another machine
  EXPECT_EQ(send(true, "evil.example:4646", ""), 403);   // DNS rebinding
  EXPECT_EQ(send(true, "127.0.0.1.evil.example", ""), 403);
  EXPECT_EQ(send(true, "localhost:4646", "https://evil.example"), 403);  // a web page
  EXPECT_EQ(send(true, "localhost:4646", "null"), 403);
}

TEST(LoopbackNames, HostAndOrigin) {
  for (const char* yes : {"localhost", "LocalHost:80", "127.0.0.1", "127.1.2.3:1", "[::1]",
                          "[::1]:4646", ""}) {
    EXPECT_TRUE(isLoopbackHost(yes)) << yes;
  }
  for (const char* no : {"localhost.evil", "128.0.0.1", "127.0.0", "127.0.0.1.2", "127.0.0.256",
                         "[::2]", "[::1]x", "localhost:", "localhost:8a", "0.0.0.0", "[::1"}) {
    EXPECT_FALSE(isLoopbackHost(no)) << no;
  }
  EXPECT_TRUE(isLoopbackOrigin("http://127.0.0.1:8080"));
  EXPECT_TRUE(isLoopbackOrigin("https://localhost"));
  EXPECT_FALSE(isLoopbackOrigin("http://localhost/x"));
  EXPECT_FALSE(isLoopbackOrigin("file://localhost"));
  EXPECT_FALSE(isLoopbackOrigin("null"));
}

TEST_F(HandlersTest, ApiKeysCreateListVerifyRevoke) {
  clock_.advance(Duration(5'000));
  auto r = call("POST", "/v1/apikeys", R"({"name": "ci deploy", "scopes": ["shop:read"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  json created = body(r);
  const std::string id = created["id"];
  const std::string key = created["key"];
  EXPECT_EQ(created["name"], "ci deploy");
  EXPECT_EQ(created["created_at"], toUnixMillis(clock_.now()));
  EXPECT_EQ(created["scopes"], json::array({"shop:read"}));
  EXPECT_EQ(key.rfind("bk_" + id + "_", 0), 0u) << key;

  // The key verifies against what the handler stored; the store holds only its hash.
  auth::ApiKeys keys(*store_);
  auto rec = keys.verify(key);
  ASSERT_TRUE(rec.isOk());
  EXPECT_EQ(rec.value().name, "ci deploy");
  auto stored = store_->get(auth::apiKeyStoreKey(id));
  ASSERT_TRUE(stored.isOk() && stored->has_value());
  EXPECT_EQ((*stored)->value.find(key.substr(3 + 16 + 1)), std::string::npos);

  clock_.advance(Duration(1'000));  // listed oldest first
  ASSERT_EQ(call("POST", "/v1/apikeys", R"({"name": "second"})").status, 201);
  r = call("GET", "/v1/apikeys");
  ASSERT_EQ(r.status, 200);
  json list = body(r)["apikeys"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["id"], id);
  EXPECT_EQ(list[1]["name"], "second");
  EXPECT_EQ(list[1]["scopes"], json::array());
  for (const auto& row : list) {
    EXPECT_FALSE(row.contains("key"));
    EXPECT_FALSE(row.contains("hash"));
  }
  EXPECT_EQ(r.body.find("sha256"), std::string::npos);

  r = call("DELETE", "/v1/apikeys/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["deleted"], true);
  EXPECT_FALSE(keys.verify(key).isOk());
  EXPECT_EQ(body(call("GET", "/v1/apikeys"))["apikeys"].size(), 1u);
  EXPECT_EQ(call("DELETE", "/v1/apikeys/" + id).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/apikeys/not-an-id").status, 400);
  EXPECT_EQ(call("DELETE", "/v1/apikeys/..%2F..%2Fapps%2Fshop").status, 400);
}

TEST_F(HandlersTest, ApiKeyCreateValidatesItsBody) {
  for (const char* bad :
       {"", "[]", "{}", R"({"name": ""})", R"({"name": 7})", R"({"name": "a\nb"})",
        R"({"name": "x", "scopes": "s"})", R"({"name": "x", "scopes": [1]})",
        R"({"name": "x", "scopes": [""]})", R"({"name": "x", "extra": 1})"}) {
    auto r = call("POST", "/v1/apikeys", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_TRUE(body(r).contains("error")) << bad;
  }
  EXPECT_EQ(call("POST", "/v1/apikeys", json{{"name", std::string(129, 'a')}}.dump()).status, 400);
  EXPECT_EQ(call("POST", "/v1/apikeys", json{{"name", std::string(128, 'a')}}.dump()).status, 201);
  EXPECT_EQ(body(call("GET", "/v1/apikeys"))["apikeys"].size(), 1u);
}

TEST_F(HandlersTest, ApiKeysNeedTheTokenOutsideDevMode) {
  Handlers h(ApiDeps{*store_, clock_, nullptr, {}, {}},
             ApiOptions{.dev = false, .check_token = [](std::string_view t) {
                          return t == "s3" ? Access::kWrite : Access::kNone;
                        }});
  auto send = [&](std::string method, std::string target, std::string auth, std::string b = {}) {
    return h.handle(ApiRequest::make(std::move(method), target, std::move(b), std::move(auth)));
  };
  EXPECT_EQ(send("POST", "/v1/apikeys", "", R"({"name": "x"})").status, 401);
  EXPECT_EQ(send("GET", "/v1/apikeys", "").status, 401);
  EXPECT_EQ(send("GET", "/v1/apikeys", "Bearer nope").status, 401);
  auto r = send("POST", "/v1/apikeys", "Bearer s3", R"({"name": "x"})");
  ASSERT_EQ(r.status, 201);
  std::string id = body(r)["id"];
  // An API key is not an API token.
  std::string key = body(r)["key"];
  EXPECT_EQ(send("GET", "/v1/apikeys", "Bearer " + key).status, 401);
  EXPECT_EQ(send("DELETE", "/v1/apikeys/" + id, "").status, 401);
  EXPECT_EQ(send("GET", "/v1/apikeys", "Bearer s3").status, 200);
  EXPECT_EQ(send("DELETE", "/v1/apikeys/" + id, "Bearer s3").status, 200);
}

TEST_F(HandlersTest, TheInstancesListenerReadsTheTokensOwnAppOnly) {
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  std::string billing(kShopV1);
  billing.replace(billing.find("shop"), 4, "billing");
  ASSERT_EQ(call("PUT", "/v1/apps/billing", putBody(billing)).status, 200);
  putInstance("i-1", "web", 1, currentHash(), model::InstanceState::kHealthy);
  Handlers h(ApiDeps{*store_, clock_, nullptr, {}, {}},
             ApiOptions{.dev = true,
                        .check_token = [](std::string_view) { return Access::kWrite; },
                        .check_app_token = [](std::string_view t) -> std::optional<std::string> {
                          if (t == "t-shop") return "shop";
                          return std::nullopt;
                        }});
  auto send = [&](std::string method, std::string target, std::string auth = "Bearer t-shop") {
    return h.handle(ApiRequest::make(std::move(method), target, {}, std::move(auth)));
  };
  EXPECT_EQ(send("GET", "/v1/health", "").status, 200);
  // No token, a node token, another form: 401, dev mode and check_token do not apply here.
  EXPECT_EQ(send("GET", "/v1/apps/shop", "").status, 401);
  EXPECT_EQ(send("GET", "/v1/apps/shop", "Bearer s3").status, 401);
  EXPECT_EQ(send("GET", "/v1/apps/shop", "t-shop").status, 401);
  // Its own app, its services and instances.
  auto r = send("GET", "/v1/apps/shop");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["app"], "shop");
  r = send("GET", "/v1/services");
  ASSERT_EQ(r.status, 200);
  ASSERT_FALSE(body(r)["services"].empty());
  const json services = body(r)["services"];  // a copy: body(r) is a temporary
  for (const auto& row : services) EXPECT_EQ(row["app"], "shop") << row;
  EXPECT_EQ(send("GET", "/v1/services?app=shop").status, 200);
  r = send("GET", "/v1/instances");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["instances"].size(), 1u);
  // Nothing else: other apps, other routes, writes.
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/apps/billing"},
           {"GET", "/v1/apps"},
           {"GET", "/v1/services?app=billing"},
           {"GET", "/v1/instances?app=billing"},
           {"GET", "/v1/nodes"},
           {"GET", "/v1/events"},
           {"GET", "/metrics"},
           {"GET", "/v1/intentions"},
           {"GET", "/v1/apikeys"},
           {"GET", "/v1/apps/shop/services/web/logs"},
           {"PUT", "/v1/apps/shop"},
           {"DELETE", "/v1/apps/shop"},
           {"POST", "/v1/apps/shop/services/web/scale"},
           {"PUT", "/v1/intentions"}}) {
    r = send(method, target);
    EXPECT_EQ(r.status, 403) << method << " " << target;
    EXPECT_NE(r.body.find("may only read its own app"), std::string::npos) << r.body;
  }
}

TEST_F(HandlersTest, SecretsVersionCasDeleteUndeleteDestroyAndPurge) {
  auto vault = secrets::Seal::withKey(*store_, std::string(32, 'K'), clock_);
  ASSERT_TRUE(vault.isOk());
  Handlers h(ApiDeps{.store = *store_, .clock = clock_, .seal = vault->get()},
             ApiOptions{.dev = true});
  auto send = [&](std::string method, std::string target, std::string b = {}) {
    return h.handle(ApiRequest::make(std::move(method), target, std::move(b)));
  };
  auto r = send("PUT", "/v1/secrets/data/shop/db", R"({"data": {"PASSWORD": "s3cret"}, "cas": 0})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["version"], 1);
  r = send("PUT", "/v1/secrets/data/shop/db", R"({"data": {"PASSWORD": "other"}, "cas": 0})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body.find("other"), std::string::npos) << "no value in an error";
  ASSERT_EQ(send("PUT", "/v1/secrets/data/shop/db", R"({"data": {"PASSWORD": "v2"}})").status, 200);
  r = send("GET", "/v1/secrets/data/shop/db");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["data"]["PASSWORD"], "v2");
  EXPECT_EQ(body(send("GET", "/v1/secrets/data/shop/db?version=1"))["data"]["PASSWORD"], "s3cret");
  EXPECT_EQ(body(send("GET", "/v1/secrets?prefix=shop/"))["secrets"], json({"shop/db"}));
  ASSERT_EQ(send("DELETE", "/v1/secrets/data/shop/db").status, 200);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db").status, 404);
  ASSERT_EQ(send("POST", "/v1/secrets/undelete/shop/db", R"({"versions": [2]})").status, 200);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db").status, 200);
  ASSERT_EQ(send("POST", "/v1/secrets/destroy/shop/db", R"({"versions": [1]})").status, 200);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db?version=1").status, 404);
  r = send("GET", "/v1/secrets/metadata/shop/db");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["current_version"], 2);
  EXPECT_EQ(body(r)["versions"][0]["destroyed"], true);
  EXPECT_EQ(send("PUT", "/v1/secrets/metadata/shop/db", R"({"max_versions": 1})").status, 200);
  ASSERT_EQ(send("DELETE", "/v1/secrets/metadata/shop/db").status, 200);
  EXPECT_EQ(send("GET", "/v1/secrets/metadata/shop/db").status, 404);
  // Bad input.
  EXPECT_EQ(send("PUT", "/v1/secrets/data/shop/%2E%2E/x", R"({"data": {"K": "v"}})").status, 400);
  EXPECT_EQ(send("PUT", "/v1/secrets/data/shop/db", R"({"data": {"bad-key": "v"}})").status, 400);
  EXPECT_EQ(send("PUT", "/v1/secrets/data/shop/db", R"({"data": {"K": 1}})").status, 400);
  EXPECT_EQ(send("PUT", "/v1/secrets/data/shop/db", R"({"data": {"K": "v"}, "cas": -1})").status, 400);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db?version=x").status, 400);
  EXPECT_EQ(send("POST", "/v1/secrets/destroy/shop/db", "{}").status, 400);
  EXPECT_EQ(send("GET", "/v1/secrets/data").status, 404);

  // No store: 503. A read token lists paths but reads no value.
  Handlers none(ApiDeps{*store_, clock_}, ApiOptions{.dev = true});
  EXPECT_EQ(none.handle(ApiRequest::make("GET", "/v1/secrets")).status, 503);
  Handlers ro(ApiDeps{.store = *store_, .clock = clock_, .seal = vault->get()},
              ApiOptions{.dev = false, .check_token = [](std::string_view t) {
                           return t == "r" ? Access::kRead : Access::kNone;
                         }});
  ASSERT_EQ(send("PUT", "/v1/secrets/data/a/b", R"({"data": {"K": "v"}})").status, 200);
  EXPECT_EQ(ro.handle(ApiRequest::make("GET", "/v1/secrets", {}, "Bearer r")).status, 200);
  EXPECT_EQ(ro.handle(ApiRequest::make("GET", "/v1/secrets/data/a/b", {}, "Bearer r")).status, 403);
  EXPECT_EQ(ro.handle(ApiRequest::make("GET", "/v1/secrets/data/a/b")).status, 401);
}

TEST_F(HandlersTest, EveryWriteAndSecretReadIsAuditedWithoutValues) {
  auto vault = secrets::Seal::withKey(*store_, std::string(32, 'K'), clock_);
  ASSERT_TRUE(vault.isOk());
  Handlers h(ApiDeps{.store = *store_, .clock = clock_, .seal = vault->get()},
             ApiOptions{.dev = false, .check_token = [](std::string_view t) {
                          return t == "w" ? Access::kWrite : t == "r" ? Access::kRead : Access::kNone;
                        }});
  auto send = [&](std::string method, std::string target, std::string auth, std::string b = {}) {
    return h.handle(ApiRequest::make(std::move(method), target, std::move(b), std::move(auth)));
  };
  ASSERT_EQ(send("PUT", "/v1/secrets/data/shop/db", "Bearer w", R"({"data": {"P": "hunter2"}})").status, 200);
  clock_.advance(Duration(5));
  ASSERT_EQ(send("GET", "/v1/secrets/data/shop/db", "Bearer w").status, 200);
  clock_.advance(Duration(5));
  ASSERT_EQ(send("GET", "/v1/secrets/data/shop/db", "Bearer r").status, 403);  // refused: no entry
  ASSERT_EQ(send("GET", "/v1/secrets", "Bearer r").status, 200);               // paths: no entry
  ASSERT_EQ(send("PUT", "/v1/intentions", "Bearer w",
                 R"({"source": "a/b", "destination": "c/d", "action": "allow"})").status, 200);
  EXPECT_EQ(send("GET", "/v1/audit", "Bearer r").status, 403);
  auto r = send("GET", "/v1/audit?limit=10", "Bearer w");
  ASSERT_EQ(r.status, 200);
  json e = body(r)["entries"];
  ASSERT_EQ(e.size(), 3u) << e;
  EXPECT_EQ(e[0]["route"], "put_secret");
  EXPECT_EQ(e[0]["secret"], "shop/db");
  EXPECT_EQ(e[0]["who"], "agent-token");
  EXPECT_EQ(e[1]["route"], "get_secret");
  EXPECT_EQ(e[1]["at"].get<int64_t>() - e[0]["at"].get<int64_t>(), 5);
  EXPECT_EQ(e[2]["route"], "put_intention");
  auto audited = store_->list("/baton/audit/");
  ASSERT_TRUE(audited.isOk());
  const std::vector<state::KeyValue> kvs = audited->kvs;
  for (const auto& kv : kvs) EXPECT_EQ(kv.value.find("hunter2"), std::string::npos);
  EXPECT_EQ(send("GET", "/v1/audit?limit=0", "Bearer w").status, 400);
}

// API tokens (docs/tokens.md): a fixture with secrets, the two built-in tokens ("w", "r") and
// helpers to make store tokens through the API.
class TokensTest : public HandlersTest {
 protected:
  void SetUp() override {
    HandlersTest::SetUp();
    auto v = secrets::Seal::withKey(*store_, std::string(32, 'K'), clock_);
    ASSERT_TRUE(v.isOk());
    vault_ = std::move(v).value();
    h_ = std::make_unique<Handlers>(
        ApiDeps{.store = *store_, .clock = clock_, .seal = vault_.get()},
        ApiOptions{.dev = false, .check_token = twoTokens});
    for (const char* path : {"shop/db", "shop/api", "billing/key"}) {
      ASSERT_EQ(send("PUT", std::string("/v1/secrets/data/") + path, "w",
                     R"({"data": {"PASSWORD": "hunter2"}})")
                    .status,
                200);
    }
    ASSERT_EQ(send("PUT", "/v1/apps/shop", "w", putBody(kShopV2)).status, 200);
    std::string billing(kShopV2);
    billing.replace(billing.find("\"shop\""), 6, "\"billing\"");
    ASSERT_EQ(send("PUT", "/v1/apps/billing", "w", putBody(billing)).status, 200);
  }
  void TearDown() override {
    h_.reset();
    vault_.reset();
    HandlersTest::TearDown();
  }

  // `token`: "" sends no Authorization header.
  ApiResponse send(std::string method, std::string target, const std::string& token,
                   std::string b = {}) {
    return h_->handle(ApiRequest::make(std::move(method), target, std::move(b),
                                       token.empty() ? "" : "Bearer " + token));
  }
  // Creates a token with `by`'s rights; returns the answer's JSON (with "token").
  json create(const std::string& by, json rules, std::string owner = "alice",
              std::optional<std::string> ttl = std::nullopt, int want = 201) {
    json b = {{"owner", owner}, {"rules", rules}};
    if (ttl) b["ttl"] = *ttl;
    auto r = send("POST", "/v1/tokens", by, b.dump());
    EXPECT_EQ(r.status, want) << r.body;
    return body(r);
  }

  std::unique_ptr<secrets::Seal> vault_;
  std::unique_ptr<Handlers> h_;
};

TEST_F(TokensTest, NoUnknownExpiredOrRevokedTokenIs401) {
  json made = create("w", {"secrets:shop/*:read"}, "alice", "2s");
  const std::string t = made["token"];
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db", t).status, 200);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db", "").status, 401);
  // Unknown: a well-formed token that was never made.
  std::string unknown = t;
  unknown[6] = unknown[6] == 'a' ? 'b' : 'a';
  auto r = send("GET", "/v1/secrets/data/shop/db", unknown);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("unknown or revoked token"), std::string::npos) << r.body;
  // Expired on the injected clock: 401 saying so, never quoting the token.
  clock_.advance(Duration(2000));
  r = send("GET", "/v1/secrets/data/shop/db", t);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("expired at"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(t.substr(23)), std::string::npos) << r.body;
  // Revoked: 401 on the next request.
  json other = create("w", {"secrets:shop/*:read"}, "bob");
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db", other["token"]).status, 200);
  r = send("DELETE", "/v1/tokens/" + other["accessor"].get<std::string>(), "w");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r), (json{{"accessor", other["accessor"]}, {"revoked", true}}));
  r = send("GET", "/v1/secrets/data/shop/db", other["token"]);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("unknown or revoked token"), std::string::npos) << r.body;
  EXPECT_EQ(send("DELETE", "/v1/tokens/" + other["accessor"].get<std::string>(), "w").status, 404);
  EXPECT_EQ(send("DELETE", "/v1/tokens/nothex", "w").status, 400);
}

TEST_F(TokensTest, AWrongPolicyIs403NamingWhatWasNeeded) {
  const std::string t = create("w", {"secrets:shop/*:read,list", "apps:shop:read,list"})["token"];
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db", t).status, 200);
  auto r = send("GET", "/v1/secrets/data/billing/key", t);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(body(r)["error"],
            "this token may not do this: it needs \"read\" on secrets \"billing/key\"");
  EXPECT_EQ(r.body.find(t), std::string::npos);
  r = send("PUT", "/v1/secrets/data/shop/db", t, R"({"data": {"PASSWORD": "x"}})");
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(body(r)["error"].get<std::string>().find("needs \"write\" on secrets \"shop/db\""),
            std::string::npos)
      << r.body;
  EXPECT_EQ(send("DELETE", "/v1/secrets/data/shop/db", t).status, 403);
  EXPECT_EQ(send("GET", "/v1/apps/shop", t).status, 200);
  EXPECT_EQ(send("GET", "/v1/apps/billing", t).status, 403);
  EXPECT_EQ(send("PUT", "/v1/apps/shop", t, putBody(kShopV1)).status, 403);
  EXPECT_EQ(send("POST", "/v1/apps/shop/services/web/scale", t, R"({"max": 3})").status, 403);
  EXPECT_EQ(send("GET", "/v1/audit", t).status, 403);
  EXPECT_EQ(send("GET", "/v1/nodes", t).status, 403);
  EXPECT_EQ(send("GET", "/v1/events", t).status, 403);
  EXPECT_EQ(send("GET", "/v1/tokens", t).status, 403);
  EXPECT_EQ(send("PUT", "/v1/intentions", t,
                 R"({"source": "a/b", "destination": "c/d", "action": "allow"})")
                .status,
            403);
  // A path that names another through ".." is not a way out: its form is refused.
  EXPECT_NE(send("GET", "/v1/secrets/data/shop/%2E%2E/billing/key", t).status, 200);
  // Env values only for a token that may write the app.
  r = send("GET", "/v1/apps/shop", t);
  EXPECT_EQ(r.body.find("hello"), std::string::npos) << r.body;
  const std::string writer = create("w", {"apps:shop:read,write"})["token"];
  EXPECT_NE(send("GET", "/v1/apps/shop", writer).body.find("hello"), std::string::npos);
  EXPECT_EQ(send("PUT", "/v1/apps/shop", writer, putBody(kShopV1)).status, 200);
  EXPECT_EQ(send("DELETE", "/v1/apps/shop", writer).status, 403);  // write is not delete
}

// A service gets the values of the secrets it lists: deploying it needs "read" on them.
TEST_F(TokensTest, DeployingAServiceThatListsASecretNeedsReadOnIt) {
  std::string with_secret(kShopV1);
  with_secret += "\n[services.worker]\nrun = [\"./worker\"]\nsecrets = [\"billing/key\"]\n";
  const std::string writer = create("w", {"apps:shop:read,write", "secrets:shop/*:read"})["token"];
  auto r = send("PUT", "/v1/apps/shop", writer, putBody(with_secret));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(body(r)["error"],
            "service worker lists secret billing/key, and this token may not read it: it needs "
            "\"read\" on secrets \"billing/key\"");
  with_secret.replace(with_secret.find("billing/key"), 11, "shop/db");
  r = send("PUT", "/v1/apps/shop", writer, putBody(with_secret));
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(TokensTest, ListingsAreFilteredToWhatTheTokenMayList) {
  const std::string t = create("w", {"secrets:shop/*:list", "apps:shop:list"})["token"];
  auto r = send("GET", "/v1/secrets", t);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["secrets"], json({"shop/api", "shop/db"}));
  r = send("GET", "/v1/apps", t);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(body(r)["apps"].size(), 1u) << r.body;
  EXPECT_EQ(body(r)["apps"][0]["app"], "shop");
  r = send("GET", "/v1/services", t);
  ASSERT_EQ(r.status, 200) << r.body;
  const json shop_rows = body(r)["services"];
  for (const auto& row : shop_rows) EXPECT_EQ(row["app"], "shop");
  EXPECT_EQ(body(send("GET", "/v1/services?app=billing", t))["services"].size(), 0u);
  // A blocking query renders its answer later, filtered the same way.
  r = send("GET", "/v1/services?index=0&wait=10s", t);
  ASSERT_TRUE(r.stream) << r.body;
  std::optional<std::string> later = std::string();
  for (int i = 0; i < 400 && later && later->empty(); ++i) {
    later = r.stream->poll();
    if (later && later->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(later && !later->empty());
  ASSERT_FALSE(json::parse(*later)["services"].empty()) << *later;
  const json later_rows = json::parse(*later)["services"];
  for (const auto& row : later_rows) EXPECT_EQ(row["app"], "shop") << *later;
  putInstance("shop-web-1", "web", 1, "h", model::InstanceState::kHealthy);
  model::InstanceRecord other;
  other.id = "billing-web-1";
  other.app = "billing";
  other.service = "web";
  ASSERT_TRUE(store_->put(keys::instance(other.id), model::encode(other)).isOk());
  r = send("GET", "/v1/instances", t);
  ASSERT_EQ(body(r)["instances"].size(), 1u) << r.body;
  EXPECT_EQ(body(r)["instances"][0]["app"], "shop");
  // The secrets' metadata is a listing's: list is enough; values need read.
  EXPECT_EQ(send("GET", "/v1/secrets/metadata/shop/db", t).status, 200);
  EXPECT_EQ(send("GET", "/v1/secrets/metadata/billing/key", t).status, 403);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db", t).status, 403);
  // No list rule of the kind at all: refused, not an empty list.
  const std::string none = create("w", {"apps:shop:read"})["token"];
  r = send("GET", "/v1/secrets", none);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(body(r)["error"].get<std::string>().find("\"list\" on some secrets"), std::string::npos)
      << r.body;
  // The built-ins: agent-token sees everything, agent-read-token every path but no value.
  EXPECT_EQ(body(send("GET", "/v1/secrets", "w"))["secrets"].size(), 3u);
  EXPECT_EQ(body(send("GET", "/v1/secrets", "r"))["secrets"].size(), 3u);
  EXPECT_EQ(send("GET", "/v1/secrets/data/shop/db", "r").status, 403);
}

TEST_F(TokensTest, ATokenMayNotGrantMoreThanItsOwn) {
  const std::string mgr =
      create("w", {"tokens:*:admin", "secrets:shop/*:read,list"}, "mgr", "1h")["token"];
  // Within its own rights: allowed, and the child cannot outlive it.
  json child = create(mgr, {"secrets:shop/db:read"}, "child");
  EXPECT_EQ(child["expires_at"], toUnixMillis(clock_.now() + Duration(3'600'000)));
  EXPECT_EQ(child["created_by"],
            "mgr (tok " +
                create(mgr, {"secrets:shop/db:read"})["created_by"].get<std::string>().substr(9));
  create(mgr, {"secrets:shop/db:read"}, "child", "30m");
  // More: refused with 403 naming what it lacks, and nothing is stored.
  const size_t before = store_->list("/baton/tokens/")->kvs.size();
  json refused = create(mgr, {"secrets:shop/*:write"}, "x", std::nullopt, 403);
  EXPECT_NE(refused["error"].get<std::string>().find("secrets:shop/*:write"), std::string::npos)
      << refused;
  create(mgr, {"secrets:*:read"}, "x", std::nullopt, 403);
  create(mgr, {"apps:shop:read"}, "x", std::nullopt, 403);
  create(mgr, {"*:*:admin"}, "x", std::nullopt, 403);
  refused = create(mgr, {"secrets:shop/db:read"}, "x", "2h", 403);
  EXPECT_NE(refused["error"].get<std::string>().find("outlive"), std::string::npos) << refused;
  EXPECT_EQ(store_->list("/baton/tokens/")->kvs.size(), before);
  // Without admin on tokens: no token at all; the read-only built-in neither.
  const std::string plain = create("w", {"secrets:shop/*:read"})["token"];
  create(plain, {"secrets:shop/db:read"}, "x", std::nullopt, 403);
  create("r", {"apps:shop:read"}, "x", std::nullopt, 403);
}

TEST_F(TokensTest, CreateValidatesItsBodyAndListsWithoutSecrets) {
  auto post = [&](const std::string& b) { return send("POST", "/v1/tokens", "w", b); };
  EXPECT_EQ(post("[]").status, 400);
  EXPECT_EQ(post(R"({"rules": ["apps:*:read"]})").status, 400);  // no owner
  EXPECT_EQ(post(R"({"owner": "a"})").status, 400);              // no rules
  EXPECT_EQ(post(R"({"owner": "a", "rules": []})").status, 400);
  EXPECT_EQ(post(R"({"owner": "", "rules": ["apps:*:read"]})").status, 400);
  EXPECT_EQ(post(R"({"owner": "a\nb", "rules": ["apps:*:read"]})").status, 400);
  EXPECT_EQ(post(R"({"owner": "a", "rules": ["apps:*:read"], "ttl": "soon"})").status, 400);
  EXPECT_EQ(post(R"({"owner": "a", "rules": ["apps:*:read"], "ttl": "0s"})").status, 400);
  EXPECT_EQ(post(R"({"owner": "a", "rules": ["apps:*:read"], "ttl": "87601h"})").status, 400);
  EXPECT_EQ(post(R"({"owner": "a", "rules": ["apps:*:read"], "policy": "x"})").status, 400);
  auto r = post(R"({"owner": "a", "rules": ["vaults:*:read"]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(body(r)["error"].get<std::string>().find("unknown kind \"vaults\""), std::string::npos)
      << r.body;
  r = post(
      R"({"owner": "a", "rules": [{"kind": "apps", "pattern": "*", "capabilities": ["sudo"]}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(body(r)["error"].get<std::string>().find("unknown capability \"sudo\""),
            std::string::npos)
      << r.body;
  // Both forms of a rule; the answer shows the token once.
  r = post(R"({"owner": "ci", "ttl": "24h", "rules": ["secrets:ci/*:read",
           {"kind": "apps", "pattern": "ci-*", "capabilities": ["list", "read"]}]})");
  ASSERT_EQ(r.status, 201) << r.body;
  json made = body(r);
  EXPECT_TRUE(made["token"].get<std::string>().starts_with("baton_"));
  EXPECT_EQ(made["owner"], "ci");
  EXPECT_EQ(made["created_by"], "agent-token");
  EXPECT_EQ(made["expires_at"], toUnixMillis(clock_.now() + Duration(24 * 3'600'000)));
  EXPECT_EQ(made["rules"], json::parse(R"([
      {"kind": "secrets", "pattern": "ci/*", "capabilities": ["read"]},
      {"kind": "apps", "pattern": "ci-*", "capabilities": ["read", "list"]}])"));
  r = send("GET", "/v1/tokens", "w");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(body(r)["tokens"].size(), 1u);
  json row = body(r)["tokens"][0];
  EXPECT_EQ(row["accessor"], made["accessor"]);
  EXPECT_FALSE(row.contains("token"));
  EXPECT_FALSE(row.contains("hash"));
  EXPECT_EQ(r.body.find("sha256"), std::string::npos);
  EXPECT_EQ(r.body.find(made["token"].get<std::string>().substr(23)), std::string::npos);
  // self: any valid token sees its own record.
  r = send("GET", "/v1/tokens/self", made["token"]);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["owner"], "ci");
  EXPECT_EQ(body(send("GET", "/v1/tokens/self", "r"))["owner"], "agent-read-token");
  EXPECT_EQ(send("GET", "/v1/tokens/self", "").status, 401);
  // The event stream never carries a token record.
  EXPECT_EQ(send("GET", "/v1/events", "w").status, 200);
}

TEST_F(TokensTest, TheAuditLogNamesTheOwnerAndNeverTheToken) {
  json made = create("w", {"secrets:shop/*:read,write"}, "alice");
  const std::string t = made["token"];
  ASSERT_EQ(send("GET", "/v1/secrets/data/shop/db", t).status, 200);
  ASSERT_EQ(send("PUT", "/v1/secrets/data/shop/db", t, R"({"data": {"PASSWORD": "x2"}})").status,
            200);
  ASSERT_EQ(send("GET", "/v1/secrets/data/billing/key", t).status, 403);  // refused: no entry
  ASSERT_EQ(send("DELETE", "/v1/tokens/" + made["accessor"].get<std::string>(), "w").status, 200);
  auto r = send("GET", "/v1/audit?limit=4", "w");
  ASSERT_EQ(r.status, 200);
  json e = body(r)["entries"];
  ASSERT_EQ(e.size(), 4u) << e;
  const std::string alice = "alice (tok " + made["accessor"].get<std::string>() + ")";
  EXPECT_EQ(e[0]["route"], "create_token");
  EXPECT_EQ(e[0]["who"], "agent-token");
  EXPECT_EQ(e[1]["route"], "get_secret");
  EXPECT_EQ(e[1]["who"], alice);
  EXPECT_EQ(e[1]["secret"], "shop/db");
  EXPECT_EQ(e[2]["route"], "put_secret");
  EXPECT_EQ(e[2]["who"], alice);
  EXPECT_EQ(e[3]["route"], "revoke_token");
  auto all = store_->list("/baton/");
  ASSERT_TRUE(all.isOk());
  const std::vector<state::KeyValue> kvs = all->kvs;
  for (const auto& kv : kvs) EXPECT_EQ(kv.value.find(t.substr(23)), std::string::npos) << kv.key;
}

TEST_F(HandlersTest, ErrorsAreJson) {
  auto r = call("GET", "/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(body(r).contains("error"));
  r = call("PATCH", "/v1/apps/shop");
  EXPECT_EQ(r.status, 405);
  EXPECT_TRUE(body(r).contains("error"));
  EXPECT_EQ(call("GET", "/v1/apps/shop/services/web/logs").status, 404);
}

TEST_F(HandlersTest, MetricsAndHealth) {
  EXPECT_EQ(body(call("GET", "/v1/health")), (json{{"ok", true}}));
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  putInstance("i-1", "web", 1, currentHash(), model::InstanceState::kHealthy);
  auto r = call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("baton_apps 1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("baton_instances{state=\"healthy\"} 1\n"), std::string::npos);
  EXPECT_NE(r.body.find("baton_api_requests_total{code=\"200\"}"), std::string::npos);
}

class StringSource : public ChunkSource {
 public:
  explicit StringSource(std::string s) : s_(std::move(s)) {}
  std::optional<std::string> poll() override {
    if (done_) return std::nullopt;
    done_ = true;
    return s_;
  }

 private:
  std::string s_;
  bool done_ = false;
};

TEST_F(HandlersTest, LogsCallTheInjectedReader) {
  LogRequest seen;
  Handlers h(ApiDeps{*store_,
                     clock_,
                     nullptr,
                     [&](const LogRequest& lr) -> Result<std::unique_ptr<ChunkSource>> {
                       seen = lr;
                       return std::unique_ptr<ChunkSource>(new StringSource("line 1\nline 2\n"));
                     },
                     {}},
             ApiOptions{.dev = true});
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  auto r =
      h.handle(ApiRequest::make("GET", "/v1/apps/shop/services/web/logs?stream=stderr&tail=5"));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.stream != nullptr);  // streamed, never gathered into one body
  std::string got;
  while (auto chunk = r.stream->poll()) got += *chunk;
  EXPECT_EQ(got, "line 1\nline 2\n");
  EXPECT_EQ(seen.stream, "stderr");
  EXPECT_EQ(seen.tail, 5);
  EXPECT_FALSE(seen.follow);
  r = h.handle(ApiRequest::make("GET", "/v1/apps/shop/services/web/logs?follow=1"));
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.stream != nullptr);
  EXPECT_EQ(h.handle(ApiRequest::make("GET", "/v1/apps/shop/services/web/logs?stream=x")).status,
            400);
}

TEST_F(HandlersTest, EventStreamSeesStoreChangesAndBusEvents) {
  auto r = call("GET", "/v1/events");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.stream);
  std::mutex mu;
  std::condition_variable cv;
  int wakes = 0;
  r.stream->setWakeup([&] {
    std::lock_guard lock(mu);
    ++wakes;
    cv.notify_all();
  });
  std::string all = r.stream->poll().value();
  EXPECT_NE(all.find("\"hello\""), std::string::npos);
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  ASSERT_TRUE(store_->put("/baton/secrets/data/shop/db#1", "SEALED-BLOB").isOk());
  bus_.publish("scale", "shop/web 0 -> 1");
  // Store watch callbacks run on the store's thread: wait for the wake-up, not for time.
  for (int i = 0; i < 100 && all.find("/baton/secrets/data") == std::string::npos; ++i) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return wakes > 0; });
    wakes = 0;
    lock.unlock();
    all += r.stream->poll().value_or("");
  }
  EXPECT_NE(all.find("\"type\":\"put\""), std::string::npos) << all;
  EXPECT_NE(all.find("\"kind\":\"app\""), std::string::npos) << all;
  EXPECT_NE(all.find("shop/web 0 -> 1"), std::string::npos) << all;
  // A secret's records: the change is seen, its sealed content never.
  EXPECT_NE(all.find("\"kind\":\"secret\""), std::string::npos) << all;
  EXPECT_EQ(all.find("SEALED-BLOB"), std::string::npos) << all;
  r.stream->setWakeup({});
}

TEST_F(HandlersTest, BlockingServicesQueryAnswersOnChangeOrTimeout) {
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kShopV1)).status, 200);
  auto first = call("GET", "/v1/services");
  ASSERT_EQ(first.status, 200);
  const int64_t rev = body(first)["revision"];
  auto r = call("GET", "/v1/services?index=" + std::to_string(rev) + "&wait=10s");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.stream);
  std::atomic<int> woken{0};
  r.stream->setWakeup([&] { woken.fetch_add(1); });
  EXPECT_EQ(r.stream->poll(), std::string()) << "nothing changed yet";
  putInstance("web-1", "web", 1, currentHash(), model::InstanceState::kHealthy);
  for (int i = 0; i < 200 && woken.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(woken.load(), 1);
  auto out = r.stream->poll();
  ASSERT_TRUE(out.has_value());
  json j = json::parse(*out);
  EXPECT_GT(j["revision"].get<int64_t>(), rev);
  EXPECT_EQ(j["services"][0]["ready"], 1);
  EXPECT_EQ(r.stream->poll(), std::nullopt);

  // An index in the past answers at once; nothing new answers when `wait` has passed.
  r = call("GET", "/v1/services?index=" + std::to_string(rev));
  ASSERT_TRUE(r.stream);
  for (int i = 0; i < 200; ++i) {
    auto o = r.stream->poll();
    if (o && !o->empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int64_t now = body(call("GET", "/v1/services"))["revision"];
  r = call("GET", "/v1/services?index=" + std::to_string(now) + "&wait=30s");
  ASSERT_TRUE(r.stream);
  EXPECT_EQ(r.stream->poll(), std::string());
  clock_.advance(Duration(31'000));
  auto late = r.stream->poll();
  ASSERT_TRUE(late.has_value() && !late->empty());
  EXPECT_EQ(json::parse(*late)["revision"], now);

  EXPECT_EQ(call("GET", "/v1/services?index=x").status, 400);
  EXPECT_EQ(call("GET", "/v1/services?index=1&wait=1h").status, 400);
}

TEST_F(HandlersTest, IntentionsPutListCheckDelete) {
  constexpr std::string_view kApp = R"(app = "shop"
[services.web]
run = ["x"]
upstreams = ["cart", "billing/api"]
[services.cart]
run = ["x"]
)";
  ASSERT_EQ(call("PUT", "/v1/apps/shop", putBody(kApp)).status, 200);
  auto why = [&](const char* src, const char* dst) {
    auto r = call("GET", std::string("/v1/intentions/check?source=") + src + "&destination=" + dst);
    EXPECT_EQ(r.status, 200) << r.body;
    return body(r);
  };
  EXPECT_EQ(why("shop/web", "shop/cart")["allowed"], true);
  EXPECT_EQ(why("shop/web", "billing/api")["allowed"], false);
  EXPECT_EQ(why("shop/cart", "shop/web")["allowed"], false);

  auto r = call("PUT", "/v1/intentions",
                R"({"source":"shop/web","destination":"billing/api","action":"allow"})");
  ASSERT_EQ(r.status, 200) << r.body;
  json v = why("shop/web", "billing/api");
  EXPECT_EQ(v["allowed"], true);
  EXPECT_EQ(v["rule"]["action"], "allow");
  // One rule per pair: deny replaces allow.
  ASSERT_EQ(call("PUT", "/v1/intentions",
                 R"({"source":"shop/web","destination":"billing/api","action":"deny"})")
                .status,
            200);
  EXPECT_EQ(why("shop/web", "billing/api")["allowed"], false);
  ASSERT_EQ(call("PUT", "/v1/intentions",
                 R"({"source":"*","destination":"shop/*","action":"deny"})")
                .status,
            200);
  EXPECT_EQ(why("shop/web", "shop/cart")["allowed"], false);
  r = call("GET", "/v1/intentions");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["intentions"].size(), 2u);

  r = call("DELETE", "/v1/intentions?source=*&destination=shop/*");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(why("shop/web", "shop/cart")["allowed"], true);
  EXPECT_EQ(call("DELETE", "/v1/intentions?source=*&destination=shop/*").status, 404);

  // Bad input.
  for (const char* bad : {R"({"source":"shop","destination":"a/b","action":"allow"})",
                          R"({"source":"a/b","destination":"a/b","action":"permit"})",
                          R"({"source":"a/b","destination":"a/b"})",
                          R"({"source":"a/b","destination":"a/b","action":"allow","x":1})",
                          R"({"source":1,"destination":"a/b","action":"allow"})", "[]"}) {
    EXPECT_EQ(call("PUT", "/v1/intentions", bad).status, 400) << bad;
  }
  EXPECT_EQ(call("GET", "/v1/intentions/check?source=shop/*&destination=shop/cart").status, 400);
  EXPECT_EQ(call("GET", "/v1/intentions/check?source=shop/nope&destination=shop/cart").status,
            404);
  EXPECT_EQ(call("DELETE", "/v1/intentions?source=bad").status, 400);
}

TEST_F(HandlersTest, OperatorInitUnsealAndSealStatus) {
  auto seal = std::move(secrets::Seal::withShares(*store_, clock_).value());
  auto opts = [] {
    return ApiOptions{.dev = false, .check_token = [](std::string_view t) {
                        return t == "w" ? Access::kWrite : t == "r" ? Access::kRead : Access::kNone;
                      }};
  };
  auto h = std::make_unique<Handlers>(ApiDeps{.store = *store_, .clock = clock_, .seal = seal.get()},
                                      opts());
  auto send = [&](std::string method, std::string target, std::string auth, std::string b = {}) {
    return h->handle(ApiRequest::make(std::move(method), target, std::move(b), std::move(auth)));
  };
  // Not initialised: sealed, and /v1/secrets says what to do.
  auto r = send("GET", "/v1/operator/seal", "Bearer r");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["sealed"], true);
  EXPECT_EQ(body(r)["initialized"], false);
  r = send("GET", "/v1/secrets", "Bearer w");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("baton operator init"), std::string::npos) << r.body;
  // init needs the write token and sane numbers.
  EXPECT_EQ(send("POST", "/v1/operator/init", "Bearer r", R"({"shares":5,"threshold":3})").status, 403);
  EXPECT_EQ(send("POST", "/v1/operator/init", "", R"({"shares":5,"threshold":3})").status, 401);
  EXPECT_EQ(send("POST", "/v1/operator/init", "Bearer w", R"({"shares":5,"threshold":1})").status, 400);
  EXPECT_EQ(send("POST", "/v1/operator/init", "Bearer w", R"({"shares":5})").status, 400);
  EXPECT_EQ(send("POST", "/v1/operator/init", "Bearer w", R"({"shares":-5,"threshold":3})").status, 400);
  r = send("POST", "/v1/operator/init", "Bearer w", R"({"shares":5,"threshold":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> shares = body(r)["shares"].get<std::vector<std::string>>();
  ASSERT_EQ(shares.size(), 5u);
  EXPECT_EQ(body(r)["threshold"], 3);
  EXPECT_EQ(body(r)["sealed"], false);
  r = send("POST", "/v1/operator/init", "Bearer w", R"({"shares":5,"threshold":3})");
  EXPECT_EQ(r.status, 409) << "only once";
  ASSERT_EQ(send("PUT", "/v1/secrets/data/shop/db", "Bearer w", R"({"data":{"K":"v"}})").status, 200);

  // A restart: sealed; every /v1/secrets call says how many shares are still needed.
  h.reset();
  seal = std::move(secrets::Seal::withShares(*store_, clock_).value());
  h = std::make_unique<Handlers>(ApiDeps{.store = *store_, .clock = clock_, .seal = seal.get()},
                                 opts());
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/secrets"}, {"GET", "/v1/secrets/data/shop/db"},
           {"PUT", "/v1/secrets/data/shop/db"}, {"GET", "/v1/secrets/metadata/shop/db"}}) {
    r = send(method, target, "Bearer w", R"({"data":{"K":"v"}})");
    EXPECT_EQ(r.status, 503) << method << " " << target;
    EXPECT_NE(r.body.find("sealed: 3 more unseal shares are needed (baton operator unseal)"),
              std::string::npos) << r.body;
  }
  auto unseal = [&](const std::string& share, std::string auth = "Bearer w") {
    return send("POST", "/v1/operator/unseal", auth, json{{"share", share}}.dump());
  };
  EXPECT_EQ(unseal(shares[0], "Bearer r").status, 403);
  r = unseal(shares[0]);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["progress"], 1);
  EXPECT_EQ(body(r)["sealed"], true);
  r = unseal(shares[0]);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("was given already"), std::string::npos) << r.body;
  r = unseal(shares[1].substr(0, 30));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body.find(shares[1].substr(17, 10)), std::string::npos) << "no share in an error";
  EXPECT_EQ(send("POST", "/v1/operator/unseal", "Bearer w", R"({"key":"x"})").status, 400);
  ASSERT_EQ(unseal(shares[3]).status, 200);
  r = send("GET", "/v1/secrets/data/shop/db", "Bearer w");
  EXPECT_NE(r.body.find("1 more unseal share is needed"), std::string::npos) << r.body;
  r = unseal(shares[4]);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["sealed"], false);
  r = send("GET", "/v1/secrets/data/shop/db", "Bearer w");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["data"]["K"], "v");
  EXPECT_EQ(body(send("GET", "/v1/operator/seal", "Bearer r"))["sealed"], false);

  // Audited (route and who), never with a body: no share is in the store's audit log.
  auto entries = store_->list(std::string(keys::kAudit)).value();
  int unseals = 0;
  for (const auto& kv : entries.kvs) {
    if (kv.value.find("operator_unseal") != std::string::npos) ++unseals;
    for (const auto& s : shares) EXPECT_EQ(kv.value.find(s.substr(17, 20)), std::string::npos);
  }
  EXPECT_GE(unseals, 4);
}

TEST_F(HandlersTest, OperatorCallsInFileModeSayWhy) {
  auto seal = std::move(secrets::Seal::withKey(*store_, std::string(32, 'K'), clock_).value());
  Handlers h(ApiDeps{.store = *store_, .clock = clock_, .seal = seal.get()},
             ApiOptions{.dev = true});
  auto r = h.handle(ApiRequest::make("POST", "/v1/operator/init", R"({"shares":5,"threshold":3})"));
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("seal = \\\"file\\\""), std::string::npos) << r.body;
  r = h.handle(ApiRequest::make("POST", "/v1/operator/unseal", R"({"share":"bs1.x"})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nothing to unseal"), std::string::npos) << r.body;
  r = h.handle(ApiRequest::make("GET", "/v1/operator/seal"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body(r)["mode"], "file");
  EXPECT_EQ(body(r)["sealed"], false);
  Handlers none(ApiDeps{*store_, clock_}, ApiOptions{.dev = true});
  EXPECT_EQ(none.handle(ApiRequest::make("GET", "/v1/operator/seal")).status, 503);
}

}  // namespace
}  // namespace baton::api
