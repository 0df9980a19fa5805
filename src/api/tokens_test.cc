#include "api/tokens.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "core/testing/fake_clock.h"
#include "state/sqlite_store.h"

namespace baton::api {
namespace {

class TokenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/baton-tokens-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = state::SqliteStore::open(dir_ / "state.db", clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    tokens_ = std::make_unique<TokenStore>(*store_);
  }
  void TearDown() override {
    tokens_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static std::vector<acl::Rule> shopRules() { return {*acl::parseRule("secrets:shop/*:read")}; }

  testing::FakeClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<TokenStore> tokens_;
};

TEST_F(TokenStoreTest, CreatesVerifiesAndStoresOnlyTheHash) {
  auto made = tokens_->create("alice", shopRules(), clock_.now(), std::nullopt, "agent-token");
  ASSERT_TRUE(made.isOk()) << made.status().toString();
  const std::string& t = made->token;
  ASSERT_EQ(t.size(), 66u) << t;
  EXPECT_TRUE(t.starts_with("baton_" + made->record.accessor + "_"));
  EXPECT_TRUE(isAccessor(made->record.accessor));
  EXPECT_TRUE(made->record.hash.starts_with("sha256:"));

  // The store holds the record, and no part of the secret.
  auto kv = store_->get(tokenStoreKey(made->record.accessor));
  ASSERT_TRUE(kv.isOk() && kv->has_value());
  const std::string secret = t.substr(6 + 16 + 1);
  EXPECT_EQ((*kv)->value.find(secret), std::string::npos);
  auto rec = decodeTokenRecord((*kv)->value);
  ASSERT_TRUE(rec.isOk()) << rec.status().toString();
  EXPECT_EQ(rec->owner, "alice");
  EXPECT_EQ(rec->rules, shopRules());
  EXPECT_EQ(rec->created_by, "agent-token");
  EXPECT_FALSE(rec->expires_at.has_value());

  Verified v = tokens_->verify(t, clock_.now());
  ASSERT_EQ(v.result, Verified::Result::kOk);
  EXPECT_EQ(v.record.accessor, made->record.accessor);
  EXPECT_EQ(v.record.rules, shopRules());
}

TEST_F(TokenStoreTest, WrongSecretsAndMalformedTokensAreUnknown) {
  auto made = tokens_->create("alice", shopRules(), clock_.now(), std::nullopt, "dev");
  ASSERT_TRUE(made.isOk());
  std::string wrong = made->token;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  std::string other_accessor = made->token;
  other_accessor[6] = other_accessor[6] == '0' ? '1' : '0';
  for (const std::string& t :
       {wrong, other_accessor, made->token.substr(0, 65), made->token + "A", std::string("baton_"),
        std::string(""), "bk_" + made->token.substr(6),
        "baton_" + std::string(16, 'G') + "_" + made->token.substr(23)}) {
    EXPECT_EQ(tokens_->verify(t, clock_.now()).result, Verified::Result::kUnknown) << t;
  }
}

TEST_F(TokenStoreTest, ExpiresAtItsTimeOnTheInjectedClock) {
  const TimePoint at = clock_.now() + Duration(2000);
  auto made = tokens_->create("ci", shopRules(), clock_.now(), at, "dev");
  ASSERT_TRUE(made.isOk());
  EXPECT_EQ(tokens_->verify(made->token, clock_.now()).result, Verified::Result::kOk);
  clock_.advance(Duration(1999));
  EXPECT_EQ(tokens_->verify(made->token, clock_.now()).result, Verified::Result::kOk);
  clock_.advance(Duration(1));
  Verified v = tokens_->verify(made->token, clock_.now());
  EXPECT_EQ(v.result, Verified::Result::kExpired);
  EXPECT_EQ(v.record.expires_at, at);
}

TEST_F(TokenStoreTest, RevokeDeletesAndListShowsTheRest) {
  auto a = tokens_->create("alice", shopRules(), clock_.now(), std::nullopt, "dev");
  clock_.advance(Duration(10));
  auto b = tokens_->create("bob", shopRules(), clock_.now(), std::nullopt, "dev");
  ASSERT_TRUE(a.isOk() && b.isOk());
  auto all = tokens_->list();
  ASSERT_TRUE(all.isOk());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].owner, "alice");
  EXPECT_EQ((*all)[1].owner, "bob");

  auto gone = tokens_->revoke(a->record.accessor);
  ASSERT_TRUE(gone.isOk());
  EXPECT_TRUE(*gone);
  EXPECT_EQ(tokens_->verify(a->token, clock_.now()).result, Verified::Result::kUnknown);
  EXPECT_EQ(tokens_->verify(b->token, clock_.now()).result, Verified::Result::kOk);
  auto again = tokens_->revoke(a->record.accessor);
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE(*again);
  EXPECT_EQ(tokens_->list()->size(), 1u);
}

TEST_F(TokenStoreTest, MalformedRecordsOpenNothing) {
  auto made = tokens_->create("alice", shopRules(), clock_.now(), std::nullopt, "dev");
  ASSERT_TRUE(made.isOk());
  ASSERT_TRUE(store_->put(tokenStoreKey(made->record.accessor), "{not json").isOk());
  EXPECT_EQ(tokens_->verify(made->token, clock_.now()).result, Verified::Result::kUnknown);
  EXPECT_FALSE(decodeTokenRecord(R"({"accessor":"a","hash":"h","owner":"o","created_at":1,
      "rules":[{"kind":"apps","pattern":"a/*","capabilities":["read"]}]})")
                   .isOk());
}

}  // namespace
}  // namespace baton::api
