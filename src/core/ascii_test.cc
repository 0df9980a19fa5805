#include "core/ascii.h"

#include <gtest/gtest.h>

namespace baton {
namespace {

TEST(AsciiTest, FoldsOnlyAsciiLetters) {
  EXPECT_EQ(lowerAscii("X-Forwarded-For: 1.2.3.4"), "x-forwarded-for: 1.2.3.4");
  EXPECT_EQ(lowerAscii("\xC3\x84@[`{"), "\xC3\x84@[`{");  // non-ASCII and the letters' neighbours
  EXPECT_TRUE(iequalsAscii("Keep-Alive", "keep-alive"));
  EXPECT_FALSE(iequalsAscii("keep-alive", "keep-alivE "));
  EXPECT_FALSE(iequalsAscii("@", "`"));  // 0x40 and 0x60 differ by 32 but are not letters
  EXPECT_TRUE(istartsWithAscii("Bearer abc", "bearer "));
  EXPECT_FALSE(istartsWithAscii("Bear", "bearer "));
  static_assert(iequalsAscii("Upgrade", "UPGRADE"));
}

}  // namespace
}  // namespace baton
