// The data paths' sockets (the gateway's and the mesh proxy's): an edge-triggered epoll instance
// per thread, watched by that thread's io_context, and a socket type that plugs into Asio
// (coroutines, ssl::stream, async_write).
//
// Why not Asio's own sockets: Asio tries every read at once and, when the socket is empty, pays a
// failed recv (EAGAIN) before it waits; in a proxy's request/response rhythm that is most reads
// (~0.8 failed recv per proxied request, measured). Here each socket remembers whether an edge
// arrived since a read last drained it (a short read), so a read either succeeds or waits without
// a system call, and a socket is registered once (no epoll_ctl per wait). Data-path code may also
// read and write synchronously (readSome/writeSome) and suspend only when the socket would block.
//
// Includes Asio: for the data paths' .cc files and their private headers only. Thread safety: a
// Reactor and its sockets are used on its io_context's thread only.
#pragma once

#include <sys/epoll.h>
#include <sys/uio.h>

#include <array>
#include <chrono>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

namespace baton::edge {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using Exec = asio::io_context::executor_type;
using tcp = asio::ip::tcp;
using IoHandler = asio::any_completion_handler<void(error_code, std::size_t)>;

// What the reactor knows about one descriptor. Heap-allocated so epoll's data pointer stays put
// when the owning socket moves; a closed one is kept until the current dispatch is over.
struct FdState {
  enum class Op : unsigned char { kNone, kRead, kWaitReadable, kWrite, kConnect };
  int fd = -1;
  bool readable = true;  // worth a recv: no read has drained the socket since its last edge
  bool writable = true;
  bool closed_by_peer = false;  // an edge said FIN, hang-up or error: reads never wait again
  Op read_op = Op::kNone;
  Op write_op = Op::kNone;
  asio::mutable_buffer read_buf;
  std::array<iovec, 16> write_iov{};
  size_t write_iov_n = 0;
  IoHandler reader;
  IoHandler writer;
};

class Reactor {
 public:
  Reactor() = default;
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;
  ~Reactor();

  // Creates the epoll instance and starts watching it on `ioc`. Throws std::system_error when the
  // kernel refuses (start-up only).
  void start(asio::io_context& ioc);
  // Destroys every pending operation's handler (no completion), stops watching. Call before the
  // io_context is destroyed; sockets may still be closed afterwards.
  void shutdown();

  Exec executor() const { return *exec_; }
  // Registers `fd` (non-blocking) for read and write edges. Null with `ec` set on failure.
  std::unique_ptr<FdState> add(int fd, error_code& ec);
  // Deregisters and closes the descriptor; its state is freed after the current dispatch.
  void close(std::unique_ptr<FdState> st);
  // Completes `h` later on the worker (never inside the initiating call).
  void post(IoHandler h, error_code ec, size_t n);
  // Connections to IPv4 addresses other than loopback go out from `address` (docs/mesh.md
  // "Who is calling"); "" (the default): the kernel's choice.
  void setConnectSource(std::string address) { connect_source_ = std::move(address); }

 private:
  void arm();
  bool dispatch();  // false: nothing was ready
  void sendDeferred();
  static void performRead(FdState& s);
  static void performWrite(FdState& s);

  // Watching (and owning) the epoll instance; empty before start() and after shutdown().
  bool live() const { return watch_.has_value(); }
  int epfd() { return watch_->native_handle(); }

  std::optional<Exec> exec_;  // set by start(), kept after shutdown (sockets still ask for it)
  std::optional<asio::posix::basic_stream_descriptor<Exec>> watch_;
  std::unordered_set<FdState*> states_;
  std::vector<std::unique_ptr<FdState>> retired_;
  std::vector<epoll_event> events_;
  std::vector<FdState*> deferred_;  // writes started during a dispatch, sent at its end
  bool dispatching_ = false;
  bool takeSync() {
    if (sync_left_ <= 0) return false;
    --sync_left_;
    return true;
  }
  std::string connect_source_;
  int sync_left_ = 0;    // synchronous operations left in this round (kSyncBudget in edge.cc)
  int last_events_ = 0;  // how busy the previous round was (see kGatherEvents in edge.cc)
  std::chrono::steady_clock::time_point last_round_{};
  friend class Socket;
};

// A TCP socket on a Reactor. Movable; one read and one write may be pending at a time (as with
// any stream). Satisfies Asio's AsyncReadStream/AsyncWriteStream, so ssl::stream and
// asio::async_write take it.
class Socket {
 public:
  using executor_type = Exec;
  using lowest_layer_type = Socket;

