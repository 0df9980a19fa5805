#include "secrets/seal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "auth/jose.h"
#include "core/testing/fake_clock.h"
#include "crypto/aead.h"
#include "model/keys.h"
#include "state/sqlite_store.h"

namespace baton::secrets {
namespace {

using ::testing::HasSubstr;

class SealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("seal-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    store_ = std::move(state::SqliteStore::open(dir_ / "db", clock_).value());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Seal> sharesSeal() { return std::move(Seal::withShares(*store_, clock_).value()); }
  state::Revision revision() { return *store_->currentRevision(); }
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

  testing::FakeClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
};

TEST_F(SealTest, InitUnsealAndTheStoreHoldsNoShareOrKey) {
  auto seal = sharesSeal();
  EXPECT_EQ(seal->store(), nullptr);
  SealStatus st = seal->status();
  EXPECT_TRUE(st.sealed);
  EXPECT_FALSE(st.initialized);
  EXPECT_THAT(st.message(), HasSubstr("baton operator init"));
  auto shares = seal->init(5, 3);
  ASSERT_TRUE(shares.isOk()) << shares.status().toString();
  ASSERT_EQ(shares->size(), 5u);
  ASSERT_NE(seal->store(), nullptr) << "init leaves the agent that made the key unsealed";
  ASSERT_TRUE(seal->store()->put("shop/db", {{"PASSWORD", "hunter2-hunter2"}}).isOk());
  EXPECT_EQ(seal->init(5, 3).status().code(), Code::kAlreadyExists);

  // A restarted agent: sealed until three shares are given.
  seal.reset();
  auto again = sharesSeal();
  st = again->status();
  EXPECT_TRUE(st.sealed && st.initialized);
  EXPECT_EQ(st.threshold, 3);
  EXPECT_EQ(st.shares, 5);
  EXPECT_THAT(st.message(), HasSubstr("3 more unseal shares are needed"));
  auto s1 = again->unseal((*shares)[4]);
  ASSERT_TRUE(s1.isOk()) << s1.status().toString();
  EXPECT_EQ(s1->progress, 1);
  auto dup = again->unseal((*shares)[4]);
  EXPECT_THAT(dup.status().message(), HasSubstr("share 5 was given already"));
  EXPECT_EQ(again->status().progress, 1) << "a refused share leaves the progress as it was";
  EXPECT_EQ(again->unseal((*shares)[0])->progress, 2);
  EXPECT_THAT(again->status().message(), HasSubstr("1 more unseal share is needed"));
  EXPECT_EQ(again->store(), nullptr);
  auto done = again->unseal((*shares)[2]);
  ASSERT_TRUE(done.isOk()) << done.status().toString();
  EXPECT_FALSE(done->sealed);
  EXPECT_EQ(done->progress, 0);
  ASSERT_NE(again->store(), nullptr);
  EXPECT_EQ(again->store()->get("shop/db")->data.at("PASSWORD"), "hunter2-hunter2");
  // Unsealed: one more share changes nothing.
  EXPECT_FALSE(again->unseal((*shares)[1])->sealed);

  ASSERT_TRUE(store_->compact(*store_->currentRevision()).isOk());
  const std::string bytes = storeBytes();
  for (const auto& s : *shares) {
    EXPECT_EQ(bytes.find(s), std::string::npos) << "a share in the store's files";
    auto parsed = shamir::parseShare(s).value();
    EXPECT_EQ(bytes.find(parsed.bytes), std::string::npos);
    EXPECT_EQ(bytes.find(s.substr(s.find('.', 16) + 1, 43)), std::string::npos);
  }
  auto cfg = store_->get(std::string(model::keys::kSecretsSeal)).value();
  ASSERT_TRUE(cfg.has_value());
  EXPECT_THAT(cfg->value, HasSubstr("\"threshold\":3"));
}

TEST_F(SealTest, SharesOfAnotherInitAreRefusedByName) {
  // Another store's init, for shares of another key.
  auto other_dir = dir_ / "other";
  std::filesystem::create_directories(other_dir);
  auto other_store = std::move(state::SqliteStore::open(other_dir / "db", clock_).value());
  auto other = std::move(Seal::withShares(*other_store, clock_).value());
  auto foreign = other->init(5, 3).value();

  auto seal = sharesSeal();
  auto shares = seal->init(5, 3).value();
  auto restarted = sharesSeal();
  ASSERT_TRUE(restarted->unseal(shares[0]).isOk());
  auto r = restarted->unseal(foreign[2]);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("share 3 belongs to another key"));
  EXPECT_EQ(restarted->status().progress, 1);
  auto mistyped = shares[1];
  mistyped[10] = mistyped[10] == 'a' ? 'b' : 'a';
  EXPECT_THAT(restarted->unseal(mistyped).status().message(), HasSubstr("mistyped"));
  EXPECT_THAT(restarted->unseal("garbage").status().message(), HasSubstr("not an unseal share"));
  EXPECT_EQ(restarted->status().progress, 1);
}

TEST_F(SealTest, AWrongCombinedKeyIsRefusedAndNothingIsWritten) {
  auto seal = sharesSeal();
  auto shares = seal->init(3, 2).value();
  auto restarted = sharesSeal();
  // Shares that carry this key's id and a right checksum but not its points (forged, or from a
  // writer with a bug): they combine to another key.
  auto forge = [&](int index) {
    shamir::Share s = shamir::parseShare(shares[index - 1]).value();
    s.bytes = crypto::randomBytes(32).value();
    return shamir::encodeShare(s);
  };
  const state::Revision before = revision();
  ASSERT_TRUE(restarted->unseal(forge(1)).isOk());
  auto r = restarted->unseal(forge(2));
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("do not make the key"));
  EXPECT_THAT(r.status().message(), HasSubstr("start again"));
  EXPECT_EQ(restarted->status().progress, 0) << "the shares given are forgotten";
  EXPECT_EQ(restarted->store(), nullptr);
  EXPECT_EQ(revision(), before) << "nothing was written";
  // The real ones still work.
  ASSERT_TRUE(restarted->unseal(shares[0]).isOk());
  EXPECT_FALSE(restarted->unseal(shares[2])->sealed);
}

