#include "api/event_bus.h"

#include <gtest/gtest.h>

#include "core/testing/fake_clock.h"

namespace baton::api {
namespace {

TEST(EventBus, DeliversToEverySubscriberInOrder) {
  testing::FakeClock clock;
  EventBus bus(clock);
  int wakes = 0;
  auto a = bus.subscribe(10, [&] { ++wakes; });
  auto b = bus.subscribe(10);
  bus.publish("scale", "shop/web 1 -> 3");
  bus.publish("rollout", "shop/web v2 complete");
  auto got = a->take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, "scale");
  EXPECT_EQ(got[1].message, "shop/web v2 complete");
  EXPECT_LT(got[0].seq, got[1].seq);
  EXPECT_EQ(got[0].at, clock.now());
  EXPECT_EQ(wakes, 2);
  EXPECT_EQ(b->take().size(), 2u);
  EXPECT_TRUE(a->take().empty());
}

TEST(EventBus, SlowSubscriberIsDropped) {
  testing::FakeClock clock;
  EventBus bus(clock);
  auto slow = bus.subscribe(2);
  auto fast = bus.subscribe(100);
  for (int i = 0; i < 5; ++i) bus.publish("k", std::to_string(i));
  EXPECT_TRUE(slow->dropped());
  EXPECT_TRUE(slow->take().empty());
  EXPECT_FALSE(fast->dropped());
  EXPECT_EQ(fast->take().size(), 5u);
}

TEST(EventBus, DestroyingASubscriptionUnsubscribes) {
  testing::FakeClock clock;
  EventBus bus(clock);
  {
    auto s = bus.subscribe();
    EXPECT_EQ(bus.subscriberCount(), 1u);
  }
  EXPECT_EQ(bus.subscriberCount(), 0u);
  bus.publish("k", "nobody listens");
}

}  // namespace
}  // namespace baton::api
