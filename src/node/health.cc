#include "node/health.h"

#include <fmt/format.h>

namespace baton::node {

void HealthMachine::reset(TimePoint now) {
  enter(Phase::kStarting, now);
  message_.clear();
}

void HealthMachine::resetHealthy(TimePoint now) {
  enter(Phase::kHealthy, now);
  message_.clear();
}

void HealthMachine::enter(Phase phase, TimePoint now) {
  phase_ = phase;
  since_ = now;
  successes_ = 0;
  failures_ = 0;
  restart_requested_ = false;
}

HealthEvent HealthMachine::onProbe(bool ok, const std::string &reason, TimePoint now) {
  switch (phase_) {
    case Phase::kExited:
      return HealthEvent::kNone;  // a late result for a task that is gone
    case Phase::kStarting:
      if (!ok) {
        successes_ = 0;
        message_ = "health check failing: " + reason;
        return HealthEvent::kNone;
      }
      if (++successes_ >= options_.successes_to_healthy) {
        enter(Phase::kHealthy, now);
        message_.clear();
        return HealthEvent::kBecameHealthy;
      }
      return HealthEvent::kNone;
    case Phase::kHealthy:
      if (ok) {
        failures_ = 0;
        return HealthEvent::kNone;
      }
      if (++failures_ >= options_.failures_to_unhealthy) {
        int failures = failures_;
        enter(Phase::kUnhealthy, now);
        message_ = fmt::format("{} consecutive health checks failed: {}", failures, reason);
        return HealthEvent::kBecameUnhealthy;
      }
      return HealthEvent::kNone;
    case Phase::kUnhealthy:
      if (!ok) {
        successes_ = 0;
        message_ = "health check failing: " + reason;
        return HealthEvent::kNone;
      }
      if (++successes_ >= options_.successes_to_recover) {
        enter(Phase::kHealthy, now);
        message_.clear();
        return HealthEvent::kBecameHealthy;
      }
      return HealthEvent::kNone;
  }
  return HealthEvent::kNone;
}

HealthEvent HealthMachine::onExit(int exit_code, TimePoint now) {
  if (phase_ == Phase::kExited) return HealthEvent::kNone;
  enter(Phase::kExited, now);
  message_ = fmt::format("exited with code {}", exit_code);
  return HealthEvent::kExited;
}

HealthEvent HealthMachine::tick(TimePoint now) {
  if (phase_ != Phase::kUnhealthy || restart_requested_) return HealthEvent::kNone;
  if (now - since_ < options_.unhealthy_restart_after) return HealthEvent::kNone;
  restart_requested_ = true;
  return HealthEvent::kRestart;
}

model::InstanceState HealthMachine::state() const {
  switch (phase_) {
    case Phase::kStarting:
      return model::InstanceState::kStarting;
    case Phase::kHealthy:
      return model::InstanceState::kHealthy;
    case Phase::kUnhealthy:
    case Phase::kExited:
      return model::InstanceState::kUnhealthy;
  }
  return model::InstanceState::kUnhealthy;
}

}  // namespace baton::node
