// Hold at zero (README.md "Hold at zero"): the queue of requests parked for one service while it
// has no backend, and the ramp that releases them when it gets one. Private to src/gateway
// (Asio timers). The session parks a Waiter and awaits its timer; setTable() tells the queue
// whether the service has backends; a released request reports when the backend answered it so
// that the next ones go (ReleaseNext).
//
// Thread safety: every method may be called from any gateway thread (one mutex); a Waiter's timer
// is cancelled on the waiter's own thread (posted).
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>

#include "gateway/io.h"

namespace baton::gateway::detail {

struct Waiter {
  explicit Waiter(Exec e) : timer(e) {}
  Timer timer;
  bool released = false;  // guarded by HoldQueue's mutex
};

class HoldQueue {
 public:
  // Parked requests are released in a ramp: a first few when the service gains a backend, then
  // every released request lets two more go once the backend answered it (or it gave up), as
  // TCP's slow start. Releasing hundreds at once would overflow a freshly started server's
  // listen backlog (Python's http.server: 5) and queue the connects behind each other.
  static constexpr size_t kFirstRelease = 8;
  static constexpr size_t kReleaseFanout = 2;

  enum class Admit { kParked, kHasBackends, kFull };
  // Parks `w` unless the service has a backend or `limit` requests wait already. `*call_cold`:
  // the caller should ask for a cold start (the first request parked, or a second since).
  Admit park(const std::shared_ptr<Waiter>& w, size_t limit, bool* call_cold);
  // After the waiter's timer completed: true when it was released, false when it timed out (it
  // has left the queue).
  bool leave(const std::shared_ptr<Waiter>& w);
  // The routing table says whether the service has backends. When that releases parked requests
  // (a cold start ends), `on_release()` runs first, under the queue's lock, so that what it
  // records is seen by the released requests.
  template <class F>
  void setHasBackends(bool has, F&& on_release) {
    std::lock_guard lock(mu_);
    has_backends_ = has;
    if (!has || waiters_.empty()) return;
    on_release();
    releaseLocked(kFirstRelease);
  }
  // A released request was answered (or gave up): the next ones may go.
  void releaseNext();
  // Forgets every parked request (the gateway stops).
  void clear();
  int64_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  void releaseLocked(size_t n);

  mutable std::mutex mu_;
  bool has_backends_ = false;
  std::deque<std::shared_ptr<Waiter>> waiters_;
  std::chrono::steady_clock::time_point last_cold_call_{};
  std::atomic<int64_t> queued_{0};
};

// Held by a released request until the backend answered it; then (or when the request ends
// early) it releases the next ones.
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

}  // namespace baton::gateway::detail
