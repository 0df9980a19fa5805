// EventBus: a small in-process fan-out of human-readable events (the controller publishes
// "scaled shop/web 1 -> 3", "rollout of shop/web v4 complete", ...); `GET /v1/events` streams
// them next to the store's changes.
//
// Thread safety: every method may be called from any thread. publish() never blocks on a
// subscriber: each subscription has a bounded queue, and a subscriber whose queue is full is
// dropped (dropped() becomes true, it receives nothing more) so a slow reader cannot hold up
// the publisher or grow memory without bound.
// Ownership: the bus must outlive its subscriptions; destroying a Subscription unsubscribes it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"

namespace baton::api {

struct BusEvent {
  uint64_t seq = 0;  // 1, 2, ... per bus
  std::string kind;  // "scale", "rollout", "placement", ...
  std::string message;
  TimePoint at{};
};

class EventBus {
 public:
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    // Everything queued since the last call, oldest first.
    std::vector<BusEvent> take();
    // True once the queue overflowed; the subscription then receives nothing more.
    bool dropped() const;

   private:
    friend class EventBus;
    Subscription(EventBus* bus, size_t capacity, std::function<void()> wake);
    EventBus* bus_;
    size_t capacity_;
    std::function<void()> wake_;  // called after an event is queued (or on drop); must not block
    mutable std::mutex mu_;
    std::vector<BusEvent> queue_;
    bool dropped_ = false;
  };

  explicit EventBus(Clock& clock);
  ~EventBus();
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  void publish(std::string kind, std::string message);
  // `wake` is called (from the publisher's thread) whenever take() has something new.
  std::unique_ptr<Subscription> subscribe(size_t capacity = 1024, std::function<void()> wake = {});
  size_t subscriberCount() const;

 private:
  void unsubscribe(Subscription* sub);

  Clock& clock_;
  mutable std::mutex mu_;
  uint64_t seq_ = 0;
  std::vector<Subscription*> subs_;
};

}  // namespace baton::api
