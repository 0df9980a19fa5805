#include "mesh/proxy.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "core/hold_queue.h"
#include "core/listen_address.h"
#include "edge/await.h"
#include "model/names.h"

namespace baton::mesh {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
// The data path's sockets are edge's (src/edge/edge.h): a read either succeeds or waits for an
// edge, without the failed recv Asio's sockets pay before each wait (bench/mesh measured about
// one per relayed message).
using Socket = edge::Socket;
using TlsStream = ssl::stream<Socket>;
using edge::Awaitable;
using edge::Timer;
using edge::kUse;
using edge::readSome;
using edge::sendAll;
constexpr size_t kRelayBuf = 16 * 1024;
constexpr int kAcceptBurst = 4;  // connections accepted before the accept loop yields

Result<tcp::endpoint> parseEndpoint(const std::string& hostport) {
  auto hp = parseListenAddress(hostport);
  if (!hp) return hp.status();
  error_code ec;
  auto addr = asio::ip::make_address(hp->first, ec);
  if (ec) return invalidArgument("expected an IP address and port, got \"" + hostport + "\"");
  return tcp::endpoint(addr, static_cast<uint16_t>(hp->second));
}

// The URI SAN of the peer's certificate (empty when none).
std::string peerUri(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string uri;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && uri.empty(); ++i) {
      GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_URI) continue;
      uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                 static_cast<size_t>(ASN1_STRING_length(n->d.uniformResourceIdentifier)));
    }
    GENERAL_NAMES_free(names);
  }
  X509_free(cert);
  return uri;
}

// A relayed connection that a new deny may cut.
struct Live {
  ServiceRef caller, destination;
  std::function<void()> cut;
};

}  // namespace

std::string meshServerName(const ServiceRef& s) { return s.service + "." + s.app + ".mesh.baton"; }

std::optional<ServiceRef> parseMeshServerName(std::string_view name) {
  constexpr std::string_view kSuffix = ".mesh.baton";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return std::nullopt;
  }
  name.remove_suffix(kSuffix.size());
  auto dot = name.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view svc = name.substr(0, dot), app = name.substr(dot + 1);
  if (!model::isValidName(svc) || !model::isValidName(app)) return std::nullopt;
  return ServiceRef{std::string(app), std::string(svc)};
}

struct MeshProxy::Impl {
  MeshProxyOptions options;
  MeshCa& ca;
  Clock& clock;
  MeshProxyHooks hooks;
  std::shared_ptr<Socket> mesh_acceptor;
  std::string mesh_address;
  std::shared_ptr<ssl::context> server_ctx;  // SNI switches to the destination's context
  // Everything below is used on the proxy's thread only.
  std::shared_ptr<const MeshView> view = std::make_shared<MeshView>();
  std::map<std::pair<std::string, int>, std::shared_ptr<Socket>> vip_acceptors;
  struct Certs {
    std::shared_ptr<ssl::context> client, server;
    TimePoint renew_at{};
    // TLS sessions this service's client context may resume, by "<destination>@<node proxy>":
    // the latest ticket each gave. They go with the contexts when the leaf is renewed.
    std::map<std::string, std::shared_ptr<SSL_SESSION>> sessions;
  };
  // What a caller-side connection's SSL carries (ex data) for onNewSession.
  struct SessionSlot {
    Impl* impl;
    std::string caller;  // "app/svc"
    std::string key;     // as in Certs::sessions
  };
  static int sessionIndex() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
  std::map<std::string, Certs> certs;  // by "app/svc"
  std::list<Live*> live;
  std::map<std::string, size_t> round_robin;
  // Connections held per destination at zero (the gateway's component), by "app/svc"; never
  // erased while the proxy runs, so a held connection's pointer stays valid.
  struct Hold {
    ServiceRef destination;
    std::unique_ptr<HoldQueue> queue;
  };
  std::map<std::string, Hold> holds;
  std::atomic<int64_t> outbound{0}, inbound{0}, denied{0}, unknown_peer{0}, cut{0}, failed{0},
      certs_issued{0}, open{0}, limited{0}, resumed{0};
  bool stopping = false;
  int active = 0;  // connection coroutines running (proxy thread only)
  struct Active {
    Impl* impl;
    explicit Active(Impl* i) : impl(i) { ++impl->active; }
    ~Active() { --impl->active; }
  };
  mutable std::mutex demand_mu;
  std::map<std::string, MeshDemand> demand;  // guarded by demand_mu

