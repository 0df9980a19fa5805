// The gateway's data path: the only translation unit of the module that includes Asio/Beast.
// See README.md for the design; in short: one io_context per thread, SO_REUSEPORT listeners per
// thread, one coroutine per client connection, Beast's basic_parser used for framing only
// (callbacks record string_views into our own fixed buffers), request heads rebuilt into one
// per-connection string and sent with the buffered body bytes as one gather write, response
// heads and bodies relayed verbatim minus hop-by-hop lines.
#include "gateway/gateway.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/ascii.h"
#include "gateway/edge.h"
#include "gateway/exchange.h"
#include "gateway/http1.h"
#include "gateway/tls.h"

namespace baton::gateway {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Exec = asio::io_context::executor_type;
using Socket = edge::Socket;
using Acceptor = asio::basic_socket_acceptor<tcp, Exec>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Exec>;
using TlsStream = ssl::stream<Socket>;
template <class T>
using Awaitable = asio::awaitable<T, Exec>;
using Steady = std::chrono::steady_clock;
constexpr auto kUse = asio::as_tuple(asio::use_awaitable_t<Exec>{});

// Deadlines and pool ages are seconds-scale: the coarse monotonic clock (same epoch as
// steady_clock, one scheduler tick of resolution) is read without touching the TSC.
Steady::time_point coarseNow() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Steady::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

constexpr size_t kUpstreamBuf = 32 * 1024;
constexpr uint64_t kAcceptBurst = 3;  // connections accepted before the accept loop yields
constexpr size_t kMaxFields = 128;
constexpr size_t kMaxResponseHead = kUpstreamBuf - 1024;

// ---------------------------------------------------------------------------------------------
// Small helpers.

// Appends [p, p + n) to a gather list, extending the last entry when the bytes are adjacent.
void appendBuf(std::vector<asio::const_buffer>& iov, const char* p, size_t n) {
  if (n == 0) return;
  if (!iov.empty()) {
    const asio::const_buffer& last = iov.back();
    if (static_cast<const char*>(last.data()) + last.size() == p) {
      iov.back() = asio::const_buffer(last.data(), last.size() + n);
      return;
    }
  }
  iov.emplace_back(p, n);
}

void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

Result<tcp::endpoint> parseListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return invalidArgument("listen address \"" + listen + "\": expected host:port");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return invalidArgument("listen address \"" + listen + "\": bad port");
  }
  if (port < 0 || port > 65535)
    return invalidArgument("listen address \"" + listen + "\": bad port");
  error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return invalidArgument("listen address \"" + listen + "\": bad host");
  return tcp::endpoint(addr, static_cast<unsigned short>(port));
}

