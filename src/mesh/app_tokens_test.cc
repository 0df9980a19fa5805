#include "mesh/app_tokens.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace baton::mesh {
namespace {

TEST(AppTokensTest, ATokenNamesItsAppAndNothingElsePasses) {
  AppTokens t(std::string(32, 'k'));
  const std::string shop = t.issue("shop");
  EXPECT_TRUE(shop.starts_with("app.shop."));
  EXPECT_EQ(shop.size(), std::string("app.shop.").size() + 64);
  EXPECT_EQ(t.check(shop), "shop");
  EXPECT_EQ(t.issue("shop"), shop) << "stable: a restarted agent hands out the same token";
  EXPECT_NE(t.issue("shoq"), shop);

  // Another app's name with shop's MAC, a changed MAC, truncations, other forms.
  std::string mac = shop.substr(std::string("app.shop.").size());
  EXPECT_FALSE(t.check("app.billing." + mac));
  std::string flipped = shop;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  EXPECT_FALSE(t.check(flipped));
  EXPECT_FALSE(t.check(shop.substr(0, shop.size() - 1)));
  EXPECT_FALSE(t.check(shop + "0"));
  EXPECT_FALSE(t.check("app.shop"));
  EXPECT_FALSE(t.check("app.." + mac));
  EXPECT_FALSE(t.check("app.Shop." + mac));
  EXPECT_FALSE(t.check(""));
  EXPECT_FALSE(t.check("Bearer " + shop));

  // Another node key: nothing passes.
  EXPECT_FALSE(AppTokens(std::string(32, 'x')).check(shop));
}

TEST(AppTokensTest, TheKeyComesFromTheNodesKeyFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("apptok-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "instance-api.key";
  auto a = AppTokens::loadOrCreate(file);
  ASSERT_TRUE(a.isOk()) << a.status().message();
  auto b = AppTokens::loadOrCreate(file);
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->check(a->issue("shop")), "shop") << "the same key after a restart";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace baton::mesh
