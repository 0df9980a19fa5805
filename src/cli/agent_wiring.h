// Adapters between modules that do not know each other, used only by agent.cc: the gateway's
// Authorizer over auth::Authenticator, and the autoscaler's LoadSource over the gateway's
// counters.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "auth/provider.h"
#include "controller/autoscaling.h"
#include "gateway/authorizer.h"
#include "gateway/gateway.h"
#include "mesh/proxy.h"

namespace baton::cli {

class GatewayAuthorizer final : public gateway::Authorizer {
 public:
  GatewayAuthorizer(std::unique_ptr<auth::Authenticator> auth, Clock& clock)
      : auth_(std::move(auth)), clock_(clock) {}
  gateway::AuthDecision authorize(std::string_view authorization_header,
                                  const model::Route& route) override;
  const std::vector<std::string>& strippedHeaders() const override {
    return auth_->headersToStrip();
  }

 private:
  std::unique_ptr<auth::Authenticator> auth_;
  Clock& clock_;
};

// Turns the gateway's monotonic counters into per-interval loads, adding what the mesh proxy's
// callers ask of each service (connections open or held count as in flight). Not thread-safe
// by itself: the autoscaling loop calls it from one thread.
class GatewayLoad {
 public:
  GatewayLoad(const gateway::Gateway& gw, Clock& clock) : gw_(gw), clock_(clock) {}
  std::map<std::string, controller::ServiceLoad> sample();
  // The node's mesh proxy (null: none); must outlive this.
  void setMesh(const mesh::MeshProxy* m) { mesh_ = m; }

 private:
  struct Last {
    int64_t arrivals = 0;
    int64_t latency_sum_us = 0;
  };
  const gateway::Gateway& gw_;
  Clock& clock_;
  std::map<std::string, Last> last_;
  std::map<std::string, int64_t> mesh_arrivals_;
  const mesh::MeshProxy* mesh_ = nullptr;
  std::optional<SteadyPoint> last_at_;
};

}  // namespace baton::cli
