#include "cli/agent_wiring.h"

#include <algorithm>

namespace baton::cli {

gateway::AuthDecision GatewayAuthorizer::authorize(std::string_view authorization_header,
                                                   const model::Route& route) {
  auth::AuthResult r = auth_->check(authorization_header, route, clock_.now());
  gateway::AuthDecision d;
  if (r.allowed()) {
    d.add_headers = std::move(r.headers_to_add);
  } else {
    d.status = r.status;
    d.www_authenticate = std::move(r.www_authenticate);
  }
  return d;
}

std::map<std::string, controller::ServiceLoad> GatewayLoad::sample() {
  SteadyPoint now = clock_.steadyNow();
  double dt_us = last_at_ ? std::chrono::duration<double, std::micro>(now - *last_at_).count() : 0;
  last_at_ = now;
  std::map<std::string, controller::ServiceLoad> out;
  for (const gateway::ServiceStats& s : gw_.stats()) {
    std::string id = s.app + "/" + s.service;
    Last& last = last_[id];
    controller::ServiceLoad load;
    load.arrivals = std::max<int64_t>(0, s.arrivals - last.arrivals);
    load.parked = static_cast<int>(s.queued);
    load.queued = static_cast<double>(s.queued);
    // The time-average of concurrency over the interval is the time requests spent in flight
    // divided by the interval (completed requests); requests still in flight count at least as
    // the gauge says now.
    double completed = dt_us > 0 ? static_cast<double>(s.latency_sum_us - last.latency_sum_us) / dt_us
                                  : 0;
    load.concurrency = std::max(completed, static_cast<double>(s.in_flight));
    last.arrivals = s.arrivals;
    last.latency_sum_us = s.latency_sum_us;
    out[id] = load;
  }
  if (mesh_ != nullptr) {
    for (const auto& [id, d] : mesh_->demand()) {
      int64_t& last = mesh_arrivals_[id];
      controller::ServiceLoad& load = out[id];
      load.arrivals += std::max<int64_t>(0, d.arrivals - last);
      load.parked += static_cast<int>(d.held);
      load.queued += static_cast<double>(d.held);
      load.concurrency += static_cast<double>(d.open + d.held);
      last = d.arrivals;
    }
  }
  return out;
}

}  // namespace baton::cli
