// Gateway: the front door (DESIGN.md §2 "Gateway"; README.md in this directory). An HTTP/1.1
// reverse proxy on Boost.Asio/Beast with one io_context per thread, TLS (1.2/1.3, SNI), routing
// by RouteTable, power-of-two-choices load balancing with passive ejection, WebSocket
// pass-through and hold-at-zero queues. No Asio/Beast/OpenSSL in this header (pimpl).
//
// Lifecycle: construct, setTable() (any time, any thread), start(), ... , stop(). stop() is
// graceful: listeners close at once, idle keep-alive connections are closed, requests in flight
// get up to `stop_grace` to finish; then every connection is closed and the threads joined. The
// destructor calls stop().
//
// Thread safety: every public method may be called from any thread. Hooks run on gateway I/O
// threads and must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "gateway/authorizer.h"
#include "gateway/route_table.h"

namespace baton::gateway {

struct CertPaths {
  std::string cert;  // PEM chain, leaf first
  std::string key;   // PEM private key
};

struct GatewayLimits {
  size_t max_header_bytes = 16 * 1024;         // request head larger -> 431
  uint64_t max_body_bytes = 0;                 // 0 = unlimited; Content-Length above -> 413
  Duration header_timeout = Duration(10'000);  // head not complete in time -> 408 + close
  Duration idle_timeout = Duration(60'000);    // keep-alive idle, body and WebSocket idle
  Duration upstream_connect_timeout = Duration(2'000);  // one connect attempt
  // Failed connects are tried again (backoff 25 ms .. 1 s, another backend first) until this
  // (or upstream_response_timeout, when shorter) has passed; then 502.
  Duration upstream_connect_budget = Duration(10'000);
  Duration upstream_response_timeout = Duration(30'000);  // no response head in time -> 504
  // Idle upstream connections are not reused after this (nor after the backend's Keep-Alive:
  // timeout less a second): below the common servers' own idle timeouts (Node 5 s, uvicorn
  // 5 s), so the gateway lets a connection go before the backend closes it.
  Duration upstream_idle_timeout = Duration(4'000);
  size_t upstream_pool_size = 64;         // idle upstream connections per backend/thread
  // Client connections at once (0 = no limit). Past it the listeners stop accepting until one
  // closes: new connections wait in the kernel's backlog, and the agent's own descriptors (API,
  // store, health checks, supervisors) are never starved. Each uses up to two descriptors.
  int64_t max_connections = 0;
  Duration eject_time = Duration(5'000);  // backend ejected after a connect failure
};

struct GatewayOptions {
  std::string http_listen = "0.0.0.0:8080";  // "host:port"; port 0 = any; empty = off
  std::string https_listen;                  // empty = off
  std::vector<CertPaths> certs;  // SNI picks by the certificates' names; first = default
  std::string dev_cert_dir;      // no certs: a self-signed EC P-256 cert for
                                 // localhost/127.0.0.1, kept here (empty: memory)
  Duration cert_check_interval = Duration(5'000);  // reload when a cert/key file's mtime changes
  int threads = 0;                                 // 0 = hardware_concurrency
  GatewayLimits limits;
  size_t hold_queue = 1000;                  // parked requests per service at zero
  Duration hold_timeout = Duration(30'000);  // -> 503 + Retry-After
  Duration stop_grace = Duration(5'000);
  bool access_log = false;  // one JSON line per request (spdlog, "gateway")
  // The source address of connections to instances in networks of their own, so that they can
  // tell the gateway from a service (docs/mesh.md "Who is calling"); "" = the kernel's choice.
  std::string upstream_source;
};

struct GatewayHooks {
  // A request arrived for a routed service with no healthy backend (called when the service's
  // hold queue becomes non-empty, and at most once a second while it stays so).
  std::function<void(const std::string& app, const std::string& service)> on_cold;
  // Whether the service's bounds in force say max = 0 (asked only for a service with no
  // backend): its requests are answered 503 at once instead of being held.
  std::function<bool(const std::string& app, const std::string& service)> scaled_off;
  std::shared_ptr<Authorizer> authorizer;  // null: non-public routes answer 401
};

// A snapshot of one service's counters (monotonic unless noted).
struct ServiceStats {
  std::string app;
  std::string service;
  int64_t in_flight = 0;  // gauge: requests being proxied or parked
  int64_t queued = 0;     // gauge: parked at zero
  int64_t arrivals = 0;   // requests routed to this service
  int64_t responses_2xx = 0;
  int64_t responses_3xx = 0;
  int64_t responses_4xx = 0;
  int64_t responses_5xx = 0;
  int64_t latency_sum_us = 0;  // sum over completed requests, arrival to last byte
  int64_t completed = 0;
  int64_t held = 0;                    // requests that were parked
  int64_t hold_rejected = 0;           // 503: queue full or timed out
  int64_t cold_starts = 0;             // times a parked queue was released by a new backend
  int64_t cold_overhead_last_us = -1;  // ready (table with a backend) -> first byte upstream
  int64_t cold_overhead_max_us = -1;
};

class Gateway {
 public:
  Gateway(GatewayOptions options, Clock& clock, GatewayHooks hooks = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds the listeners and starts the threads. Errors: kInvalidArgument (bad listen address or
  // certificate), kIo (bind failed).
  Status start();
  void stop();
  // Publishes a routing table; requests in flight keep the table they started with. Parked
  // requests of services that now have backends are released at once.
  void setTable(std::shared_ptr<const RouteTable> table);
  int httpPort() const;  // the bound port (after start), 0 when off
  int httpsPort() const;
  std::vector<ServiceStats> stats() const;
  // Prometheus text exposition of stats() plus gateway-wide counters.
  std::string prometheus() const;
  // Rereads every certificate and key; on error the old ones stay in use.
  Status reloadCertificates();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// max_connections for a process whose file-descriptor limit is `fd_limit`: `configured` when
// given (an error when it cannot fit), else what fits after a reserve for the agent's own
// descriptors (a quarter of the limit, 64 to 1024): two per connection (client + upstream).
Result<int64_t> connectionLimit(uint64_t fd_limit, int64_t configured);

}  // namespace baton::gateway
