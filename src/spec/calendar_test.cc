#include "spec/calendar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace baton::spec {
namespace {

using ::testing::HasSubstr;

TEST(Cron, ParsesFieldsNamesRangesListsSteps) {
  Result<CronExpr> c = parseCron("*/15 8-17/3 1,15 JAN-MAR,dec mon-FRI");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->minutes.count(), 4u);
  EXPECT_TRUE(c->minutes[0] && c->minutes[15] && c->minutes[30] && c->minutes[45]);
  EXPECT_EQ(c->hours.count(), 4u);  // 8, 11, 14, 17
  EXPECT_TRUE(c->hours[17]);
  EXPECT_EQ(c->days_of_month.count(), 2u);
  EXPECT_TRUE(c->months[1] && c->months[2] && c->months[3] && c->months[12]);
  EXPECT_EQ(c->months.count(), 4u);
  EXPECT_EQ(c->days_of_week.count(), 5u);
  EXPECT_FALSE(c->days_of_week[0]);
  EXPECT_FALSE(c->dom_any);
  EXPECT_FALSE(c->dow_any);
}

TEST(Cron, SundayIsZeroOrSeven) {
  Result<CronExpr> c = parseCron("0 0 * * 7");
  ASSERT_TRUE(c.isOk());
  EXPECT_TRUE(c->days_of_week[0]);
  EXPECT_TRUE(c->dom_any);
  Result<CronExpr> s = parseCron("0 0 * * 5/1");  // 5 to 7: Fri, Sat, Sun
  ASSERT_TRUE(s.isOk());
  EXPECT_EQ(s->days_of_week.count(), 3u);
}

TEST(Cron, RejectsBadExpressions) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"", "has 0 fields"},
      {"* * * *", "has 4 fields"},
      {"* * * * * *", "has 6 fields"},
      {"60 * * * *", "minute"},
      {"* 24 * * *", "hour"},
      {"* * 0 * *", "day-of-month"},
      {"* * * 13 *", "month"},
      {"* * * * 8", "day-of-week"},
      {"* * * * MON-FRY", "unknown value \"FRY\""},
      {"* * * FOO *", "month"},
      {"*/0 * * * *", "step"},
      {"*/x * * * *", "step"},
      {"5-1 * * * *", "range start is after its end"},
      {"1,,2 * * * *", "empty list element"},
      {"1- * * * *", "minute"},
      {"? * * * *", "minute"},
      {"0 0 31 FEB *", "never matches"},
      {"99999999999 * * * *", "out of range"},
  };
  for (const Case& c : cases) {
    Result<CronExpr> r = parseCron(c.text);
    EXPECT_FALSE(r.isOk()) << c.text;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.text;
  }
}

TEST(LocalDateTime, ParsesAndValidates) {
  auto a = parseLocalDateTime("1970-01-02 00:00");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->seconds, 86400);
  auto b = parseLocalDateTime("2024-02-29 23:59:59");
  ASSERT_TRUE(b);
  EXPECT_LT(*a, *b);
  for (const char* bad : {"2023-02-29 00:00", "2024-13-01 00:00", "2024-01-01 24:00",
                          "2024-01-01 00:60", "2024-01-01T00:00", "2024-1-01 00:00",
                          "2024-01-01 00:00:60", "2024-01-01", "2024-01-01 00:00 ", ""}) {
    EXPECT_FALSE(parseLocalDateTime(bad)) << bad;
  }
}

TEST(TimeZone, KnowsIanaZones) {
  EXPECT_TRUE(isKnownTimeZone("Europe/Berlin"));
  EXPECT_TRUE(isKnownTimeZone("America/Detroit"));
  EXPECT_TRUE(isKnownTimeZone("UTC"));
  EXPECT_FALSE(isKnownTimeZone("Mars/Olympus"));
  EXPECT_FALSE(isKnownTimeZone(""));
  EXPECT_FALSE(isKnownTimeZone("../../etc/passwd"));
}

}  // namespace
}  // namespace baton::spec
