#include "core/hold_queue.h"

#include <algorithm>

namespace baton {

HoldQueue::Admit HoldQueue::park(const std::shared_ptr<Waiter>& w, size_t limit, TimePoint now,
                                 bool* call_cold) {
  *call_cold = false;
  std::lock_guard lock(mu_);
  if (has_backends_) return Admit::kHasBackends;
  if (waiters_.size() >= limit) return Admit::kFull;
  waiters_.push_back(w);
  queued_.store(static_cast<int64_t>(waiters_.size()), std::memory_order_relaxed);
  if (waiters_.size() == 1 || now - last_cold_call_ > kColdCallEvery) {
    last_cold_call_ = now;
    *call_cold = true;
  }
  return Admit::kParked;
}

bool HoldQueue::leave(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  if (!w->released) {
    auto it = std::find(waiters_.begin(), waiters_.end(), w);
    if (it != waiters_.end()) waiters_.erase(it);
  }
  queued_.store(static_cast<int64_t>(waiters_.size()), std::memory_order_relaxed);
  return w->released;
}

void HoldQueue::releaseNext() {
  std::lock_guard lock(mu_);
  if (has_backends_) releaseLocked(kReleaseFanout);
}

void HoldQueue::clear() {
  std::lock_guard lock(mu_);
  waiters_.clear();
  queued_.store(0, std::memory_order_relaxed);
}

void HoldQueue::abandon() {
  std::lock_guard lock(mu_);
  for (const auto& w : waiters_) {
    if (w->wake) w->wake();
  }
  waiters_.clear();
  queued_.store(0, std::memory_order_relaxed);
}

void HoldQueue::releaseLocked(size_t n) {
  while (n-- > 0 && !waiters_.empty()) {
    std::shared_ptr<Waiter> w = std::move(waiters_.front());
    waiters_.pop_front();
    w->released = true;
    if (w->wake) w->wake();
  }
  queued_.store(static_cast<int64_t>(waiters_.size()), std::memory_order_relaxed);
}

}  // namespace baton
