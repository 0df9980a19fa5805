#include "auth/api_keys.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"
#include "state/sqlite_store.h"

namespace baton::auth {
namespace {

class ApiKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state::SqliteStoreOptions opts;
    opts.tick_interval = Duration(0);
    auto s = state::SqliteStore::open(dir_.path() / "store.db", clock_, opts);
    ASSERT_TRUE(s) << s.status().toString();
    store_ = std::move(s).value();
    keys_ = std::make_unique<ApiKeys>(*store_);
  }
  baton::testing::TempDir dir_;
  baton::testing::FakeClock clock_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<ApiKeys> keys_;
};

TEST_F(ApiKeysTest, CreateVerifyRevoke) {
  auto created = keys_->create("ci", {"shop:read"}, clock_.now());
  ASSERT_TRUE(created) << created.status().toString();
  const std::string& key = created->key;
  ASSERT_EQ(key.size(), 3u + 16 + 1 + 43);
  EXPECT_EQ(key.substr(0, 3), "bk_");
  EXPECT_EQ(key.substr(3, 16), created->record.id);

  // Only the hash is stored.
  auto kv = store_->get(apiKeyStoreKey(created->record.id));
  ASSERT_TRUE(kv && kv.value());
  const std::string secret = key.substr(20);
  EXPECT_EQ(kv.value()->value.find(secret), std::string::npos);
  EXPECT_NE(kv.value()->value.find("sha256:"), std::string::npos);

  auto rec = keys_->verify(key);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_EQ(rec->name, "ci");
  EXPECT_EQ(rec->scopes, std::vector<std::string>{"shop:read"});
  EXPECT_EQ(rec->created_at, clock_.now());

  auto listed = keys_->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, created->record.id);

  ASSERT_TRUE(keys_->revoke(created->record.id).isOk());
  auto gone = keys_->verify(key);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.reason(), Reason::kInvalidKey);
}

TEST_F(ApiKeysTest, WrongSecretOrFormatRefused) {
  auto created = keys_->create("ci", {}, clock_.now());
  ASSERT_TRUE(created);
  std::string wrong = created->key;
  wrong[20] = wrong[20] == 'A' ? 'B' : 'A';  // first secret char: still canonical base64url
  auto r = keys_->verify(wrong);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.reason(), Reason::kInvalidKey);
  EXPECT_EQ(r.error().message.find(wrong), std::string::npos);

  auto other = keys_->create("other", {}, clock_.now());
  ASSERT_TRUE(other);
  // The right secret under another id.
  std::string swapped = "bk_" + other->record.id + created->key.substr(19);
  EXPECT_FALSE(keys_->verify(swapped));

  for (std::string bad :
       {std::string(), std::string("bk_"), created->key + "A",
        created->key.substr(0, created->key.size() - 1),
        "bk_ZZZZZZZZZZZZZZZZ" + created->key.substr(19), "xx" + created->key.substr(2)}) {
    auto b = keys_->verify(bad);
    ASSERT_FALSE(b) << bad;
  }
  EXPECT_EQ(keys_->verify("").reason(), Reason::kMissing);
}

// Waits until `keys` has learnt of `n` more changes than `since` (the watch is asynchronous).
bool waitForChanges(const ApiKeys& keys, uint64_t since, uint64_t n) {
  for (int i = 0; i < 500 && keys.changesSeenForTest() < since + n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return keys.changesSeenForTest() >= since + n;
}

TEST_F(ApiKeysTest, CacheServesRepeatsAndForgetsRevokedKeys) {
  auto a = keys_->create("a", {}, clock_.now());
  auto b = keys_->create("b", {}, clock_.now());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(keys_->watchForChanges().isOk());  // from here on, reads are cached
  ASSERT_TRUE(keys_->verify(a->key));
  ASSERT_TRUE(keys_->verify(a->key));
  EXPECT_EQ(keys_->cachedForTest(), 1u);
  // A cached id with a wrong secret is still refused: the hash is compared every time.
  std::string wrong = a->key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(keys_->verify(wrong));
  // Revoked through this object: refused at once.
  ASSERT_TRUE(keys_->revoke(a->record.id).isOk());
  EXPECT_FALSE(keys_->verify(a->key));

  // Revoked by someone else (another agent on the same store): the watch drops the entry.
  ASSERT_TRUE(keys_->verify(b->key));
  ApiKeys other(*store_);
  ASSERT_TRUE(other.revoke(b->record.id).isOk());
  bool refused = false;
  for (int i = 0; i < 500 && !refused; ++i) {
    refused = !keys_->verify(b->key);
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused);
}

TEST_F(ApiKeysTest, CacheLearnsOfKeysCreatedAfterAMiss) {
  ASSERT_TRUE(keys_->watchForChanges().isOk());
  uint64_t seen = keys_->changesSeenForTest();
  ApiKeys other(*store_);
  auto k = other.create("late", {}, clock_.now());
  ASSERT_TRUE(k);
  // Created elsewhere after this cache started: found (a miss reads the store).
  EXPECT_TRUE(keys_->verify(k->key));
  ASSERT_TRUE(waitForChanges(*keys_, seen, 1));  // the creation, delivered by the watch
  EXPECT_TRUE(keys_->verify(k->key));
  // An absent id is refused and remembered as absent.
  std::string unknown = "bk_0123456789abcdef_" + k->key.substr(20);
  EXPECT_FALSE(keys_->verify(unknown));
  EXPECT_FALSE(keys_->verify(unknown));
  EXPECT_EQ(keys_->cachedForTest(), 2u);
}

TEST_F(ApiKeysTest, RecordJsonRoundTrip) {
  ApiKeyRecord r{"0123456789abcdef", "sha256:00", "n", fromUnixMillis(5), {"a", "b"}};
  auto back = decodeApiKeyRecord(encodeApiKeyRecord(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, r.id);
  EXPECT_EQ(back->scopes, r.scopes);
  EXPECT_EQ(back->created_at, r.created_at);
  EXPECT_FALSE(decodeApiKeyRecord("{}"));
  EXPECT_FALSE(decodeApiKeyRecord("nope"));
}

}  // namespace
}  // namespace baton::auth
