#include "autoscaler/calendar.h"

#include <date/date.h>
#include <gtest/gtest.h>

#include <chrono>

namespace baton::autoscaler {
namespace {

using namespace std::chrono_literals;

// An instant from a UTC date and time.
TimePoint utc(int y, unsigned mo, unsigned d, int h, int mi = 0, int s = 0) {
  auto day = date::sys_days{date::year{y} / mo / d};
  return std::chrono::time_point_cast<Duration>(day + std::chrono::hours{h} +
                                                std::chrono::minutes{mi} + std::chrono::seconds{s});
}

model::ScheduleEntry oneOff(std::string name, std::string start, std::string end, std::string tz,
                            std::optional<int> min, std::optional<int> max) {
  model::ScheduleEntry e;
  e.name = std::move(name);
  e.start = std::move(start);
  e.end = std::move(end);
  e.timezone = std::move(tz);
  e.min = min;
  e.max = max;
  return e;
}

model::ScheduleEntry recurring(std::string name, std::string cron, Duration dur, std::string tz,
                               std::optional<int> min, std::optional<int> max) {
  model::ScheduleEntry e;
  e.name = std::move(name);
  e.cron = std::move(cron);
  e.duration = dur;
  e.timezone = std::move(tz);
  e.min = min;
  e.max = max;
  return e;
}

model::ScaleSpec spec(std::vector<model::ScheduleEntry> entries, int min = 0, int max = 5) {
  model::ScaleSpec s;
  s.min = min;
  s.max = max;
  s.schedule = std::move(entries);
  return s;
}

TEST(Calendar, NoScheduleIsTheManifest) {
  BoundsInForce b = boundsAt(spec({}, 1, 4), utc(2026, 1, 1, 0));
  EXPECT_EQ(b.min, 1);
  EXPECT_EQ(b.max, 4);
  EXPECT_EQ(b.source, "manifest");
  EXPECT_FALSE(b.until.has_value());
}

TEST(Calendar, OneOffWindowInDetroitAppliesAndReverts) {
  Calendar cal(spec(
      {oneOff("black-friday", "2026-11-27 00:00", "2026-11-30 23:59", "America/Detroit", 2, 100)}));
  // Detroit is UTC-5 in November.
  TimePoint start = utc(2026, 11, 27, 5);
  TimePoint end = utc(2026, 12, 1, 4, 59);
  BoundsInForce before = cal.at(start - 1ms);
  EXPECT_EQ(before.source, "manifest");
  EXPECT_EQ(before.max, 5);
  EXPECT_EQ(before.until, start);
  BoundsInForce in = cal.at(start);
  EXPECT_EQ(in.min, 2);
  EXPECT_EQ(in.max, 100);
  EXPECT_EQ(in.source, "schedule:black-friday");
  EXPECT_EQ(in.until, end);
  EXPECT_EQ(cal.at(end - 1ms).source, "schedule:black-friday");
  BoundsInForce after = cal.at(end);
  EXPECT_EQ(after.source, "manifest");
  EXPECT_EQ(after.min, 0);
  EXPECT_EQ(after.max, 5);
  EXPECT_FALSE(after.until.has_value());
}

TEST(Calendar, RecurringWeekdayMorningsInBerlin) {
  Calendar cal(spec(
      {recurring("weekday-mornings", "0 8 * * MON-FRI", 4h, "Europe/Berlin", 1, std::nullopt)}));
  // Monday 2026-03-02, Berlin is UTC+1.
  BoundsInForce early = cal.at(utc(2026, 3, 2, 6, 59));
  EXPECT_EQ(early.source, "manifest");
  EXPECT_EQ(early.until, utc(2026, 3, 2, 7));
  BoundsInForce in = cal.at(utc(2026, 3, 2, 7));
  EXPECT_EQ(in.min, 1);
  EXPECT_EQ(in.max, 5);  // max not set by the entry: the manifest's
  EXPECT_EQ(in.until, utc(2026, 3, 2, 11));
  EXPECT_EQ(cal.at(utc(2026, 3, 2, 11)).source, "manifest");
  // Saturday: no window; the next one is Monday.
  BoundsInForce sat = cal.at(utc(2026, 3, 7, 9));
  EXPECT_EQ(sat.source, "manifest");
  EXPECT_EQ(sat.until, utc(2026, 3, 9, 7));
  // Summer (UTC+2): 08:00 local is 06:00 UTC.
  EXPECT_EQ(cal.at(utc(2026, 6, 1, 6)).source, "schedule:weekday-mornings");
  EXPECT_EQ(cal.at(utc(2026, 6, 1, 5, 59)).source, "manifest");
}

TEST(Calendar, DetroitSpringForwardCronInTheGapStartsWhenTheClockJumps) {
  // 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 does not exist.
  Calendar cal(spec({recurring("nightly", "30 2 * * *", 1h, "America/Detroit", 3, 9)}));
  EXPECT_EQ(cal.activeWindow(0, utc(2026, 3, 7, 7, 45))->start, utc(2026, 3, 7, 7, 30));  // EST
  auto w = cal.activeWindow(0, utc(2026, 3, 8, 7, 10));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->start, utc(2026, 3, 8, 7));  // 03:00 EDT, the instant of the jump
  EXPECT_EQ(w->end, utc(2026, 3, 8, 8));
  EXPECT_FALSE(cal.activeWindow(0, utc(2026, 3, 8, 6, 59)).has_value());
  EXPECT_EQ(cal.at(utc(2026, 3, 8, 6)).until, utc(2026, 3, 8, 7));
  // The day after: 02:30 EDT = 06:30 UTC.
  EXPECT_EQ(cal.nextStart(0, utc(2026, 3, 8, 8)), utc(2026, 3, 9, 6, 30));
}

TEST(Calendar, DetroitFallBackAmbiguousTimeFiresOnceAtTheEarliest) {
  // 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice (05:30Z and 06:30Z).
  Calendar cal(spec({recurring("late", "30 1 * * *", 30min, "America/Detroit", 2, 2)}));
  auto w = cal.activeWindow(0, utc(2026, 11, 1, 5, 40));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->start, utc(2026, 11, 1, 5, 30));
  EXPECT_FALSE(cal.activeWindow(0, utc(2026, 11, 1, 6, 40)).has_value());
  EXPECT_EQ(cal.nextStart(0, utc(2026, 11, 1, 5, 30)), utc(2026, 11, 2, 6, 30));  // EST
}