  explicit Socket(Reactor& r) : reactor_(&r) {}
  Socket(Reactor& r, int fd, error_code& ec);  // adopts a connected, non-blocking fd
  Socket(Socket&& o) noexcept : reactor_(o.reactor_), st_(std::move(o.st_)) {}
  Socket& operator=(Socket&& o) noexcept;
  ~Socket() { close(); }

  executor_type get_executor() const { return reactor_->executor(); }
  lowest_layer_type& lowest_layer() { return *this; }
  bool is_open() const { return st_ != nullptr; }
  int native_handle() const { return st_ ? st_->fd : -1; }

  // Completes pending operations with operation_aborted (later, not inside this call).
  void cancel();
  void close();
  // Ends the sending direction (TCP FIN); reads go on. False when the kernel refuses.
  bool shutdownWrite();
  // Whether a write (or connect) is in progress.
  bool writing() const { return st_ && st_->write_op != FdState::Op::kNone; }
  void setNoDelay();
  // The peer's address, or nullopt.
  std::optional<tcp::endpoint> remoteEndpoint() const;

  // For an idle connection about to carry a new request: true when the peer has sent nothing
  // since the last read drained it (no edge, or a peek finds nothing), false when it has bytes
  // waiting (a response nobody asked for) or has closed. Costs a system call only after an edge.
  bool idleAndClean();

  // A listener's next connection (non-blocking, close-on-exec), or -1 with `ec` set
  // (would_block: none waiting; wait with async_wait_readable).
  int accept(tcp::endpoint* peer, error_code& ec);

  // Synchronous attempts: would_block when the socket has nothing to read / no room, or when
  // the round's budget of synchronous operations is spent (then the async call completes later).
  size_t readSome(asio::mutable_buffer b, error_code& ec);
  size_t writeSome(std::span<const asio::const_buffer> bufs, error_code& ec);

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& bufs, Token&& token) {
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, asio::mutable_buffer b) { startRead(IoHandler(std::move(handler)), b); },
        token, firstNonEmpty(bufs));
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& bufs, Token&& token) {
    std::array<asio::const_buffer, 16> arr;
    size_t n = 0;
    for (auto it = asio::buffer_sequence_begin(bufs), end = asio::buffer_sequence_end(bufs);
         it != end && n < arr.size(); ++it) {
      asio::const_buffer b(*it);
      if (b.size() > 0) arr[n++] = b;
    }
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, std::array<asio::const_buffer, 16> arr, size_t n) {
          startWrite(IoHandler(std::move(handler)), std::span(arr.data(), n));
        },
        token, arr, n);
  }
  // Opens the socket if needed and connects; completes with (ec, 0). To an IPv4 address other
  // than loopback the connection goes out from `source` when it is not empty, else from the
  // reactor's setConnectSource(); an address the host does not have completes with
  // EADDRNOTAVAIL.
  template <class Token>
  auto async_connect(const tcp::endpoint& ep, Token&& token) {
    return async_connect(ep, std::string(), std::forward<Token>(token));
  }
  template <class Token>
  auto async_connect(const tcp::endpoint& ep, std::string source, Token&& token) {
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, tcp::endpoint ep, std::string source) {
          startConnect(IoHandler(std::move(handler)), ep, source);
        },
        token, ep, std::move(source));
  }
  // Completes with (ec, 0) once the socket is readable (a listener: once a connection waits).
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler) { startWaitReadable(IoHandler(std::move(handler))); }, token);
  }

 private:
  template <class MutableBuffers>
  static asio::mutable_buffer firstNonEmpty(const MutableBuffers& bufs) {
    for (auto it = asio::buffer_sequence_begin(bufs), end = asio::buffer_sequence_end(bufs);
         it != end; ++it) {
      asio::mutable_buffer b(*it);
      if (b.size() > 0) return b;
    }
    return {};
  }
  void startRead(IoHandler h, asio::mutable_buffer b);
  void startWrite(IoHandler h, std::span<const asio::const_buffer> bufs);
  void startConnect(IoHandler h, const tcp::endpoint& ep, const std::string& source);
  void startWaitReadable(IoHandler h);

  Reactor* reactor_;
  std::unique_ptr<FdState> st_;
};

}  // namespace baton::edge
