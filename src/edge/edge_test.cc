// edge::Reactor and edge::Socket on real loopback TCP sockets: reads that wait for an edge,
// backpressure, connect, cancel, close while a round is in progress, shutdown, and an echo
// stress run that would hang on a lost wake-up.
#include "edge/edge.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace baton::edge {
namespace {

using namespace std::chrono_literals;
template <class T>
using Awaitable = asio::awaitable<T, Exec>;
constexpr auto kUse = asio::as_tuple(asio::use_awaitable_t<Exec>{});

// A listening loopback socket (blocking), port chosen by the kernel.
struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 128), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
  tcp::endpoint endpoint() const {
    return tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  }
  // Accepts one connection, non-blocking (for an edge::Socket).
  int acceptNonBlocking() const { return ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); }
};

int dialBlocking(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

bool writeFully(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool readFully(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::recv(fd, p, n, 0);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

class EdgeTest : public ::testing::Test {
 protected:
  EdgeTest() { reactor.start(ioc); }
  ~EdgeTest() override { reactor.shutdown(); }
  // Runs the io_context until `done` or the time limit.
  void runUntil(const std::atomic<bool>& done, std::chrono::seconds limit = 20s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!done.load() && std::chrono::steady_clock::now() < end) {
      ioc.run_for(10ms);
      if (ioc.stopped()) ioc.restart();
    }
  }
  // A connected pair: a blocking client descriptor and the accepted side, on the reactor.
  std::pair<int, std::unique_ptr<Socket>> connectPair() {
    int client = dialBlocking(listener.port);
    error_code ec;
    auto server = std::make_unique<Socket>(reactor, listener.acceptNonBlocking(), ec);
    EXPECT_FALSE(ec) << ec.message();
    return {client, std::move(server)};
  }
  // Starts a coroutine that reads once from `s`: its error lands in `got`, then `done` is set.
  void spawnRead(Socket& s, error_code& got, std::atomic<bool>& done) {
    asio::co_spawn(
        ioc,
        [&s, &got, &done]() -> Awaitable<void> {
          char buf[16];
          auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), kUse);
          got = rec;
          done = true;
        },
        asio::detached);
  }
  Reactor reactor;  // outlives ioc (declared first), as in the gateway's Worker
  asio::io_context ioc;
  Listener listener;
};

TEST_F(EdgeTest, ReadWaitsForAnEdgeWithoutAFailedRecvThenCompletes) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  error_code ec;
  char buf[64];
  // Nothing sent yet: the first attempt fails (EAGAIN), and marks the socket drained.
  s.readSome(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::would_block);
  // Drained: the next attempt does not even try.
  s.readSome(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::would_block);

  std::atomic<bool> done{false};
  std::string got;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), kUse);
        if (!rec) got.assign(buf, n);
        done = true;
      },
      asio::detached);
  ioc.run_for(20ms);  // the read is now waiting
  EXPECT_FALSE(done.load());
  ASSERT_TRUE(writeFully(client, "hello", 5));
  runUntil(done);
  EXPECT_EQ(got, "hello");
  ::close(client);
}

TEST_F(EdgeTest, EndOfStreamIsEof) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  error_code ec;
  ::close(client);
  std::atomic<bool> done{false};
  error_code got;
  spawnRead(s, got, done);
  runUntil(done);
  EXPECT_EQ(got, asio::error::eof);
}

// The last bytes and the FIN arrive under one edge; the read that takes the bytes is short, but
// the end of the stream must still be seen (no further edge will announce it).
TEST_F(EdgeTest, DataThenCloseUnderOneEdgeIsReadThenEof) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  error_code ec;
  char buf[64];
  s.readSome(asio::buffer(buf), ec);  // drained: the next read waits for an edge
  ASSERT_EQ(ec, asio::error::would_block);
  std::atomic<bool> done{false};
  std::string got;
  error_code end;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), kUse);
        if (!rec) got.assign(buf, n);
        error_code e2;
        size_t n2 = s.readSome(asio::buffer(buf), e2);
        if (e2 == asio::error::would_block) {
          std::tie(e2, n2) = co_await s.async_read_some(asio::buffer(buf), kUse);
        }
        end = e2;
        done = true;
      },
      asio::detached);
  ASSERT_TRUE(writeFully(client, "last", 4));
  ::close(client);  // before the worker runs: bytes and FIN are both there at the first edge
  runUntil(done, 5s);
  ASSERT_TRUE(done.load()) << "the end of the stream was never seen";
  EXPECT_EQ(got, "last");
  EXPECT_EQ(end, asio::error::eof);
}

