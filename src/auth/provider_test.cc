#include "auth/provider.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "auth/testing/test_keys.h"
#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"
#include "spec/agent_config.h"
#include "state/sqlite_store.h"

namespace baton::auth {
namespace {

using nlohmann::json;
using testing::TestKey;

constexpr int64_t kNow = 1'700'000'000;
const TimePoint kNowTp = fromUnixMillis(kNow * 1000);

class ProviderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new TestKey(testing::makeRsaKey("rsa1"));
    ec_ = new TestKey(testing::makeEcKey("ec1"));
    ed_ = new TestKey(testing::makeEd25519Key("ed1"));
  }
  void SetUp() override {
    spec_ = {"corp",   "https://id.example.com/",   {"shop"},
             "unused", {"RS256", "ES256", "EdDSA"}, {{"sub", "X-User"}, {"email", "X-Email"}}};
    auto set = parseJwks(testing::jwksOf({rsa_, ec_, ed_}));
    ASSERT_TRUE(set);
    auto p = IdentityProvider::create(
        spec_,
        std::make_shared<StaticKeySource>(std::make_shared<const KeySet>(std::move(set).value())));
    ASSERT_TRUE(p) << p.status().toString();
    provider_ = std::move(p).value();
    route_.auth = "corp";
  }
  static json claims() {
    return {{"iss", "https://id.example.com/"},
            {"aud", "shop"},
            {"sub", "alice"},
            {"email", "alice@example.com"},
            {"scope", "shop:read profile"},
            {"exp", kNow + 300}};
  }
  static std::string bearer(Alg alg, const TestKey& k, const json& c = claims()) {
    json h = {{"alg", algName(alg)}, {"kid", k.kid}};
    return "Bearer " + testing::signJwt(h.dump(), c.dump(), alg, k.pkey.get());
  }

  static TestKey* rsa_;
  static TestKey* ec_;
  static TestKey* ed_;
  spec::IdentityProvider spec_;
  std::unique_ptr<IdentityProvider> provider_;
  model::Route route_;
};
TestKey* ProviderTest::rsa_;
TestKey* ProviderTest::ec_;
TestKey* ProviderTest::ed_;

TEST_F(ProviderTest, AllowsAndForwardsClaims) {
  for (auto [alg, key] :
       {std::pair{Alg::kRS256, rsa_}, std::pair{Alg::kES256, ec_}, std::pair{Alg::kEdDSA, ed_}}) {
    AuthResult r = provider_->check(bearer(alg, *key), route_, kNowTp);
    ASSERT_TRUE(r.allowed()) << algName(alg) << ": " << r.message;
    HeaderList want = {{"X-Email", "alice@example.com"}, {"X-User", "alice"}};
    EXPECT_EQ(r.headers_to_add, want);
  }
  // Scheme is case-insensitive; spaces around are ignored.
  EXPECT_TRUE(
      provider_->check("  bearer " + bearer(Alg::kES256, *ec_).substr(7) + " ", route_, kNowTp)
          .allowed());
}

TEST_F(ProviderTest, MissingTokenIs401WithoutErrorCode) {
  for (std::string h : {"", "Bearer", "Bearer   ", "Basic YWxpY2U6cHc=", "Token abc"}) {
    AuthResult r = provider_->check(h, route_, kNowTp);
    EXPECT_EQ(r.status, 401) << h;
    EXPECT_EQ(r.reason, Reason::kMissing);
    EXPECT_EQ(r.www_authenticate, "Bearer realm=\"corp\"");
  }
}

TEST_F(ProviderTest, InvalidTokenIs401WithDescription) {
  json c = claims();
  c["exp"] = kNow - 3600;
  AuthResult r = provider_->check(bearer(Alg::kES256, *ec_, c), route_, kNowTp);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.reason, Reason::kExpired);
  EXPECT_EQ(r.www_authenticate,
            "Bearer realm=\"corp\", error=\"invalid_token\", error_description=\"token expired\"");
  r = provider_->check("Bearer not.a.token", route_, kNowTp);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.reason, Reason::kMalformed);
}

