// The API's request handlers (DESIGN.md §1) as plain functions of (store, clock, request):
// no sockets, no Beast. ApiServer (api_server.h) parses HTTP, calls Handlers::handle() and
// writes the ApiResponse; tests call handle() directly against a real store.
//
// Thread safety: Handlers is safe to call from several threads at once (the store is; the
// request counters are atomic).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/routes.h"
#include "core/clock.h"
#include "core/result.h"
#include "state/store.h"

namespace baton::secrets {
class Seal;
}  // namespace baton::secrets

namespace baton::auth {
class ApiKeys;
}  // namespace baton::auth

namespace baton::api {

class EventBus;

// A body produced piecemeal (GET /v1/events, logs with follow=1), sent with chunked encoding.
// Thread safety: poll() and setWakeup() are called from the server's session; the source may
// call the wake function from any thread.
class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // Non-blocking. The next piece of the body; "" when nothing is ready now; nullopt at the end.
  virtual std::optional<std::string> poll() = 0;
  // `wake` (which never blocks) is to be called whenever poll() may have something new.
  // Sources that cannot tell (files) may ignore it: the server also polls every 250 ms.
  // setWakeup({}) removes it; after it returns the old function is not called again.
  virtual void setWakeup(std::function<void()> wake) {}
};

// What `GET /v1/apps/{app}/services/{svc}/logs` asks of the log reader.
struct LogRequest {
  std::string app;
  std::string service;
  std::string stream = "stdout";  // "stdout" or "stderr"
  bool follow = false;            // keep the source open and deliver new lines as they come
  std::optional<int> tail;        // only the last N lines of what exists now
};
// Returns kNotFound when there are no logs. Without follow the source ends at the end of file.
using LogReader = std::function<Result<std::unique_ptr<ChunkSource>>(const LogRequest&)>;

// What the handlers use. The store and clock are referenced, not owned, and must outlive the
// handlers (and the server).
struct ApiDeps {
  state::Store& store;
  Clock& clock;
  EventBus* events = nullptr;                 // controller events for /v1/events; may be null
  LogReader logs = {};                        // may be empty: logs answer 503
  std::function<std::string()> metrics = {};  // more Prometheus text for /metrics; may be empty
  // The gateway's API keys, so that create and revoke reach its cache at once; null: the
  // handlers use their own over `store`.
  auth::ApiKeys* api_keys = nullptr;
  // The secrets' seal and, once unsealed, their store (docs/secrets.md); null: /v1/secrets and
  // /v1/operator answer 503. While sealed /v1/secrets answers 503 saying how many unseal shares
  // are still needed.
  secrets::Seal* seal = nullptr;
};

struct ApiOptions {
  std::string listen = "127.0.0.1:4646";  // host:port; port 0 picks a free one
  // Dev mode: no token needed, but only loopback clients that name a loopback Host, and no
  // browser request from another origin (a web page cannot drive the API through DNS
  // rebinding or a cross-site POST).
  bool dev = false;
  // Outside dev mode every call but /v1/health needs `Authorization: Bearer <token>`;
  // check_token(token) says what the token may do (kNone: not a token). Without a checker
  // every such call is refused.
  std::function<Access(std::string_view token)> check_token = {};
  // Set: this is the listener for isolated instances granted `api = "read"` (docs/mesh.md "The
  // API for instances"). Every request but /v1/health needs a token that this maps to an app,
  // and may only read that app: GET /v1/apps/{its app} (env values hidden), /v1/services and
  // /v1/instances (narrowed to its app). `dev` and `check_token` do not apply.
  std::function<std::optional<std::string>(std::string_view token)> check_app_token = {};
  // The agent's identity providers: a manifest whose route names another is refused at
  // `baton up` (unset: names are checked for their form only).
  std::optional<std::vector<std::string>> identity_providers = {};
  size_t max_body_bytes = 1 << 20;  // larger bodies: 413
  size_t max_header_bytes = 16 << 10;
  Duration read_timeout = Duration(30'000);  // for a whole request, and idle keep-alive
  Duration write_timeout = Duration(30'000);
  Duration shutdown_grace = Duration(5'000);
  int threads = 2;
};

struct ApiRequest {
  std::string method;                        // "GET", "PUT", ...
  std::string path;                          // without the query string
  std::map<std::string, std::string> query;  // decoded
  std::string authorization;                 // the Authorization header, verbatim
  std::string body;
  // Where it came from (the server fills these in; the defaults are a local client's).
  bool peer_loopback = true;  // the TCP peer is a loopback address
  std::string host;           // the Host header
  std::string origin;         // the Origin header (browsers send it)
  // Splits "/v1/instances?app=shop" into path and query.
  static ApiRequest make(std::string method, std::string_view target, std::string body = {},
                         std::string authorization = {});
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;                     // the whole body unless `stream` is set
  std::unique_ptr<ChunkSource> stream;  // chunked body; `body` is then ignored
};

// {"error": message} with `status`.
ApiResponse errorResponse(int status, std::string_view message);

class Handlers {
 public:
  Handlers(ApiDeps deps, ApiOptions options);
  ~Handlers();

  // Routes, authorizes and runs one request. Never throws; every error is a JSON response.
  ApiResponse handle(const ApiRequest& request);

  // Counts a response by status code for baton_api_requests_total (handle() does it for its
  // own responses; the server calls it for the ones it makes itself: 400, 413, ...).
  void countResponse(int status);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton::api
