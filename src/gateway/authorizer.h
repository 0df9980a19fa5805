// The gateway's identity hook. The gateway does not know how identity is checked (src/auth
// does); it asks an Authorizer for every request on a route whose auth is not "public".
//
// Contract:
//  - authorize() is called on a gateway I/O thread for every such request, concurrently from
//    several threads: it must be thread-safe and must not block (no network I/O; a JWKS refetch
//    happens in the background).
//  - status 0 allows the request; add_headers are then appended to the upstream request (the
//    verified claims). Any other status (401, 403) is returned to the client with
//    `WWW-Authenticate: <www_authenticate>` when that is not empty.
//  - strippedHeaders() (lower-case names) are removed from EVERY incoming request, public routes
//    included, so a client can never forge a claim header. Called once at gateway start.
//  - With no Authorizer, a non-public route answers 401.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/app.h"

namespace baton::gateway {

struct AuthDecision {
  int status = 0;  // 0 = allow
  std::string www_authenticate;
  std::vector<std::pair<std::string, std::string>> add_headers;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // `authorization_header`: the request's Authorization value ("" when absent).
  virtual AuthDecision authorize(std::string_view authorization_header,
                                 const model::Route& route) = 0;
  virtual const std::vector<std::string>& strippedHeaders() const = 0;
};

}  // namespace baton::gateway
