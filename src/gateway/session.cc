// One client connection (README.md "Data flow"): the session coroutine reads a request head,
// asks exchange.h what to do with it (framing verdict, header filter, route, identity), parks it
// in the service's hold queue when the service is at zero, takes or opens an upstream connection,
// sends the rebuilt head with the body bytes at hand in one gather write, streams the rest of the
// body through http1::BodyDecoder, and relays the response head (verbatim minus hop-by-hop lines)
// and body the same way. Every decision is made in exchange.h / http1.h; this file moves bytes and
// awaits.
#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "gateway/runtime.h"

// GCC 12 at -O2 inlines Asio's awaitable frame allocation (its thread-local recycling allocator)
// into the session and then reports the frame's class-specific operator delete as "mismatched"
// with it: a false positive of -Wmismatched-new-delete on coroutine frames (GCC bugs 100485,
// 109224). The pair is Asio's own and matched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace baton::gateway {
namespace {

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

// The client keeps its clean upstream connection for its next request, or closes it when the
// worker already has enough idle ones to that backend.
void keepUpstream(Worker& w, Conn& c) {
  if (!w.pool.roomFor(c.up_backend)) {
    c.up.close();
    return;
  }
  c.up_idle = true;
  w.pool.addKept(c.up_backend);
}

void unkeepUpstream(Worker& w, Conn& c) {
  if (!c.up_idle) return;
  c.up_idle = false;
  w.pool.removeKept(c.up_backend);
}

// Moves the client's kept upstream connection into its backend's pool (or closes it when there
// is no room).
void poolUpstream(Worker& w, Conn& c) {
  unkeepUpstream(w, c);
  if (!c.up.is_open()) return;
  w.pool.put(c.up_backend, std::move(c.up), c.up_expires);
  c.up = Socket(w.reactor);
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
  return w.pool.take(backend.id, now, &c.up);
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

// How relaying the rest of a body ended.
struct BodyRelay {
  enum class End { kDone, kBadFraming, kReadFailed, kWriteFailed };
  End end = End::kDone;
  http1::Error error = http1::Error::kNone;  // kBadFraming: the decoder's; kReadFailed: why
  uint64_t bytes = 0;                        // bytes relayed
};

// Relays the rest of a body from `from` to `to` through `buf` (which may already hold some of
// it): what the decoder says belongs to the body, written as it arrives. A close-delimited body
// ends with `from`'s end of stream; any other body cut short is kReadFailed. The bytes after the
// body (the next request) stay in `buf`.
template <class From, class To>
Awaitable<BodyRelay> relayBody(Conn& c, From& from, To& to, IoBuf& buf, http1::BodyDecoder& body,
                               Duration idle) {
  BodyRelay r;
  while (!body.done()) {
    if (buf.size() > 0) {
      c.iov.clear();
      size_t used = decodeBody(body, buf.data(), buf.size(), c.iov, &r.error);
      if (r.error != http1::Error::kNone) {
        r.end = BodyRelay::End::kBadFraming;
        co_return r;
      }
      c.setDeadline(idle);
      if (co_await writeAll(to, c.iov, c.scratch)) {
        r.end = BodyRelay::End::kWriteFailed;
        co_return r;
      }
      r.bytes += used;
      buf.consume(used);
      continue;
    }
    buf.compact();
    c.setDeadline(idle);
    auto [ec, n] = co_await readSome(from, buf.space());
    if (ec || n == 0) {
      r.error = body.finish();  // complete only when the body is close-delimited
      if (r.error != http1::Error::kNone) r.end = BodyRelay::End::kReadFailed;
      co_return r;
    }
    buf.e += n;
  }
  co_return r;
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
// `*why` says why not (left alone on success).
Awaitable<bool> connectUpstream(Conn& c, const BackendState& backend, Duration timeout,
                                std::string* why) {
  c.up.close();
  c.up_reused = false;
  c.rbuf.b = c.rbuf.e = 0;
  c.setDeadline(timeout);
  c.fired = false;
  auto [ec, ig_n] = co_await c.up.async_connect(backend.endpoint, kUse);
  const bool timed_out = c.fired;
  c.fired = false;
  if (ec) {
    c.up.close();
    *why = timed_out ? std::string("no answer in time") : ec.message();
    co_return false;
  }
  c.up.setNoDelay();
  co_return true;
}

// Gives c.up a connection to a backend of `rt` (README.md "Connecting upstream"): an idle pooled
// one first, else a new one. A connect that is refused, reset or not answered within
// upstream_connect_timeout is tried again after a short backoff (25 ms, doubling up to 1 s), on
// another backend when there is one, until upstream_connect_budget (at most the response timeout)
// has passed: a freshly started instance whose listen backlog overflowed, or one restarting, is
// waited for instead of being reported as a failure. Returns the backend, or nullptr with `*why`
// set. A request that takes a pooled connection reads no clock here.
Awaitable<BackendState*> connectAny(Worker& w, Conn& c, const EntryRuntime& rt,
                                    const GatewayLimits& lim, std::string* why) {
  const Duration budget = std::min(lim.upstream_connect_budget, lim.upstream_response_timeout);
  Steady::time_point started{}, give_up{};  // set at the first connect
  Duration backoff(25);
  BackendState* failed = nullptr;
  for (int tries = 1;; ++tries) {
    // Another backend than the one that just failed, when there is one.
    BackendState* backend = pickBackend(w, rt, rt.backends.size() > 1 ? failed : nullptr);
    if (backend == nullptr) {
      *why = "no backend";
      co_return nullptr;
    }
    c.up_reused = false;
    if (takeIdleUpstream(w, c, *backend)) {
      c.up_reused = true;
      co_return backend;
    }
    if (started == Steady::time_point{}) {
      started = Steady::now();
      give_up = started + budget;
    }
    const Duration left = std::chrono::duration_cast<Duration>(give_up - Steady::now());
    std::string err;
    if (co_await connectUpstream(
            c, *backend, std::min(lim.upstream_connect_timeout, std::max(left, Duration(1))),
            &err)) {
      co_return backend;
    }
    backend->ejected_until_ns.store((Steady::now() + lim.eject_time).time_since_epoch().count(),
                                    std::memory_order_relaxed);
    failed = backend;
    if (Steady::now() + backoff >= give_up || !c.open) {
      *why =
          fmt::format("upstream connect to {} failed ({} tries in {} ms): {}", backend->key, tries,
                      std::chrono::duration_cast<Duration>(Steady::now() - started).count(), err);
      co_return nullptr;
    }
    Timer pause(c.up.get_executor());
    pause.expires_after(backoff);
    co_await pause.async_wait(kUse);
    backoff = std::min(backoff * 2, Duration(1'000));
  }
}

}  // namespace

namespace detail {

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

}  // namespace detail

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
      auto timer = std::make_shared<Timer>(w.ioc.get_executor());
      timer->expires_after(opts.hold_timeout);
      auto waiter = std::make_shared<HoldQueue::Waiter>(
          [timer] { asio::post(timer->get_executor(), [timer] { timer->cancel(); }); });
      bool call_cold = false;
      const HoldQueue::Admit admit =
          svc->hold.park(waiter, opts.hold_queue, Steady::now(), &call_cold);
      if (admit != HoldQueue::Admit::kHasBackends) {
        if (admit == HoldQueue::Admit::kFull) {
          svc->hold_rejected.fetch_add(1, std::memory_order_relaxed);
          co_await respondError(503, "service is starting: hold queue full", true,
                                "Retry-After: 1\r\n");
          finish(503);
          co_return;
        }
        svc->held.fetch_add(1, std::memory_order_relaxed);
        if (call_cold && hooks.on_cold) hooks.on_cold(svc->app, svc->service);
        c->clearDeadline();
        co_await timer->async_wait(kUse);
        if (!svc->hold.leave(waiter) || stopping.load()) {
          svc->hold_rejected.fetch_add(1, std::memory_order_relaxed);
          co_await respondError(503, "service did not become ready in time", true,
                                "Retry-After: 1\r\n");
          finish(503);
          co_return;
        }
        was_parked = true;
        release_next.queue = &svc->hold;
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
        // (A view, not `cond ? "literal" : std::string` inside the co_await: g++ 12 destroys
        // such a conditional's temporary wrongly in a coroutine frame; ASan caught a bad free.)
        const std::string_view message =
            status == 404 ? std::string_view("no route") : std::string_view(plan.message);
        co_await respondError(status, message, close);
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

      // ---- Connect (an idle connection first; a failed connect is tried again).
      std::string connect_error;
      BackendState* backend = co_await connectAny(w, *c, rt, lim, &connect_error);
      if (backend == nullptr) {
        co_await upstreamError(502, connect_error);
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
        std::string why;
        if (wec) {
          if (c->up_reused && attempt == 0 &&
              co_await connectUpstream(*c, *backend, lim.upstream_connect_timeout, &why)) {
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
          // Stream the rest of the request body.
          BodyRelay rel = co_await relayBody(*c, s, c->up, c->cbuf, body, lim.idle_timeout);
          bytes_up += rel.bytes;
          if (rel.end == BodyRelay::End::kBadFraming) {
            int status = statusForRequestError(rel.error);
            co_await respondError(status, std::string("malformed request body: ") +
                                              http1::errorText(rel.error), true);
            finish(status);
            co_return;
          }
          if (rel.end == BodyRelay::End::kWriteFailed) {
            co_await upstreamError(502, "upstream write failed");
            co_return;
          }
          if (rel.end == BodyRelay::End::kReadFailed) {
            finish(499);  // the client went away mid-body
            co_return;
          }
        }
        HeadRead hr = co_await readResponseHead(*c, lim.upstream_response_timeout, &rhead);
        if (hr == HeadRead::kOk) break;
        if (hr == HeadRead::kClosedBeforeAnyByte && replayable && c->up_reused && attempt == 0 &&
            idempotent(req.method()) &&
            co_await connectUpstream(*c, *backend, lim.upstream_connect_timeout, &why)) {
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
      // A request released from the hold queue lets the next ones go once the backend answered:
      // a freshly started instance gets about as many connections as it can take.
      release_next.fire();

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
        BodyRelay rel = co_await relayBody(*c, c->up, s, c->rbuf, rbody, lim.idle_timeout);
        bytes_down += rel.bytes;
        if (rel.end != BodyRelay::End::kDone) {
          spdlog::warn("gateway: {} {} -> {}/{} backend {}: response broken off: {}",
                       req.method(), plan.target, svc->app, svc->service, backend_key,
                       rel.end == BodyRelay::End::kWriteFailed ? "client write failed"
                                                               : http1::errorText(rel.error));
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
      // Idle for at most upstream_idle_timeout, and less than the backend's own Keep-Alive:
      // timeout=N, so that the gateway stops using a connection before the backend closes it.
      Duration max_idle = lim.upstream_idle_timeout;
      if (resp.keepAliveTimeout() >= 0) {
        // A second less than the backend's timeout, or half of it when that is short (Node
        // says timeout=1 when its keepAliveTimeout is 1 s; not reusing at all cost it two
        // thirds of its throughput).
        const int64_t t = int64_t{resp.keepAliveTimeout()} * 1000;
        max_idle = std::min(max_idle, Duration(std::max(t - 1000, t / 2)));
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

}  // namespace baton::gateway
