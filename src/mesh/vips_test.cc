#include "mesh/vips.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "core/testing/fake_clock.h"
#include "state/sqlite_store.h"

namespace baton::mesh {
namespace {

TEST(VipsTest, AddressesAndSlotsRoundTrip) {
  EXPECT_EQ(vipAddress(1), "169.254.64.1");
  EXPECT_EQ(vipAddress(kVipSlots - 1), "169.254.127.255");
  EXPECT_EQ(vipSlot("169.254.64.1"), 1u);
  EXPECT_EQ(vipSlot("169.254.127.255"), kVipSlots - 1);
  for (const char* bad : {"169.254.64.0", "169.254.128.1", "169.254.63.255", "1.2.3", "a.b.c.d",
                          "169.254.064.1", "169.254.64.1.", "169.254.64.1.5", "", "169.254.64.256"}) {
    EXPECT_FALSE(vipSlot(bad).has_value()) << bad;
  }
}

TEST(VipsTest, ChoiceIsStableAndSkipsTakenSlots) {
  auto a = chooseVipSlot("shop/cart", {});
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(*chooseVipSlot("shop/cart", {}), *a);
  auto b = chooseVipSlot("shop/cart", {*a});
  ASSERT_TRUE(b.isOk());
  EXPECT_NE(*b, *a);
  EXPECT_NE(*b, 0u);
  std::set<uint32_t> all;
  for (uint32_t s = 1; s < kFirstReservedSlot; ++s) all.insert(s);
  EXPECT_FALSE(chooseVipSlot("x/y", all).isOk())
      << "the API, gateway and DNS addresses are never handed out";
  all.erase(kFirstReservedSlot - 1);
  EXPECT_EQ(*chooseVipSlot("x/y", all), kFirstReservedSlot - 1);
  EXPECT_EQ(vipAddress(kReservedDnsSlot), "169.254.127.254");
  EXPECT_EQ(vipAddress(kFirstReservedSlot), kApiAddress);
  EXPECT_EQ(vipAddress(kFirstReservedSlot + 1), kGatewayAddress);
}

class VipsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vips-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    store_ = std::move(state::SqliteStore::open(dir_ / "db", clock_).value());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  testing::FakeClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<state::SqliteStore> store_;
};

TEST_F(VipsStoreTest, EnsureAllocatesOnceAndNeverTwice) {
  auto a = ensureVip(*store_, {"shop", "cart"});
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(*ensureVip(*store_, {"shop", "cart"}), *a);
  // Many services at once from several threads: every address distinct.
  std::vector<std::thread> threads;
  std::vector<std::string> got(40);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        auto r = ensureVip(*store_, {"app" + std::to_string(k), "svc" + std::to_string(i)});
        got[i * 10 + k] = r ? *r : "error: " + r.status().toString();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> distinct(got.begin(), got.end());
  distinct.insert(*a);
  EXPECT_EQ(distinct.size(), 41u);
  auto listed = store_->list("/baton/vips/");
  ASSERT_TRUE(listed.isOk());
  auto by_addr = parseVips(listed->kvs);
  EXPECT_EQ(by_addr.size(), 41u);
  EXPECT_EQ(by_addr.at(*a), (ServiceRef{"shop", "cart"}));
}

}  // namespace
}  // namespace baton::mesh
