#include "autoscaler/rhythm.h"

#include <gtest/gtest.h>

#include <random>

namespace baton::autoscaler {
namespace {

using namespace std::chrono_literals;

TimePoint at(int64_t s) { return fromUnixMillis(1'700'000'000'000 + s * 1000); }

TEST(Rhythm, AStrictPeriodIsRecognisedAfterAFewPeriods) {
  Rhythm r;
  EXPECT_EQ(r.expect().kind, Expectation::Kind::kNone);
  for (int i = 1; i <= 3; ++i) r.observe(299s, 300s, at(300 * i));
  EXPECT_EQ(r.expect().kind, Expectation::Kind::kNone) << "three periods are not yet a rhythm";
  r.observe(299s, 300s, at(1200));
  Expectation e = r.expect();
  ASSERT_EQ(e.kind, Expectation::Kind::kPeriodic);
  EXPECT_EQ(e.head, 300s);
  EXPECT_EQ(e.describe(), "period 300 s");
  // One late call (a drift of more than 2 %) breaks it until the periods agree again.
  r.observe(339s, 340s, at(1540));
  EXPECT_NE(r.expect().kind, Expectation::Kind::kPeriodic);
  for (int i = 0; i < 4; ++i) r.observe(299s, 300s, at(1840 + 300 * i));
  EXPECT_EQ(r.expect().kind, Expectation::Kind::kPeriodic);
}

// A cron-like client on the minute that skips minutes: periods of 4, 5 and 6 minutes are no
// period, but all whole minutes apart.
TEST(Rhythm, WholeMultiplesOfOneStepAreAGrid) {
  Rhythm r;
  const int minutes[] = {5, 4, 6, 5, 5, 6, 4, 5};
  int64_t t = 0;
  for (int i = 0; i < 7; ++i) {
    t += minutes[i] * 60;
    r.observe(std::chrono::seconds(minutes[i] * 60 - 3), std::chrono::seconds(minutes[i] * 60),
              at(t));
  }
  EXPECT_NE(r.expect().kind, Expectation::Kind::kGrid) << "seven periods are not yet a grid";
  r.observe(297s, 301s, at(t + 301));  // a second late: within the tolerance
  Expectation e = r.expect();
  ASSERT_EQ(e.kind, Expectation::Kind::kGrid);
  EXPECT_NEAR(static_cast<double>(e.head.count()), 60'000, 200);
  EXPECT_EQ(e.tail, 360s);
  EXPECT_EQ(e.describe(), "grid 60 s up to 360 s");
  // Being up 5 s around each minute mark until the call: 5 points a period on average, 25 s.
  EXPECT_NEAR(r.gridCost(60s, 5s), 25'000, 1);
  // The grid survives a restart.
  auto back = Rhythm::fromJson(r.toJson());
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(back->expect().kind, Expectation::Kind::kGrid);
}

TEST(Rhythm, RandomPeriodsAreNoGrid) {
  std::mt19937 rng(11);
  std::exponential_distribution<double> gap(1.0 / 180);  // memoryless, mean 3 min
  int grids = 0;
  Rhythm r;
  int64_t t = 0;
  for (int i = 0; i < 2000; ++i) {
    const int64_t p = 2 + static_cast<int64_t>(gap(rng));
    t += p;
    r.observe(std::chrono::seconds(p - 1), std::chrono::seconds(p), at(t));
    if (r.expect().kind == Expectation::Kind::kGrid) ++grids;
  }
  EXPECT_EQ(grids, 0);
}

TEST(Rhythm, ShortPeriodsAreNotPredicted) {
  Rhythm r;
  for (int i = 1; i <= 8; ++i) r.observe(4s, 5s, at(5 * i));
  EXPECT_NE(r.expect().kind, Expectation::Kind::kPeriodic);
}

TEST(Rhythm, AConcentratedHistogramGivesHeadAndTail) {
  Rhythm r;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> idle(40, 55);  // seconds; not periodic (starts vary)
  for (int i = 0; i < 50; ++i) {
    int g = idle(rng);
    r.observe(std::chrono::seconds(g), std::chrono::seconds(g + 1 + i % 7), at(60 * i));
  }
  Expectation e = r.expect();
  ASSERT_EQ(e.kind, Expectation::Kind::kHistogram);
  EXPECT_GE(e.head, 40s);
  EXPECT_LE(e.head, 42s);
  EXPECT_GE(e.tail, 54s);
  EXPECT_LE(e.tail, 56s);
}

TEST(Rhythm, TooFewOrTooWideIsNoRhythm) {
  Rhythm few;
  for (int i = 0; i < 5; ++i) few.observe(45s, std::chrono::seconds(46 + i * 5), at(60 * i));
  EXPECT_EQ(few.expect().kind, Expectation::Kind::kNone);

  // Idle times spread over every bin: not representative. (The bursts start at no common step
  // either: whole minutes apart they would be a grid.)
  Rhythm wide;
  for (size_t b = 0; b < Rhythm::kBins; ++b) {
    Duration g = b < 60 ? Duration(static_cast<int64_t>(b) * 1000 + 500)
                        : Duration(static_cast<int64_t>(b - 59) * 60'000 + 1000);
    wide.observe(g, g + Duration(static_cast<int64_t>(b % 13) * 60'000 + (b * 7'919) % 60'000),
                 at(static_cast<int64_t>(b)));
  }
  EXPECT_EQ(wide.expect().kind, Expectation::Kind::kNone);
}

TEST(Rhythm, SkiRentalUsesEveryGapSeenNotTheLastFew) {
  Rhythm r;
  // 200 gaps of 20 s and, among them, 4 of 10 minutes: bridging 20 s is worth it, 10 minutes not.
  for (int i = 0; i < 200; ++i) r.observe(20s, 21s + std::chrono::seconds(i % 5), at(30 * i));
  for (int i = 0; i < 4; ++i) r.observe(600s, 601s, at(6000 + 700 * i));
  auto t = r.skiRental(120s, 10s, 300s);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, 21s) << "just past the 20 s bin";
  Rhythm empty;
  EXPECT_FALSE(empty.skiRental(120s, 10s, 300s).has_value());
}

TEST(Rhythm, OldSamplesDecay) {
  RhythmParams p;
  p.half_life = 3600s;
  Rhythm r(p);
  for (int i = 0; i < 10; ++i) r.observe(30s, 31s + std::chrono::seconds(i), at(i));
  EXPECT_NEAR(r.samples(), 10, 0.01);
  r.observe(30s, 40s, at(10 + 3600));
  EXPECT_NEAR(r.samples(), 6, 0.01) << "10 halved, plus the new one";
}

TEST(Rhythm, SurvivesARoundTripThroughJson) {
  Rhythm r;
  for (int i = 1; i <= 6; ++i) r.observe(299s, 300s, at(300 * i));
  r.observe(5h, 5h, at(20000));
  auto back = Rhythm::fromJson(r.toJson());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->toJson(), r.toJson());
  EXPECT_EQ(back->expect().kind, r.expect().kind);
  EXPECT_NEAR(back->samples(), r.samples(), 1e-6);
  for (const char* bad : {"", "[]", "{\"v\":2}", "{\"v\":1,\"bins\":{\"999\":1},\"out_of_range\":0,"
                                                   "\"periods_ms\":[],\"at\":null}",
                          "{\"v\":1,\"bins\":{\"3\":-1},\"out_of_range\":0,\"periods_ms\":[],"
                          "\"at\":null}"}) {
    EXPECT_FALSE(Rhythm::fromJson(bad).isOk()) << bad;
  }
}

}  // namespace
}  // namespace baton::autoscaler
