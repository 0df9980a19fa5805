// When to restart a crashed instance, and when to give up (pure; `now` is an
// argument).
//
//  - Backoff after a crash: initial_backoff, doubled per consecutive crash,
//  capped at
//    max_backoff (1 s, 2 s, 4 s ... 30 s). The doubling resets once the
//    instance has stayed healthy for reset_after_healthy (60 s).
//  - Give up (the instance is `failed`; the controller replaces it or fails the
//  rollout) when
//    it crashes max_attempts times without becoming healthy in between, or when
//    a started task is not healthy within startup_deadline.
//
// Thread safety: a plain value; not synchronized.
#pragma once

#include <optional>
#include <string>

#include "core/clock.h"

namespace baton::node {

struct RestartOptions {
  Duration initial_backoff = Duration(1'000);
  Duration max_backoff = Duration(30'000);
  Duration reset_after_healthy = Duration(60'000);
  int max_attempts = 3;
  Duration startup_deadline = Duration(60'000);
  bool operator==(const RestartOptions &) const = default;
};

struct RestartDecision {
  bool give_up = false;
  Duration delay{0};   // when !give_up: wait this long, then start again
  std::string reason;  // when give_up: why, for humans
};

class RestartPolicy {
 public:
  explicit RestartPolicy(RestartOptions options = {}) : options_(options) {}

  // A task (re)started at `now`: the startup deadline begins.
  void onStart(TimePoint now);
  // The instance's health at `now` (call on every pass and on every
  // transition).
  void observe(bool healthy, TimePoint now);
  // The task ended at `now` (crash, kill, or restart after being unhealthy too
  // long).
  RestartDecision onCrash(TimePoint now);
  // True when the task started by onStart() has not been healthy within the
  // deadline.
  bool startupExpired(TimePoint now) const;

  // Crashes since the instance was last healthy.
  int crashesSinceHealthy() const { return crashes_since_healthy_; }
  // The exponent of the next backoff.
  int backoffLevel() const { return backoff_level_; }
  const RestartOptions &options() const { return options_; }

  bool operator==(const RestartPolicy &) const = default;

 private:
  RestartOptions options_;
  int crashes_since_healthy_ = 0;
  int backoff_level_ = 0;
  std::optional<TimePoint> healthy_since_;
  std::optional<TimePoint> started_at_;  // set while the current task has not been healthy
};

}  // namespace baton::node