// Sockets must not leak into processes the agent starts.
void setCloexec(int fd) { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

// A fixed byte buffer: [b, e) holds unread bytes.
struct IoBuf {
  std::unique_ptr<char[]> mem;
  size_t cap = 0, b = 0, e = 0;
  explicit IoBuf(size_t n) : mem(new char[n]), cap(n) {}
  char* data() { return mem.get() + b; }
  size_t size() const { return e - b; }
  bool full() const { return e == cap; }
  void consume(size_t n) {
    b += n;
    if (b >= e) b = e = 0;
  }
  void compact() {
    if (b == 0) return;
    std::memmove(mem.get(), mem.get() + b, e - b);
    e -= b;
    b = 0;
  }
  asio::mutable_buffer space() { return {mem.get() + e, cap - e}; }
};

// ---------------------------------------------------------------------------------------------
// Shared state: backends, services, the compiled table.

struct BackendState {
  uint64_t id = 0;
  std::string key;  // "address:port"
  tcp::endpoint endpoint;
  std::atomic<int32_t> outstanding{0};
  std::atomic<int64_t> ejected_until_ns{0};  // steady clock
};

struct Waiter {
  explicit Waiter(Exec e) : timer(e) {}
  Timer timer;
  bool released = false;  // guarded by ServiceRuntime::mu
};

struct ServiceRuntime {
  std::string app, service;
  std::atomic<int64_t> in_flight{0}, arrivals{0}, r2xx{0}, r3xx{0}, r4xx{0}, r5xx{0};
  std::atomic<int64_t> latency_sum_us{0}, completed{0}, held{0}, hold_rejected{0};
  std::atomic<int64_t> cold_starts{0}, cold_last_us{-1}, cold_max_us{-1};
  std::atomic<int64_t> queued{0};
  std::atomic<int64_t> ready_at_ns{0};    // when the table last gave it a backend after parking
  std::atomic<bool> cold_pending{false};  // the next released request measures overhead
  std::mutex mu;
  bool has_backends = false;  // guarded by mu
  std::deque<std::shared_ptr<Waiter>> waiters;
  Steady::time_point last_cold_call{};
};

// Parked requests are released in a ramp: a first burst when the service gains a backend, then
// every released request lets two more go once its upstream connection is up (or it gave up).
// Releasing hundreds at once would queue their connects behind each other, and the first byte
// upstream would wait for all of them.
constexpr size_t kFirstRelease = 16;
constexpr size_t kReleaseFanout = 2;

void releaseLocked(ServiceRuntime& s, size_t n) {  // s.mu held
  while (n-- > 0 && !s.waiters.empty()) {
    std::shared_ptr<Waiter> w = std::move(s.waiters.front());
    s.waiters.pop_front();
    w->released = true;
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  }
  s.queued.store(static_cast<int64_t>(s.waiters.size()));
}

// Held by a released request until its connection attempt is over; then (or when the request
// ends early) it releases the next ones.
struct ReleaseNext {
  ServiceRuntime* svc = nullptr;
  void fire() {
    if (svc == nullptr) return;
    std::lock_guard lock(svc->mu);
    if (svc->has_backends) releaseLocked(*svc, kReleaseFanout);
    svc = nullptr;
  }
  ~ReleaseNext() { fire(); }
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

struct PooledConn {
  Socket socket;
  Steady::time_point expires;  // not reused from then on (our idle limit, or the backend's)
};

struct Conn;

struct Worker {
  // Every socket and timer of a worker is used on its own thread only (other threads post), so
  // the reactor's per-descriptor locks are switched off.
  // The data path's sockets live on `reactor`, which outlives everything else here (sockets,
  // and coroutines that io_context's destruction unwinds, close on it); its pending operations
  // go before io_context does.
  explicit Worker(int i) : index(i), ioc(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) {
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
  // Idle upstream connections per backend: pooled ones, and how many idle clients keep one
  // (Conn::up_idle). Together at most pool_limit, so idle clients cannot pin a backend's
  // connections.
  struct IdleConns {
    std::vector<PooledConn> pooled;
    size_t kept = 0;
  };
  std::unordered_map<uint64_t, IdleConns> pool;
  size_t pool_limit = 0;  // GatewayLimits::upstream_pool_size
  std::unordered_set<Conn*> conns;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
};

// ---------------------------------------------------------------------------------------------
// One client connection: sockets, buffers and the deadline watchdog. Owned by shared_ptr
// between the session coroutine and the watchdog coroutine.

enum class Fired { kNone, kYes };

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

Awaitable<void> watchdog(std::shared_ptr<Conn> c) {
  c->timer.expires_at(Steady::time_point::max());
  while (c->open) {
    co_await c->timer.async_wait(kUse);
    if (!c->open) break;
    auto now = Steady::now();
    if (c->deadline <= now) {
      c->fired = true;
      c->deadline = Steady::time_point::max();
      c->cancelAll();
    }
    c->timer.expires_at(c->deadline);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Gateway::Impl {
  Impl(GatewayOptions o, Clock& c, GatewayHooks h)
      : opts(std::move(o)), clock(c), hooks(std::move(h)) {
    if (hooks.authorizer) {
      for (const auto& s : hooks.authorizer->strippedHeaders()) {
        policy.identity_headers.push_back(lowerAscii(s));
      }
    }
    policy.max_body_bytes = opts.limits.max_body_bytes;
    head_limits.max_head_bytes = opts.limits.max_header_bytes;
    head_limits.max_fields = kMaxFields;
    response_limits.max_head_bytes = kMaxResponseHead;
    response_limits.max_fields = kMaxFields;
    if (opts.limits.max_header_bytes < 1024) opts.limits.max_header_bytes = 1024;
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

namespace {

// Request context shared by the session helpers.
enum class Outcome { kKeepAlive, kClose };

}  // namespace

void Gateway::Impl::setTable(std::shared_ptr<const RouteTable> table) {
  if (!table) table = std::make_shared<RouteTable>();
  auto c = std::make_shared<Compiled>();
  c->table = table;
  std::vector<ServiceRuntime*> with_backends;
  std::vector<ServiceRuntime*> all;
  {
    std::lock_guard lock(table_mu);
    for (const auto& e : table->entries()) {
      EntryRuntime rt;
      rt.svc = service(e.app, e.route.service);
      for (const auto& b : e.backends) {
        std::string key = b.address + ":" + std::to_string(b.port);
        auto& st = backend_registry[key];
        if (!st) {
          error_code ec;
          auto addr = asio::ip::make_address(b.address.empty() ? "127.0.0.1" : b.address, ec);
          if (ec) {
            asio::io_context tmp;
            tcp::resolver r(tmp);
            auto res = r.resolve(b.address, std::to_string(b.port), ec);
            if (ec || res.empty()) {
              spdlog::warn("gateway: cannot resolve backend {}: {}", key, ec.message());
              backend_registry.erase(key);
              continue;
            }
            addr = res.begin()->endpoint().address();
          }
          st = std::make_shared<BackendState>();
          st->id = next_backend_id++;
          st->key = key;
          st->endpoint = tcp::endpoint(addr, static_cast<unsigned short>(b.port));
        }
        rt.backends.push_back(st);
      }
      if (!rt.backends.empty()) with_backends.push_back(rt.svc);
      all.push_back(rt.svc);
      c->entries.push_back(std::move(rt));
    }
    compiled = c;
    table_version.fetch_add(1, std::memory_order_acq_rel);
    for (auto it = backend_registry.begin(); it != backend_registry.end();) {
      it = it->second.use_count() == 1 ? backend_registry.erase(it) : std::next(it);
    }
  }
  // Services without backends in the new table park again; those with backends release.
  std::sort(with_backends.begin(), with_backends.end());
  for (ServiceRuntime* s : all) {
    bool has = std::binary_search(with_backends.begin(), with_backends.end(), s);
    std::lock_guard lock(s->mu);
    s->has_backends = has;
    if (!has || s->waiters.empty()) continue;
    s->ready_at_ns.store(Steady::now().time_since_epoch().count());
    s->cold_pending.store(true);
    s->cold_starts.fetch_add(1);
    releaseLocked(*s, kFirstRelease);
  }
}

namespace {

// Reads what the socket has. A plain socket that has bytes answers at once, without suspending
// (see edge.h); otherwise the coroutine waits for them.
template <class Stream>
Awaitable<std::tuple<error_code, size_t>> readSome(Stream& s, asio::mutable_buffer b) {
  if constexpr (std::is_same_v<Stream, Socket>) {
    error_code ec;
    size_t n = s.readSome(b, ec);
    if (ec != asio::error::would_block) co_return std::tuple(ec, n);
  }
  co_return co_await s.async_read_some(b, kUse);
}

// Writes all of `bufs`: on a plain socket synchronously while it has room (one gather write,
// usually all of it), else suspended until the reactor sends it (see edge.h).
template <class Stream>
Awaitable<error_code> sendAll(Stream& s, std::span<const asio::const_buffer> bufs) {
  if constexpr (std::is_same_v<Stream, Socket>) {
    std::array<asio::const_buffer, 16> left;  // what is still to send (at most 16 pieces a call)
    size_t i = 0;   // next piece of bufs
    size_t off = 0;  // bytes of bufs[i] already sent
    while (i < bufs.size()) {
      size_t k = 0;
      for (size_t j = i; j < bufs.size() && k < left.size(); ++j) {
        left[k++] = j == i ? bufs[j] + off : bufs[j];
      }
      std::span<const asio::const_buffer> now(left.data(), k);
      error_code ec;
      size_t n = s.writeSome(now, ec);
      if (ec == asio::error::would_block) std::tie(ec, n) = co_await s.async_write_some(now, kUse);
      if (ec) co_return ec;
      n += off;
      while (i < bufs.size() && n >= bufs[i].size()) n -= bufs[i++].size();
      off = n;
    }
    co_return error_code{};
  } else {
    auto [wec, wn] = co_await asio::async_write(s, bufs, kUse);
    co_return wec;
  }
}

// Writes all `bufs` to a plain socket (one gather write) or a TLS stream (coalesced first so a
// head and a small body go out as one record).
// (A span, not the vector: the write operation copies its buffer sequence.)
template <class Stream>
Awaitable<error_code> writeAll(Stream& s, std::span<const asio::const_buffer> bufs,
                               std::string& scratch) {
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    size_t total = asio::buffer_size(bufs);
    if (bufs.size() > 1 && total <= 16 * 1024) {
      scratch.resize(total);
      asio::buffer_copy(asio::buffer(scratch), bufs);
      asio::const_buffer one(scratch.data(), scratch.size());
      co_return co_await sendAll(s, std::span(&one, 1));
    }
  }
  co_return co_await sendAll(s, bufs);
}

template <class Stream>
Awaitable<error_code> writeOne(Stream& s, std::string_view data) {
  asio::const_buffer one(data.data(), data.size());
  co_return co_await sendAll(s, std::span(&one, 1));
}

std::string errorResponse(int status, std::string_view message, bool close,
                          std::string_view extra_headers = {}) {
  std::string body = "{\"error\":";
  appendJsonString(body, message);
  body += ",\"status\":" + std::to_string(status) + "}\n";
  std::string r =
      "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n";
  r += extra_headers;
  if (close) r += "Connection: close\r\n";
  r += "\r\n";
  r += body;
  return r;
}

// Whether the worker may keep one more idle connection to `backend` (pooled or kept).
bool roomForIdle(const Worker::IdleConns& idle, size_t limit) {
  return idle.pooled.size() + idle.kept < limit;
}

// The client keeps its clean upstream connection for its next request, or closes it when the
// worker already has enough idle ones to that backend.
void keepUpstream(Worker& w, Conn& c) {
  Worker::IdleConns& idle = w.pool[c.up_backend];
  if (!roomForIdle(idle, w.pool_limit)) {
    c.up.close();
    return;
  }
  c.up_idle = true;
  ++idle.kept;
}

void unkeepUpstream(Worker& w, Conn& c) {
  if (!c.up_idle) return;
  c.up_idle = false;
  auto it = w.pool.find(c.up_backend);
  if (it != w.pool.end() && it->second.kept > 0) --it->second.kept;
}

// Moves the client's kept upstream connection into its backend's pool (or closes it when there
// is no room).
void poolUpstream(Worker& w, Conn& c) {
  unkeepUpstream(w, c);
  if (!c.up.is_open()) return;
  Worker::IdleConns& idle = w.pool[c.up_backend];
  if (roomForIdle(idle, w.pool_limit)) {
    idle.pooled.push_back({std::move(c.up), c.up_expires});
    c.up = Socket(w.reactor);
  } else {
    c.up.close();
  }
}

BackendState* pickBackend(Worker& w, const EntryRuntime& rt, const BackendState* exclude) {
  const auto& bs = rt.backends;
  size_t n = bs.size();
  if (n == 0) return nullptr;
  int64_t now = Steady::now().time_since_epoch().count();
  auto usable = [&](const BackendState* b) {
    return b != exclude && b->ejected_until_ns.load(std::memory_order_relaxed) <= now;
  };
  if (n == 1) {
    BackendState* b = bs[0].get();
    if (b == exclude) return nullptr;
    return b;  // the only one: used even when ejected
  }
  size_t i = w.next() % n;
  size_t j = w.next() % (n - 1);
  if (j >= i) ++j;
  BackendState* a = bs[i].get();
  BackendState* b = bs[j].get();
  bool ua = usable(a), ub = usable(b);
  if (ua && ub) {
    return a->outstanding.load(std::memory_order_relaxed) <=
                   b->outstanding.load(std::memory_order_relaxed)
               ? a
               : b;
  }
  if (ua) return a;
  if (ub) return b;
  for (size_t k = 0; k < n; ++k) {
    if (usable(bs[k].get())) return bs[k].get();
  }
  for (size_t k = 0; k < n; ++k) {  // all ejected: ignore ejection
    if (bs[k].get() != exclude) return bs[k].get();
  }
  return nullptr;
}

// Relays bytes from `from` to `to` (first what `buf` holds) until either side closes; then
// closes both so the other direction ends too.
template <class From, class To>
Awaitable<void> pipe(std::shared_ptr<Conn> c, From& from, To& to, IoBuf& buf, Duration idle) {
  for (;;) {
    if (buf.size() > 0) {
      if (co_await writeOne(to, std::string_view(buf.data(), buf.size()))) break;
      buf.consume(buf.size());
    }
    if (!c->open) break;
    c->setDeadline(idle);
    auto [rec, n] = co_await readSome(from, buf.space());
    if (rec || n == 0) break;
    buf.e += n;
  }
  if (c->open) c->closeAll();
}

// Feeds [p, p + n) to a body decoder and appends the runs it relays to `iov`. Returns how many
// of the bytes belong to the body (what follows is the next message); `*err` on a framing error.
size_t decodeBody(http1::BodyDecoder& d, const char* p, size_t n,
                  std::vector<asio::const_buffer>& iov, http1::Error* err) {
  size_t used = 0;
  *err = http1::Error::kNone;
  while (used < n && !d.done()) {
    http1::BodyDecoder::Step st = d.feed(p + used, n - used);
    if (st.forward) appendBuf(iov, p + used, st.n);
    used += st.n;
    if (st.error != http1::Error::kNone) {
      *err = st.error;
      break;
    }
    if (st.n == 0) break;
  }
  return used;
}

// RFC 9110 §9.2.2: a request the client may send twice.
bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

// How reading a response head ended.
enum class HeadRead { kOk, kTimeout, kClosedBeforeAnyByte, kClosed, kTooLarge };

// Reads from the upstream connection until `c.rbuf` holds a whole response head; `*len` is its
// length.
Awaitable<HeadRead> readResponseHead(Conn& c, Duration timeout, size_t* len) {
  c.rbuf.compact();
  size_t scan = 0;
  bool got_any = c.rbuf.size() > 0;
  for (;;) {
    *len = http1::findHeadEnd({c.rbuf.data(), c.rbuf.size()}, &scan);
    if (*len > 0) co_return HeadRead::kOk;
    if (c.rbuf.size() >= kMaxResponseHead || c.rbuf.full()) co_return HeadRead::kTooLarge;
    c.setDeadline(timeout);
    c.fired = false;
    auto [ec, n] = co_await readSome(c.up, c.rbuf.space());
    if (ec || n == 0) {
      bool timed_out = c.fired;
      c.fired = false;
      if (timed_out) co_return HeadRead::kTimeout;
      co_return got_any ? HeadRead::kClosed : HeadRead::kClosedBeforeAnyByte;
    }
    got_any = true;
    c.rbuf.e += n;
  }
}

// A new connection to `backend` on c.up (closed first); false when it cannot be made in time.
Awaitable<bool> connectUpstream(Conn& c, const BackendState& backend, Duration timeout,
                                bool* timed_out) {
  c.up.close();
  c.up_reused = false;
  c.rbuf.b = c.rbuf.e = 0;
  c.setDeadline(timeout);
  c.fired = false;
  auto [ec, ig_n] = co_await c.up.async_connect(backend.endpoint, kUse);
  *timed_out = c.fired;
  c.fired = false;
  if (ec) {
    c.up.close();
    co_return false;
  }
  c.up.setNoDelay();
  co_return true;
}

// Takes an idle connection to `backend`: the one this client kept, else the newest pooled one.
// A connection that is too old, has unread bytes or was closed by the backend is closed instead.
bool takeIdleUpstream(Worker& w, Conn& c, const BackendState& backend) {
  auto now = coarseNow();
  if (c.up_idle) {
    unkeepUpstream(w, c);
    const bool same = c.up_backend == backend.id;
    if (same && now < c.up_expires && c.up.idleAndClean()) return true;
    if (same || now >= c.up_expires) {
      c.up.close();
    } else {
      poolUpstream(w, c);  // checked again by whoever takes it
    }
  }
  auto it = w.pool.find(backend.id);
  if (it == w.pool.end()) return false;
  auto& pool = it->second.pooled;
  while (!pool.empty()) {
    PooledConn pc = std::move(pool.back());
    pool.pop_back();
    if (now < pc.expires && pc.socket.idleAndClean()) {
      c.up = std::move(pc.socket);
      return true;
    }
    pc.socket.close();
  }
  return false;
}

}  // namespace

template <class Stream>
Awaitable<void> Gateway::Impl::session(std::shared_ptr<Conn> c, Stream& s, bool https) {
  const GatewayLimits& lim = opts.limits;
  Worker& w = c->worker;
  http1::RequestHead& req = c->req;
  RequestPlan& plan = c->plan;
  auto respondError = [&](int status, std::string_view msg, bool close,
                          std::string_view extra = {}) -> Awaitable<void> {
    c->scratch = errorResponse(status, msg, close, extra);
    c->setDeadline(lim.idle_timeout);
    co_await writeOne(s, c->scratch);
  };

  if constexpr (std::is_same_v<Stream, TlsStream>) {
    c->setDeadline(lim.header_timeout);
    auto [ec] = co_await s.async_handshake(ssl::stream_base::server, kUse);
    if (ec) {
      tls_failures.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
  }
  const std::string_view proto = https ? "https" : "http";
  bool first = true;
  while (!stopping.load(std::memory_order_relaxed)) {
    // ---- Wait for a request head.
    c->busy = false;
    c->cbuf.compact();
    if (c->cbuf.size() == 0) {
      c->setDeadline(first ? lim.header_timeout : lim.idle_timeout);
      auto [ec, n] = co_await readSome(s, c->cbuf.space());
      if (ec || n == 0) co_return;
      c->cbuf.e += n;
    }
    first = false;
    c->busy = true;
    c->setDeadline(lim.header_timeout);
    size_t head_len = 0, scan = 0;
    for (;;) {
      while (c->cbuf.size() >= 2 && c->cbuf.data()[0] == '\r' && c->cbuf.data()[1] == '\n') {
        c->cbuf.consume(2);  // empty lines before a request line are ignored (RFC 9112 §2.2)
        scan = 0;
      }
      head_len = http1::findHeadEnd({c->cbuf.data(), c->cbuf.size()}, &scan);
      if (head_len > 0) break;
      c->cbuf.compact();
      if (c->cbuf.full() || c->cbuf.size() >= lim.max_header_bytes) {
        bad_requests.fetch_add(1, std::memory_order_relaxed);
        co_await respondError(431, "request header too large", true);
        co_return;
      }
      auto [rec, n] = co_await readSome(s, c->cbuf.space());
      if (rec || n == 0) {
        if (c->fired) {
          c->fired = false;
          bad_requests.fetch_add(1, std::memory_order_relaxed);
          co_await respondError(408, "request header timeout", true);
        }
        co_return;
      }
      c->cbuf.e += n;
    }
    // The head's bytes move into `req`, which owns them; the buffer holds the body from here.
    http1::Error perr = req.parse({c->cbuf.data(), head_len}, head_limits);
    c->cbuf.consume(head_len);
    auto t0 = Steady::now();
    if (!checkRequest(req, perr, policy, &plan)) {
      bad_requests.fetch_add(1, std::memory_order_relaxed);
      co_await respondError(plan.status, plan.message, true);
      co_return;
    }
    const bool has_body = req.framing() != http1::Framing::kNone;
    const bool keep_alive = req.keepAlive();

    // ---- Route and identity. A refused request never counts toward a service's load.
    if (w.version != table_version.load(std::memory_order_acquire)) {
      std::lock_guard lock(table_mu);
      w.compiled = compiled;
      w.version = table_version.load(std::memory_order_acquire);
    }
    std::shared_ptr<const Compiled> table = w.compiled;
    if (!routeRequest(req, *table->table, hooks.authorizer.get(), &plan)) {
      (plan.status == 404 ? no_route : auth_refused).fetch_add(1, std::memory_order_relaxed);
      std::string extra;
      if (!plan.www_authenticate.empty()) {
        extra = "WWW-Authenticate: " + plan.www_authenticate + "\r\n";
      }
      co_await respondError(plan.status, plan.message, plan.close, extra);
      if (plan.close) co_return;
      continue;
    }
    int idx = plan.route;
    ServiceRuntime* svc = table->entries[static_cast<size_t>(idx)].svc;
    if (table->entries[static_cast<size_t>(idx)].backends.empty() && hooks.scaled_off &&
        hooks.scaled_off(svc->app, svc->service)) {
      // Its bounds in force say max = 0: nothing will start, so nothing is held.
      const bool close = !keep_alive || has_body;
      co_await respondError(503, "service is scaled off (max = 0 in force)", close);
      if (close) co_return;
      continue;
    }
    svc->arrivals.fetch_add(1, std::memory_order_relaxed);
    svc->in_flight.fetch_add(1, std::memory_order_relaxed);
    uint64_t bytes_up = 0, bytes_down = 0;
    std::string backend_key;
    auto finish = [&](int status) {
      svc->in_flight.fetch_sub(1, std::memory_order_relaxed);
      auto& counter = status >= 500   ? svc->r5xx
                      : status >= 400 ? svc->r4xx
                      : status >= 300 ? svc->r3xx
                                      : svc->r2xx;
      counter.fetch_add(1, std::memory_order_relaxed);
      svc->latency_sum_us.fetch_add(
          std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - t0).count(),
          std::memory_order_relaxed);
      svc->completed.fetch_add(1, std::memory_order_relaxed);
      if (opts.access_log) {
        std::string line = "{\"ts\":" + std::to_string(toUnixMillis(clock.now())) + ",\"client\":";
        appendJsonString(line, c->client_ip);
        line += ",\"proto\":\"";
        line += proto;
        line += "\",\"method\":";
        appendJsonString(line, req.method());
        line += ",\"host\":";
        appendJsonString(line, req.host());
        line += ",\"target\":";
        appendJsonString(line, plan.target);
        line += ",\"app\":";
        appendJsonString(line, svc->app);
        line += ",\"service\":";
        appendJsonString(line, svc->service);
        line += ",\"backend\":";
        appendJsonString(line, backend_key);
        line +=
            ",\"status\":" + std::to_string(status) + ",\"bytes_in\":" + std::to_string(bytes_up) +
            ",\"bytes_out\":" + std::to_string(bytes_down) + ",\"duration_us\":" +
            std::to_string(
                std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - t0).count()) +
            "}";
        spdlog::info("{}", line);
      }
    };
    // Every 502 and 504 is logged with its reason (the client only sees the status).
    auto upstreamError = [&](int status, std::string_view reason) -> Awaitable<void> {
      spdlog::warn("gateway: {} {} {} -> {}/{} backend {}: {}", status, req.method(), plan.target,
                   svc->app, svc->service, backend_key.empty() ? "-" : backend_key, reason);
      co_await respondError(status, reason, true);
      finish(status);
    };

    // ---- Hold at zero: park until the service has a backend.
    bool was_parked = false;
    ReleaseNext release_next;
    while (table->entries[static_cast<size_t>(idx)].backends.empty()) {
      auto waiter = std::make_shared<Waiter>(w.ioc.get_executor());
      waiter->timer.expires_after(opts.hold_timeout);
      bool overflow = false, already = false, call_cold = false;
      {
        std::lock_guard lock(svc->mu);
        if (svc->has_backends) {
          already = true;
        } else if (svc->waiters.size() >= opts.hold_queue) {
          overflow = true;
        } else {
          svc->waiters.push_back(waiter);
          svc->queued.store(static_cast<int64_t>(svc->waiters.size()));
          auto now = Steady::now();
          if (svc->waiters.size() == 1 || now - svc->last_cold_call > std::chrono::seconds(1)) {
            svc->last_cold_call = now;
            call_cold = true;
          }
        }
      }
      if (!already) {
        if (overflow) {
          svc->hold_rejected.fetch_add(1, std::memory_order_relaxed);
          co_await respondError(503, "service is starting: hold queue full", true,
                                "Retry-After: 1\r\n");
          finish(503);
          co_return;
        }
        svc->held.fetch_add(1, std::memory_order_relaxed);
        if (call_cold && hooks.on_cold) hooks.on_cold(svc->app, svc->service);
        c->clearDeadline();
        co_await waiter->timer.async_wait(kUse);
        bool released;
        {
          std::lock_guard lock(svc->mu);
          released = waiter->released;
          if (!released) {
            auto it = std::find(svc->waiters.begin(), svc->waiters.end(), waiter);
            if (it != svc->waiters.end()) svc->waiters.erase(it);
          }
          svc->queued.store(static_cast<int64_t>(svc->waiters.size()));
        }
        if (!released || stopping.load()) {
          svc->hold_rejected.fetch_add(1, std::memory_order_relaxed);
          co_await respondError(503, "service did not become ready in time", true,
                                "Retry-After: 1\r\n");
          finish(503);
          co_return;
        }
        was_parked = true;
        release_next.svc = svc;
      }
      {
        std::lock_guard lock(table_mu);
        w.compiled = compiled;
        w.version = table_version.load(std::memory_order_acquire);
      }
      table = w.compiled;
      // Routed and authorized again on the table that released it: the route, its identity
      // verdict and the claims forwarded always belong together.
      if (!routeRequest(req, *table->table, hooks.authorizer.get(), &plan) ||
          table->entries[static_cast<size_t>(plan.route)].svc != svc) {
        int status = plan.status != 0 ? plan.status : 404;
        const bool close = !keep_alive || has_body;
        co_await respondError(status, status == 404 ? "no route" : plan.message, close);
        finish(status);
        if (close) co_return;
        goto next_request;
      }
      idx = plan.route;
    }

    {
      const EntryRuntime& rt = table->entries[static_cast<size_t>(idx)];
      buildUpstreamHead(req, plan, ClientInfo{c->client_ip, proto}, &c->head);
      // The head and the body bytes already here go out in one write.
      http1::BodyDecoder body(req.framing(), req.contentLength(), lim.max_body_bytes);
      c->iov.clear();
      c->iov.emplace_back(c->head.data(), c->head.size());
      http1::Error berr = http1::Error::kNone;
      size_t body_ready = decodeBody(body, c->cbuf.data(), c->cbuf.size(), c->iov, &berr);
      if (berr != http1::Error::kNone) {
        bad_requests.fetch_add(1, std::memory_order_relaxed);
        int status = statusForRequestError(berr);
        co_await respondError(status, std::string("malformed request body: ") +
                                          http1::errorText(berr), true);
        finish(status);
        co_return;
      }
      // A request whose body is all here can be sent again on a fresh connection.
      const bool replayable = body.done() && !req.websocketUpgrade();

      // ---- Connect (an idle connection first), one retry elsewhere when it cannot be made.
      BackendState* backend = nullptr;
      BackendState* failed = nullptr;
      bool connected = false;
      bool timed_out_connect = false;
      for (int attempt = 0; attempt < 2 && !connected; ++attempt) {
        backend = pickBackend(w, rt, failed);
        if (backend == nullptr) break;
        c->up_reused = false;
        if (takeIdleUpstream(w, *c, *backend)) {
          c->up_reused = true;
          connected = true;
          break;
        }
        if (co_await connectUpstream(*c, *backend, lim.upstream_connect_timeout,
                                     &timed_out_connect)) {
          connected = true;
          break;
        }
        backend->ejected_until_ns.store((Steady::now() + lim.eject_time).time_since_epoch().count(),
                                        std::memory_order_relaxed);
        failed = backend;
      }
      release_next.fire();
      if (!connected) {
        if (backend != nullptr) backend_key = backend->key;
        co_await upstreamError(502, timed_out_connect ? "upstream connect timeout"
                                                      : "upstream connection failed");
        co_return;
      }
      backend_key = backend->key;
      c->up_backend = backend->id;
      backend->outstanding.fetch_add(1, std::memory_order_relaxed);
      struct OutstandingGuard {
        BackendState* b;
        ~OutstandingGuard() { b->outstanding.fetch_sub(1, std::memory_order_relaxed); }
      } guard{backend};

      // ---- Send the head (+ buffered body), stream the rest of the body, read the response
      // head. A reused connection that fails before any byte of the response came back is
      // replaced by a fresh one once: always when the write failed (the backend saw nothing),
      // and for idempotent requests whose body was all sent at once when it closed.
      size_t rhead = 0;
      for (int attempt = 0;; ++attempt) {
        c->setDeadline(lim.idle_timeout);
        error_code wec = co_await writeAll(c->up, c->iov, c->scratch);
        if (was_parked && svc->cold_pending.exchange(false)) {
          int64_t us = (Steady::now().time_since_epoch().count() - svc->ready_at_ns.load()) / 1000;
          svc->cold_last_us.store(us);
          if (us > svc->cold_max_us.load()) svc->cold_max_us.store(us);
        }
        bool timed_out = false;
        if (wec) {
          if (c->up_reused && attempt == 0 &&
              co_await connectUpstream(*c, *backend, lim.upstream_connect_timeout, &timed_out)) {
            continue;
          }
          co_await upstreamError(502, "upstream write failed: " + wec.message());
          co_return;
        }
        if (attempt == 0) bytes_up += asio::buffer_size(c->iov);
        if (!replayable) {
          c->cbuf.consume(body_ready);
          body_ready = 0;
          if (!body.done() && req.expectContinue()) {
            c->setDeadline(lim.idle_timeout);
            if (co_await writeOne(s, "HTTP/1.1 100 Continue\r\n\r\n")) {
              finish(499);
              co_return;
            }
          }
          // Stream the rest of the request body: relay what the decoder says belongs to it.
          while (!body.done()) {
            if (c->cbuf.size() > 0) {
              c->iov.clear();
              size_t used = decodeBody(body, c->cbuf.data(), c->cbuf.size(), c->iov, &berr);
              if (berr != http1::Error::kNone) {
                int status = statusForRequestError(berr);
                co_await respondError(status, std::string("malformed request body: ") +
                                                  http1::errorText(berr), true);
                finish(status);
                co_return;
              }
              c->setDeadline(lim.idle_timeout);
              if (error_code e = co_await writeAll(c->up, c->iov, c->scratch)) {
                co_await upstreamError(502, "upstream write failed: " + e.message());
                co_return;
              }
              bytes_up += used;
              c->cbuf.consume(used);
              continue;
            }
            c->cbuf.compact();
            c->setDeadline(lim.idle_timeout);
            auto [rec, rn] = co_await readSome(s, c->cbuf.space());
            if (rec || rn == 0) {
              finish(499);  // the client went away mid-body
              co_return;
            }
            c->cbuf.e += rn;
          }
        }
        HeadRead hr = co_await readResponseHead(*c, lim.upstream_response_timeout, &rhead);
        if (hr == HeadRead::kOk) break;
        if (hr == HeadRead::kClosedBeforeAnyByte && replayable && c->up_reused && attempt == 0 &&
            idempotent(req.method()) &&
            co_await connectUpstream(*c, *backend, lim.upstream_connect_timeout, &timed_out)) {
          continue;
        }
        c->up.close();
        c->rbuf.b = c->rbuf.e = 0;
        if (hr == HeadRead::kTimeout) {
          co_await upstreamError(504, "upstream response timeout");
        } else if (hr == HeadRead::kTooLarge) {
          bad_responses.fetch_add(1, std::memory_order_relaxed);
          co_await upstreamError(502, "upstream response head too large");
        } else {
          co_await upstreamError(502, c->up_reused
                                          ? "upstream closed a reused connection before answering"
                                          : "upstream closed before answering");
        }
        co_return;
      }
      if (replayable) c->cbuf.consume(body_ready);

      // ---- Relay the response: its head verbatim minus hop-by-hop lines, then its body.
      http1::ResponseHead& resp = c->resp;
      bool client_close = !keep_alive;
      for (bool first_head = true;; first_head = false) {  // loops over 1xx interim responses
        if (!first_head) {
          HeadRead hr = co_await readResponseHead(*c, lim.upstream_response_timeout, &rhead);
          if (hr != HeadRead::kOk) {
            c->up.close();
            c->rbuf.b = c->rbuf.e = 0;
            finish(resp.status());  // an interim response went out: the client sees a close
            co_return;
          }
        }
        http1::Error rerr = resp.parse({c->rbuf.data(), rhead}, req.method(), response_limits);
        c->rbuf.consume(rhead);
        if (rerr != http1::Error::kNone) {
          bad_responses.fetch_add(1, std::memory_order_relaxed);
          c->up.close();
          c->rbuf.b = c->rbuf.e = 0;
          if (!first_head) {
            finish(502);
            co_return;
          }
          co_await upstreamError(502, std::string("upstream sent a malformed response: ") +
                                          http1::errorText(rerr));
          co_return;
        }
        const int status = resp.status();
        const bool interim = status >= 100 && status < 200 && status != 101;
        if (status == 101 && !req.websocketUpgrade()) {
          c->up.close();
          co_await upstreamError(502, "unexpected protocol switch");
          co_return;
        }
        if (!resp.keepAlive() && !interim && status != 101) {
          // The backend closes after this response; the client's connection stays if it can
          // still be framed (a close-delimited body cannot).
          if (resp.framing() == http1::Framing::kUntilClose) client_close = true;
        }
        if (stopping.load(std::memory_order_relaxed)) client_close = true;
        if (interim && req.version() == 10) continue;  // no 1xx to an HTTP/1.0 client
        c->iov.clear();
        appendBuf(c->iov, resp.statusLine().data(), resp.statusLine().size());
        for (const http1::Field& f : resp.fields()) {
          if (!f.drop) appendBuf(c->iov, f.line.data(), f.line.size());
        }
        if (!interim && status != 101) {
          if (client_close) {
            appendBuf(c->iov, "Connection: close\r\n", 19);
          } else if (req.version() == 10) {
            appendBuf(c->iov, "Connection: keep-alive\r\n", 24);
          }
        }
        appendBuf(c->iov, "\r\n", 2);
        http1::BodyDecoder rbody(interim || status == 101 ? http1::Framing::kNone
                                                          : resp.framing(),
                                 resp.contentLength());
        size_t used = decodeBody(rbody, c->rbuf.data(), c->rbuf.size(), c->iov, &berr);
        c->setDeadline(lim.idle_timeout);
        error_code wec = co_await writeAll(s, c->iov, c->scratch);
        bytes_down += asio::buffer_size(c->iov);
        c->rbuf.consume(used);
        if (wec || berr != http1::Error::kNone) {
          if (berr != http1::Error::kNone) {
            spdlog::warn("gateway: {} {} -> {}/{} backend {}: response body: {}", req.method(),
                         plan.target, svc->app, svc->service, backend_key,
                         http1::errorText(berr));
          }
          c->up.close();
          c->rbuf.b = c->rbuf.e = 0;
          finish(status);
          co_return;
        }
        if (interim) continue;
        if (status == 101) break;
        // Stream the rest of the body. A backend that breaks off mid-body makes the client's
        // connection close too: the client sees a broken response, never a made-up whole one.
        while (!rbody.done()) {
          if (c->rbuf.size() > 0) {
            c->iov.clear();
            used = decodeBody(rbody, c->rbuf.data(), c->rbuf.size(), c->iov, &berr);
            if (berr != http1::Error::kNone) break;
            c->setDeadline(lim.idle_timeout);
            if (error_code e = co_await writeAll(s, c->iov, c->scratch)) {
              berr = http1::Error::kTruncated;
              break;
            }
            bytes_down += used;
            c->rbuf.consume(used);
            continue;
          }
          c->rbuf.compact();
          c->setDeadline(lim.idle_timeout);
          auto [rec, rn] = co_await readSome(c->up, c->rbuf.space());
          if (rec || rn == 0) {
            berr = rbody.finish();  // complete only when the body is close-delimited
            if (berr == http1::Error::kNone) c->up.close();
            break;
          }
          c->rbuf.e += rn;
        }
        if (berr != http1::Error::kNone || !rbody.done()) {
          spdlog::warn("gateway: {} {} -> {}/{} backend {}: response broken off: {}",
                       req.method(), plan.target, svc->app, svc->service, backend_key,
                       http1::errorText(berr));
          c->up.close();
          c->rbuf.b = c->rbuf.e = 0;
          finish(status);
          co_return;
        }
        break;
      }

      if (resp.status() == 101) {
        // ---- WebSocket (or another upgrade): relay bytes both ways until either side closes.
        finish(101);
        using namespace asio::experimental::awaitable_operators;
        co_await (pipe(c, s, c->up, c->cbuf, lim.idle_timeout) &&
                  pipe(c, c->up, s, c->rbuf, lim.idle_timeout));
        co_return;
      }

      // ---- Done: keep the upstream connection with this client while it is clean (its next
      // request most likely goes to the same backend); it joins the pool when the client leaves.
      // A connection with bytes nobody asked for, or whose response was not read to its end,
      // is never used again.
      // Idle for at most upstream_idle_timeout, and a second less than the backend's own
      // Keep-Alive: timeout=N, so that the gateway stops using a connection before the backend
      // closes it.
      Duration max_idle = lim.upstream_idle_timeout;
      if (resp.keepAliveTimeout() >= 0) {
        max_idle = std::min(max_idle, Duration(resp.keepAliveTimeout() * 1000 - 1000));
      }
      if (resp.keepAlive() && c->rbuf.size() == 0 && c->up.is_open() && max_idle.count() > 0) {
        c->up_expires = coarseNow() + max_idle;
        if (client_close) {
          poolUpstream(w, *c);
        } else {
          keepUpstream(w, *c);
        }
      } else {
        c->up.close();
        c->rbuf.b = c->rbuf.e = 0;
      }
      finish(resp.status());
      if (client_close) co_return;
    }
  next_request:;
  }
}

// (Coroutines are member functions, never capturing lambdas: a lambda's captures live in the
// closure object, which is gone once co_spawn returns.)
Awaitable<void> Gateway::Impl::runConn(std::shared_ptr<Conn> c, bool https) {
  if (c->tls) {
    co_await session(c, *c->tls, https);
  } else {
    co_await session(c, *c->plain, https);
  }
  c->worker.conns.erase(c.get());
  if (c->up_idle) {
    if (stopping.load()) {
      unkeepUpstream(c->worker, *c);
    } else {
      poolUpstream(c->worker, *c);
    }
  }
  if (c->open) c->closeAll();
  live_conns.fetch_sub(1);
}

Awaitable<void> Gateway::Impl::certLoop() {
  for (;;) {
    cert_timer->expires_after(opts.cert_check_interval);
    auto [ec] = co_await cert_timer->async_wait(kUse);
    if (ec || stopping.load()) co_return;
    checkCerts();
  }
}

Awaitable<void> Gateway::Impl::sweepLoop(Worker* wp) {
  Timer t(wp->ioc.get_executor());
  for (;;) {
    t.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await t.async_wait(kUse);
    if (ec || stopping.load()) co_return;
    auto now = coarseNow();
    for (auto it = wp->pool.begin(); it != wp->pool.end();) {
      auto& v = it->second.pooled;
      std::erase_if(v, [&](PooledConn& pc) {
        if (now < pc.expires) return false;
        pc.socket.close();
        return true;
      });
      it = v.empty() && it->second.kept == 0 ? wp->pool.erase(it) : std::next(it);
    }
  }
}

Awaitable<void> Gateway::Impl::acceptLoop(Worker& w, Socket& listener, bool https) {
  uint64_t accepted = 0;
  for (;;) {
    tcp::endpoint peer;
    error_code ec;
    int fd = listener.accept(&peer, ec);
    if (ec == asio::error::would_block) {
      auto [wec, ig_n] = co_await listener.async_wait_readable(kUse);
      if (wec || stopping.load() || !listener.is_open()) co_return;
      continue;
    }
    if (ec) {
      if (stopping.load() || !listener.is_open()) co_return;
      Timer t(w.ioc.get_executor());  // EMFILE and the like: back off a little
      t.expires_after(std::chrono::milliseconds(20));
      co_await t.async_wait(kUse);
      continue;
    }
    if (stopping.load()) {
      ::close(fd);
      co_return;
    }
    Socket sock(w.reactor, fd, ec);
    if (ec) continue;
    sock.setNoDelay();
    auto c = std::make_shared<Conn>(w, std::move(sock));
    size_t cbuf_size = opts.limits.max_header_bytes + 4096;
    if (cbuf_size < 16 * 1024) cbuf_size = 16 * 1024;
    c->cbuf = IoBuf(cbuf_size);
    c->client_ip = peer.address().to_string();
    c->iov.reserve(16);
    if (https) {
      std::shared_ptr<TlsHolder> holder;
      {
        std::lock_guard lock(tls_mu);
        holder = tls;
      }
      if (!holder) continue;
      c->tls_holder = holder;
      c->tls.emplace(std::move(*c->plain), holder->ctx);
      c->plain.reset();
    }
    conns_total.fetch_add(1, std::memory_order_relaxed);
    live_conns.fetch_add(1);
    w.conns.insert(c.get());
    asio::co_spawn(w.ioc, watchdog(c), asio::detached);
    asio::co_spawn(w.ioc, runConn(std::move(c), https), asio::detached);
    // A few connections at a time, then the queue: a burst of new connections (each a TLS
    // handshake, ~200 µs) must not all go ahead of requests already in progress (what nginx's
    // multi_accept and HAProxy's maxaccept bound). Measured on bench/gateway's handshake case:
    // all at once, p99 9 ms (nginx 6.5); one at a time, p99 3.5 ms but 7% fewer handshakes/s;
    // three, p99 5.3 ms at nginx's rate.
    if (++accepted % kAcceptBurst == 0) co_await asio::post(w.ioc.get_executor(), kUse);
  }
}

Status Gateway::Impl::bind(const std::string& listen, bool https, int* port) {
  auto ep = parseListen(listen);
  if (!ep) return ep.status();
  tcp::endpoint endpoint = *ep;
  for (auto& w : workers) {
    auto acc = std::make_unique<Acceptor>(w->ioc.get_executor());
    error_code ec;
    acc->open(endpoint.protocol(), ec);
    if (!ec) setCloexec(acc->native_handle());
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec = error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) acc->bind(endpoint, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return ioError("gateway cannot listen on " + listen + ": " + ec.message());
    if (endpoint.port() == 0) endpoint.port(acc->local_endpoint().port());
    // Asio sets the socket up (options, bind, listen); the worker's reactor takes it over.
    int fd = acc->release(ec);
    if (!ec && ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
    if (ec) return ioError("gateway cannot listen on " + listen + ": " + ec.message());
    auto listener = std::make_unique<Socket>(w->reactor, fd, ec);
    if (ec) return ioError("gateway cannot listen on " + listen + ": " + ec.message());
    auto* l = listener.get();
    w->listeners.push_back(std::move(listener));
    asio::co_spawn(w->ioc, acceptLoop(*w, *l, https), asio::detached);
  }
  *port = endpoint.port();
  return Status::ok();
}

std::map<std::string, std::filesystem::file_time_type> Gateway::Impl::certMtimes() {
  std::map<std::string, std::filesystem::file_time_type> m;
  for (const auto& c : opts.certs) {
    for (const auto& path : {c.cert, c.key}) {
      std::error_code ec;
      auto t = std::filesystem::last_write_time(path, ec);
      if (!ec) m[path] = t;
    }
  }
  return m;
}

Status Gateway::Impl::loadTls() {
  Result<std::shared_ptr<TlsContexts>> ctx = invalidArgument("no certificate");
  auto mtimes = certMtimes();
  if (opts.certs.empty()) {
    auto pem = devCertificate(opts.dev_cert_dir);
    if (!pem) return pem.status();
    ctx = TlsContexts::fromPem({*pem});
  } else {
    ctx = TlsContexts::fromFiles(opts.certs);
  }
  if (!ctx) return ctx.status();
  auto holder = std::make_shared<TlsHolder>(*ctx);
  std::lock_guard lock(tls_mu);
  tls = std::move(holder);
  cert_mtimes = std::move(mtimes);
  return Status::ok();
}

void Gateway::Impl::checkCerts() {
  if (opts.certs.empty()) return;
  auto now = certMtimes();
  bool changed;
  {
    std::lock_guard lock(tls_mu);
    changed = now != cert_mtimes;
  }
  if (!changed) return;
  Status s = loadTls();
  if (s) {
    spdlog::info("gateway: certificates reloaded");
  } else {
    spdlog::warn("gateway: certificate reload failed, keeping the old ones: {}", s.toString());
    std::lock_guard lock(tls_mu);
    cert_mtimes = std::move(now);  // do not retry until the files change again
  }
}

void Gateway::Impl::stop() {
  if (!started) return;
  started = false;
  stopping.store(true);
  for (auto& w : workers) {
    asio::post(w->ioc, [wp = w.get(), this] {
      for (auto& l : wp->listeners) l->close();
      if (cert_timer && wp->index == 0) cert_timer->cancel();
      for (Conn* c : wp->conns) {
        if (!c->busy) c->cancelAll();
      }
    });
  }
  auto deadline = Steady::now() + opts.stop_grace;
  while (live_conns.load() > 0 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& w : workers) {
    asio::post(w->ioc, [wp = w.get()] {
      for (Conn* c : wp->conns) {
        if (c->open) c->closeAll();
      }
      for (auto& [id, idle] : wp->pool) {
        for (auto& pc : idle.pooled) {
          pc.socket.close();
        }
      }
      wp->pool.clear();
    });
  }
  // Give the closes a moment to unwind the coroutines, then stop the loops.
  auto unwind = Steady::now() + std::chrono::milliseconds(500);
  while (live_conns.load() > 0 && Steady::now() < unwind) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (auto& w : workers) w->ioc.stop();
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  cert_timer.reset();
  // Release parked requests' bookkeeping.
  std::lock_guard lock(svc_mu);
  for (auto& [k, s] : services) {
    std::lock_guard l2(s->mu);
    s->waiters.clear();
    s->queued.store(0);
  }
}

// ---------------------------------------------------------------------------------------------

Gateway::Gateway(GatewayOptions options, Clock& clock, GatewayHooks hooks)
    : impl_(std::make_unique<Impl>(std::move(options), clock, std::move(hooks))) {}

Gateway::~Gateway() { stop(); }

Status Gateway::start() {
  Impl& m = *impl_;
  if (m.started) return Status(Code::kFailedPrecondition, "gateway already started");
  int n = m.opts.threads > 0 ? m.opts.threads
                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  m.workers.clear();
  for (int i = 0; i < n; ++i) {
    try {
      m.workers.push_back(std::make_unique<Worker>(i));
    } catch (const std::exception& e) {  // the reactor's epoll instance (EMFILE, ENOMEM)
      m.workers.clear();
      return ioError(std::string("gateway cannot start its I/O threads: ") + e.what());
    }
    m.workers.back()->pool_limit = m.opts.limits.upstream_pool_size;
  }
  for (auto& w : m.workers) {
    w->rng ^= reinterpret_cast<uintptr_t>(w.get()) * 0x2545F4914F6CDD1Dull;
  }
  if (!m.opts.https_listen.empty()) {
    Status s = m.loadTls();
    if (!s) return s;
  }
  if (!m.opts.http_listen.empty()) {
    Status s = m.bind(m.opts.http_listen, false, &m.http_port);
    if (!s) {
      m.workers.clear();
      return s;
    }
  }
  if (!m.opts.https_listen.empty()) {
    Status s = m.bind(m.opts.https_listen, true, &m.https_port);
    if (!s) {
      m.workers.clear();
      return s;
    }
    if (!m.opts.certs.empty() && m.opts.cert_check_interval.count() > 0) {
      Worker& w0 = *m.workers[0];
      m.cert_timer = std::make_unique<Timer>(w0.ioc.get_executor());
      asio::co_spawn(w0.ioc, m.certLoop(), asio::detached);
    }
  }
  // A periodic sweep of idle pooled upstream connections on every worker.
  for (auto& w : m.workers) {
    asio::co_spawn(w->ioc, m.sweepLoop(w.get()), asio::detached);
  }
  m.stopping.store(false);
  m.started = true;
  for (auto& w : m.workers) {
    w->thread = std::thread([wp = w.get()] {
      auto guard = asio::make_work_guard(wp->ioc);
      wp->ioc.run();
    });
  }
  return Status::ok();
}

void Gateway::stop() { impl_->stop(); }

void Gateway::setTable(std::shared_ptr<const RouteTable> table) {
  impl_->setTable(std::move(table));
}

int Gateway::httpPort() const { return impl_->http_port; }
int Gateway::httpsPort() const { return impl_->https_port; }

Status Gateway::reloadCertificates() {
  if (impl_->opts.https_listen.empty()) return Status::ok();
  return impl_->loadTls();
}

std::vector<ServiceStats> Gateway::stats() const {
  std::vector<ServiceStats> out;
  std::lock_guard lock(impl_->svc_mu);
  for (const auto& [k, s] : impl_->services) {
    ServiceStats st;
    st.app = s->app;
    st.service = s->service;
    st.in_flight = s->in_flight.load();
    st.queued = s->queued.load();
    st.arrivals = s->arrivals.load();
    st.responses_2xx = s->r2xx.load();
    st.responses_3xx = s->r3xx.load();
    st.responses_4xx = s->r4xx.load();
    st.responses_5xx = s->r5xx.load();
    st.latency_sum_us = s->latency_sum_us.load();
    st.completed = s->completed.load();
    st.held = s->held.load();
    st.hold_rejected = s->hold_rejected.load();
    st.cold_starts = s->cold_starts.load();
    st.cold_overhead_last_us = s->cold_last_us.load();
    st.cold_overhead_max_us = s->cold_max_us.load();
    out.push_back(std::move(st));
  }
  return out;
}

std::string Gateway::prometheus() const {
  std::string out;
  auto stats = this->stats();
  auto family = [&](const char* name, const char* type, const char* help, auto value_of) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    for (const auto& s : stats) value_of(s);
  };
  auto labels = [](const ServiceStats& s) {
    return "app=\"" + s.app + "\",service=\"" + s.service + "\"";
  };
  auto line = [&](const char* name, const std::string& l, double v) {
    out += name;
    out += '{';
    out += l;
    out += "} ";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += buf;
    out += '\n';
  };
  family("baton_gateway_requests_in_flight", "gauge", "Requests being proxied or parked.",
         [&](const ServiceStats& s) {
           line("baton_gateway_requests_in_flight", labels(s), static_cast<double>(s.in_flight));
         });
  family("baton_gateway_hold_queue_length", "gauge",
         "Requests parked while the service is at zero.", [&](const ServiceStats& s) {
           line("baton_gateway_hold_queue_length", labels(s), static_cast<double>(s.queued));
         });
  family("baton_gateway_requests_total", "counter", "Requests routed to the service.",
         [&](const ServiceStats& s) {
           line("baton_gateway_requests_total", labels(s), static_cast<double>(s.arrivals));
         });
  family("baton_gateway_responses_total", "counter", "Responses by status class.",
         [&](const ServiceStats& s) {
           line("baton_gateway_responses_total", labels(s) + ",code=\"2xx\"",
                static_cast<double>(s.responses_2xx));
           line("baton_gateway_responses_total", labels(s) + ",code=\"3xx\"",
                static_cast<double>(s.responses_3xx));
           line("baton_gateway_responses_total", labels(s) + ",code=\"4xx\"",
                static_cast<double>(s.responses_4xx));
           line("baton_gateway_responses_total", labels(s) + ",code=\"5xx\"",
                static_cast<double>(s.responses_5xx));
         });
  family("baton_gateway_request_duration_seconds_sum", "counter",
         "Sum of request durations (arrival to last byte).", [&](const ServiceStats& s) {
           line("baton_gateway_request_duration_seconds_sum", labels(s),
                static_cast<double>(s.latency_sum_us) / 1e6);
         });
  family("baton_gateway_request_duration_seconds_count", "counter", "Completed requests.",
         [&](const ServiceStats& s) {
           line("baton_gateway_request_duration_seconds_count", labels(s),
                static_cast<double>(s.completed));
         });
  family("baton_gateway_held_total", "counter", "Requests parked at zero.",
         [&](const ServiceStats& s) {
           line("baton_gateway_held_total", labels(s), static_cast<double>(s.held));
         });
  family("baton_gateway_hold_rejected_total", "counter",
         "Parked requests answered 503 (queue full or timeout).", [&](const ServiceStats& s) {
           line("baton_gateway_hold_rejected_total", labels(s),
                static_cast<double>(s.hold_rejected));
         });
  family("baton_gateway_cold_overhead_seconds", "gauge",
         "Last cold start: backend ready to first byte upstream.", [&](const ServiceStats& s) {
           if (s.cold_overhead_last_us >= 0) {
             line("baton_gateway_cold_overhead_seconds", labels(s),
                  static_cast<double>(s.cold_overhead_last_us) / 1e6);
           }
         });
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "# TYPE baton_gateway_connections_total counter\n"
                "baton_gateway_connections_total %lld\n"
                "# TYPE baton_gateway_connections gauge\nbaton_gateway_connections %lld\n"
                "# TYPE baton_gateway_no_route_total counter\nbaton_gateway_no_route_total %lld\n"
                "# TYPE baton_gateway_bad_requests_total counter\n"
                "baton_gateway_bad_requests_total %lld\n"
                "# TYPE baton_gateway_tls_handshake_failures_total counter\n"
                "baton_gateway_tls_handshake_failures_total %lld\n",
                static_cast<long long>(impl_->conns_total.load()),
                static_cast<long long>(impl_->live_conns.load()),
                static_cast<long long>(impl_->no_route.load()),
                static_cast<long long>(impl_->bad_requests.load()),
                static_cast<long long>(impl_->tls_failures.load()));
  out += buf;
  return out;
}

}  // namespace baton::gateway
