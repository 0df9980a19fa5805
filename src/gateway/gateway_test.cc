// Gateway integration tests on real sockets: in-test Beast backends (sync, thread per
// connection), clients are curl / openssl s_client subprocesses or a raw socket.
#include "gateway/gateway.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "gateway/tls.h"

namespace baton::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// ---- A backend: echoes what it saw; a few special paths.
class Backend {
 public:
  // The io_context lives in the shared state: connection threads may outlive the Backend.
  explicit Backend(int port = 0)
      : state_(std::make_shared<State>()),
        acceptor_(state_->ioc,
                  tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port))) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~Backend() {
    stop_ = true;
    boost::system::error_code ec;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    thread_.join();
  }
  int port() const { return port_; }
  int connections() const { return state_->connections.load(); }
  uint64_t bodyBytes() const { return state_->body_bytes.load(); }
  int requests() const { return state_->requests.load(); }

 private:
  struct State {
    asio::io_context ioc;
    std::atomic<int> connections{0};
    std::atomic<int> requests{0};
    std::atomic<uint64_t> body_bytes{0};
  };

  void acceptLoop() {
    while (!stop_) {
      boost::system::error_code ec;
      tcp::socket s(state_->ioc);
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      int id = ++state_->connections;
      std::thread([st = state_, s = std::move(s), id]() mutable {
        serve(st, std::move(s), id);
      }).detach();
    }
  }

  static void serve(std::shared_ptr<State> st, tcp::socket s, int conn_id) {
    beast::flat_buffer buf;
    std::vector<char> tmp(64 * 1024);
    for (;;) {
      boost::system::error_code ec;
      http::request_parser<http::buffer_body> p;
      p.body_limit(boost::none);
      http::read_header(s, buf, p, ec);
      if (ec) return;
      auto& req = p.get();
      std::string target(req.target());
      if (websocket::is_upgrade(req)) {
        http::request<http::empty_body> up;
        up.method(req.method());
        up.target(req.target());
        up.version(11);
        for (auto& f : req) up.set(f.name_string(), f.value());
        websocket::stream<tcp::socket> ws(std::move(s));
        ws.accept(up, ec);
        if (ec) return;
        for (;;) {
          beast::flat_buffer m;
          ws.read(m, ec);
          if (ec) return;
          ws.text(ws.got_text());
          ws.write(m.data(), ec);
          if (ec) return;
        }
      }
      std::string body;
      uint64_t count = 0;
      while (!p.is_done()) {
        req.body().data = tmp.data();
        req.body().size = tmp.size();
        http::read(s, buf, p, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) return;
        size_t n = tmp.size() - req.body().size;
        count += n;
        if (body.size() < 4096) body.append(tmp.data(), std::min<size_t>(n, 4096));
      }
      st->body_bytes += count;
      st->requests++;
      if (target == "/slow") std::this_thread::sleep_for(1500ms);
      std::string out = "method " + std::string(req.method_string()) + "\ntarget " + target +
                        "\nconn " + std::to_string(conn_id) + "\nbytes " + std::to_string(count) +
                        "\n";
      for (auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out += "h:" + name + ": " + std::string(f.value()) + "\n";
      }
      out += "body:" + body;
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "text/plain");
      if (target == "/hop") {
        res.set(http::field::connection, "X-Secret-Hop");
        res.set("X-Secret-Hop", "1");
        res.set(http::field::keep_alive, "timeout=5");
        res.set("X-Visible", "yes");
      }
      res.body() = out;
      if (target == "/chunked") {
        res.chunked(true);
      } else {
        res.prepare_payload();
      }
      res.keep_alive(req.keep_alive());
      http::write(s, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  std::shared_ptr<State> state_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int port_ = 0;
};

struct Cmd {
  int exit = -1;
  std::string out;
};

Cmd run(const std::string& cmd) {
  Cmd r;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int st = ::pclose(f);
  r.exit = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A raw request over one connection; returns everything read until close or timeout.
std::string rawExchange(int port, const std::string& data, std::chrono::milliseconds wait) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  asio::write(s, asio::buffer(data));
  std::string out;
  timeval tv{static_cast<time_t>(wait.count() / 1000),
             static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(s.native_handle(), buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int statusOf(const std::string& response) {
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return 0;
  return std::atoi(response.c_str() + 9);
}

int64_t rssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

std::shared_ptr<const RouteTable> tableFor(std::vector<model::Route> routes, std::vector<int> ports,
                                           std::string app = "shop") {
  model::AppRecord a;
  a.spec.name = app;
  a.spec.routes = std::move(routes);
  BackendMap b;
  for (const auto& r : a.spec.routes) {
    auto& v = b[{app, r.service}];
    if (!v.empty()) continue;
    for (int p : ports) v.push_back({"127.0.0.1", p, "i" + std::to_string(p)});
  }
  return std::make_shared<const RouteTable>(RouteTable::build({a}, b));
}

model::Route route(std::string path, std::string service = "web", bool strip = false) {
  model::Route r;
  r.path = std::move(path);
  r.service = std::move(service);
  r.strip_prefix = strip;
  return r;
}

GatewayOptions oneThread() {
  GatewayOptions o;
  o.threads = 1;
  return o;
}

class GatewayTest : public ::testing::Test {
 protected:
  void startGateway(GatewayOptions o = {}, GatewayHooks hooks = {}) {
    o.http_listen = "127.0.0.1:0";
    if (o.threads == 0) o.threads = 2;
    gw_ = std::make_unique<Gateway>(o, SystemClock::instance(), std::move(hooks));
    ASSERT_TRUE(gw_->start().isOk());
    port_ = gw_->httpPort();
    ASSERT_GT(port_, 0);
  }
  std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void TearDown() override {
    if (gw_) gw_->stop();
  }
  std::unique_ptr<Gateway> gw_;
  int port_ = 0;
};

TEST(ConnectionLimit, FitsTheDescriptorLimit) {
  EXPECT_EQ(connectionLimit(1024, 0).value(), (1024 - 256) / 2);
  EXPECT_EQ(connectionLimit(256, 0).value(), (256 - 64) / 2);
  EXPECT_EQ(connectionLimit(1 << 20, 0).value(), ((1 << 20) - 1024) / 2);
  EXPECT_EQ(connectionLimit(1024, 100).value(), 100);
  auto too_many = connectionLimit(1024, 1000);
  ASSERT_FALSE(too_many.isOk());
  EXPECT_NE(too_many.status().message().find("ulimit -n"), std::string::npos);
  EXPECT_FALSE(connectionLimit(60, 0).isOk());
}

TEST_F(GatewayTest, ProxiesGetAndPost) {
  Backend be;
  startGateway();
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  auto r = run("curl -s -i " + url("/hello?x=1"));
  EXPECT_EQ(statusOf(r.out), 200) << r.out;
  EXPECT_NE(r.out.find("target /hello?x=1"), std::string::npos) << r.out;
  r = run("curl -s -d 'payload=42' " + url("/submit"));
  EXPECT_NE(r.out.find("method POST"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("body:payload=42"), std::string::npos) << r.out;
  // The client may have its whole answer a moment before the gateway's thread counts the
  // exchange as done (a flake under load): wait for that, not for a time.
  auto stats = gw_->stats();
  for (int i = 0; i < 500 && !stats.empty() && stats[0].in_flight > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = gw_->stats();
  }
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].arrivals, 2);
  EXPECT_EQ(stats[0].responses_2xx, 2);
  EXPECT_EQ(stats[0].in_flight, 0);
  EXPECT_NE(gw_->prometheus().find("baton_gateway_requests_total{app=\"shop\",service=\"web\"} 2"),
            std::string::npos);
  // A deleted service leaves the statistics and /metrics.
  gw_->setTable(tableFor({route("/", "api")}, {be.port()}, "blog"));
  EXPECT_EQ(gw_->stats().size(), 1u);
  EXPECT_EQ(gw_->prometheus().find("service=\"web\""), std::string::npos);
  EXPECT_NE(gw_->prometheus().find("app=\"blog\",service=\"api\""), std::string::npos);
}

TEST_F(GatewayTest, KeepAliveBothSidesAndStripPrefix) {
  Backend be;
  startGateway(oneThread());
  gw_->setTable(tableFor({route("/"), route("/api", "web", true)}, {be.port()}));
  auto r = run("curl -s -v " + url("/a") + " " + url("/api/b") + " " + url("/api"));
  EXPECT_NE(r.out.find("target /a\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("target /b\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("target /\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Re-using existing connection"), std::string::npos) << r.out;
  EXPECT_EQ(be.connections(), 1);  // the upstream connection was pooled
  EXPECT_EQ(be.requests(), 3);
}

tcp::socket dialLoopback(asio::io_context& ioc, int port) {
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  return s;
}

// One keep-alive request on an open client connection; returns the backend's "conn N" line.
std::string connOf(tcp::socket& s) {
  http::request<http::empty_body> req{http::verb::get, "/", 11};
  req.set(http::field::host, "shop.test");
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  const std::string& b = res.body();
  size_t at = b.find("conn ");
  return at == std::string::npos ? "?" : b.substr(at, b.find('\n', at) - at);
}

TEST_F(GatewayTest, UpstreamConnectionStaysWithItsClientThenJoinsThePool) {
  Backend be;
  startGateway(oneThread());
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  asio::io_context ioc;
  auto dial = [&] { return dialLoopback(ioc, port_); };
  tcp::socket a = dial(), b = dial();
  std::string a1 = connOf(a);
  std::string b1 = connOf(b);
  EXPECT_NE(a1, b1);  // a still holds its upstream connection, so b needed another
  EXPECT_EQ(connOf(a), a1);
  EXPECT_EQ(connOf(b), b1);
  EXPECT_EQ(connOf(a), a1);
  a.close();
  // a's upstream connection went back to the pool: a new client gets it, nothing new is dialed.
  std::this_thread::sleep_for(100ms);  // for the gateway to read a's end of stream
  tcp::socket c = dial();
  EXPECT_EQ(connOf(c), a1);
  EXPECT_EQ(be.connections(), 2);
  EXPECT_EQ(be.requests(), 6);
}

TEST_F(GatewayTest, KeptUpstreamConnectionsCountAgainstThePoolSize) {
  Backend be;
  GatewayOptions o = oneThread();
  o.limits.upstream_pool_size = 1;
  startGateway(o);
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  asio::io_context ioc;
  auto dial = [&] { return dialLoopback(ioc, port_); };
  tcp::socket a = dial(), b = dial();
  std::string a1 = connOf(a);
  std::string b1 = connOf(b);  // a keeps the one idle connection allowed: b's is closed after use
  std::string b2 = connOf(b);
  EXPECT_NE(b1, a1);
  EXPECT_NE(b2, b1);
  EXPECT_NE(b2, a1);
  EXPECT_EQ(connOf(a), a1);
  EXPECT_EQ(be.connections(), 3);
}

TEST_F(GatewayTest, ForwardedHeadersAndHopByHop) {
  Backend be;
  startGateway();
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  auto r =
      run("curl -s -i -H 'Host: Shop.Example:80' -H 'X-Forwarded-For: 10.0.0.1' "
          "-H 'X-Forwarded-Proto: gopher' -H 'Connection: keep-alive, X-Drop-Me' "
          "-H 'X-Drop-Me: 1' -H 'Keep-Alive: timeout=9' -H 'TE: trailers' -H 'X-Keep: 2' " +
          url("/hop"));
  // The client's X-Forwarded-For is replaced, not appended to (no trusted proxies).
  EXPECT_NE(r.out.find("h:x-forwarded-for: 127.0.0.1\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("10.0.0.1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("h:x-forwarded-proto: http\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("gopher"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("h:x-forwarded-host: Shop.Example:80"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("h:x-keep: 2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("x-drop-me"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("h:keep-alive"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("h:te:"), std::string::npos) << r.out;
  // Response hop-by-hop removed, the rest verbatim.
  EXPECT_NE(r.out.find("X-Visible: yes"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("X-Secret-Hop"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Keep-Alive:"), std::string::npos) << r.out;
}

TEST_F(GatewayTest, ChunkedRequestAndResponse) {
  Backend be;
  startGateway();
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  auto r =
      run("printf 'hello chunked world' | curl -s -i -H 'Transfer-Encoding: chunked' "
          "--data-binary @- " +
          url("/chunked"));
  EXPECT_EQ(statusOf(r.out), 200) << r.out;
  EXPECT_NE(r.out.find("Transfer-Encoding: chunked"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bytes 19\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("body:hello chunked world"), std::string::npos) << r.out;
  // A raw chunked request with extensions and a trailer, then a second request on the socket.
  std::string raw =
      "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
      "GET /second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  auto out = rawExchange(port_, raw, 2000ms);
  EXPECT_NE(out.find("body:hello world"), std::string::npos) << out;
  EXPECT_NE(out.find("target /second"), std::string::npos) << out;
}

TEST_F(GatewayTest, Limits431And413And404And400) {
  Backend be;
  GatewayOptions o;
  o.limits.max_body_bytes = 1000;
  startGateway(o);
  gw_->setTable(tableFor({route("/app")}, {be.port()}));
  std::string big(20000, 'a');
  auto r = run("curl -s -o /dev/null -w '%{http_code}' -H 'X-Big: " + big + "' " + url("/app"));
  EXPECT_EQ(r.out, "431");
  r = run("head -c 2000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' --data-binary @- " +
          url("/app"));
  EXPECT_EQ(r.out, "413");
  r = run("curl -s -i " + url("/nothing"));
  EXPECT_EQ(statusOf(r.out), 404);
  EXPECT_NE(r.out.find("application/json"), std::string::npos);
  EXPECT_NE(r.out.find("\"no route\""), std::string::npos) << r.out;
  // Dot segments are removed before routing: /app/../admin is /admin, which has no route.
  auto out = rawExchange(port_, "GET /app/../admin HTTP/1.1\r\nHost: h\r\n\r\n", 2000ms);
  EXPECT_EQ(statusOf(out), 404) << out;
  out = rawExchange(port_, "GET /app;x HTTP/1.1\r\nHost: h\r\n\r\n", 2000ms);
  EXPECT_EQ(statusOf(out), 400) << out;
  out = rawExchange(port_, "garbage\r\n\r\n", 2000ms);
  EXPECT_EQ(statusOf(out), 400) << out;
  EXPECT_EQ(be.requests(), 0);
}

TEST_F(GatewayTest, SlowlorisGets408AndClose) {
  GatewayOptions o;
  o.limits.header_timeout = 300ms;
  startGateway(o);
  auto start = std::chrono::steady_clock::now();
  auto out = rawExchange(port_, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow:", 5000ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(statusOf(out), 408) << out;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3000ms);  // closed by the gateway, not by our 5 s receive timeout
}

TEST_F(GatewayTest, UpstreamErrors502And504AndRetry) {
  Backend be;
  // A port with nothing listening.
  int dead_port;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    dead_port = a.local_endpoint().port();
  }
  GatewayOptions o;
  o.limits.upstream_response_timeout = 300ms;
  startGateway(o);
  gw_->setTable(tableFor({route("/")}, {dead_port}));
  auto r = run("curl -s -i " + url("/x"));
  EXPECT_EQ(statusOf(r.out), 502) << r.out;
  // One dead and one live instance: the connect failure is retried elsewhere, every time.
  gw_->setTable(tableFor({route("/")}, {dead_port, be.port()}));
  std::string urls;
  for (int i = 0; i < 20; ++i) urls += " " + url("/r" + std::to_string(i));
  r = run("curl -s -o /dev/null -o /dev/null -w '%{http_code} '" + urls);
  EXPECT_EQ(r.out.find("502"), std::string::npos) << r.out;
  EXPECT_EQ(be.requests(), 20);
  // A slow upstream: 504.
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  r = run("curl -s -i " + url("/slow"));
  EXPECT_EQ(statusOf(r.out), 504) << r.out;
  auto stats = gw_->stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_GE(stats[0].responses_5xx, 2);
}

// A backend that is not listening yet (an instance restarting, a listen backlog overflowing) is
// waited for: the refused connects are tried again with backoff within the response timeout.
TEST_F(GatewayTest, RefusedConnectsAreRetriedUntilTheBackendListens) {
  int port;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  startGateway();
  gw_->setTable(tableFor({route("/")}, {port}));
  std::unique_ptr<Backend> late;
  std::thread starter([&] {
    std::this_thread::sleep_for(400ms);  // a few refused connects first
    late = std::make_unique<Backend>(port);
  });
  auto r = run("curl -s -i " + url("/late"));
  starter.join();
  EXPECT_EQ(statusOf(r.out), 200) << r.out;
  EXPECT_EQ(late->requests(), 1);
}

TEST_F(GatewayTest, StreamsOneGigabyteInBoundedMemory) {
  Backend be;
  startGateway(oneThread());
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  // Warm up (allocations of the first connection).
  run("curl -s " + url("/warm"));
  int64_t before = rssKb();
  auto r = run("head -c 1073741824 /dev/zero | curl -s -T - " + url("/upload"));
  int64_t after = rssKb();
  EXPECT_NE(r.out.find("bytes 1073741824\n"), std::string::npos) << r.out.substr(0, 300);
  EXPECT_LT(after - before, 64 * 1024) << "RSS grew by " << (after - before) << " KiB";
}

TEST_F(GatewayTest, WebSocketUpgradeEcho) {
  Backend be;
  startGateway();
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)));
  boost::system::error_code ec;
  ws.handshake("localhost", "/ws", ec);
  ASSERT_FALSE(ec) << ec.message();
  for (int i = 0; i < 3; ++i) {
    std::string msg =
        "ping " + std::to_string(i) + std::string(static_cast<size_t>(i) * 30000, 'x');
    ws.write(asio::buffer(msg), ec);
    ASSERT_FALSE(ec);
    beast::flat_buffer b;
    ws.read(b, ec);
    ASSERT_FALSE(ec);
    EXPECT_EQ(beast::buffers_to_string(b.data()), msg);
  }
  ws.close(websocket::close_code::normal, ec);
}

TEST_F(GatewayTest, RouteChangesUnderLoadHaveZeroErrors) {
  Backend a, b;
  startGateway();
  gw_->setTable(tableFor({route("/")}, {a.port()}));
  std::atomic<bool> done{false};
  Cmd result;
  std::thread client([&] {
    std::string urls;
    for (int i = 0; i < 300; ++i) urls += " " + url("/load");
    result = run("curl -s -w '\\nCODE=%{http_code}\\n'" + urls);
    done = true;
  });
  int swaps = 0;
  while (!done) {
    gw_->setTable(tableFor({route("/")}, {swaps % 2 ? a.port() : b.port()}));
    ++swaps;
    std::this_thread::sleep_for(1ms);
  }
  client.join();
  int ok = 0, bad = 0;
  std::istringstream in(result.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CODE=", 0) == 0) (line == "CODE=200" ? ok : bad)++;
  }
  EXPECT_EQ(ok, 300) << result.out;
  EXPECT_EQ(bad, 0);
  EXPECT_GT(swaps, 10);
  EXPECT_GT(a.requests(), 0);
  EXPECT_GT(b.requests(), 0);
}

// A parked request on its own connection; returns the raw response.
void parkedClients(int port, int n, std::vector<std::string>* out) {
  out->assign(static_cast<size_t>(n), "");
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i) {
    ts.emplace_back([=] {
      (*out)[static_cast<size_t>(i)] =
          rawExchange(port, "GET /cold HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 20000ms);
    });
  }
  for (auto& t : ts) t.join();
}

template <class Pred>
bool waitUntil(Pred pred, std::chrono::milliseconds limit = 10000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

TEST_F(GatewayTest, HoldAtZeroReleasesAllParkedRequests) {
  Backend be;
  std::atomic<int> cold_calls{0};
  GatewayHooks hooks;
  hooks.on_cold = [&](const std::string& app, const std::string& svc) {
    EXPECT_EQ(app, "shop");
    EXPECT_EQ(svc, "web");
    ++cold_calls;
  };
  startGateway(GatewayOptions{}, hooks);
  gw_->setTable(tableFor({route("/")}, {}));
  std::vector<std::string> responses;
  std::thread clients([&] { parkedClients(port_, 200, &responses); });
  bool parked = waitUntil([&] {
    auto s = gw_->stats();
    return !s.empty() && s[0].queued == 200;
  });
  EXPECT_TRUE(parked) << gw_->prometheus();
  EXPECT_GE(cold_calls.load(), 1);
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  clients.join();
  int ok = 0;
  for (const auto& r : responses) ok += statusOf(r) == 200;
  EXPECT_EQ(ok, 200);
  auto s = gw_->stats();
  EXPECT_EQ(s[0].queued, 0);
  EXPECT_EQ(s[0].held, 200);
  EXPECT_EQ(s[0].cold_starts, 1);
  EXPECT_GE(s[0].cold_overhead_last_us, 0);
  // The goal (<= 20 ms) is checked by the benchmark on a quiet machine; here only a sanity bound.
  EXPECT_LT(s[0].cold_overhead_last_us, 1000000);
  std::printf("cold overhead: %lld us\n", static_cast<long long>(s[0].cold_overhead_last_us));
}

TEST_F(GatewayTest, HoldQueueOverflowAndTimeoutGet503) {
  Backend be;
  GatewayOptions o;
  o.hold_queue = 50;
  o.hold_timeout = 10000ms;
  startGateway(o);
  gw_->setTable(tableFor({route("/")}, {}));
  std::vector<std::string> responses;
  std::thread clients([&] { parkedClients(port_, 80, &responses); });
  ASSERT_TRUE(waitUntil([&] {
    auto s = gw_->stats();
    return !s.empty() && s[0].queued == 50 && s[0].hold_rejected == 30;
  }));
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  clients.join();
  int ok = 0, unavailable = 0;
  for (const auto& r : responses) {
    if (statusOf(r) == 200) ++ok;
    if (statusOf(r) == 503) {
      ++unavailable;
      EXPECT_NE(r.find("Retry-After: 1"), std::string::npos) << r;
    }
  }
  EXPECT_EQ(ok, 50);
  EXPECT_EQ(unavailable, 30);
  // Timeout.
  gw_->stop();
  o.hold_timeout = 200ms;
  startGateway(o);
  gw_->setTable(tableFor({route("/")}, {}));
  auto out = rawExchange(port_, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 5000ms);
  EXPECT_EQ(statusOf(out), 503) << out;
  EXPECT_NE(out.find("Retry-After"), std::string::npos);
}

class DenyAll final : public Authorizer {
 public:
  AuthDecision authorize(std::string_view auth, const model::Route&) override {
    if (auth == "Bearer good") return {0, "", {{"X-Auth-Subject", "alice"}}};
    return {401, "Bearer realm=\"baton\"", {}};
  }
  const std::vector<std::string>& strippedHeaders() const override { return stripped_; }

 private:
  std::vector<std::string> stripped_{"x-auth-subject"};
};

TEST_F(GatewayTest, AuthHook) {
  Backend be;
  GatewayHooks hooks;
  hooks.authorizer = std::make_shared<DenyAll>();
  startGateway(GatewayOptions{}, hooks);
  auto priv = route("/private");
  priv.auth = "corp";
  gw_->setTable(tableFor({route("/"), priv}, {be.port()}));
  auto r = run("curl -s -i " + url("/private/x"));
  EXPECT_EQ(statusOf(r.out), 401) << r.out;
  EXPECT_NE(r.out.find("WWW-Authenticate: Bearer realm=\"baton\""), std::string::npos) << r.out;
  r = run("curl -s -i -H 'Authorization: Bearer good' -H 'X-Auth-Subject: mallory' " +
          url("/private/x"));
  EXPECT_EQ(statusOf(r.out), 200) << r.out;
  EXPECT_NE(r.out.find("h:x-auth-subject: alice"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("mallory"), std::string::npos) << r.out;
  // Public routes: forged claim headers are stripped too.
  r = run("curl -s -i -H 'X-Auth-Subject: mallory' " + url("/pub"));
  EXPECT_EQ(statusOf(r.out), 200);
  EXPECT_EQ(r.out.find("mallory"), std::string::npos) << r.out;
  // No authorizer at all: 401 on non-public routes.
  gw_->stop();
  startGateway();
  gw_->setTable(tableFor({priv}, {be.port()}));
  r = run("curl -s -i " + url("/private"));
  EXPECT_EQ(statusOf(r.out), 401);
}

// A parked request is routed and authorized again on the table that releases it: the route, its
// identity verdict and the forwarded claims always belong together (a route that became
// protected while the request waited must not let it through on its old, public verdict).
TEST_F(GatewayTest, ParkedRequestIsAuthorizedOnTheRouteThatReleasesIt) {
  Backend be;
  GatewayHooks hooks;
  hooks.authorizer = std::make_shared<DenyAll>();
  startGateway(GatewayOptions{}, hooks);
  gw_->setTable(tableFor({route("/")}, {}));  // public, at zero
  std::string out;
  std::thread client([&] {
    out = rawExchange(port_, "GET /cold HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                      10000ms);
  });
  ASSERT_TRUE(waitUntil([&] {
    auto s = gw_->stats();
    return !s.empty() && s[0].queued == 1;
  }));
  auto priv = route("/");
  priv.auth = "corp";
  gw_->setTable(tableFor({priv}, {be.port()}));  // now protected, with a backend
  client.join();
  EXPECT_EQ(statusOf(out), 401) << out;
  EXPECT_EQ(be.requests(), 0);
  // The other way round: a token checked on a protected route, released onto a public one.
  gw_->setTable(tableFor({priv}, {}));
  std::thread client2([&] {
    out = rawExchange(port_,
                      "GET /cold HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer good\r\n"
                      "Connection: close\r\n\r\n",
                      10000ms);
  });
  ASSERT_TRUE(waitUntil([&] {
    auto s = gw_->stats();
    return !s.empty() && s[0].queued == 1;
  }));
  gw_->setTable(tableFor({route("/")}, {be.port()}));
  client2.join();
  EXPECT_EQ(statusOf(out), 200) << out;
  EXPECT_EQ(out.find("x-auth-subject"), std::string::npos) << out;  // no claims on a public route
  EXPECT_EQ(out.find("authorization"), std::string::npos) << out;   // credentials consumed
}

// ---- TLS.
class GatewayTlsTest : public GatewayTest {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gw_tls_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    GatewayTest::TearDown();
    fs::remove_all(dir_);
  }
  CertPaths writeCert(const std::string& name) {
    auto pem = generateSelfSigned({name}, {});
    EXPECT_TRUE(pem.isOk());
    CertPaths p{(dir_ / (name + ".pem")).string(), (dir_ / (name + ".key")).string()};
    std::ofstream(p.cert) << pem->cert;
    std::ofstream(p.key) << pem->key;
    return p;
  }
  std::string sClient(const std::string& args) {
    return run("openssl s_client -connect 127.0.0.1:" + std::to_string(gw_->httpsPort()) + " " +
               args + " </dev/null")
        .out;
  }
  fs::path dir_;
};

TEST_F(GatewayTlsTest, VersionsSniAndReload) {
  Backend be;
  GatewayOptions o;
  o.https_listen = "127.0.0.1:0";
  o.certs = {writeCert("a.test"), writeCert("b.test")};
  o.cert_check_interval = 0ms;
  startGateway(o);
  ASSERT_GT(gw_->httpsPort(), 0);
  gw_->setTable(tableFor({route("/")}, {be.port()}));

  auto out = sClient("-tls1_2 -servername a.test");
  EXPECT_NE(out.find("Protocol  : TLSv1.2"), std::string::npos) << out;
  EXPECT_NE(out.find("ECDHE"), std::string::npos) << out;
  out = sClient("-tls1_3 -servername a.test");
  EXPECT_NE(out.find("TLSv1.3"), std::string::npos) << out;
  out = sClient("-tls1_1 -cipher DEFAULT@SECLEVEL=0");
  EXPECT_NE(out.find("Cipher is (NONE)"), std::string::npos) << out;
  EXPECT_EQ(out.find("BEGIN CERTIFICATE"), std::string::npos) << out;

  EXPECT_NE(sClient("-servername a.test").find("subject=CN = a.test"), std::string::npos);
  EXPECT_NE(sClient("-servername b.test").find("subject=CN = b.test"), std::string::npos);
  EXPECT_NE(sClient("-servername other.test").find("subject=CN = a.test"), std::string::npos);

  // HTTPS proxying with X-Forwarded-Proto.
  auto r = run("curl -s -k https://127.0.0.1:" + std::to_string(gw_->httpsPort()) + "/tls");
  EXPECT_NE(r.out.find("h:x-forwarded-proto: https"), std::string::npos) << r.out;

  // Reload: b.test's files now hold a certificate for c.test.
  auto c = generateSelfSigned({"c.test"}, {});
  std::ofstream(o.certs[1].cert) << c->cert;
  std::ofstream(o.certs[1].key) << c->key;
  ASSERT_TRUE(gw_->reloadCertificates().isOk());
  EXPECT_NE(sClient("-servername c.test").find("subject=CN = c.test"), std::string::npos);
  // A broken file: reload fails, the old certificates stay.
  std::ofstream(o.certs[1].cert) << "garbage";
  EXPECT_FALSE(gw_->reloadCertificates().isOk());
  EXPECT_NE(sClient("-servername c.test").find("subject=CN = c.test"), std::string::npos);
}

TEST_F(GatewayTlsTest, DevCertificateAndMtimeReload) {
  GatewayOptions o;
  o.https_listen = "127.0.0.1:0";
  o.dev_cert_dir = dir_.string();
  startGateway(o);
  auto out = sClient("-servername localhost");
  EXPECT_NE(out.find("subject=CN = localhost"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir_ / "gateway-dev-cert.pem"));
  gw_->stop();

  GatewayOptions o2;
  o2.https_listen = "127.0.0.1:0";
  o2.certs = {writeCert("a.test")};
  o2.cert_check_interval = 50ms;
  startGateway(o2);
  EXPECT_NE(sClient("").find("subject=CN = a.test"), std::string::npos);
  auto c = generateSelfSigned({"d.test"}, {});
  std::ofstream(o2.certs[0].key) << c->key;
  std::ofstream(o2.certs[0].cert) << c->cert;
  fs::last_write_time(o2.certs[0].cert, fs::file_time_type::clock::now() + 10s);
  EXPECT_TRUE(waitUntil(
      [&] { return sClient("").find("subject=CN = d.test") != std::string::npos; }, 5000ms));
}

}  // namespace
}  // namespace baton::gateway
