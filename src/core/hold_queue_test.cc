#include "core/hold_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace baton {
namespace {

using namespace std::chrono_literals;

struct Parked {
  std::shared_ptr<HoldQueue::Waiter> waiter;
  int woken = 0;
};

// Parks `n` waiters; each counts its wakes.
std::vector<std::unique_ptr<Parked>> parkMany(HoldQueue& q, int n, HoldQueue::TimePoint now) {
  std::vector<std::unique_ptr<Parked>> out;
  for (int i = 0; i < n; ++i) {
    auto p = std::make_unique<Parked>();
    Parked* raw = p.get();
    p->waiter = std::make_shared<HoldQueue::Waiter>([raw] { ++raw->woken; });
    bool cold = false;
    EXPECT_EQ(q.park(p->waiter, 1000, now, &cold), HoldQueue::Admit::kParked);
    out.push_back(std::move(p));
  }
  return out;
}

int wokenCount(const std::vector<std::unique_ptr<Parked>>& ps) {
  int n = 0;
  for (const auto& p : ps) n += p->woken;
  return n;
}

TEST(HoldQueueTest, ReleasesAFirstFewThenTwoPerServedWaiter) {
  HoldQueue q;
  auto ps = parkMany(q, 20, HoldQueue::TimePoint{});
  EXPECT_EQ(q.queued(), 20);
  bool ran = false;
  q.setHasBackends(true, [&] { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_EQ(wokenCount(ps), static_cast<int>(HoldQueue::kFirstRelease));
  EXPECT_EQ(q.queued(), 12);
  // In order: the first parked go first, each woken once.
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(ps[i]->woken, i < 8 ? 1 : 0) << i;
  {
    ReleaseNext served;
    served.queue = &q;
    EXPECT_TRUE(q.leave(ps[0]->waiter));
  }  // served: two more go
  EXPECT_EQ(wokenCount(ps), 10);
  EXPECT_EQ(q.queued(), 10);
}

TEST(HoldQueueTest, AServiceWithAnInstanceParksNothingAndAFullQueueRefuses) {
  HoldQueue q;
  bool cold = false;
  auto w = std::make_shared<HoldQueue::Waiter>(nullptr);
  q.setHasBackends(true);
  EXPECT_EQ(q.park(w, 10, {}, &cold), HoldQueue::Admit::kHasBackends);
  EXPECT_FALSE(cold);
  q.setHasBackends(false);
  EXPECT_EQ(q.park(w, 1, {}, &cold), HoldQueue::Admit::kParked);
  auto w2 = std::make_shared<HoldQueue::Waiter>(nullptr);
  EXPECT_EQ(q.park(w2, 1, {}, &cold), HoldQueue::Admit::kFull);
  EXPECT_EQ(q.queued(), 1);
}

TEST(HoldQueueTest, AWaiterThatTimesOutLeavesAndIsNotReleasedLater) {
  HoldQueue q;
  auto ps = parkMany(q, 2, {});
  EXPECT_FALSE(q.leave(ps[0]->waiter));  // its timer expired first
  EXPECT_EQ(q.queued(), 1);
  q.setHasBackends(true);
  EXPECT_EQ(ps[0]->woken, 0);
  EXPECT_EQ(ps[1]->woken, 1);
  EXPECT_TRUE(q.leave(ps[1]->waiter));
}

TEST(HoldQueueTest, AColdStartIsAskedForByTheFirstWaiterAndAgainAtMostOnceASecond) {
  HoldQueue q;
  const HoldQueue::TimePoint t0 = HoldQueue::TimePoint{} + 100s;
  std::vector<bool> asked;
  std::vector<std::shared_ptr<HoldQueue::Waiter>> keep;
  for (auto at : {t0, t0 + 10ms, t0 + 900ms, t0 + 1100ms, t0 + 1200ms}) {
    keep.push_back(std::make_shared<HoldQueue::Waiter>(nullptr));
    bool cold = false;
    ASSERT_EQ(q.park(keep.back(), 100, at, &cold), HoldQueue::Admit::kParked);
    asked.push_back(cold);
  }
  EXPECT_EQ(asked, (std::vector<bool>{true, false, false, true, false}));
}

TEST(HoldQueueTest, LosingTheInstanceAgainStopsTheRamp) {
  HoldQueue q;
  auto ps = parkMany(q, 12, {});
  q.setHasBackends(true);
  EXPECT_EQ(wokenCount(ps), 8);
  q.setHasBackends(false);
  q.releaseNext();  // a served waiter, but no instance now: nothing more goes
  EXPECT_EQ(wokenCount(ps), 8);
  q.clear();
  EXPECT_EQ(q.queued(), 0);
}

TEST(HoldQueueTest, AbandonWakesEveryWaiterUnreleased) {
  HoldQueue q;
  auto ps = parkMany(q, 3, {});
  q.abandon();
  EXPECT_EQ(wokenCount(ps), 3);
  EXPECT_EQ(q.queued(), 0);
  for (const auto& p : ps) EXPECT_FALSE(q.leave(p->waiter));
}

}  // namespace
}  // namespace baton
