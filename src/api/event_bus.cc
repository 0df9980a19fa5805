#include "api/event_bus.h"

#include <algorithm>

namespace baton::api {

EventBus::Subscription::Subscription(EventBus* bus, size_t capacity, std::function<void()> wake)
    : bus_(bus), capacity_(capacity == 0 ? 1 : capacity), wake_(std::move(wake)) {}

EventBus::Subscription::~Subscription() { bus_->unsubscribe(this); }

std::vector<BusEvent> EventBus::Subscription::take() {
  std::lock_guard lock(mu_);
  std::vector<BusEvent> out;
  out.swap(queue_);
  return out;
}

bool EventBus::Subscription::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

EventBus::EventBus(Clock& clock) : clock_(clock) {}

EventBus::~EventBus() = default;

void EventBus::publish(std::string kind, std::string message) {
  std::lock_guard lock(mu_);
  BusEvent ev{++seq_, std::move(kind), std::move(message), clock_.now()};
  for (Subscription* sub : subs_) {
    bool notify = false;
    {
      std::lock_guard sub_lock(sub->mu_);
      if (sub->dropped_) continue;
      if (sub->queue_.size() >= sub->capacity_) {
        sub->dropped_ = true;
        sub->queue_.clear();
      } else {
        sub->queue_.push_back(ev);
      }
      notify = true;
    }
    if (notify && sub->wake_) sub->wake_();
  }
}

std::unique_ptr<EventBus::Subscription> EventBus::subscribe(size_t capacity,
                                                            std::function<void()> wake) {
  std::unique_ptr<Subscription> sub(new Subscription(this, capacity, std::move(wake)));
  std::lock_guard lock(mu_);
  subs_.push_back(sub.get());
  return sub;
}

size_t EventBus::subscriberCount() const {
  std::lock_guard lock(mu_);
  return subs_.size();
}

void EventBus::unsubscribe(Subscription* sub) {
  std::lock_guard lock(mu_);
  subs_.erase(std::remove(subs_.begin(), subs_.end(), sub), subs_.end());
}

}  // namespace baton::api
