#include "auth/token_cache.h"

#include <gtest/gtest.h>

namespace baton::auth {
namespace {

TEST(VerifiedTokenCache, HitsOnlyForTheSameTokenAndKeySet) {
  VerifiedTokenCache cache(64);
  auto keys = std::make_shared<const KeySet>();
  auto rotated = std::make_shared<const KeySet>();
  auto claims = std::make_shared<const Claims>();
  cache.insert("a.b.c", keys, claims);
  EXPECT_EQ(cache.find("a.b.c", keys), claims);
  EXPECT_EQ(cache.find("a.b.c", rotated), nullptr);  // the JWKS changed: verify again
  EXPECT_EQ(cache.find("a.b.d", keys), nullptr);
  EXPECT_EQ(cache.find("a.b.", keys), nullptr);
}

TEST(VerifiedTokenCache, StaysWithinItsCapacity) {
  VerifiedTokenCache cache(64);
  auto keys = std::make_shared<const KeySet>();
  for (int i = 0; i < 10'000; ++i) {
    cache.insert("token-" + std::to_string(i), keys, std::make_shared<const Claims>());
  }
  EXPECT_LE(cache.size(), 64u);
  EXPECT_GT(cache.size(), 0u);
}

}  // namespace
}  // namespace baton::auth
