#include "dns/dns_server.h"

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "core/listen_address.h"
#include "dns/resolver.h"
#include "dns/tcp_framing.h"

namespace baton::dns {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Steady = std::chrono::steady_clock;
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
// With port 0 ("any"), the UDP socket's port is tried for TCP too; when TCP has it already,
// another pair is tried this many times.
constexpr int kPortPairTries = 16;

Result<udp::endpoint> parseEndpoint(const std::string& hostport) {
  auto hp = parseListenAddress(hostport);
  if (!hp) return hp.status();
  error_code ec;
  auto addr = asio::ip::make_address(hp->first, ec);
  if (ec) return invalidArgument("expected an IP address and port, got \"" + hostport + "\"");
  return udp::endpoint(addr, static_cast<uint16_t>(hp->second));
}

// One TCP connection: the session coroutine reads and answers, the watchdog closes the socket
// when `deadline` passes. Both run on the server's one thread.
struct Conn {
  tcp::socket socket;
  asio::steady_timer timer;
  Steady::time_point deadline;
  Conn(tcp::socket s, Steady::time_point d)
      : socket(std::move(s)), timer(socket.get_executor()), deadline(d) {}
};

}  // namespace

struct DnsServer::Impl {
  DnsServerOptions options;
  std::vector<std::unique_ptr<udp::socket>> sockets;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::set<std::shared_ptr<Conn>> conns;  // open TCP connections (the io thread's)
  bool stopping = false;                  // the io thread's
  std::vector<int> ports;
  std::vector<std::string> warnings;
  std::mutex view_mu;
  std::shared_ptr<const mesh::MeshView> view = std::make_shared<mesh::MeshView>();
  std::atomic<int64_t> queries{0}, nxdomain{0}, refused{0}, malformed{0}, truncated{0};
  std::atomic<int64_t> tcp_accepted{0}, tcp_rejected{0}, tcp_idle_closed{0}, tcp_open{0};
  asio::io_context ioc{1};
  std::thread thread;

  explicit Impl(DnsServerOptions o) : options(std::move(o)) {}

  std::shared_ptr<const mesh::MeshView> current() {
    std::lock_guard lock(view_mu);
    return view;
  }