TEST_F(ProviderTest, ACachedTokenStillExpiresAndStillMeetsEachRoutesRules) {
  const std::string token = bearer(Alg::kES256, *ec_);
  ASSERT_TRUE(provider_->check(token, route_, kNowTp).allowed());  // verified, now cached
  ASSERT_TRUE(provider_->check(token, route_, kNowTp).allowed());  // a cache hit
  // exp = now + 300 s, skew 60 s: 400 s later the cached verification no longer counts.
  AuthResult late = provider_->check(token, route_, kNowTp + std::chrono::seconds(400));
  EXPECT_EQ(late.status, 401);
  EXPECT_EQ(late.reason, Reason::kExpired);
  model::Route strict = route_;
  strict.claims = {{"scope", "shop:admin"}};
  EXPECT_EQ(provider_->check(token, strict, kNowTp).status, 403);
}

TEST_F(ProviderTest, ClaimRulesGive403) {
  route_.claims = {{"scope", "shop:read"}};
  EXPECT_TRUE(provider_->check(bearer(Alg::kES256, *ec_), route_, kNowTp).allowed());
  route_.claims = {{"scope", "shop:write"}};
  AuthResult r = provider_->check(bearer(Alg::kES256, *ec_), route_, kNowTp);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.reason, Reason::kInsufficientClaims);
  EXPECT_NE(r.www_authenticate.find("error=\"insufficient_scope\""), std::string::npos);
  EXPECT_TRUE(r.headers_to_add.empty());
}

TEST_F(ProviderTest, ConfigErrors) {
  auto src = std::make_shared<StaticKeySource>(std::make_shared<const KeySet>());
  spec::IdentityProvider bad = spec_;
  bad.issuer.clear();
  EXPECT_FALSE(IdentityProvider::create(bad, src));
  bad = spec_;
  bad.audiences.clear();
  EXPECT_FALSE(IdentityProvider::create(bad, src));
  bad = spec_;
  bad.algorithms = {"HS256"};
  EXPECT_FALSE(IdentityProvider::create(bad, src));
  bad = spec_;
  bad.name = "public";
  EXPECT_FALSE(IdentityProvider::create(bad, src));
  bad = spec_;
  bad.forward = {{"sub", "Authorization"}};
  EXPECT_FALSE(IdentityProvider::create(bad, src));
}

TEST_F(ProviderTest, NoKeysIs503) {
  struct NoKeys final : KeySource {
    std::shared_ptr<const KeySet> keys() override { return nullptr; }
    std::shared_ptr<const KeySet> onUnknownKid() override { return nullptr; }
  };
  auto p = IdentityProvider::create(spec_, std::make_shared<NoKeys>());
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)->check(bearer(Alg::kES256, *ec_), route_, kNowTp).status, 503);
}

