// The gateway data path's I/O vocabulary (private to src/gateway; includes Asio): type aliases,
// the coarse clock, fixed buffers, gather lists and the read/write helpers that try a plain
// socket synchronously before suspending (edge.h). Used by the session, the listener, the
// upstream pool and the hold queue.
#pragma once

#include <time.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "edge/await.h"

namespace baton::gateway::detail {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Exec = asio::io_context::executor_type;
using Socket = edge::Socket;
using Acceptor = asio::basic_socket_acceptor<tcp, Exec>;
using edge::Timer;
using TlsStream = ssl::stream<Socket>;
using edge::Awaitable;
using Steady = std::chrono::steady_clock;
using edge::kUse;
using edge::readSome;
using edge::sendAll;

// Deadlines and pool ages are seconds-scale: the coarse monotonic clock (same epoch as
// steady_clock, one scheduler tick of resolution) is read without touching the TSC.
inline Steady::time_point coarseNow() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Steady::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

constexpr size_t kUpstreamBuf = 32 * 1024;
constexpr uint64_t kAcceptBurst = 3;  // connections accepted before the accept loop yields
constexpr size_t kMaxFields = 128;
constexpr size_t kMaxResponseHead = kUpstreamBuf - 1024;

// Appends [p, p + n) to a gather list, extending the last entry when the bytes are adjacent.
inline void appendBuf(std::vector<asio::const_buffer>& iov, const char* p, size_t n) {
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

}  // namespace baton::gateway::detail