  // Adds to one service's demand counters.
  void count(const ServiceRef& s, int64_t arrivals, int64_t open, int64_t held) {
    std::lock_guard lock(demand_mu);
    MeshDemand& d = demand[s.str()];
    d.arrivals += arrivals;
    d.open += open;
    d.held += held;
  }
  // The sockets live on `reactor`, which outlives io_context (coroutines that its destruction
  // unwinds close sockets on it); its pending operations go in stop(), before io_context does.
  edge::Reactor reactor;
  // Last, so that it goes first: the coroutine frames it may still hold (a forced stop) refer to
  // the members above. Acceptors are released in stop(), before it goes. Every socket and timer
  // is used on the proxy's thread only (other threads post), so Asio's per-descriptor locks are
  // off.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;

  Impl(MeshProxyOptions o, MeshCa& c, Clock& k, MeshProxyHooks h)
      : options(std::move(o)), ca(c), clock(k), hooks(std::move(h)) {}

  // ---- certificates ----

  std::shared_ptr<ssl::context> makeContext(ssl::context::method m) {
    auto ctx = std::make_shared<ssl::context>(m);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
    ctx->add_certificate_authority(asio::buffer(ca.rootPem()));
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    if (m == ssl::context::tls_server) {
      // Needed to resume a session whose client showed a certificate; one for every destination:
      // the session's identity is the caller's, and the destination is decided per connection.
      static constexpr unsigned char kContext[] = "baton-mesh";
      SSL_CTX_set_session_id_context(ctx->native_handle(), kContext, sizeof kContext - 1);
    }
    return ctx;
  }

