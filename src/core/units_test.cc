#include "core/units.h"

#include <gtest/gtest.h>

namespace baton {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsUnitsAndSums) {
  EXPECT_EQ(parseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(parseDuration("10s"), milliseconds(10'000));
  EXPECT_EQ(parseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(parseDuration("2h"), milliseconds(7'200'000));
  EXPECT_EQ(parseDuration("1d"), milliseconds(86'400'000));
  EXPECT_EQ(parseDuration("1h30m"), milliseconds(5'400'000));
  EXPECT_EQ(parseDuration("0s"), milliseconds(0));
}

TEST(ParseDuration, RejectsEverythingElse) {
  for (const char* bad : {"", "5", "m", "5 m", " 5m", "5m ", "1.5h", "-5m", "5M", "5mins",
                          "5sm", "h1", "99999999999999999999s", "9999999999999999d"}) {
    EXPECT_EQ(parseDuration(bad), std::nullopt) << bad;
  }
}

TEST(ParseBytes, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(parseBytes("128MiB"), 128ull << 20);
  EXPECT_EQ(parseBytes("1GiB"), 1ull << 30);
  EXPECT_EQ(parseBytes("512KiB"), 512ull << 10);
  EXPECT_EQ(parseBytes("100MB"), 100'000'000ull);
  EXPECT_EQ(parseBytes("4096"), 4096ull);
}

TEST(ParseBytes, RejectsEverythingElse) {
  for (const char* bad : {"", "MiB", "128mib", "128 MiB", "1.5GiB", "-1", "128M", "128Mi",
                          "99999999999TiB", "18446744073709551616"}) {
    EXPECT_EQ(parseBytes(bad), std::nullopt) << bad;
  }
}

TEST(Format, RoundTrips) {
  EXPECT_EQ(formatDuration(milliseconds(5'400'000)), "1h30m");
  EXPECT_EQ(formatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(formatBytes(128ull << 20), "128MiB");
  EXPECT_EQ(formatBytes(1000), "1000");
  for (const char* d : {"1h30m", "250ms", "1d2h3m4s5ms"}) {
    EXPECT_EQ(formatDuration(*parseDuration(d)), d);
  }
}

}  // namespace
}  // namespace baton
