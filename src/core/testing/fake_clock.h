// A clock that moves only when told to. Thread-safe.
#pragma once

#include <atomic>

#include "core/clock.h"

namespace baton::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = fromUnixMillis(1'700'000'000'000)) : ms_(toUnixMillis(start)) {}
  TimePoint now() const override { return fromUnixMillis(ms_.load()); }
  SteadyPoint steadyNow() const override {
    return SteadyPoint(std::chrono::milliseconds(ms_.load()));
  }
  void advance(Duration d) { ms_ += d.count(); }
  void set(TimePoint t) { ms_ = toUnixMillis(t); }

 private:
  std::atomic<int64_t> ms_;
};

}  // namespace baton::testing
