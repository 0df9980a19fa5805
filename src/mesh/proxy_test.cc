// The node proxy on loopback, with real sockets and real mutual TLS: callers are told apart by
// their address (here 127.0.0.1), the service address is 127.0.0.2, destinations are echo
// servers. Runs under ASan (scripts/sanitize.sh).
#include "mesh/proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "core/testing/fake_clock.h"
#include "core/testing/free_port.h"
#include "core/testing/temp_dir.h"
#include "state/sqlite_store.h"

namespace baton::mesh {
namespace {

using namespace std::chrono_literals;

// A TCP server on 127.0.0.1, any port: each connection is handed to `serve` on a thread of its
// own, which closes it afterwards.
class Server {
 public:
  explicit Server(std::function<void(int)> serve) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t n = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, serve = std::move(serve)] {
      while (true) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::thread([c, serve] {
          serve(c);
          ::close(c);
        }).detach();
      }
    });
  }
  ~Server() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// Echoes what it reads.
void echo(int c) {
  char buf[4096];
  ssize_t r;
  while ((r = ::read(c, buf, sizeof buf)) > 0) {
    if (::write(c, buf, static_cast<size_t>(r)) != r) break;
  }
}

// Reads a request until the client's end (FIN), then answers "got N bytes": the other side of
// a client that half-closes before it reads.
void answerAtEnd(int c) {
  char buf[4096];
  size_t total = 0;
  ssize_t r;
  while ((r = ::read(c, buf, sizeof buf)) > 0) total += static_cast<size_t>(r);
  std::string answer = "got " + std::to_string(total) + " bytes";
  if (r == 0) (void)!::write(c, answer.data(), answer.size());
}

int connectTo(const char* ip, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `msg` and reads the same number of bytes back; "" when the connection ended first.
std::string roundTrip(int fd, const std::string& msg) {
  if (::write(fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) return "";
  std::string got;
  char buf[4096];
  while (got.size() < msg.size()) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) return "";
    got.append(buf, static_cast<size_t>(r));
  }
  return got;
}

// Whether the peer closes `fd` within `timeout`.
bool closedWithin(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char c;
  return ::read(fd, &c, 1) <= 0;
}

class MeshProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(state::SqliteStore::open(dir_.path() / "db", clock_).value());
    ca_ = std::move(MeshCa::loadOrCreate(*store_, dir_.path() / "kek", "baton", clock_).value());
    vip_port_ = testing::unusedLoopbackPort();
    startProxy(MeshProxyOptions().cert_ttl, SystemClock::instance());
  }

  // (Re)starts the proxy; `clock` decides when leaves are renewed.
  void startProxy(Duration cert_ttl, Clock& clock) {
    proxy_.reset();
    MeshProxyOptions o;
    o.node_id = "n1";
    o.vip_port = vip_port_;
    o.hold_timeout = Duration(3'000);
    o.connect_timeout = Duration(2'000);
    o.cert_ttl = cert_ttl;
    MeshProxyHooks h;
    h.on_cold = [this](const std::string& app, const std::string& svc) {
      cold_service_ = app + "/" + svc;  // before the count the test waits for (no race)
      cold_.fetch_add(1);
    };
    proxy_ = std::make_unique<MeshProxy>(o, *ca_, clock, h);
    ASSERT_TRUE(proxy_->start().isOk());
  }

  // shop/web (at 127.0.0.1) declares cart; cart's service address is 127.0.0.2.
  std::shared_ptr<MeshView> view(bool cart_healthy = true) {
    auto v = std::make_shared<MeshView>();
    v->upstreams["shop/web"] = {"cart"};
    v->upstreams["shop/cart"] = {};
    v->vips["127.0.0.2"] = {"shop", "cart"};
    v->callers["127.0.0.1"] = {"shop", "web"};
    if (cart_healthy) v->healthy["shop/cart"] = {{"i1", "n1", "127.0.0.1", echo_.port()}};
    return v;
  }
  void publish(std::shared_ptr<MeshView> v) {
    proxy_->setView(std::move(v));
    std::this_thread::sleep_for(50ms);  // the proxy binds its listeners on its own thread
  }

  testing::TempDir dir_;
  testing::FakeClock clock_{SystemClock::instance().now()};
  std::unique_ptr<state::SqliteStore> store_;
  std::unique_ptr<MeshCa> ca_;
  std::unique_ptr<MeshProxy> proxy_;
  Server echo_{echo};
  int vip_port_ = 0;
  std::atomic<int> cold_{0};
  std::string cold_service_;
};

TEST_F(MeshProxyTest, ADeclaredUpstreamIsRelayedOverMutualTls) {
  publish(view());
  int fd = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(roundTrip(fd, "hello"), "hello");
  EXPECT_EQ(roundTrip(fd, std::string(100'000, 'x')), std::string(100'000, 'x'));
  ::close(fd);
  auto s = proxy_->stats();
  EXPECT_EQ(s.outbound, 1);
  EXPECT_EQ(s.inbound, 1);
  EXPECT_EQ(s.certs_issued, 2);  // web as client, cart as server
}

TEST_F(MeshProxyTest, TheNextConnectionResumesTheSessionUntilTheLeafIsRenewed) {
  // Leaves of 90 s, renewed after 60 s of the fake clock (the CA's too: a leaf is valid from a
  // minute before it is issued, so the renewed ones are valid in real time as well).
  startProxy(Duration(90'000), clock_);
  publish(view());
  auto call = [&] {
    int fd = connectTo("127.0.0.2", vip_port_);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(roundTrip(fd, "hello"), "hello");  // the answer comes after the tickets
    ::close(fd);
  };
  call();
  EXPECT_EQ(proxy_->stats().resumed, 0);
  call();
  call();
  EXPECT_EQ(proxy_->stats().resumed, 2);
  EXPECT_EQ(proxy_->stats().certs_issued, 2);
  // Renewed leaves (2/3 of the TTL later): a full handshake with the new ones, then resumption.
  clock_.advance(Duration(60'000));
  call();
  EXPECT_EQ(proxy_->stats().certs_issued, 4);
  EXPECT_EQ(proxy_->stats().resumed, 2);
  call();
  EXPECT_EQ(proxy_->stats().resumed, 3);
}

TEST_F(MeshProxyTest, AClientThatHalfClosesStillReadsItsAnswer) {
  // The client's FIN crosses both sides of the proxy as FIN, close_notify, FIN; the answer comes
  // back the same way, then the end of it.
  Server server(answerAtEnd);
  auto v = view();
  v->healthy["shop/cart"] = {{"i1", "n1", "127.0.0.1", server.port()}};
  publish(v);
  int fd = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(fd, 0);
  const std::string request(50'000, 'r');
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  std::string got;
  char buf[4096];
  ssize_t r;
  while ((r = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(r));
  EXPECT_EQ(r, 0);  // an orderly end, not a reset or the read timeout
  EXPECT_EQ(got, "got 50000 bytes");
  ::close(fd);
  // Both sides are closed once both directions ended.
  for (int i = 0; i < 100 && proxy_->stats().open > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(proxy_->stats().open, 0);
}

// Sends "abc" to cart's instance over mutual TLS to the mesh listener, as shop/web's proxy
// would, then ends its side: with a close_notify first when `clean`, else with a bare FIN. What
// it reads back after that, and " (close_notify)" when the proxy ended its side cleanly too.
std::string endOverTls(MeshCa& ca, const std::string& mesh_address, bool clean) {
  auto leaf = ca.issue({"shop", "web"}, Duration(3'600'000));
  if (!leaf) return "no leaf";
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  auto pem = [](const std::string& text) { return BIO_new_mem_buf(text.data(), int(text.size())); };
  BIO* cert = pem(leaf->cert_pem);
  BIO* key = pem(leaf->key_pem);
  BIO* root = pem(ca.rootPem());
  X509* c = PEM_read_bio_X509(cert, nullptr, nullptr, nullptr);
  EVP_PKEY* k = PEM_read_bio_PrivateKey(key, nullptr, nullptr, nullptr);
  X509* r = PEM_read_bio_X509(root, nullptr, nullptr, nullptr);
  SSL_CTX_use_certificate(ctx, c);
  SSL_CTX_use_PrivateKey(ctx, k);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), r);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  int port = std::stoi(mesh_address.substr(mesh_address.rfind(':') + 1));
  int fd = connectTo("127.0.0.1", port);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "cart.shop.mesh.baton");
  std::string got;
  if (SSL_connect(ssl) == 1 && SSL_write(ssl, "abc", 3) == 3) {
    if (clean) SSL_shutdown(ssl);
    ::shutdown(fd, SHUT_WR);
    char buf[256];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN) got += " (close_notify)";
  } else {
    got = "no connection";
  }
  SSL_free(ssl);
  ::close(fd);
  X509_free(c);
  X509_free(r);
  EVP_PKEY_free(k);
  BIO_free(cert);
  BIO_free(key);
  BIO_free(root);
  SSL_CTX_free(ctx);
  return got;
}

TEST_F(MeshProxyTest, OnlyAnEndWithCloseNotifyIsPassedOnFromTheMesh) {
  // A bare FIN on the mutual TLS side could come from anyone on the path (a truncation): it
  // closes both sides, so nothing comes back. A close_notify is the peer's own end: the instance
  // gets FIN, answers, and the answer comes back, then the instance's end as a close_notify.
  ::signal(SIGPIPE, SIG_IGN);  // the client writes with write(2), to a peer that may have closed
  Server server(answerAtEnd);
  auto v = view();
  v->healthy["shop/cart"] = {{"i1", "n1", "127.0.0.1", server.port()}};
  publish(v);
  EXPECT_EQ(endOverTls(*ca_, proxy_->meshAddress(), true), "got 3 bytes (close_notify)");
  EXPECT_EQ(endOverTls(*ca_, proxy_->meshAddress(), false), "");
}

TEST_F(MeshProxyTest, AnUndeclaredCallerAndAStrangerAreRefused) {
  auto v = view();
  v->callers["127.0.0.1"] = {"shop", "admin"};
  v->upstreams["shop/admin"] = {};
  publish(v);
  int fd = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(closedWithin(fd, 2000ms));
  ::close(fd);
  v = view();
  v->callers.clear();  // 127.0.0.1 is no instance
  publish(v);
  fd = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(closedWithin(fd, 2000ms));
  ::close(fd);
  EXPECT_EQ(proxy_->stats().denied, 1);
  EXPECT_EQ(proxy_->stats().unknown_peer, 1);
  EXPECT_EQ(proxy_->stats().inbound, 0);
}

TEST_F(MeshProxyTest, ADenyCutsAnOpenConnection) {
  publish(view());
  int fd = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(roundTrip(fd, "one"), "one");
  auto v = view();
  v->rules.push_back(Rule{Pattern::parse("shop/web").value(), Pattern::parse("shop/cart").value(),
                          Action::kDeny});
  auto before = std::chrono::steady_clock::now();
  proxy_->setView(v);
  EXPECT_TRUE(closedWithin(fd, 1000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1000ms);
  ::close(fd);
  EXPECT_GE(proxy_->stats().cut, 1);
  // Both sides' relays end on their own thread, just after the client saw the close.
  for (int i = 0; i < 200 && proxy_->stats().open != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(proxy_->stats().open, 0);
}

TEST_F(MeshProxyTest, ACallToAServiceAtZeroIsHeldAndAsksForAColdStart) {
  publish(view(false));
  int fd = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "wake", 4), 4);  // sent while held: delivered once relayed
  for (int i = 0; i < 100 && cold_.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(cold_.load(), 1);
  EXPECT_EQ(cold_service_, "shop/cart");
  auto d = proxy_->demand();
  EXPECT_EQ(d["shop/cart"].held, 1);
  proxy_->setView(view(true));
  char buf[8];
  ssize_t r = ::read(fd, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, r > 0 ? static_cast<size_t>(r) : 0), "wake");
  ::close(fd);
  EXPECT_EQ(proxy_->demand()["shop/cart"].held, 0);
  EXPECT_EQ(proxy_->demand()["shop/cart"].arrivals, 1);
}

TEST_F(MeshProxyTest, ManyHeldCallsAreAllReleasedWhenAnInstanceIsReady) {
  publish(view(false));
  std::vector<int> fds;
  for (int i = 0; i < 30; ++i) {
    int fd = connectTo("127.0.0.2", vip_port_);
    ASSERT_GE(fd, 0);
    const std::string msg = "call" + std::to_string(i);
    ASSERT_EQ(::write(fd, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    fds.push_back(fd);
  }
  for (int i = 0; i < 200 && proxy_->demand()["shop/cart"].held < 30; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(proxy_->demand()["shop/cart"].held, 30);
  proxy_->setView(view(true));
  // Released in the queue's ramp (8, then 2 per connection that reached the destination).
  for (size_t i = 0; i < fds.size(); ++i) {
    const std::string want = "call" + std::to_string(i);
    std::string got(want.size(), '\0');
    size_t n = 0;
    while (n < want.size()) {
      ssize_t r = ::read(fds[i], got.data() + n, want.size() - n);
      if (r <= 0) break;
      n += static_cast<size_t>(r);
    }
    EXPECT_EQ(got.substr(0, n), want);
    ::close(fds[i]);
  }
  EXPECT_EQ(proxy_->demand()["shop/cart"].held, 0);
}

TEST_F(MeshProxyTest, PastItsHoldQueueAHeldCallIsClosed) {
  proxy_.reset();
  MeshProxyOptions o;
  o.node_id = "n1";
  o.vip_port = vip_port_;
  o.hold_queue = 1;
  proxy_ = std::make_unique<MeshProxy>(o, *ca_, SystemClock::instance());
  ASSERT_TRUE(proxy_->start().isOk());
  publish(view(false));
  int first = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(first, 0);
  for (int i = 0; i < 200 && proxy_->demand()["shop/cart"].held < 1; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  int second = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(second, 0);
  EXPECT_TRUE(closedWithin(second, 2000ms));
  EXPECT_EQ(proxy_->stats().failed, 1);
  proxy_->setView(view(true));
  EXPECT_EQ(roundTrip(first, "held"), "held");
  ::close(first);
  ::close(second);
}

TEST_F(MeshProxyTest, ConnectionsPastTheLimitAreClosedAtOnce) {
  proxy_.reset();
  MeshProxyOptions o;
  o.node_id = "n1";
  o.vip_port = vip_port_;
  o.max_connections = 2;  // one call: its caller side and its destination side
  proxy_ = std::make_unique<MeshProxy>(o, *ca_, SystemClock::instance());
  ASSERT_TRUE(proxy_->start().isOk());
  publish(view());
  int first = connectTo("127.0.0.2", vip_port_);
  ASSERT_EQ(roundTrip(first, "one"), "one");
  int second = connectTo("127.0.0.2", vip_port_);
  ASSERT_GE(second, 0);
  EXPECT_TRUE(closedWithin(second, 2000ms));
  EXPECT_GE(proxy_->stats().limited, 1);
  EXPECT_EQ(roundTrip(first, "still"), "still");
  ::close(first);
  ::close(second);
}

TEST_F(MeshProxyTest, TheMeshListenerWantsACertificateOfThisMesh) {
  publish(view());
  // A plain TCP client that speaks no TLS, and one that sends garbage, get nothing.
  auto addr = proxy_->meshAddress();
  int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  int fd = connectTo("127.0.0.1", port);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
  EXPECT_TRUE(closedWithin(fd, 3000ms));
  ::close(fd);
  EXPECT_EQ(proxy_->stats().inbound, 0);
}

}  // namespace
}  // namespace baton::mesh
