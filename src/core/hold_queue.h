// Hold at zero (DESIGN.md §2): the queue of requests or connections parked for one service while
// it has no instance ready, and the ramp that releases them when it gets one. One component for
// the gateway (parked HTTP requests) and the mesh proxy (held connections to a service address).
// Pure: no sockets or timers; a parked Waiter is woken through its own `wake` function (the I/O
// side cancels the timer its coroutine waits on), and the clock is passed in.
//
// Thread safety: every method may be called from any thread (one mutex); `wake` runs under it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace baton {

class HoldQueue {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Waiter {
    explicit Waiter(std::function<void()> w) : wake(std::move(w)) {}
    std::function<void()> wake;  // called once, under the queue's lock, when released
    bool released = false;       // guarded by the queue's mutex
  };

  // Parked waiters are released in a ramp: a first few when the service gains an instance, then
  // every released one lets two more go once it was served (or gave up), as TCP's slow start.
  // Releasing hundreds at once would overflow a freshly started server's listen backlog
  // (Python's http.server: 5) and queue the connects behind each other.
  static constexpr size_t kFirstRelease = 8;
  static constexpr size_t kReleaseFanout = 2;
  // A cold start is asked for by the first waiter parked, and again by a later one at most this
  // often (the autoscaler may have missed the first).
  static constexpr auto kColdCallEvery = std::chrono::seconds(1);

  enum class Admit { kParked, kHasBackends, kFull };
  // Parks `w` unless the service has an instance or `limit` waiters are parked already.
  // `*call_cold`: the caller should ask for a cold start.
  Admit park(const std::shared_ptr<Waiter>& w, size_t limit, TimePoint now, bool* call_cold);
  // After the waiter's wait ended: true when it was released, false when it gave up (timed out;
  // it has left the queue).
  bool leave(const std::shared_ptr<Waiter>& w);
  // Whether the service has an instance ready. When that releases parked waiters (a cold start
  // ends), `on_release()` runs first, under the queue's lock, so that what it records is seen by
  // the released ones.
  template <class F>
  void setHasBackends(bool has, F&& on_release) {
    std::lock_guard lock(mu_);
    has_backends_ = has;
    if (!has || waiters_.empty()) return;
    on_release();
    releaseLocked(kFirstRelease);
  }
  void setHasBackends(bool has) {
    setHasBackends(has, [] {});
  }
  // A released waiter was served (or gave up): the next ones may go.
  void releaseNext();
  // Forgets every parked waiter without waking it (the owner stopped its event loops).
  void clear();
  // Wakes every parked waiter unreleased (the owner stops): leave() returns false for each.
  void abandon();
  int64_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  void releaseLocked(size_t n);

  mutable std::mutex mu_;
  bool has_backends_ = false;
  std::deque<std::shared_ptr<Waiter>> waiters_;
  TimePoint last_cold_call_{};
  std::atomic<int64_t> queued_{0};
};

// Held by a released waiter until it was served; then (or when it ends early) it releases the
// next ones.
struct ReleaseNext {
  HoldQueue* queue = nullptr;
  void fire() {
    if (queue != nullptr) queue->releaseNext();
    queue = nullptr;
  }
  ~ReleaseNext() { fire(); }
  ReleaseNext() = default;
  ReleaseNext(const ReleaseNext&) = delete;
  ReleaseNext& operator=(const ReleaseNext&) = delete;
};

}  // namespace baton
