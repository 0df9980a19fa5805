// The gateway's runtime state (private to src/gateway; includes Asio): backends and services as
// the compiled routing table sees them, the per-thread Worker, the per-connection Conn, and
// Gateway::Impl, whose parts live in gateway.cc (lifecycle, table, TLS, statistics), session.cc
// (one client connection) and listener.cc (binding and accepting).
//
// Threads: a Worker and every Conn on it are used on the worker's thread only; BackendState and
// ServiceRuntime are shared by all workers (atomics, HoldQueue's mutex); Impl's table and TLS
// state are guarded by their mutexes.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/ascii.h"
#include "gateway/exchange.h"
#include "gateway/gateway.h"
#include "core/hold_queue.h"
#include "gateway/http1.h"
#include "gateway/io.h"
#include "gateway/tls.h"
#include "gateway/upstream_pool.h"

namespace baton::gateway {
namespace detail {

struct BackendState {
  uint64_t id = 0;
  std::string key;  // "address:port"
  tcp::endpoint endpoint;
  std::atomic<int32_t> outstanding{0};
  std::atomic<int64_t> ejected_until_ns{0};  // steady clock
};

struct ServiceRuntime {
  std::string app, service;
  std::atomic<int64_t> in_flight{0}, arrivals{0}, r2xx{0}, r3xx{0}, r4xx{0}, r5xx{0};
  std::atomic<int64_t> latency_sum_us{0}, completed{0}, held{0}, hold_rejected{0};
  std::atomic<int64_t> cold_starts{0}, cold_last_us{-1}, cold_max_us{-1};
  std::atomic<int64_t> ready_at_ns{0};    // when the table last gave it a backend after parking
  std::atomic<bool> cold_pending{false};  // the next released request measures overhead
  // In the routing table in force. A deleted service's runtime stays (sessions may point at
  // it) but leaves stats() and /metrics once nothing of it is in flight or parked.
  std::atomic<bool> routed{true};
  HoldQueue hold;
};

struct EntryRuntime {
  ServiceRuntime* svc = nullptr;
  std::vector<std::shared_ptr<BackendState>> backends;
};

struct Compiled {
  std::shared_ptr<const RouteTable> table;
  std::vector<EntryRuntime> entries;
};

struct TlsHolder {
  explicit TlsHolder(std::shared_ptr<TlsContexts> c)
      : contexts(std::move(c)), ctx([this] {
          SSL_CTX_up_ref(contexts->defaultContext());
          return contexts->defaultContext();
        }()) {}
  std::shared_ptr<TlsContexts> contexts;
  ssl::context ctx;
};

struct Conn;

struct Worker {
  // Every socket and timer of a worker is used on its own thread only (other threads post), so
  // the reactor's per-descriptor locks are switched off.
  // The data path's sockets live on `reactor`, which outlives everything else here (sockets,
  // and coroutines that io_context's destruction unwinds, close on it); its pending operations
  // go before io_context does.
  Worker(int i, size_t pool_limit)
      : index(i), ioc(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO), pool(pool_limit) {
    reactor.start(ioc);
  }
  ~Worker() { reactor.shutdown(); }
  edge::Reactor reactor;
  int index;
  asio::io_context ioc;
  std::thread thread;
  std::vector<std::unique_ptr<Socket>> listeners;
  std::shared_ptr<const Compiled> compiled;
  uint64_t version = ~0ull;
  UpstreamPool pool;  // idle upstream connections (Conn::up_idle ones are counted there)
  std::unordered_set<Conn*> conns;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
};

// One client connection: sockets, buffers and the deadline watchdog. Owned by shared_ptr
// between the session coroutine and the watchdog coroutine.
struct Conn {
  Conn(Worker& w, Socket s)
      : worker(w),
        timer(w.ioc.get_executor()),
        up(w.reactor),
        cbuf(0),
        rbuf(kUpstreamBuf) {
    plain.emplace(std::move(s));
  }
  Worker& worker;
  Timer timer;
  Steady::time_point deadline = Steady::time_point::max();
  bool open = true;
  bool fired = false;
  bool busy = false;
  std::optional<Socket> plain;
  std::optional<TlsStream> tls;
  std::shared_ptr<TlsHolder> tls_holder;
  Socket up;
  uint64_t up_backend = 0;
  bool up_reused = false;
  bool up_idle = false;  // `up` is open, clean and unused until up_expires
  Steady::time_point up_expires{};
  IoBuf cbuf;
  IoBuf rbuf;
  std::string head;     // the rebuilt upstream request head
  std::string scratch;  // TLS write coalescing, error bodies
  std::string client_ip;
  http1::RequestHead req;    // the request being proxied; owns its head's bytes
  http1::ResponseHead resp;  // its response's head; owns its bytes
  RequestPlan plan;
  std::vector<asio::const_buffer> iov;

