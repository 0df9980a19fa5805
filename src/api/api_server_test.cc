#include "api/api_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <tuple>

#include "api/event_bus.h"
#include "cli/cli.h"
#include "cli/http_client.h"
#include "core/testing/fake_clock.h"
#include "model/keys.h"
#include "state/sqlite_store.h"

namespace baton::api {
namespace {

using nlohmann::json;

constexpr std::string_view kShop = R"(app = "shop"

[services.web]
run = ["python3", "-m", "http.server", "${PORT}"]
)";

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/baton-api-server-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = state::SqliteStore::open(dir_ / "state.db", clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    server_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void startServer(ApiOptions opts) {
    opts.listen = "127.0.0.1:0";
    server_ = std::make_unique<ApiServer>(ApiDeps{*store_, clock_, &bus_, {}, {}}, opts);
    ASSERT_TRUE(server_->start().isOk());
    ASSERT_GT(server_->port(), 0);
  }
  cli::HttpClient client(std::string token = "") {
    cli::BaseUrl base{"127.0.0.1", server_->port(),
                      "http://127.0.0.1:" + std::to_string(server_->port())};
    return cli::HttpClient(base, token, {.timeout = Duration(10'000)});
  }

  testing::FakeClock clock_;
  EventBus bus_{clock_};
  std::filesystem::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<ApiServer> server_;
};

TEST_F(ApiServerTest, HealthAndPutAndList) {
  startServer({.dev = true});
  auto c = client();
  auto r = c.request("GET", "/v1/health");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), (json{{"ok", true}}));
  EXPECT_EQ(r->content_type, "application/json");

  json put = {{"manifest", kShop}, {"filename", "app.toml"}};
  r = c.request("PUT", "/v1/apps/shop", put.dump());
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["version"], 1);

  r = c.request("GET", "/v1/services");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(json::parse(r->body)["services"][0]["service"], "web");
}

TEST_F(ApiServerTest, ErrorsAreJsonWithTheRightStatus) {
  startServer({.dev = true});
  auto c = client();
  auto r = c.request("GET", "/nope");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(json::parse(r->body).contains("error"));

  r = c.request("PUT", "/v1/apps/shop", "{this is not json");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(json::parse(r->body).contains("error"));

  std::string big(1 << 20 | 1, 'x');
  r = c.request("PUT", "/v1/apps/shop", big);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(json::parse(r->body).contains("error"));

  // The server is still fine.
  r = c.request("GET", "/v1/health");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 200);

  // Counted for /metrics.
  r = c.request("GET", "/metrics");
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->body.find("baton_api_requests_total{code=\"413\"} 1"), std::string::npos) << r->body;
}

TEST_F(ApiServerTest, WritesNeedATokenOutsideDevMode) {
  startServer({.dev = false, .check_token = [](std::string_view t) {
                 return t == "secret" ? Access::kWrite : Access::kNone;
               }});
  json put = {{"manifest", kShop}};
  auto r = client().request("PUT", "/v1/apps/shop", put.dump());
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 401);
  r = client("secret").request("PUT", "/v1/apps/shop", put.dump());
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->status, 200);
}

TEST_F(ApiServerTest, EventStreamReceivesAPut) {
  startServer({.dev = true});
  std::promise<void> subscribed;
  std::string seen;
  bool got_put = false;
  std::thread reader([&] {
    auto c = client();
    bool signalled = false;
    auto r = c.stream(
        "/v1/events",
        [&](std::string_view data) {
          seen.append(data);
          if (!signalled && seen.find("\"hello\"") != std::string::npos) {
            signalled = true;
            subscribed.set_value();
          }
          got_put = seen.find("/baton/nodes/n1") != std::string::npos;
          return !got_put;
        },
        Duration(10'000));
    if (!signalled) subscribed.set_value();
    EXPECT_TRUE(r.isOk()) << r.status().toString();
  });
  subscribed.get_future().wait();
  ASSERT_TRUE(store_->put(model::keys::node("n1"), R"({"id":"n1"})").isOk());
  reader.join();
  EXPECT_TRUE(got_put) << seen;
  EXPECT_NE(seen.find("\"kind\":\"node\""), std::string::npos) << seen;
}

TEST_F(ApiServerTest, StopEndsOpenStreamsPromptly) {
  startServer({.dev = true, .shutdown_grace = Duration(5'000)});
  std::promise<void> subscribed;
  std::thread reader([&] {
    auto c = client();
    bool signalled = false;
    auto r = c.stream(
        "/v1/events",
        [&](std::string_view) {
          if (!signalled) {
            signalled = true;
            subscribed.set_value();
          }
          return true;
        },
        Duration(10'000));
    if (!signalled) subscribed.set_value();
  });
  subscribed.get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  reader.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  auto r = client().request("GET", "/v1/health");
  EXPECT_FALSE(r.isOk());
}

TEST_F(ApiServerTest, CliUpPsScaleDownAgainstARealServer) {
  startServer({.dev = true});
  auto manifest = dir_ / "shop.toml";
  {
    std::ofstream f(manifest);
    f << "app = \"shop\"\n\n[services.web]\nrun = [\"x\"]\n\n[services.web.scale]\nmin = 0\n"
         "max = 3\n";
  }
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "baton");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::ostringstream out, err;
    cli::CliContext ctx{out, err};
    ctx.addr = "http://127.0.0.1:" + std::to_string(server_->port());
    int code = cli::runCli(static_cast<int>(argv.size()), argv.data(), ctx);
    return std::make_tuple(code, out.str(), err.str());
  };
  auto [code, out, err] = cli({"up", manifest.string(), "--wait", "--timeout", "5s"});
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(out, "shop: version 1 (changed)\nshop: ready\n");
  std::tie(code, out, err) = cli({"up", manifest.string()});
  EXPECT_EQ(out, "shop: version 1 (unchanged)\n");
  std::tie(code, out, err) = cli({"scale", "shop/web", "--min", "1", "--max", "2", "--for", "1h"});
  EXPECT_EQ(code, 0) << err;
  std::tie(code, out, err) = cli({"scale", "shop/web", "--min", "9"});
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.find("must not exceed"), std::string::npos) << err;
  std::tie(code, out, err) = cli({"ps", "shop"});
  EXPECT_EQ(code, 0) << err;
  EXPECT_NE(out.find("shop   web       0/0             1     2     override   none"),
            std::string::npos)
      << out;
  std::tie(code, out, err) = cli({"ps", "--json", "-i"});
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(json::parse(out)["instances"], json::array());
  std::tie(code, out, err) = cli({"logs", "shop/web"});
  EXPECT_EQ(code, 1);  // no log reader injected: 503
  std::tie(code, out, err) = cli({"down", "shop"});
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(out, "shop: deleted\n");
  std::tie(code, out, err) = cli({"down", "shop"});
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
}

TEST(ParseListenAddress, Forms) {
  auto a = parseListenAddress("127.0.0.1:4646");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 4646);
  a = parseListenAddress("[::1]:0");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->first, "::1");
  a = parseListenAddress(":80");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->first, "0.0.0.0");
  EXPECT_FALSE(parseListenAddress("nocolon").isOk());
  EXPECT_FALSE(parseListenAddress("h:99999").isOk());
  EXPECT_FALSE(parseListenAddress("h:x").isOk());
}

}  // namespace
}  // namespace baton::api
