#include "secrets/secret_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/testing/fake_clock.h"
#include "state/sqlite_store.h"

namespace baton::secrets {
namespace {

class SecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("secrets-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    store_ = std::move(state::SqliteStore::open(dir_ / "db", clock_).value());
    secrets_ = std::move(SecretStore::open(*store_, kek_, clock_).value());
  }
  void TearDown() override {
    secrets_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Every byte of the store's files (the database and its write-ahead log).
  std::string storeBytes() {
    std::string all;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    return all;
  }

  const std::string kek_ = std::string(32, 'K');
  testing::FakeClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<SecretStore> secrets_;
};

TEST_F(SecretStoreTest, VersionsRoundTripAndTheStoreFileHoldsNoClearValue) {
  const std::string clear = "correct-horse-battery-staple-7f3a";
  ASSERT_EQ(*secrets_->put("shop/db", {{"PASSWORD", clear}, {"USER", "shop"}}, 0), 1);
  EXPECT_EQ(secrets_->put("shop/db", {{"PASSWORD", "x"}}, 0).status().code(), Code::kConflict);
  ASSERT_EQ(*secrets_->put("shop/db", {{"PASSWORD", clear + "-2"}}, 1), 2);
  auto v = secrets_->get("shop/db");
  ASSERT_TRUE(v.isOk()) << v.status().toString();
  EXPECT_EQ(v->version, 2);
  EXPECT_EQ(v->data.at("PASSWORD"), clear + "-2");
  EXPECT_EQ(secrets_->get("shop/db", 1)->data.at("USER"), "shop");
  EXPECT_EQ(secrets_->get("shop/nope").status().code(), Code::kNotFound);
  EXPECT_EQ(secrets_->put("shop/db", {{"bad-key", "x"}}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(secrets_->put("../db", {{"K", "x"}}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(*secrets_->list("shop/"), (std::vector<std::string>{"shop/db"}));

  ASSERT_TRUE(store_->compact(*store_->currentRevision()).isOk());
  const std::string bytes = storeBytes();
  EXPECT_EQ(bytes.find(clear), std::string::npos) << "a value in clear in the store's files";
  EXPECT_EQ(bytes.find(kek_), std::string::npos);
}

TEST_F(SecretStoreTest, DeleteUndeleteDestroyAndMaxVersions) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(secrets_->put("a/b", {{"V", std::to_string(i)}}).isOk());
  ASSERT_TRUE(secrets_->softDelete("a/b").isOk());
  EXPECT_EQ(secrets_->get("a/b").status().code(), Code::kNotFound);
  EXPECT_EQ(secrets_->get("a/b", 2)->data.at("V"), "2");
  ASSERT_TRUE(secrets_->undelete("a/b", {3}).isOk());
  EXPECT_EQ(secrets_->get("a/b")->data.at("V"), "3");
  ASSERT_TRUE(secrets_->destroy("a/b", {2}).isOk());
  EXPECT_EQ(secrets_->get("a/b", 2).status().code(), Code::kNotFound);
  EXPECT_FALSE(store_->get("/baton/secrets/data/a/b#2")->has_value()) << "destroyed data is gone";
  ASSERT_TRUE(secrets_->setMaxVersions("a/b", 1).isOk());
  EXPECT_FALSE(store_->get("/baton/secrets/data/a/b#1")->has_value());
  EXPECT_EQ(secrets_->metadata("a/b")->versions.size(), 1u);
  ASSERT_TRUE(secrets_->purge("a/b").isOk());
  EXPECT_EQ(secrets_->metadata("a/b").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->list("/baton/secrets/data/")->kvs.empty());
}

TEST_F(SecretStoreTest, AnotherKekDoesNotOpenAndMovedValuesDoNotOpen) {
  ASSERT_TRUE(secrets_->put("a/one", {{"V", "1"}}).isOk());
  auto other = SecretStore::open(*store_, std::string(32, 'X'), clock_);
  EXPECT_EQ(other.status().code(), Code::kFailedPrecondition);
  auto again = SecretStore::open(*store_, kek_, clock_);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ((*again)->get("a/one")->data.at("V"), "1") << "the same data key after a restart";
  // A sealed value copied under another path does not open there.
  ASSERT_TRUE(secrets_->put("a/two", {{"V", "2"}}).isOk());
  auto one = store_->get("/baton/secrets/data/a/one#1");
  ASSERT_TRUE(store_->put("/baton/secrets/data/a/two#1", (*one)->value).isOk());
  auto moved = secrets_->get("a/two");
  EXPECT_EQ(moved.status().code(), Code::kInternal);
  EXPECT_NE(moved.status().message().find("does not open"), std::string::npos);
}

TEST_F(SecretStoreTest, ConcurrentWritersNeverMakeTheSameVersion) {
  std::vector<std::thread> threads;
  std::vector<int64_t> got[4];
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 5; ++k) {
        auto v = secrets_->put("c/d", {{"K", std::to_string(i)}});
        if (v.isOk()) got[i].push_back(*v);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> all;
  size_t n = 0;
  for (auto& g : got) {
    n += g.size();
    all.insert(g.begin(), g.end());
  }
  EXPECT_EQ(all.size(), n) << "two writers got the same version";
  EXPECT_EQ(secrets_->metadata("c/d")->current, static_cast<int64_t>(n));
}

}  // namespace
}  // namespace baton::secrets
