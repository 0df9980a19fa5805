#include "gateway/hold_queue.h"

#include <algorithm>

namespace baton::gateway::detail {

HoldQueue::Admit HoldQueue::park(const std::shared_ptr<Waiter>& w, size_t limit,
                                 bool* call_cold) {
  *call_cold = false;
  std::lock_guard lock(mu_);
  if (has_backends_) return Admit::kHasBackends;
  if (waiters_.size() >= limit) return Admit::kFull;
  waiters_.push_back(w);
  queued_.store(static_cast<int64_t>(waiters_.size()), std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  if (waiters_.size() == 1 || now - last_cold_call_ > std::chrono::seconds(1)) {
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

void HoldQueue::releaseLocked(size_t n) {
  while (n-- > 0 && !waiters_.empty()) {
    std::shared_ptr<Waiter> w = std::move(waiters_.front());
    waiters_.pop_front();
    w->released = true;
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  }
  queued_.store(static_cast<int64_t>(waiters_.size()), std::memory_order_relaxed);
}

}  // namespace baton::gateway::detail