TEST_F(SealTest, AKeyThatDoesNotOpenTheKeyringIsRefusedAndNothingIsWritten) {
  ASSERT_TRUE(SecretStore::open(*store_, std::string(32, 'A'), clock_).isOk());
  const state::Revision before = revision();
  auto wrong = SecretStore::open(*store_, std::string(32, 'B'), clock_);
  EXPECT_EQ(wrong.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(wrong.status().message(), HasSubstr("does not open"));
  EXPECT_EQ(revision(), before);
  // Secrets sealed by a key file cannot be taken over by an init of shares.
  auto seal = sharesSeal();
  auto r = seal->init(3, 2);
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_THAT(r.status().message(), HasSubstr("sealed under another key"));
  EXPECT_EQ(revision(), before);
  EXPECT_FALSE(seal->status().initialized);
}

TEST_F(SealTest, FileModeIsUnsealedAndRefusesInitAndUnseal) {
  auto seal = std::move(Seal::withKey(*store_, std::string(32, 'K'), clock_).value());
  ASSERT_NE(seal->store(), nullptr);
  SealStatus st = seal->status();
  EXPECT_EQ(st.mode, "file");
  EXPECT_FALSE(st.sealed);
  EXPECT_EQ(seal->init(5, 3).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(seal->unseal("bs1.x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Seal::withKey(*store_, std::string(32, 'L'), clock_).status().code(),
            Code::kFailedPrecondition);
}

TEST_F(SealTest, AKeyFileDoesNotOpenSecretsInitialisedWithShares) {
  auto seal = sharesSeal();
  ASSERT_TRUE(seal->init(3, 2).isOk());
  const state::Revision before = revision();
  auto file = Seal::withKey(*store_, std::string(32, 'K'), clock_);
  EXPECT_EQ(file.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(file.status().message(), HasSubstr("seal = \"shares\""));
  EXPECT_EQ(revision(), before);
}

TEST_F(SealTest, InitChecksItsNumbers) {
  auto seal = sharesSeal();
  EXPECT_EQ(seal->init(5, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(seal->init(3, 4).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(seal->init(17, 3).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(seal->status().initialized);
  EXPECT_FALSE(store_->get(std::string(model::keys::kSecretsSeal))->has_value());
  EXPECT_EQ(seal->unseal("x").status().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace baton::secrets
