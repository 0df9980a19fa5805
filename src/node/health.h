// The health state machine of one instance (pure; no I/O, no clock: `now` is an
// argument).
//
// Inputs: probe results (ok, or failed with a reason), the task's exit, and
// time. Output: the instance's observed state and, once, a request to restart
// it.
//
//   reset() ------> starting --(successes_to_healthy ok)--> healthy
//   healthy --(failures_to_unhealthy consecutive fails)--> unhealthy
//   unhealthy --(successes_to_recover ok)--> healthy
//   unhealthy for >= unhealthy_restart_after --> tick() returns kRestart (once
//   per episode) exit (any state) --> exited (reported as unhealthy; the
//   restart policy decides what next)
//
// Failures while starting do not make the instance unhealthy: the restart
// policy's startup deadline covers an instance that never becomes healthy.
//
// Thread safety: a plain value; not synchronized.
#pragma once

#include <optional>
#include <string>

#include "core/clock.h"
#include "model/records.h"

namespace baton::node {

struct HealthOptions {
  int successes_to_healthy = 1;
  int failures_to_unhealthy = 3;
  int successes_to_recover = 1;
  Duration unhealthy_restart_after = Duration(30'000);
  bool operator==(const HealthOptions &) const = default;
};

enum class HealthEvent { kNone, kBecameHealthy, kBecameUnhealthy, kRestart, kExited };

class HealthMachine {
 public:
  explicit HealthMachine(HealthOptions options = {}) : options_(options) {}

  // A (new) task started at `now`: back to starting, counters cleared.
  void reset(TimePoint now);
  // A running task re-adopted after an agent restart that was healthy when the
  // agent last saw it: healthy at once (the next failures count as usual), so
  // adoption does not flap.
  void resetHealthy(TimePoint now);
  // One probe result. Returns the transition it caused, if any.
  HealthEvent onProbe(bool ok, const std::string &reason, TimePoint now);
  // The task ended.
  HealthEvent onExit(int exit_code, TimePoint now);
  // Time passed: kRestart once when unhealthy for longer than the limit.
  HealthEvent tick(TimePoint now);

  // kStarting, kHealthy or kUnhealthy (also after exit).
  model::InstanceState state() const;
  bool healthy() const { return phase_ == Phase::kHealthy; }
  bool exited() const { return phase_ == Phase::kExited; }
  // Why it is in this state ("" when healthy), for humans.
  const std::string &message() const { return message_; }
  TimePoint since() const { return since_; }
  const HealthOptions &options() const { return options_; }

  bool operator==(const HealthMachine &) const = default;

 private:
  enum class Phase { kStarting, kHealthy, kUnhealthy, kExited };
  void enter(Phase phase, TimePoint now);

  HealthOptions options_;
  Phase phase_ = Phase::kStarting;
  int successes_ = 0;
  int failures_ = 0;
  bool restart_requested_ = false;
  TimePoint since_{};
  std::string message_;
};

}  // namespace baton::node