  // One message in, at most one out; the same for UDP and TCP but for the size of the answer.
  std::string answer(std::string_view msg, const std::string& from, size_t max_bytes) {
    Reply r = reply(*current(), msg, from, max_bytes);
    auto add = [](std::atomic<int64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); };
    add(r.outcome == Outcome::kMalformed ? malformed : queries);
    if (r.outcome == Outcome::kNxDomain) add(nxdomain);
    if (r.outcome == Outcome::kRefused) add(refused);
    if (r.truncated) add(truncated);
    return std::move(r.bytes);
  }

  void receive(udp::socket& s) {
    auto buf = std::make_shared<std::array<char, kMaxQueryBytes>>();
    auto from = std::make_shared<udp::endpoint>();
    s.async_receive_from(asio::buffer(*buf), *from, [this, &s, buf, from](error_code ec, size_t n) {
      if (ec == asio::error::operation_aborted || !s.is_open()) return;
      if (!ec) {
        std::string out =
            answer(std::string_view(buf->data(), n), from->address().to_string(), kMaxUdpAnswer);
        if (!out.empty()) {
          error_code ignored;
          s.send_to(asio::buffer(out), *from, 0, ignored);  // UDP: never blocks for long
        }
      }
      receive(s);
    });
  }

  asio::awaitable<void> acceptLoop(tcp::acceptor& a) {
    while (true) {
      auto [ec, sock] = co_await a.async_accept(kUse);
      if (stopping || !a.is_open()) co_return;
      if (ec) {  // out of descriptors, say: wait a little rather than spin
        asio::steady_timer pause(ioc, std::chrono::milliseconds(50));
        co_await pause.async_wait(kUse);
        continue;
      }
      if (conns.size() >= options.tcp_max_connections) {
        tcp_rejected.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        sock.close(ignored);
        continue;
      }
      tcp_accepted.fetch_add(1, std::memory_order_relaxed);
      tcp_open.fetch_add(1, std::memory_order_relaxed);
      auto c = std::make_shared<Conn>(std::move(sock), Steady::now() + options.tcp_idle_timeout);
      conns.insert(c);
      asio::co_spawn(ioc, session(c), asio::detached);
      asio::co_spawn(ioc, watchdog(c), asio::detached);
    }
  }

  // Reads framed queries and answers each in turn (RFC 7766 6.2.1.1: in order is allowed).
  // Buffered bytes stay below two frames: every whole frame is answered before the next read.
  asio::awaitable<void> session(std::shared_ptr<Conn> c) {
    error_code ec;
    const tcp::endpoint remote = c->socket.remote_endpoint(ec);
    const std::string from = ec ? std::string() : remote.address().to_string();
    c->socket.set_option(tcp::no_delay(true), ec);  // pipelined answers go out at once
    std::string buf;
    std::array<char, 2 + kMaxQueryBytes> chunk;
    while (c->socket.is_open()) {
      Frame f = nextFrame(buf);
      if (f.status == FrameStatus::kMessage) {
        c->deadline = Steady::now() + options.tcp_idle_timeout;  // the answer must go in time
        std::string out = answer(f.message, from, kMaxTcpAnswer);
        buf.erase(0, f.consumed);
        if (!out.empty()) {
          std::string framed = frameMessage(out);
          auto [wec, wn] = co_await asio::async_write(c->socket, asio::buffer(framed), kUse);
          if (wec) break;
        }
        c->deadline = Steady::now() + options.tcp_idle_timeout;
        continue;
      }
      if (f.status != FrameStatus::kIncomplete) {  // a zero or oversized length: no resync
        malformed.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      auto [rec, n] = co_await c->socket.async_read_some(asio::buffer(chunk), kUse);
      if (rec) break;
      buf.append(chunk.data(), n);
    }
    c->socket.close(ec);
    c->timer.cancel();
    conns.erase(c);
    tcp_open.fetch_sub(1, std::memory_order_relaxed);
  }

  // Closes the connection once its deadline passes; the session moves the deadline on.
  asio::awaitable<void> watchdog(std::shared_ptr<Conn> c) {
    while (c->socket.is_open()) {
      c->timer.expires_at(c->deadline);
      co_await c->timer.async_wait(kUse);
      if (!c->socket.is_open() || stopping) co_return;
      if (Steady::now() >= c->deadline) {
        tcp_idle_closed.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        c->socket.close(ignored);
      }
    }
  }

  // UDP and TCP on one address and port (with port 0, a port free for both). A best-effort
  // address whose TCP port is taken keeps its UDP socket, with a warning.
  Status bind(const std::string& l, bool best_effort) {
    auto ep = parseEndpoint(l);
    if (!ep) return ep.status();
    std::string why;
    std::unique_ptr<udp::socket> s;
    for (int attempt = 0; attempt < kPortPairTries; ++attempt) {
      s = std::make_unique<udp::socket>(ioc);
      error_code ec;
      s->open(ep->protocol(), ec);
      if (!ec) s->bind(*ep, ec);
      if (ec) return ioError("DNS: cannot listen on " + l + " (UDP): " + ec.message());
      const uint16_t port = s->local_endpoint(ec).port();
      auto a = std::make_unique<tcp::acceptor>(ioc);
      const tcp::endpoint tep(ep->address(), port);
      a->open(tep.protocol(), ec);
      if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) a->bind(tep, ec);
      if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
      if (!ec) {
        if (!best_effort) ports.push_back(port);
        sockets.push_back(std::move(s));
        acceptors.push_back(std::move(a));
        return Status::ok();
      }
      why = ec.message();
      if (ep->port() != 0) break;
    }
    Status tcp_failed = ioError("DNS: cannot listen on " + l + " (TCP): " + why);
    if (!best_effort) return tcp_failed;
    sockets.push_back(std::move(s));  // UDP still answers there
    warnings.push_back(tcp_failed.message() + " (UDP only there)");
    return Status::ok();
  }
};

