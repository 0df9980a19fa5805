// The gateway's decisions about one request, without sockets: from a parsed request head to
// "answer this error" or "forward this head to this route's service". The session coroutine in
// gateway.cc performs what these functions decide (read, park, connect, write); everything here
// is tested and fuzzed alone (exchange_test.cc, http1_fuzz.cc).
//
//   http1::RequestHead --planRequest()--> RequestPlan {error | route, normalized target, verdict}
//                      --buildUpstreamHead()--> the bytes the backend receives
//
// The order of the checks is the contract (docs/security.md):
//  1. framing (the parser's verdict): 400 / 413 / 431, the connection is closed;
//  2. method and path: CONNECT and non-normalizable paths are 400;
//  3. headers the client may not send are marked dropped: identity headers the gateway sets from
//     verified claims and anything named X-Baton-*, compared case-insensitively with `_` read
//     as `-` (a CGI-style backend maps both to HTTP_X_USER); the forwarding headers
//     (X-Forwarded-*, Forwarded, X-Real-IP), which the gateway sets itself; any header whose
//     name has a `_` and reads as a hop-by-hop or framing header;
//  4. route on the normalized path (404);
//  5. identity (401/403) for non-public routes; the credentials (Authorization) are consumed
//     and not forwarded.
// A request refused in 1-5 never counts toward a service's load.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/authorizer.h"
#include "gateway/http1.h"
#include "gateway/route_table.h"

namespace baton::gateway {

struct ForwardPolicy {
  // Lower-case names of the headers the gateway sets from verified claims
  // (Authorizer::strippedHeaders()); removed from every request.
  std::vector<std::string> identity_headers;
  uint64_t max_body_bytes = 0;  // 0 = unlimited
};

struct RequestPlan {
  int status = 0;  // != 0: answer with this status and `message`, do not forward
  std::string message;
  std::string www_authenticate;  // with 401/403
  bool close = false;            // close the client connection after the answer
  int route = -1;                // index into the RouteTable
  std::string target;            // normalized target, as routed
  std::string upstream_target;   // what the backend receives (strip_prefix applied)
  AuthDecision auth;             // add_headers: the verified claims to forward
};

// Steps 1-3 (no table needed): the framing verdict, the method and path, and the header filter
// (marks fields of `req` dropped). Fills plan->target. Returns false when plan->status is set.
bool checkRequest(http1::RequestHead& req, http1::Error parse_error, const ForwardPolicy& policy,
                  RequestPlan* plan);

// Steps 4-5 on a checked request: route on plan->target, then identity. `authorizer` may be
// null (non-public routes then answer 401). Returns false when plan->status is set.
bool routeRequest(http1::RequestHead& req, const RouteTable& table, Authorizer* authorizer,
                  RequestPlan* plan);

// Where the request came from, for the forwarding headers.
struct ClientInfo {
  std::string_view ip;
  std::string_view proto;  // "http" or "https"
};

// The upstream request head: request line with plan.upstream_target and HTTP/1.1, the client's
// fields that are not dropped (verbatim), then X-Forwarded-For/-Proto/-Host, the verified claims,
// and the WebSocket upgrade headers when the client asked for one.
void buildUpstreamHead(const http1::RequestHead& req, const RequestPlan& plan,
                       const ClientInfo& client, std::string* out);

// The status for a framing error of a request (400, 413 or 431).
int statusForRequestError(http1::Error e);

// Whether `name` (as sent) is `lower_name` when read case-insensitively with `_` as `-`.
bool sameHeaderName(std::string_view name, std::string_view lower_name);

}  // namespace baton::gateway