// Synchronous reads are bounded per round: past the budget a ready socket still answers, but
// through the queue (a bulk transfer cannot hold the thread).
TEST_F(EdgeTest, SynchronousReadsAreBoundedThenCompleteThroughTheQueue) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  error_code ec;
  std::string data(1000, 'x');
  ASSERT_TRUE(writeFully(client, data.data(), data.size()));
  std::this_thread::sleep_for(20ms);  // let the bytes arrive (loopback)
  size_t sync_reads = 0;
  char one;
  for (;;) {  // one byte at a time: every read is "full", the socket stays readable
    s.readSome(asio::buffer(&one, 1), ec);
    if (ec) break;
    ++sync_reads;
  }
  EXPECT_EQ(ec, asio::error::would_block);
  EXPECT_GT(sync_reads, 0u);
  EXPECT_LT(sync_reads, data.size());  // stopped by the budget, not by running dry
  std::atomic<bool> done{false};
  size_t async_n = 0;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        char buf[2000];
        auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), kUse);
        if (!rec) async_n = n;
        done = true;
      },
      asio::detached);
  runUntil(done, 5s);
  EXPECT_EQ(sync_reads + async_n, data.size());
  ::close(client);
}

TEST_F(EdgeTest, LargeWriteWaitsForRoomAndArrivesIntact) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  error_code ec;
  // 16 MiB: far more than the socket buffers hold, so the write must wait for the reader.
  std::vector<char> data(16 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + (i >> 12));
  std::vector<char> received(data.size());
  std::atomic<bool> read_ok{false};
  std::thread reader([&] {
    std::this_thread::sleep_for(50ms);  // let the sender fill the buffers first
    read_ok = readFully(client, received.data(), received.size());
  });
  std::atomic<bool> done{false};
  error_code wec;
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto [e, n] = co_await asio::async_write(s, asio::buffer(data), kUse);
        wec = e;
        done = true;
      },
      asio::detached);
  runUntil(done, 60s);
  reader.join();
  EXPECT_FALSE(wec) << wec.message();
  ASSERT_TRUE(read_ok.load());
  EXPECT_TRUE(received == data);
  ::close(client);
}

TEST_F(EdgeTest, ConnectSucceedsOrReportsRefusal) {
  std::atomic<bool> done{false};
  error_code ok_ec, refused_ec;
  Socket up(reactor), nowhere(reactor);
  // A port with no listener: bind one, note it, close it.
  int closed_port;
  {
    Listener gone;
    closed_port = gone.port;
  }
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto [e1, n1] = co_await up.async_connect(listener.endpoint(), kUse);
        ok_ec = e1;
        auto [e2, n2] = co_await nowhere.async_connect(
            tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                          static_cast<unsigned short>(closed_port)),
            kUse);
        refused_ec = e2;
        done = true;
      },
      asio::detached);
  runUntil(done);
  EXPECT_FALSE(ok_ec) << ok_ec.message();
  EXPECT_EQ(refused_ec, asio::error::connection_refused);
  // The connected socket works: the listener's side receives what it sends.
  int server = ::accept(listener.fd, nullptr, nullptr);
  asio::const_buffer b("ping", 4);
  error_code wec;
  EXPECT_EQ(up.writeSome(std::span(&b, 1), wec), 4u);
  char buf[4];
  ASSERT_TRUE(readFully(server, buf, 4));
  EXPECT_EQ(std::string(buf, 4), "ping");
  ::close(server);
}

TEST_F(EdgeTest, AConnectionGoesOutFromTheSourceItNames) {
  // The mesh proxy connects to an instance from the caller's service address. A source the host
  // does not have fails at bind, before any packet: the named source was used. To loopback the
  // source is not applied (the instance is on the host's own network).
  std::atomic<bool> done{false};
  error_code foreign_ec, loopback_ec;
  Socket far(reactor), near(reactor);
  asio::co_spawn(
      ioc,
      [&]() -> Awaitable<void> {
        auto [e1, n1] = co_await far.async_connect(
            tcp::endpoint(asio::ip::make_address("192.0.2.1"), 80), "203.0.113.7", kUse);
        foreign_ec = e1;
        auto [e2, n2] = co_await near.async_connect(listener.endpoint(), "203.0.113.7", kUse);
        loopback_ec = e2;
        done = true;
      },
      asio::detached);
  runUntil(done);
  EXPECT_EQ(foreign_ec.value(), EADDRNOTAVAIL) << foreign_ec.message();
  EXPECT_FALSE(loopback_ec) << loopback_ec.message();
}

TEST_F(EdgeTest, CancelCompletesAPendingReadWithOperationAborted) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  std::atomic<bool> done{false};
  error_code got;
  spawnRead(s, got, done);
  ioc.run_for(20ms);
  ASSERT_FALSE(done.load());
  s.cancel();
  EXPECT_FALSE(done.load());  // completed later, never inside cancel()
  runUntil(done);
  EXPECT_EQ(got, asio::error::operation_aborted);
  ::close(client);
}

