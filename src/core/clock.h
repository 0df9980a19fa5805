// The injected clock (STYLE.md; Envoy TimeSource). Decisions take `now` as an argument; shells
// get it from a Clock. Wall time is used throughout: instants are stored and shown to users, and
// schedules are calendar-based. Code that measures elapsed time for timeouts uses steadyNow().
#pragma once

#include <chrono>

namespace baton {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;
using SteadyPoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  virtual SteadyPoint steadyNow() const = 0;
};

// The real clock. Thread-safe.
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
  SteadyPoint steadyNow() const override { return std::chrono::steady_clock::now(); }
  static SystemClock& instance();
};

// Milliseconds since the Unix epoch, for JSON and the store.
inline int64_t toUnixMillis(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint fromUnixMillis(int64_t ms) { return TimePoint(Duration(ms)); }

}  // namespace baton
