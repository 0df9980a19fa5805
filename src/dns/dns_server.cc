#include "dns/dns_server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <mutex>
#include <thread>

#include "core/listen_address.h"
#include "dns/resolver.h"

namespace baton::dns {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using error_code = boost::system::error_code;
constexpr size_t kMaxQuery = 512;

Result<udp::endpoint> parseEndpoint(const std::string& hostport) {
  auto hp = parseListenAddress(hostport);
  if (!hp) return hp.status();
  error_code ec;
  auto addr = asio::ip::make_address(hp->first, ec);
  if (ec) return invalidArgument("expected an IP address and port, got \"" + hostport + "\"");
  return udp::endpoint(addr, static_cast<uint16_t>(hp->second));
}

}  // namespace

struct DnsServer::Impl {
  DnsServerOptions options;
  std::vector<std::unique_ptr<udp::socket>> sockets;
  std::vector<int> ports;
  std::vector<std::string> warnings;
  std::mutex view_mu;
  std::shared_ptr<const mesh::MeshView> view = std::make_shared<mesh::MeshView>();
  std::atomic<int64_t> queries{0}, nxdomain{0}, refused{0}, malformed{0};
  asio::io_context ioc{1};
  std::thread thread;

  explicit Impl(DnsServerOptions o) : options(std::move(o)) {}

  std::shared_ptr<const mesh::MeshView> current() {
    std::lock_guard lock(view_mu);
    return view;
  }

  // One datagram in, at most one out.
  std::string answer(std::string_view msg, const udp::endpoint& from) {
    ParseResult p = parseQuery(msg);
    if (!p.query) {
      malformed.fetch_add(1, std::memory_order_relaxed);
      if (!p.header || p.header->is_response) return "";  // not a query: never answer
      return encodeError(*p.header, p.error == ParseError::kNotOneQuestion && p.header->opcode != 0
                                        ? Rcode::kNotImp
                                        : Rcode::kFormErr);
    }
    queries.fetch_add(1, std::memory_order_relaxed);
    auto v = current();
    std::optional<mesh::ServiceRef> caller;
    if (auto it = v->callers.find(from.address().to_string()); it != v->callers.end()) {
      caller = it->second;
    }
    Answer a = resolve(*v, *p.query, caller);
    if (a.rcode == Rcode::kNxDomain) nxdomain.fetch_add(1, std::memory_order_relaxed);
    if (a.rcode == Rcode::kRefused) refused.fetch_add(1, std::memory_order_relaxed);
    return encodeResponse(*p.query, a);
  }

  void receive(udp::socket& s) {
    auto buf = std::make_shared<std::array<char, kMaxQuery>>();
    auto from = std::make_shared<udp::endpoint>();
    s.async_receive_from(asio::buffer(*buf), *from, [this, &s, buf, from](error_code ec, size_t n) {
      if (ec == asio::error::operation_aborted || !s.is_open()) return;
      if (!ec) {
        std::string out = answer(std::string_view(buf->data(), n), *from);
        if (!out.empty()) {
          error_code ignored;
          s.send_to(asio::buffer(out), *from, 0, ignored);  // UDP: never blocks for long
        }
      }
      receive(s);
    });
  }
};

DnsServer::DnsServer(DnsServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
DnsServer::~DnsServer() { stop(); }

Status DnsServer::start() {
  Impl& m = *impl_;
  auto bind = [&m](const std::string& l) -> Result<std::unique_ptr<udp::socket>> {
    auto ep = parseEndpoint(l);
    if (!ep) return ep.status();
    auto s = std::make_unique<udp::socket>(m.ioc);
    error_code ec;
    s->open(ep->protocol(), ec);
    if (!ec) s->bind(*ep, ec);
    if (ec) return ioError("DNS: cannot listen on " + l + ": " + ec.message());
    return s;
  };
  for (const std::string& l : m.options.listen) {
    auto s = bind(l);
    if (!s) return s.status();
    error_code ec;
    m.ports.push_back((*s)->local_endpoint(ec).port());
    m.sockets.push_back(std::move(*s));
  }
  for (const std::string& l : m.options.best_effort) {
    auto s = bind(l);
    if (!s) {
      m.warnings.push_back(s.status().message());
      continue;
    }
    m.sockets.push_back(std::move(*s));
  }
  for (auto& s : m.sockets) m.receive(*s);
  m.thread = std::thread([&m] { m.ioc.run(); });
  return Status::ok();
}

void DnsServer::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  asio::post(m.ioc, [&m] {
    for (auto& s : m.sockets) {
      error_code ignored;
      s->close(ignored);
    }
  });
  m.thread.join();
  m.sockets.clear();
}

void DnsServer::setView(std::shared_ptr<const mesh::MeshView> view) {
  std::lock_guard lock(impl_->view_mu);
  impl_->view = std::move(view);
}

std::vector<std::string> DnsServer::warnings() const { return impl_->warnings; }

int DnsServer::port(size_t i) const { return i < impl_->ports.size() ? impl_->ports[i] : 0; }

DnsStats DnsServer::stats() const {
  auto g = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {g(impl_->queries), g(impl_->nxdomain), g(impl_->refused), g(impl_->malformed)};
}

std::string DnsServer::prometheus() const {
  DnsStats s = stats();
  return "# HELP baton_dns_queries_total DNS queries answered, by outcome.\n"
         "# TYPE baton_dns_queries_total counter\n"
         "baton_dns_queries_total{outcome=\"answered\"} " +
         std::to_string(s.queries - s.nxdomain - s.refused) +
         "\n"
         "baton_dns_queries_total{outcome=\"nxdomain\"} " +
         std::to_string(s.nxdomain) +
         "\n"
         "baton_dns_queries_total{outcome=\"refused\"} " +
         std::to_string(s.refused) +
         "\n"
         "baton_dns_queries_total{outcome=\"malformed\"} " +
         std::to_string(s.malformed) + "\n";
}

}  // namespace baton::dns