TEST_F(ProviderTest, RotatedFileKeyIsPickedUpOnUnknownKid) {
  baton::testing::TempDir dir;
  baton::testing::FakeClock clock;
  auto path = dir.path() / "jwks.json";
  std::ofstream(path) << testing::jwksOf({ec_});
  spec::IdentityProvider s = spec_;
  s.jwks = path.string();
  auto p = IdentityProvider::create(s, clock);
  ASSERT_TRUE(p) << p.status().toString();
  EXPECT_EQ((*p)->check(bearer(Alg::kEdDSA, *ed_), route_, clock.now()).reason,
            Reason::kUnknownKid);
  clock.advance(Duration(31'000));
  std::ofstream(path, std::ios::trunc) << testing::jwksOf({ec_, ed_});
  std::filesystem::last_write_time(
      path, std::filesystem::last_write_time(path) + std::chrono::seconds(5));
  json c = claims();
  c["exp"] = toUnixMillis(clock.now()) / 1000 + 300;
  EXPECT_TRUE((*p)->check(bearer(Alg::kEdDSA, *ed_, c), route_, clock.now()).allowed());
}

TEST_F(ProviderTest, ConcurrentChecksAndCost) {
  const std::string token = bearer(Alg::kES256, *ec_);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::atomic<int> allowed{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        if (provider_->check(token, route_, kNowTp).allowed()) ++allowed;
      }
    });
  }
  for (auto& t : threads) t.join();
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(allowed.load(), kThreads * kPerThread);

  // Single-thread cost of one ES256 check, served from the verified-token cache after the first
  // (informational only: tests do not assert on time).
  start = std::chrono::steady_clock::now();
  constexpr int kN = 2000;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(provider_->check(token, route_, kNowTp).allowed());
  auto per = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                  start) /
             kN;
  // The signature check alone, for comparison: what the rest of check() costs.
  auto jws = parseCompactJws(std::string_view(token).substr(7));
  ASSERT_TRUE(jws);
  auto set = parseJwks(testing::jwksOf({ec_}));
  ASSERT_TRUE(set);
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(
        verifySignature(Alg::kES256, set->keys[0].pkey.get(), jws->signing_input, jws->signature));
  }
  auto sig = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                  start) /
             kN;
  std::printf("ES256 check: %.1f us/op, signature alone %.1f us/op (concurrent run: %.1f ms)\n",
              per.count() / 1000.0, sig.count() / 1000.0,
              std::chrono::duration<double, std::milli>(elapsed).count());
}

TEST_F(ProviderTest, AuthenticatorDispatchesOnRouteAuth) {
  baton::testing::TempDir dir;
  baton::testing::FakeClock clock;
  state::SqliteStoreOptions opts;
  opts.tick_interval = Duration(0);
  auto store = state::SqliteStore::open(dir.path() / "s.db", clock, opts);
  ASSERT_TRUE(store);
  ApiKeys admin(**store);
  auto key = admin.create("ci", {"shop:read"}, clock.now());
  ASSERT_TRUE(key);

  std::vector<std::unique_ptr<IdentityProvider>> providers;
  providers.push_back(std::move(provider_));
  Authenticator auth(std::move(providers), std::make_unique<ApiKeys>(**store));
  EXPECT_EQ(auth.headersToStrip(),
            (std::vector<std::string>{"x-baton-api-key-id", "x-email", "x-user"}));

  model::Route pub;
  pub.auth = "public";
  EXPECT_TRUE(auth.check("", pub, kNowTp).allowed());

  model::Route corp;
  corp.auth = "corp";
  EXPECT_TRUE(auth.check(bearer(Alg::kES256, *ec_), corp, kNowTp).allowed());
  EXPECT_EQ(auth.check("", corp, kNowTp).status, 401);

  model::Route api;
  api.auth = "api-key";
  AuthResult r = auth.check("Bearer " + key->key, api, kNowTp);
  ASSERT_TRUE(r.allowed()) << r.message;
  EXPECT_EQ(r.headers_to_add, (HeaderList{{"X-Baton-Api-Key-Id", key->record.id}}));
  std::string wrong = key->key;
  wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
  r = auth.check("Bearer " + wrong, api, kNowTp);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.reason, Reason::kInvalidKey);
  EXPECT_EQ(auth.check("", api, kNowTp).status, 401);
  // A JWT is not an API key.
  EXPECT_EQ(auth.check(bearer(Alg::kES256, *ec_), api, kNowTp).status, 401);
  api.claims = {{"scope", "shop:read"}};
  EXPECT_TRUE(auth.check("Bearer " + key->key, api, kNowTp).allowed());
  api.claims = {{"scope", "shop:write"}};
  EXPECT_EQ(auth.check("Bearer " + key->key, api, kNowTp).status, 403);

  model::Route unknown;
  unknown.auth = "nope";
  EXPECT_EQ(auth.check(bearer(Alg::kES256, *ec_), unknown, kNowTp).status, 500);

  Authenticator no_keys({}, nullptr);
  EXPECT_EQ(no_keys.check("Bearer " + key->key, api, kNowTp).status, 500);
}

}  // namespace
}  // namespace baton::auth