  // The contexts of `service`, issuing a new leaf when there is none or it is due for renewal.
  // Open connections keep the context (and so the leaf) they started with.
  Certs* certsFor(const ServiceRef& service) {
    auto& c = certs[service.str()];
    if (c.client && clock.now() < c.renew_at) return &c;
    auto leaf = ca.issue(service, options.cert_ttl);
    if (!leaf) {
      spdlog::warn("mesh: issuing a certificate for {}: {}", service.str(), leaf.status().toString());
      return c.client ? &c : nullptr;  // keep the old one while it is valid
    }
    certs_issued.fetch_add(1, std::memory_order_relaxed);
    Certs fresh;
    error_code ec;
    for (auto* slot : {&fresh.client, &fresh.server}) {
      *slot = makeContext(slot == &fresh.client ? ssl::context::tls_client : ssl::context::tls_server);
      (*slot)->use_certificate_chain(asio::buffer(leaf->cert_pem), ec);
      if (!ec) (*slot)->use_private_key(asio::buffer(leaf->key_pem), ssl::context::pem, ec);
      if (ec) {
        spdlog::warn("mesh: loading the certificate of {}: {}", service.str(), ec.message());
        return c.client ? &c : nullptr;
      }
    }
    // Resumption (TLS 1.3 tickets): a new connection between the same two proxies skips the
    // certificates' signatures and checks; the identities are those of the full handshake the
    // session came from, and the intentions are still decided per connection.
    SSL_CTX_set_session_cache_mode(fresh.client->native_handle(),
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(fresh.client->native_handle(), &Impl::onNewSession);
    fresh.renew_at = clock.now() + options.cert_ttl * 2 / 3;
    c = std::move(fresh);
    return &c;
  }

  // A ticket the destination's proxy sent (read on the caller side's connection): kept for the
  // next connection from the same service to the same destination and proxy, unless the
  // service's contexts were renewed since.
  static int onNewSession(SSL* ssl, SSL_SESSION* session) {
    auto* slot = static_cast<SessionSlot*>(SSL_get_ex_data(ssl, sessionIndex()));
    if (slot == nullptr) return 0;
    auto it = slot->impl->certs.find(slot->caller);
    if (it == slot->impl->certs.end() || !it->second.client ||
        it->second.client->native_handle() != SSL_get_SSL_CTX(ssl)) {
      return 0;
    }
    it->second.sessions[slot->key] = std::shared_ptr<SSL_SESSION>(session, SSL_SESSION_free);
    return 1;  // the reference is ours
  }

  static int onServerName(SSL* ssl, int* alert, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    auto dst = name ? parseMeshServerName(name) : std::nullopt;
    // Only services that exist get a certificate: the name comes before the client has shown
    // its own, and must not make the proxy sign (and keep) one for every name it is sent.
    if (!dst || !self->view->upstreams.count(dst->str())) {
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    Certs* c = self->certsFor(*dst);
    if (c == nullptr) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    SSL_set_SSL_CTX(ssl, c->server->native_handle());
    return SSL_TLSEXT_ERR_OK;
  }

  // ---- connections ----

  // Runs `op` (an awaitable) with a deadline: the socket is closed when it passes.
  template <class Op>
  Awaitable<error_code> withDeadline(Socket& s, Op op) {
    Timer timer(ioc.get_executor(), options.connect_timeout);
    timer.async_wait([&s](error_code ec) {
      if (!ec) s.close();
    });
    error_code ec = co_await std::move(op);
    timer.cancel();
    co_return ec;
  }

  struct Registration {
    Impl* impl;
    std::list<Live*>::iterator it;
    Live entry;
    Registration(Impl* i, ServiceRef caller, ServiceRef dst, std::function<void()> cut)
        : impl(i), entry{std::move(caller), std::move(dst), std::move(cut)} {
      it = impl->live.insert(impl->live.end(), &entry);
      impl->open.fetch_add(1, std::memory_order_relaxed);
    }
    ~Registration() {
      impl->live.erase(it);
      impl->open.fetch_sub(1, std::memory_order_relaxed);
    }
  };

  // Ends what is sent on `s`, leaving its reads open (a half-close): a plain socket sends FIN; a
  // TLS stream sends its close_notify, then FIN. False when that cannot be done cleanly (the
  // caller then closes both sides).
  static bool endWrites(Socket& s) { return s.shutdownWrite(); }
  static bool endWrites(TlsStream& t) {
    SSL* ssl = t.native_handle();
    Socket& sock = t.next_layer();
    // Asio's async_shutdown would send the close_notify and then wait for the peer's, reading
    // beside the other direction's read. So the close_notify is written into a memory BIO that
    // replaces the write side of Asio's BIO pair (the reads still go through the pair), and sent
    // from there. Only when nothing else is on its way out (a TLS 1.3 key update answered by
    // the read side), or its bytes would interleave with ours.
    BIO* pair = SSL_get_wbio(ssl);
    if (pair == nullptr || BIO_ctrl_wpending(pair) > 0 || sock.writing() ||
        (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0) {
      return false;
    }
    BIO* out = BIO_new(BIO_s_mem());
    if (out == nullptr) return false;
    // Asio gave the pair as both BIOs (SSL_set_bio, one reference each): SSL_set0_wbio releases
    // the write side's, the read side keeps its own. The SSL owns `out` from here on.
    SSL_set0_wbio(ssl, out);
    ERR_clear_error();
    // 0: ours is written, the peer's not seen yet; 1: the peer had ended first.
    const int r = SSL_shutdown(ssl);
    ERR_clear_error();
    char* bytes = nullptr;
    const long n = BIO_get_mem_data(out, &bytes);
    if (r < 0 || n <= 0) return false;
    // A few dozen bytes: all of it goes, or the socket is full (a peer that does not read) and
    // the caller closes both.
    return ::send(sock.native_handle(), bytes, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT) ==
               n &&
           sock.shutdownWrite();
  }

  // Copies bytes both ways. A side that ends cleanly (FIN; with TLS, a close_notify) has its end
  // passed on and the other direction goes on, so a client may half-close and still read its
  // answer. An error, a TLS stream that ends without close_notify (possibly truncated by someone
  // on the path) or an end that cannot be passed on closes both; so does the end of both.
  template <class A, class B>
  Awaitable<void> relay(A& a, B& b, Registration&) {
    auto closeBoth = [&] {
      a.lowest_layer().close();
      b.lowest_layer().close();
    };
    auto pump = [closeBoth](auto& from, auto& to) -> Awaitable<void> {
      std::unique_ptr<char[]> buf(new char[kRelayBuf]);
      for (;;) {
        auto [ec, n] = co_await readSome(from, asio::buffer(buf.get(), kRelayBuf));
        if (ec == asio::error::eof && endWrites(to)) co_return;  // the other direction goes on
        if (ec) break;
        const asio::const_buffer out(buf.get(), n);
        if (co_await sendAll(to, std::span(&out, 1))) break;
      }
      closeBoth();
    };
    // Both directions at once; the frame (and the sockets' owners) outlive them both.
    auto done = std::make_shared<Timer>(ioc.get_executor(), Timer::time_point::max());
    auto remaining = std::make_shared<int>(2);
    auto finish = [done, remaining](std::exception_ptr) {
      if (--*remaining == 0) done->cancel();
    };
    asio::co_spawn(ioc, pump(a, b), finish);
    asio::co_spawn(ioc, pump(b, a), finish);
    co_await done->async_wait(kUse);
    while (*remaining > 0) {  // cancelled early (stop): wait for the pumps to notice
      done->expires_at(Timer::time_point::max());
      co_await done->async_wait(kUse);
    }
    closeBoth();  // both directions ended (half-closed one after the other)
  }

  // Caller side: a connection to a service address from an instance of this node (`from`).
  Awaitable<void> outboundConn(Socket sock, tcp::endpoint from, ServiceRef dst) {
    Active running(this);
    error_code ec;
    const std::string peer = from.address().to_string();
    std::shared_ptr<const MeshView> v = view;
    auto who = v->callers.find(peer);
    if (who == v->callers.end()) {
      unknown_peer.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    const ServiceRef caller = who->second;
    if (Verdict verdict = v->decide(caller, dst); !verdict.allowed) {
      denied.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("mesh: {} -> {} refused: {}", caller.str(), dst.str(), verdict.reason);
      co_return;
    }
    count(dst, 1, 0, 0);
    // Hold while the destination has no healthy instance (scale from zero), in the same queue
    // component the gateway parks requests in; the autoscaler sees held connections as demand.
    struct Held {
      Impl* impl;
      ServiceRef dst;
      bool on = false;
      void set(bool v) {
        if (v != on) impl->count(dst, 0, 0, v ? 1 : -1);
        on = v;
      }
      ~Held() { set(false); }
    } held{this, dst};
    const auto deadline = std::chrono::steady_clock::now() + options.hold_timeout;
    ReleaseNext release_next;  // once this connection reached the destination, the next ones go
    MeshEndpoint ep;
    for (;;) {
      v = view;
      if (const auto* eps = v->healthyOf(dst)) {
        ep = (*eps)[round_robin[dst.str()]++ % eps->size()];
        break;
      }
      HoldQueue& queue = holdFor(dst);
      auto timer = std::make_shared<Timer>(ioc.get_executor(), deadline);
      auto waiter = std::make_shared<HoldQueue::Waiter>(
          [timer] { asio::post(timer->get_executor(), [timer] { timer->cancel(); }); });
      bool call_cold = false;
      const auto admit =
          stopping ? HoldQueue::Admit::kFull
                   : queue.park(waiter, options.hold_queue, std::chrono::steady_clock::now(),
                                &call_cold);
      if (admit == HoldQueue::Admit::kHasBackends) continue;  // the view just changed
      if (admit == HoldQueue::Admit::kFull) {
        failed.fetch_add(1, std::memory_order_relaxed);
        co_return;
      }
      held.set(true);
      if (call_cold && hooks.on_cold) hooks.on_cold(dst.app, dst.service);
      co_await timer->async_wait(kUse);
      if (!queue.leave(waiter) || stopping) {
        failed.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("mesh: {} -> {}: no healthy instance within {} ms", caller.str(), dst.str(),
                     options.hold_timeout.count());
        co_return;
      }
      release_next.queue = &queue;
    }
    held.set(false);
    std::string to = ep.node == options.node_id ? mesh_address : "";
    if (auto n = v->node_mesh.find(ep.node); to.empty() && n != v->node_mesh.end()) to = n->second;
    auto target = parseEndpoint(to);
    Certs* c = certsFor(caller);
    if (!target || c == nullptr) {
      failed.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    auto ctx = c->client;  // keeps this connection's leaf alive
    TlsStream tls(Socket(reactor), *ctx);
    const std::string sni = meshServerName(dst);
    SSL_set_tlsext_host_name(tls.native_handle(), sni.c_str());
    SessionSlot slot{this, caller.str(), dst.str() + "@" + to};
    SSL_set_ex_data(tls.native_handle(), sessionIndex(), &slot);
    if (auto s = c->sessions.find(slot.key); s != c->sessions.end()) {
      if (SSL_SESSION_is_resumable(s->second.get())) {
        SSL_set_session(tls.native_handle(), s->second.get());
      } else {
        c->sessions.erase(s);
      }
    }
    ec = co_await withDeadline(tls.next_layer(), [&]() -> Awaitable<error_code> {
      auto [e, ig_n] = co_await tls.next_layer().async_connect(*target, kUse);
      if (e) co_return e;
      tls.next_layer().setNoDelay();
      auto [h] = co_await tls.async_handshake(ssl::stream_base::client, kUse);
      co_return h;
    }());
    const std::string expected = spiffeId(ca.trustDomain(), dst);
    if (ec || peerUri(tls.native_handle()) != expected) {
      failed.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("mesh: {} -> {}: {} refused the connection ({})", caller.str(), dst.str(), to,
                   ec ? ec.message() : "it is not " + expected);
      co_return;
    }
    release_next.fire();
    outbound.fetch_add(1, std::memory_order_relaxed);
    if (SSL_session_reused(tls.native_handle())) resumed.fetch_add(1, std::memory_order_relaxed);
    count(dst, 0, 1, 0);
    struct Open {
      Impl* impl;
      ServiceRef dst;
      ~Open() { impl->count(dst, 0, -1, 0); }
    } open_guard{this, dst};
    Registration reg(this, caller, dst, [&] {
      sock.close();
      tls.next_layer().close();
    });
    co_await relay(sock, tls, reg);
  }

  // Destination side: mutual TLS from a node proxy.
  Awaitable<void> inboundConn(Socket sock) {
    Active running(this);
    auto ctx = server_ctx;
    TlsStream tls(std::move(sock), *ctx);
    error_code ec = co_await withDeadline(tls.next_layer(), [&]() -> Awaitable<error_code> {
      auto [h] = co_await tls.async_handshake(ssl::stream_base::server, kUse);
      co_return h;
    }());
    if (ec) {
      failed.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    const char* name = SSL_get_servername(tls.native_handle(), TLSEXT_NAMETYPE_host_name);
    auto dst = name ? parseMeshServerName(name) : std::nullopt;
    auto caller = parseSpiffeId(ca.trustDomain(), peerUri(tls.native_handle()));
    if (!dst || !caller) {
      denied.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    std::shared_ptr<const MeshView> v = view;
    if (Verdict verdict = v->decide(*caller, *dst); !verdict.allowed) {
      denied.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("mesh: {} -> {} refused at the destination: {}", caller->str(), dst->str(),
                   verdict.reason);
      co_return;
    }
    std::vector<MeshEndpoint> local;
    if (const auto* eps = v->healthyOf(*dst)) {
      for (const auto& e : *eps) {
        if (e.node == options.node_id) local.push_back(e);
      }
    }
    if (local.empty()) {
      failed.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    const MeshEndpoint& ep = local[round_robin["in:" + dst->str()]++ % local.size()];
    Socket up(reactor);
    error_code aec;
    tcp::endpoint target(asio::ip::make_address(ep.address, aec), static_cast<uint16_t>(ep.port));
    if (aec) co_return;
    // Who is calling, for the instance (docs/mesh.md "Who is calling"): an instance in a network
    // of its own sees the connection come from the caller's service address (edge binds it for
    // addresses other than loopback).
    const std::string from = v->addressOf(*caller);
    ec = co_await withDeadline(up, [&]() -> Awaitable<error_code> {
      auto [e, ig_n] = co_await up.async_connect(target, from, kUse);
      co_return e;
    }());
    if (ec) {
      failed.fetch_add(1, std::memory_order_relaxed);
      if (ec.value() == EADDRNOTAVAIL) {
        spdlog::warn("mesh: {} -> {}: cannot connect from {}", caller->str(), dst->str(), from);
      }
      co_return;
    }
    up.setNoDelay();
    inbound.fetch_add(1, std::memory_order_relaxed);
    Registration reg(this, *caller, *dst, [&] {
      up.close();
      tls.next_layer().close();
    });
    co_await relay(tls, up, reg);
  }

  // A listening socket on the reactor (Asio sets it up: options, bind, listen), or null with
  // `ec` set.
  std::shared_ptr<Socket> listenOn(const tcp::endpoint& ep, error_code& ec) {
    tcp::acceptor a(ioc);
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return nullptr;
    int fd = a.release(ec);
    if (ec) return nullptr;
    // Non-blocking for the reactor; close-on-exec: no service the agent starts may inherit it.
    if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC) != 0) {
      ec = error_code(errno, boost::system::system_category());
      ::close(fd);
      return nullptr;
    }
    auto s = std::make_shared<Socket>(reactor, fd, ec);
    return ec ? nullptr : s;
  }

  // Accepts on `listener` until it is closed; `handle(socket, peer)` is each connection's
  // coroutine.
  template <class Handler>
  Awaitable<void> acceptLoop(std::shared_ptr<Socket> listener, Handler handle) {
    int accepted = 0;
    for (;;) {
      tcp::endpoint peer;
      error_code ec;
      int fd = listener->accept(&peer, ec);
      if (ec == asio::error::would_block) {
        auto [wec, ig_n] = co_await listener->async_wait_readable(kUse);
        if (wec || stopping || !listener->is_open()) co_return;
        continue;
      }
      if (ec) {
        if (stopping || !listener->is_open()) co_return;
        // Out of descriptors and the like: pause rather than spin.
        Timer t(ioc.get_executor(), std::chrono::milliseconds(50));
        co_await t.async_wait(kUse);
        continue;
      }
      if (stopping || active >= options.max_connections) {  // bounded: closed at once, counted
        if (!stopping) limited.fetch_add(1, std::memory_order_relaxed);
        ::close(fd);
        continue;
      }
      Socket sock(reactor, fd, ec);
      if (ec) continue;
      sock.setNoDelay();
      asio::co_spawn(ioc, handle(std::move(sock), peer), asio::detached);
      // A few at a time, then the queue: a burst of new connections (each a TLS handshake)
      // must not all go ahead of the bytes of connections already relaying.
      if (++accepted % kAcceptBurst == 0) co_await asio::post(ioc.get_executor(), kUse);
    }
  }

  // ---- views ----

  HoldQueue& holdFor(const ServiceRef& dst) {
    Hold& h = holds[dst.str()];
    if (!h.queue) {
      h.destination = dst;
      h.queue = std::make_unique<HoldQueue>();
      h.queue->setHasBackends(view->healthyOf(dst) != nullptr);
    }
    return *h.queue;
  }

  void applyView(std::shared_ptr<const MeshView> v) {
    view = std::move(v);
    // Held connections go (in a ramp) once their destination has a healthy instance.
    for (auto& [_, h] : holds) h.queue->setHasBackends(view->healthyOf(h.destination) != nullptr);
    // Cut what the new view denies.
    std::vector<std::pair<Live*, std::string>> doomed;  // decided once, then cut
    for (Live* l : live) {
      Verdict v = view->decide(l->caller, l->destination);
      if (!v.allowed) doomed.emplace_back(l, std::move(v.reason));
    }
    for (auto& [l, reason] : doomed) {
      cut.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("mesh: cutting {} -> {}: {}", l->caller.str(), l->destination.str(), reason);
      l->cut();
    }
    // Listen on every service address the view names.
    std::map<std::pair<std::string, int>, ServiceRef> want;
    for (const auto& [addr, svc] : view->vips) {
      want[{addr, options.vip_port}] = svc;
      if (auto p = view->ports.find(svc.str()); p != view->ports.end()) {
        for (int port : p->second) want[{addr, port}] = svc;
      }
    }
    for (auto it = vip_acceptors.begin(); it != vip_acceptors.end();) {
      if (want.count(it->first)) {
        ++it;
        continue;
      }
      it->second->close();
      it = vip_acceptors.erase(it);
    }
    for (const auto& [key, svc] : want) {
      if (vip_acceptors.count(key)) continue;
      error_code ec;
      tcp::endpoint ep(asio::ip::make_address(key.first, ec), static_cast<uint16_t>(key.second));
      std::shared_ptr<Socket> a;
      if (!ec) a = listenOn(ep, ec);
      if (ec) {
        spdlog::warn("mesh: cannot listen on {}:{} for {}: {}", key.first, key.second, svc.str(),
                     ec.message());
        continue;
      }
      vip_acceptors[key] = a;
      ServiceRef dst = svc;
      asio::co_spawn(ioc,
                     acceptLoop(a, [this, dst](Socket s, tcp::endpoint peer) {
                       return outboundConn(std::move(s), peer, dst);
                     }),
                     asio::detached);
    }
  }
};

MeshProxy::MeshProxy(MeshProxyOptions options, MeshCa& ca, Clock& clock, MeshProxyHooks hooks)
    : impl_(std::make_unique<Impl>(std::move(options), ca, clock, std::move(hooks))) {}

MeshProxy::~MeshProxy() { stop(); }

Status MeshProxy::start() {
  Impl& m = *impl_;
  auto ep = parseEndpoint(m.options.listen);
  if (!ep) return ep.status();
  m.server_ctx = m.makeContext(ssl::context::tls_server);
  SSL_CTX_set_tlsext_servername_callback(m.server_ctx->native_handle(), &Impl::onServerName);
  SSL_CTX_set_tlsext_servername_arg(m.server_ctx->native_handle(), &m);
  // Sessions resume from the tickets this context gives (stateless: nothing kept per client
  // here), valid 10 minutes: far less than a leaf lives after its renewal (a third of its TTL).
  SSL_CTX_set_session_cache_mode(m.server_ctx->native_handle(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(m.server_ctx->native_handle(), 600);
  try {
    m.reactor.start(m.ioc);
  } catch (const std::exception& e) {  // the reactor's epoll instance (EMFILE, ENOMEM)
    return ioError(std::string("mesh: ") + e.what());
  }
  error_code ec;
  auto a = m.listenOn(*ep, ec);
  if (!a) return ioError("mesh: cannot listen on " + m.options.listen + ": " + ec.message());
  tcp::endpoint bound;
  socklen_t len = static_cast<socklen_t>(bound.capacity());
  if (::getsockname(a->native_handle(), bound.data(), &len) == 0) bound.resize(len);
  m.mesh_address = bound.address().to_string() + ":" + std::to_string(bound.port());
  m.mesh_acceptor = a;
  asio::co_spawn(m.ioc,
                 m.acceptLoop(a, [&m](Socket s, tcp::endpoint) {
                   return m.inboundConn(std::move(s));
                 }),
                 asio::detached);
  m.work.emplace(m.ioc.get_executor());
  m.thread = std::thread([&m] { m.ioc.run(); });
  return Status::ok();
}

void MeshProxy::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  asio::post(m.ioc, [&m] {
    m.stopping = true;
    if (m.mesh_acceptor) m.mesh_acceptor->close();
    for (auto& [_, a] : m.vip_acceptors) a->close();
    std::vector<Live*> all(m.live.begin(), m.live.end());
    for (Live* l : all) l->cut();
    for (auto& [_, h] : m.holds) h.queue->abandon();
    // Done when every connection has ended; whatever still runs after a grace period (a hold,
    // a handshake) is dropped.
    auto grace = std::make_shared<asio::steady_timer>(m.ioc);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    auto check = std::make_shared<std::function<void(error_code)>>();
    *check = [&m, grace, until, check](error_code) {
      if (m.active == 0 || std::chrono::steady_clock::now() >= until) {
        m.ioc.stop();
        *check = nullptr;  // breaks the cycle
        return;
      }
      grace->expires_after(std::chrono::milliseconds(10));
      grace->async_wait(*check);
    };
    (*check)(error_code());
  });
  m.work.reset();
  m.thread.join();
  m.reactor.shutdown();  // pending operations (and the coroutines they would resume) go
  m.vip_acceptors.clear();
  m.mesh_acceptor.reset();
}

void MeshProxy::setView(std::shared_ptr<const MeshView> view) {
  Impl& m = *impl_;
  asio::post(m.ioc, [&m, v = std::move(view)]() mutable { m.applyView(std::move(v)); });
}

std::string MeshProxy::meshAddress() const { return impl_->mesh_address; }

MeshProxyStats MeshProxy::stats() const {
  const Impl& m = *impl_;
  auto g = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {g(m.outbound), g(m.inbound),      g(m.denied), g(m.unknown_peer), g(m.cut),
          g(m.failed),   g(m.certs_issued), g(m.open),   g(m.limited), g(m.resumed)};
}

std::map<std::string, MeshDemand> MeshProxy::demand() const {
  std::lock_guard lock(impl_->demand_mu);
  return impl_->demand;
}

std::string MeshProxy::prometheus() const {
  MeshProxyStats s = stats();
  std::string out =
      "# HELP baton_mesh_connections_total Mesh connections by outcome.\n"
      "# TYPE baton_mesh_connections_total counter\n";
  auto line = [&](const char* outcome, int64_t n) {
    out += "baton_mesh_connections_total{outcome=\"" + std::string(outcome) + "\"} " +
           std::to_string(n) + "\n";
  };
  line("outbound", s.outbound);
  line("inbound", s.inbound);
  line("denied", s.denied);
  line("unknown_peer", s.unknown_peer);
  line("cut", s.cut);
  line("failed", s.failed);
  line("over_limit", s.limited);
  out += "# HELP baton_mesh_open_connections Relayed mesh connections open now.\n"
         "# TYPE baton_mesh_open_connections gauge\n"
         "baton_mesh_open_connections " + std::to_string(s.open) + "\n"
         "# HELP baton_mesh_certificates_issued_total Leaf certificates issued.\n"
         "# TYPE baton_mesh_certificates_issued_total counter\n"
         "baton_mesh_certificates_issued_total " + std::to_string(s.certs_issued) + "\n"
         "# HELP baton_mesh_resumed_total Caller-side mutual TLS connections that resumed a "
         "session.\n"
         "# TYPE baton_mesh_resumed_total counter\n"
         "baton_mesh_resumed_total " + std::to_string(s.resumed) + "\n";
  return out;
}

}  // namespace baton::mesh
