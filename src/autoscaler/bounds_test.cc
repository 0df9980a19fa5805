#include "autoscaler/bounds.h"

#include <gtest/gtest.h>

#include <date/date.h>

namespace baton::autoscaler {
namespace {

TimePoint utc(int y, unsigned m, unsigned d, int h, int min) {
  using namespace date;
  auto midnight = sys_days(year(y) / month(m) / day(d));
  return std::chrono::time_point_cast<Duration>(midnight + std::chrono::hours(h) +
                                                std::chrono::minutes(min));
}

model::ScaleSpec shopScale() {
  model::ScaleSpec s;
  s.min = 0;
  s.max = 5;
  model::ScheduleEntry bf;
  bf.name = "black-friday";
  bf.start = "2026-11-27 00:00";
  bf.end = "2026-11-30 23:59";
  bf.timezone = "America/Detroit";
  bf.min = 2;
  bf.max = 100;
  s.schedule.push_back(bf);
  return s;
}

TEST(BoundsInForce, ManifestOutsideAnyWindow) {
  auto b = boundsInForce(shopScale(), nullptr, utc(2026, 11, 26, 12, 0));
  EXPECT_EQ(b.min, 0);
  EXPECT_EQ(b.max, 5);
  EXPECT_EQ(b.source, "manifest");
  ASSERT_TRUE(b.until);  // the window's start: 05:00 UTC on the 27th (EST is UTC-5)
  EXPECT_EQ(*b.until, utc(2026, 11, 27, 5, 0));
}

TEST(BoundsInForce, ScheduleWindowThenOverride) {
  auto in_window = utc(2026, 11, 28, 12, 0);
  auto b = boundsInForce(shopScale(), nullptr, in_window);
  EXPECT_EQ(b.min, 2);
  EXPECT_EQ(b.max, 100);
  EXPECT_EQ(b.source, "schedule:black-friday");

  model::ScaleOverride o;
  o.max = 10;
  o.expires_at = in_window + Duration(3'600'000);
  b = boundsInForce(shopScale(), &o, in_window);
  EXPECT_EQ(b.min, 2);  // the schedule's min stays; the override replaces max only
  EXPECT_EQ(b.max, 10);
  EXPECT_EQ(b.source, "override");
  EXPECT_EQ(b.until, o.expires_at);

  // Expired: the schedule is back.
  b = boundsInForce(shopScale(), &o, in_window + Duration(3'600'001));
  EXPECT_EQ(b.source, "schedule:black-friday");
}

TEST(BoundsInForce, MaxBelowMinLowersMin) {
  model::ScaleSpec s;
  s.min = 2;
  s.max = 4;
  model::ScaleOverride o;
  o.max = 0;
  auto b = boundsInForce(s, &o, utc(2026, 1, 1, 0, 0));
  EXPECT_EQ(b.min, 0);
  EXPECT_EQ(b.max, 0);
}

}  // namespace
}  // namespace baton::autoscaler