// Two sockets become readable in the same round; whichever handler runs first closes the
// other socket. The other pending read must end with operation_aborted (not touch freed state).
TEST_F(EdgeTest, ClosingAnotherSocketDuringARoundIsSafe) {
  int c1 = dialBlocking(listener.port);
  error_code ec;
  auto s1 = std::make_unique<Socket>(reactor, listener.acceptNonBlocking(), ec);
  int c2 = dialBlocking(listener.port);
  auto s2 = std::make_unique<Socket>(reactor, listener.acceptNonBlocking(), ec);
  std::atomic<int> finished{0};
  std::vector<error_code> results;
  auto reader = [&](Socket& mine, std::unique_ptr<Socket>& other) -> Awaitable<void> {
    char buf[16];
    auto [rec, n] = co_await mine.async_read_some(asio::buffer(buf), kUse);
    results.push_back(rec);
    if (!rec && other) other->close();
    ++finished;
  };
  asio::co_spawn(ioc, reader(*s1, s2), asio::detached);
  asio::co_spawn(ioc, reader(*s2, s1), asio::detached);
  ioc.run_for(20ms);
  ASSERT_TRUE(writeFully(c1, "a", 1));
  ASSERT_TRUE(writeFully(c2, "b", 1));
  auto end = std::chrono::steady_clock::now() + 10s;
  while (finished.load() < 2 && std::chrono::steady_clock::now() < end) ioc.run_for(10ms);
  ASSERT_EQ(finished.load(), 2);
  int ok = 0, aborted = 0;
  for (auto& r : results) {
    if (!r) ++ok;
    if (r == asio::error::operation_aborted) ++aborted;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(aborted, 1);
  ::close(c1);
  ::close(c2);
}

TEST_F(EdgeTest, ShutdownDestroysPendingOperations) {
  auto [client, owned] = connectPair();
  Socket& s = *owned;
  auto sentinel = std::make_shared<int>(1);
  std::weak_ptr<int> watch = sentinel;
  asio::co_spawn(
      ioc,
      [&s, keep = std::move(sentinel)]() -> Awaitable<void> {
        char buf[16];
        co_await s.async_read_some(asio::buffer(buf), kUse);
      },
      asio::detached);
  ioc.run_for(20ms);
  EXPECT_FALSE(watch.expired());  // the coroutine waits on the socket
  reactor.shutdown();
  ioc.poll();  // Asio unwinds a destroyed coroutine through its executor
  EXPECT_TRUE(watch.expired());  // its frame (and what it held) is gone
  ::close(client);
}

// Many connections echoing small messages back and forth through the reactor (one coroutine per
// connection, reads and writes on edge sockets), clients on their own threads. Under this load
// rounds gather events and batch their writes; a lost edge would leave a client waiting forever.
TEST_F(EdgeTest, EchoUnderLoadLosesNoWakeUp) {
  constexpr int kClients = 24;
  constexpr int kRoundTrips = 400;
  std::atomic<int> served{0};
  std::vector<std::unique_ptr<Socket>> servers;
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(dialBlocking(listener.port));
    error_code ec;
    servers.push_back(std::make_unique<Socket>(reactor, listener.acceptNonBlocking(), ec));
    ASSERT_FALSE(ec);
  }
  auto echo = [&](Socket& s) -> Awaitable<void> {
    char buf[256];
    for (;;) {
      error_code ec;
      size_t n = s.readSome(asio::buffer(buf), ec);
      if (ec == asio::error::would_block) {
        std::tie(ec, n) = co_await s.async_read_some(asio::buffer(buf), kUse);
      }
      if (ec) co_return;
      asio::const_buffer out(buf, n);
      size_t w = s.writeSome(std::span(&out, 1), ec);
      if (ec == asio::error::would_block) {
        std::tie(ec, w) = co_await s.async_write_some(std::span(&out, 1), kUse);
      }
      if (ec || w != n) co_return;  // tiny messages: never partial here
      ++served;
    }
  };
  for (auto& s : servers) asio::co_spawn(ioc, echo(*s), asio::detached);
  std::atomic<int> ok_clients{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, fd = clients[static_cast<size_t>(i)], i] {
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      for (int k = 0; k < kRoundTrips; ++k) {
        std::string msg = "client " + std::to_string(i) + " message " + std::to_string(k);
        char back[64];
        if (!writeFully(fd, msg.data(), msg.size())) return;
        if (!readFully(fd, back, msg.size())) return;
        if (std::string(back, msg.size()) != msg) return;
      }
      ++ok_clients;
    });
  }
  std::atomic<bool> all{false};
  std::thread watcher([&] {
    for (auto& t : threads) t.join();
    all = true;
  });
  runUntil(all, 120s);
  watcher.join();
  EXPECT_EQ(ok_clients.load(), kClients);
  EXPECT_GE(served.load(), kClients * kRoundTrips);
  for (int fd : clients) ::close(fd);
}

}  // namespace
}  // namespace baton::edge
