#include "node/prober.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "node/port_allocator.h"

namespace baton::node {
namespace {

using std::chrono::milliseconds;

// A listener on 127.0.0.1:0. With a response, a thread accepts connections,
// reads the request head and writes `response` (or nothing when `silent`).
class Server {
 public:
  explicit Server(std::string response = "", bool silent = false, int backlog = 16)
      : response_(std::move(response)), silent_(silent) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, backlog), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (!response_.empty() || silent_) thread_ = std::thread([this] { serve(); });
  }
  ~Server() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::string lastRequest() {
    std::lock_guard lock(mu_);
    return request_;
  }

 private:
  void serve() {
    while (!done_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string req;
      char buf[512];
      while (req.find("\r\n\r\n") == std::string::npos) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 1000) <= 0) break;
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        request_ = req;
      }
      if (silent_) {
        while (!done_) std::this_thread::sleep_for(milliseconds(10));  // hold the connection
      } else {
        ::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::string response_;
  bool silent_;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::string request_;
  std::thread thread_;
};

int closedPort() {
  // A port that was just free: nothing listens on it.
  PortAllocator alloc;
  return *alloc.allocate({});
}

TEST(ProberTest, TcpSucceedsAgainstAListener) {
  Server s;
  EXPECT_TRUE(probeTcp("127.0.0.1", s.port(), milliseconds(1000)).isOk());
}

TEST(ProberTest, TcpFailsFastWhenRefused) {
  Status st = probeTcp("127.0.0.1", closedPort(), milliseconds(1000));
  EXPECT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("Connection refused"), std::string::npos) << st.toString();
}

TEST(ProberTest, TcpTimesOutWhenTheListenerNeverAnswers) {
  // A loopback listener with a backlog of 0 that never accepts: once its queue is full the
  // kernel drops further SYNs, so a connect never completes and the probe must give up on its
  // own timeout (loopback only: tests send nothing off this machine).
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr *>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {  // fill the accept queue
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(milliseconds(100));  // let the handshakes settle (setup, not logic)
  Status st = probeTcp("127.0.0.1", ntohs(addr.sin_port), milliseconds(200));
  EXPECT_FALSE(st.isOk());
  for (int fd : fillers) ::close(fd);
  ::close(lfd);
}

TEST(ProberTest, HttpSuccessOn2xxAnd3xx) {
  Server ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_TRUE(probeHttp("127.0.0.1", ok.port(), "/healthz", milliseconds(1000)).isOk());
  std::string req = ok.lastRequest();
  EXPECT_EQ(req.rfind("GET /healthz HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(req.find("Host: 127.0.0.1:"), std::string::npos);

  Server redirect("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n");
  EXPECT_TRUE(probeHttp("127.0.0.1", redirect.port(), "/", milliseconds(1000)).isOk());
}

TEST(ProberTest, HttpFailsOn5xxAnd4xx) {
  Server bad("HTTP/1.1 503 Service Unavailable\r\n\r\n");
  Status st = probeHttp("127.0.0.1", bad.port(), "/healthz", milliseconds(1000));
  EXPECT_FALSE(st.isOk());
  EXPECT_EQ(st.message(), "GET /healthz returned 503");
  Server missing("HTTP/1.1 404 Not Found\r\n\r\n");
  EXPECT_FALSE(probeHttp("127.0.0.1", missing.port(), "/healthz", milliseconds(1000)).isOk());
}

TEST(ProberTest, HttpFailsOnGarbage) {
  Server junk("SSH-2.0-OpenSSH_9.2\r\n");
  Status st = probeHttp("127.0.0.1", junk.port(), "/", milliseconds(1000));
  EXPECT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("not an HTTP response"), std::string::npos) << st.toString();
}

TEST(ProberTest, HttpTimesOutOnASilentServer) {
  Server silent("", /*silent=*/true);
  auto t0 = std::chrono::steady_clock::now();
  Status st = probeHttp("127.0.0.1", silent.port(), "/", milliseconds(200));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(st.code(), Code::kTimeout) << st.toString();
  EXPECT_GE(took, milliseconds(150));
  EXPECT_LT(took, milliseconds(1500));
}

TEST(ProberTest, HttpFailsWhenRefused) {
  EXPECT_FALSE(probeHttp("127.0.0.1", closedPort(), "/", milliseconds(500)).isOk());
}

TEST(ProberTest, ProbeDispatchesOnTheCheckKind) {
  Server ok("HTTP/1.1 204 No Content\r\n\r\n");
  model::HealthCheck http;
  http.kind = model::HealthCheck::Kind::kHttp;
  http.path = "/ready";
  EXPECT_TRUE(probe(http, "127.0.0.1", ok.port()).isOk());
  EXPECT_EQ(ok.lastRequest().rfind("GET /ready ", 0), 0u);
  model::HealthCheck tcp;
  EXPECT_FALSE(probe(tcp, "127.0.0.1", closedPort()).isOk());
}

TEST(PortAllocatorTest, GivesDistinctBindablePorts) {
  PortAllocator alloc;
  std::set<int> seen;
  for (int i = 0; i < 20; ++i) {
    auto p = alloc.allocate(seen);
    ASSERT_TRUE(p.isOk()) << p.status().toString();
    EXPECT_GT(*p, 0);
    EXPECT_TRUE(seen.insert(*p).second) << "port handed out twice: " << *p;
  }
}

TEST(PortAllocatorTest, AvoidsPortsInUse) {
  PortAllocator a;
  PortAllocator b;  // a fresh allocator, told which ports are live
  int first = *a.allocate({});
  for (int i = 0; i < 50; ++i) EXPECT_NE(*b.allocate({first}), first);
}

}  // namespace
}  // namespace baton::node