TEST(Calendar, BerlinWindowsSpanningTheChangeUseRealTime) {
  // 2026-03-29: 02:00 CET -> 03:00 CEST.
  Calendar oneoff(spec(
      {oneOff("night", "2026-03-28 22:00", "2026-03-29 04:00", "Europe/Berlin", 4, std::nullopt)}));
  EXPECT_EQ(oneoff.activeWindow(0, utc(2026, 3, 28, 21))->end, utc(2026, 3, 29, 2));
  EXPECT_TRUE(oneoff.activeWindow(0, utc(2026, 3, 29, 1, 59)).has_value());
  EXPECT_FALSE(oneoff.activeWindow(0, utc(2026, 3, 29, 2)).has_value());
  // A 4 h window from midnight lasts 4 real hours: 00:00 CET to 05:00 CEST.
  Calendar cron(spec({recurring("midnight", "0 0 * * *", 4h, "Europe/Berlin", 4, 8)}));
  auto w = cron.activeWindow(0, utc(2026, 3, 29, 2, 30));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->start, utc(2026, 3, 28, 23));
  EXPECT_EQ(w->end, utc(2026, 3, 29, 3));
  // Autumn (2026-10-25, 03:00 CEST -> 02:00 CET): a one-off ending at the ambiguous 02:30 ends
  // at its earliest occurrence.
  Calendar fall(spec(
      {oneOff("f", "2026-10-25 00:00", "2026-10-25 02:30", "Europe/Berlin", 1, std::nullopt)}));
  EXPECT_EQ(fall.activeWindow(0, utc(2026, 10, 24, 23))->end, utc(2026, 10, 25, 0, 30));
}

TEST(Calendar, OverlappingEntriesLastMatchingWins) {
  auto daily = recurring("daily", "0 8 * * *", 8h, "UTC", 1, 10);
  auto sale = oneOff("sale", "2026-05-01 10:00", "2026-05-01 12:00", "UTC", 5, std::nullopt);
  Calendar cal(spec({daily, sale}));
  BoundsInForce both = cal.at(utc(2026, 5, 1, 11));
  EXPECT_EQ(both.min, 5);
  EXPECT_EQ(both.max, 10);  // from "daily": "sale" does not set max
  EXPECT_EQ(both.source, "schedule:daily,sale");
  EXPECT_EQ(both.until, utc(2026, 5, 1, 12));
  BoundsInForce one = cal.at(utc(2026, 5, 1, 13));
  EXPECT_EQ(one.min, 1);
  EXPECT_EQ(one.source, "schedule:daily");
  EXPECT_EQ(one.until, utc(2026, 5, 1, 16));
  // Reversed order: "daily" is last and wins min.
  Calendar rev(spec({sale, daily}));
  EXPECT_EQ(rev.at(utc(2026, 5, 1, 11)).min, 1);
  EXPECT_EQ(rev.at(utc(2026, 5, 1, 11)).source, "schedule:sale,daily");
}