  Socket& clientSocket() { return tls ? tls->next_layer() : *plain; }
  void setDeadline(Duration d) {
    deadline = coarseNow() + d;
    if (deadline < timer.expiry()) timer.expires_at(deadline);
  }
  void clearDeadline() { deadline = Steady::time_point::max(); }
  void cancelAll() {
    clientSocket().cancel();
    up.cancel();
  }
  void closeAll() {
    clientSocket().close();
    up.close();
    open = false;
    timer.cancel();
  }
};

// Cancels the connection's operations when its deadline passes (session.cc).
Awaitable<void> watchdog(std::shared_ptr<Conn> c);

}  // namespace detail

using namespace detail;

struct Gateway::Impl {
  Impl(GatewayOptions o, Clock& c, GatewayHooks h)
      : opts(std::move(o)), clock(c), hooks(std::move(h)) {
    if (hooks.authorizer) {
      for (const auto& s : hooks.authorizer->strippedHeaders()) {
        policy.identity_headers.push_back(lowerAscii(s));
      }
    }
    if (opts.limits.max_header_bytes < 1024) opts.limits.max_header_bytes = 1024;
    policy.max_body_bytes = opts.limits.max_body_bytes;
    head_limits.max_head_bytes = opts.limits.max_header_bytes;
    head_limits.max_fields = kMaxFields;
    response_limits.max_head_bytes = kMaxResponseHead;
    response_limits.max_fields = kMaxFields;
  }
  // The workers' io_contexts destroy the suspended sessions, whose guards still point at
  // services: they go first.
  ~Impl() { workers.clear(); }

  GatewayOptions opts;
  Clock& clock;
  GatewayHooks hooks;
  ForwardPolicy policy;
  http1::Limits head_limits, response_limits;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<bool> stopping{false};
  bool started = false;
  int http_port = 0, https_port = 0;
  std::atomic<int64_t> live_conns{0};
  std::atomic<int64_t> conns_total{0}, no_route{0}, bad_requests{0}, tls_failures{0};
  std::atomic<int64_t> conn_limit_waits{0};  // times a listener paused at max_connections
  std::atomic<int64_t> auth_refused{0}, bad_responses{0};

  // Routing table.
  std::mutex table_mu;
  std::shared_ptr<const Compiled> compiled = std::make_shared<Compiled>();
  std::atomic<uint64_t> table_version{0};
  std::map<std::string, std::shared_ptr<BackendState>> backend_registry;  // under table_mu
  uint64_t next_backend_id = 1;
  mutable std::mutex svc_mu;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<ServiceRuntime>> services;

  // TLS.
  std::mutex tls_mu;
  std::shared_ptr<TlsHolder> tls;
  std::map<std::string, std::filesystem::file_time_type> cert_mtimes;
  std::unique_ptr<Timer> cert_timer;

  ServiceRuntime* service(const std::string& app, const std::string& svc) {
    std::lock_guard lock(svc_mu);
    auto& p = services[{app, svc}];
    if (!p) {
      p = std::make_unique<ServiceRuntime>();
      p->app = app;
      p->service = svc;
    }
    return p.get();
  }

  void setTable(std::shared_ptr<const RouteTable> table);
  Status loadTls();
  std::map<std::string, std::filesystem::file_time_type> certMtimes();
  void checkCerts();
  Status bind(const std::string& listen, bool https, int* port);
  Awaitable<void> acceptLoop(Worker& w, Socket& listener, bool https);
  Awaitable<void> runConn(std::shared_ptr<Conn> c, bool https);
  Awaitable<void> certLoop();
  Awaitable<void> sweepLoop(Worker* w);
  template <class Stream>
  Awaitable<void> session(std::shared_ptr<Conn> c, Stream& s, bool https);
  void stop();
};

}  // namespace baton::gateway
