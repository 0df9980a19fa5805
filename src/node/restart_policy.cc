#include "node/restart_policy.h"

#include <fmt/format.h>

namespace baton::node {

void RestartPolicy::onStart(TimePoint now) {
  started_at_ = now;
  healthy_since_.reset();
}

void RestartPolicy::observe(bool healthy, TimePoint now) {
  if (!healthy) {
    healthy_since_.reset();
    return;
  }
  started_at_.reset();
  crashes_since_healthy_ = 0;
  if (!healthy_since_) healthy_since_ = now;
  if (now - *healthy_since_ >= options_.reset_after_healthy) backoff_level_ = 0;
}

RestartDecision RestartPolicy::onCrash(TimePoint now) {
  if (healthy_since_ && now - *healthy_since_ >= options_.reset_after_healthy) backoff_level_ = 0;
  healthy_since_.reset();
  started_at_.reset();
  ++crashes_since_healthy_;
  if (crashes_since_healthy_ >= options_.max_attempts) {
    return {true, Duration(0),
            fmt::format("crashed {} times without becoming healthy", crashes_since_healthy_)};
  }
  Duration delay = options_.initial_backoff;
  for (int i = 0; i < backoff_level_ && delay < options_.max_backoff; ++i) delay *= 2;
  if (delay > options_.max_backoff) delay = options_.max_backoff;
  ++backoff_level_;
  return {false, delay, {}};
}

bool RestartPolicy::startupExpired(TimePoint now) const {
  return started_at_ && now - *started_at_ >= options_.startup_deadline;
}

}  // namespace baton::node
