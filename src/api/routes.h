// Routing of the agent's HTTP API (DESIGN.md §1): method + path -> handler id + path
// parameters. Pure, no I/O; the server (api_server.cc) calls it for every request.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "model/names.h"

namespace baton::api {

enum class RouteId {
  kNotFound,          // no route has this path
  kMethodNotAllowed,  // the path exists, the method does not
  kHealth,            // GET  /v1/health
  kMetrics,           // GET  /metrics
  kListApps,          // GET  /v1/apps
  kGetApp,            // GET  /v1/apps/{app}
  kPutApp,            // PUT  /v1/apps/{app}
  kDeleteApp,         // DELETE /v1/apps/{app}
  kListServices,      // GET  /v1/services
  kListInstances,     // GET  /v1/instances
  kListNodes,         // GET  /v1/nodes
  kSetScale,          // POST /v1/apps/{app}/services/{svc}/scale
  kClearScale,        // DELETE /v1/apps/{app}/services/{svc}/scale
  kLogs,              // GET  /v1/apps/{app}/services/{svc}/logs
  kEvents,            // GET  /v1/events
  kCreateApiKey,      // POST /v1/apikeys
  kListApiKeys,       // GET  /v1/apikeys (key names are not public)
  kDeleteApiKey,      // DELETE /v1/apikeys/{id}
  kListIntentions,    // GET  /v1/intentions
  kPutIntention,      // PUT  /v1/intentions {"source", "destination", "action"}
  kDeleteIntention,   // DELETE /v1/intentions?source=S&destination=D
  kCheckIntention,    // GET  /v1/intentions/check?source=S&destination=D (`baton why`)
  kListSecrets,       // GET  /v1/secrets?prefix=P (paths only)
  kGetSecret,         // GET  /v1/secrets/data/{path}?version=N (values)
  kPutSecret,         // PUT  /v1/secrets/data/{path} {"data": {...}, "cas": N}
  kDeleteSecret,      // DELETE /v1/secrets/data/{path}?versions=1,2 (soft)
  kUndeleteSecret,    // POST /v1/secrets/undelete/{path} {"versions": [...]}
  kDestroySecret,     // POST /v1/secrets/destroy/{path} {"versions": [...]}
  kGetSecretMeta,     // GET  /v1/secrets/metadata/{path}
  kPutSecretMeta,     // PUT  /v1/secrets/metadata/{path} {"max_versions": N}
  kDeleteSecretMeta,  // DELETE /v1/secrets/metadata/{path}: every version, for good
  kListAudit,         // GET  /v1/audit?limit=N
  kOperatorInit,      // POST /v1/operator/init {"shares": N, "threshold": K} (seal = "shares")
  kOperatorUnseal,    // POST /v1/operator/unseal {"share": "bs1...."}
  kSealStatus,        // GET  /v1/operator/seal
  kCreateToken,       // POST /v1/tokens {"owner", "ttl", "rules"}: the token text, once
  kListTokens,        // GET  /v1/tokens (never a secret or a hash)
  kRevokeToken,       // DELETE /v1/tokens/{accessor}
  kTokenSelf,         // GET  /v1/tokens/self: the caller's own token
};

const char* routeName(RouteId id);

// The agent's two built-in tokens (docs/tokens.md): kWrite is agent-token (may do everything),
// kRead agent-read-token (acl::readOnlyRules()); kNone: neither. What each route needs is
// acl::needFor() (api/acl.h).
enum class Access { kNone, kRead, kWrite };

struct RouteMatch {
  RouteId id = RouteId::kNotFound;
  std::map<std::string, std::string> params;  // "app", "svc", "id", "path", "accessor" (decoded)
  bool is_write = false;                      // PUT, POST or DELETE on an existing route
};

// `path` excludes the query string. Trailing slashes are not significant ("/v1/apps/" ==
// "/v1/apps"). HEAD is routed as GET.
RouteMatch matchRoute(std::string_view method, std::string_view path);

// Splits "a=1&b=x%20y" into a map (last one wins); '+' is a space. Malformed escapes are kept
// verbatim.
std::map<std::string, std::string> parseQuery(std::string_view query);
std::string percentDecode(std::string_view s);

// A Host header that names this machine's loopback: "localhost", "127.0.0.1" (any 127/8 address)
// or "[::1]", each with an optional ":port". Empty (HTTP/1.0 without Host) counts as loopback.
bool isLoopbackHost(std::string_view host);
// An Origin header ("http://localhost:3000") whose host is loopback; "null" and others are not.
bool isLoopbackOrigin(std::string_view origin);

// A valid app or service name (model/names.h).
using model::isValidName;

}  // namespace baton::api