DnsServer::DnsServer(DnsServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
DnsServer::~DnsServer() { stop(); }

Status DnsServer::start() {
  Impl& m = *impl_;
  for (const std::string& l : m.options.listen) {
    if (Status s = m.bind(l, false); !s) return s;
  }
  for (const std::string& l : m.options.best_effort) {
    if (Status s = m.bind(l, true); !s) m.warnings.push_back(s.message());
  }
  for (auto& s : m.sockets) m.receive(*s);
  for (auto& a : m.acceptors) asio::co_spawn(m.ioc, m.acceptLoop(*a), asio::detached);
  m.thread = std::thread([&m] { m.ioc.run(); });
  return Status::ok();
}

void DnsServer::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  asio::post(m.ioc, [&m] {
    m.stopping = true;
    error_code ignored;
    for (auto& s : m.sockets) s->close(ignored);
    for (auto& a : m.acceptors) a->close(ignored);
    for (const auto& c : m.conns) {
      c->socket.close(ignored);
      c->timer.cancel();
    }
  });
  m.thread.join();
  m.conns.clear();
  m.sockets.clear();
  m.acceptors.clear();
}

void DnsServer::setView(std::shared_ptr<const mesh::MeshView> view) {
  std::lock_guard lock(impl_->view_mu);
  impl_->view = std::move(view);
}

std::vector<std::string> DnsServer::warnings() const { return impl_->warnings; }

int DnsServer::port(size_t i) const { return i < impl_->ports.size() ? impl_->ports[i] : 0; }

DnsStats DnsServer::stats() const {
  auto g = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  const Impl& m = *impl_;
  DnsStats s;
  s.queries = g(m.queries);
  s.nxdomain = g(m.nxdomain);
  s.refused = g(m.refused);
  s.malformed = g(m.malformed);
  s.truncated = g(m.truncated);
  s.tcp_accepted = g(m.tcp_accepted);
  s.tcp_rejected = g(m.tcp_rejected);
  s.tcp_idle_closed = g(m.tcp_idle_closed);
  s.tcp_open = g(m.tcp_open);
  return s;
}

std::string DnsServer::prometheus() const {
  DnsStats s = stats();
  std::string out;
  auto family = [&out](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto sample = [&out](const std::string& series, int64_t v) {
    out += series + " " + std::to_string(v) + "\n";
  };
  family("baton_dns_queries_total", "counter", "DNS queries answered (UDP and TCP), by outcome.");
  sample("baton_dns_queries_total{outcome=\"answered\"}", s.queries - s.nxdomain - s.refused);
  sample("baton_dns_queries_total{outcome=\"nxdomain\"}", s.nxdomain);
  sample("baton_dns_queries_total{outcome=\"refused\"}", s.refused);
  sample("baton_dns_queries_total{outcome=\"malformed\"}", s.malformed);
  family("baton_dns_truncated_total", "counter",
         "DNS answers sent with TC (UDP answers whose records did not all fit in 512 bytes).");
  sample("baton_dns_truncated_total", s.truncated);
  family("baton_dns_tcp_connections_total", "counter",
         "DNS TCP connections, by outcome: accepted, or rejected (closed at once: the limit of "
         "open connections was reached).");
  sample("baton_dns_tcp_connections_total{outcome=\"accepted\"}", s.tcp_accepted);
  sample("baton_dns_tcp_connections_total{outcome=\"rejected\"}", s.tcp_rejected);
  family("baton_dns_tcp_idle_closed_total", "counter",
         "DNS TCP connections closed when no complete query came within the idle timeout.");
  sample("baton_dns_tcp_idle_closed_total", s.tcp_idle_closed);
  family("baton_dns_tcp_connections", "gauge", "DNS TCP connections open.");
  sample("baton_dns_tcp_connections", s.tcp_open);
  return out;
}

}  // namespace baton::dns
