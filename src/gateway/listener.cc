// The listeners: one SO_REUSEPORT acceptor per worker and address; each accepted connection
// gets a Conn, a watchdog and a session coroutine on the worker that accepted it.
#include <fcntl.h>

#include "core/listen_address.h"
#include "gateway/runtime.h"

namespace baton::gateway {
namespace {

Result<tcp::endpoint> parseListen(const std::string& listen) {
  auto hp = parseListenAddress(listen);
  if (!hp) return hp.status();
  error_code ec;
  auto addr = asio::ip::make_address(hp->first, ec);
  if (ec) return invalidArgument("listen address \"" + listen + "\": bad host");
  return tcp::endpoint(addr, static_cast<unsigned short>(hp->second));
}

// Sockets must not leak into processes the agent starts.
void setCloexec(int fd) { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

}  // namespace

Awaitable<void> Gateway::Impl::acceptLoop(Worker& w, Socket& listener, bool https) {
  uint64_t accepted = 0;
  for (;;) {
    if (opts.limits.max_connections > 0 &&
        live_conns.load(std::memory_order_relaxed) >= opts.limits.max_connections) {
      // At the limit: accept nothing until a connection ends; new ones wait in the backlog.
      conn_limit_waits.fetch_add(1, std::memory_order_relaxed);
      Timer t(w.ioc.get_executor());
      do {
        t.expires_after(std::chrono::milliseconds(5));
        co_await t.async_wait(kUse);
        if (stopping.load() || !listener.is_open()) co_return;
      } while (live_conns.load(std::memory_order_relaxed) >= opts.limits.max_connections);
    }
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
  // The workers' acceptors share the port through SO_REUSEPORT, which would as gladly share it
  // with another process of the same user (a second agent answered half the requests). A probe
  // without SO_REUSEPORT finds any listener there first: then the agent stops with this error.
  if (endpoint.port() != 0) {
    Acceptor probe(workers.front()->ioc.get_executor());
    error_code ec;
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec == asio::error::address_in_use) {
      return unavailable("gateway cannot listen on " + listen +
                         ": the port is in use by another process (is another agent running?)");
    }
    if (ec) return ioError("gateway cannot listen on " + listen + ": " + ec.message());
  }
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

}  // namespace baton::gateway