TEST(Calendar, WindowCrossingMidnight) {
  Calendar cal(spec({recurring("night", "0 22 * * *", 4h, "UTC", 2, 3)}));
  EXPECT_EQ(cal.at(utc(2026, 2, 10, 21, 59)).source, "manifest");
  BoundsInForce b = cal.at(utc(2026, 2, 11, 1));
  EXPECT_EQ(b.source, "schedule:night");
  EXPECT_EQ(b.until, utc(2026, 2, 11, 2));
  EXPECT_EQ(cal.at(utc(2026, 2, 11, 2)).source, "manifest");
}

TEST(Calendar, WindowCrossingTheEndOfAMonthAndSkippingShortMonths) {
  Calendar cal(spec({recurring("month-end", "0 20 31 * *", 6h, "UTC", 2, 3)}));
  EXPECT_EQ(cal.at(utc(2026, 2, 1, 1)).source, "schedule:month-end");  // from Jan 31 20:00
  EXPECT_EQ(cal.at(utc(2026, 2, 1, 2)).source, "manifest");
  // February and April have no 31st: next is March 31.
  EXPECT_EQ(cal.at(utc(2026, 2, 1, 2)).until, utc(2026, 3, 31, 20));
  Calendar leap(spec({oneOff("leap", "2028-02-28 22:00", "2028-03-01 02:00", "UTC", 1, 2)}));
  EXPECT_EQ(leap.at(utc(2028, 2, 29, 12)).source, "schedule:leap");
  EXPECT_EQ(leap.at(utc(2028, 3, 1, 2)).source, "manifest");
  // Year end in a zone: Dec 31 23:00 Berlin for 2 h.
  Calendar ny(spec({recurring("ny", "0 23 31 12 *", 2h, "Europe/Berlin", 7, 7)}));
  // (22:00Z to 00:00Z; 23:30Z is 00:30 on Jan 1 in Berlin.)
  EXPECT_EQ(ny.at(utc(2026, 12, 31, 23, 30)).min, 7);
  EXPECT_EQ(ny.at(utc(2026, 12, 31, 23, 30)).until, utc(2027, 1, 1, 0));
  EXPECT_EQ(ny.at(utc(2027, 1, 1, 0)).min, 0);
}

TEST(Calendar, MinAboveMaxRaisesMax) {
  BoundsInForce b = boundsAt(
      spec({oneOff("x", "2026-01-01 00:00", "2026-01-02 00:00", "UTC", 8, std::nullopt)}, 0, 5),
      utc(2026, 1, 1, 12));
  EXPECT_EQ(b.min, 8);
  EXPECT_EQ(b.max, 8);
}

TEST(Calendar, InvalidEntriesAreSkipped) {
  Calendar cal(spec({recurring("bad-cron", "61 * * * *", 1h, "UTC", 9, 9),
                     recurring("bad-zone", "* * * * *", 1h, "Mars/Olympus", 9, 9),
                     oneOff("bad-time", "2026-13-01 00:00", "2026-14-01 00:00", "UTC", 9, 9)}));
  EXPECT_EQ(cal.entries(), 0u);
  EXPECT_EQ(cal.at(utc(2026, 1, 1, 0)).source, "manifest");
}

TEST(Calendar, UntilIsExactlyTheNextChange) {
  Calendar cal(spec(
      {recurring("m", "*/15 9-17 * * MON-FRI", 5min, "America/Detroit", 1, 2),
       oneOff("o", "2026-07-01 09:07", "2026-07-01 09:09", "America/Detroit", 3, std::nullopt)}));
  TimePoint t = utc(2026, 7, 1, 12);  // 08:00 EDT, a Wednesday
  std::vector<std::string> sources;
  for (int i = 0; i < 8 && t < utc(2026, 7, 1, 14); ++i) {
    BoundsInForce b = cal.at(t);
    ASSERT_TRUE(b.until.has_value());
    EXPECT_EQ(cal.at(*b.until - 1ms), b);
    sources.push_back(b.source);
    t = *b.until;
  }
  std::vector<std::string> want{"manifest", "schedule:m", "manifest", "schedule:o",
                                "manifest", "schedule:m", "manifest", "schedule:m"};
  EXPECT_EQ(sources, want);
}

TEST(Calendar, ManyEvaluationsAcrossAYear) {
  Calendar cal(
      spec({recurring("a", "0 8 * * MON-FRI", 4h, "Europe/Berlin", 1, std::nullopt),
            recurring("b", "0 0 1 * *", 48h, "America/Detroit", 2, 9),
            oneOff("c", "2026-11-27 00:00", "2026-11-30 23:59", "America/Detroit", 2, 100)}));
  TimePoint t = utc(2026, 1, 1, 0);
  int active = 0;
  for (int i = 0; i < 20'000; ++i, t += 37s) active += cal.at(t).source != "manifest";
  EXPECT_GT(active, 0);
  EXPECT_LT(active, 20'000);
}

}  // namespace
}  // namespace baton::autoscaler
