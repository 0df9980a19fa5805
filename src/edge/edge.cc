// Edge-triggered sockets for the data path (see edge.h).
#include "edge/edge.h"

#include "core/source_address.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

namespace baton::edge {
namespace {

// A wake-up of io_context handles at most this many rounds (epoll_wait + handlers + writes), and
// starts no new round after kWakeBudget, before io_context runs what was posted to it (timers,
// TLS completions, new connections' first steps, other threads' work). Without the time bound,
// rounds full of TLS handshakes held that work back: p99 17 ms instead of 6 (bench/gateway).
constexpr int kMaxRounds = 8;
constexpr auto kWakeBudget = std::chrono::microseconds(500);
// Under load a round gathers events for up to kGatherWait or until kGatherEvents are in, like a
// NIC's interrupt coalescing: the requests a round forwards then reach the backend together
// (it wakes once for the lot) and the responses reach clients together. Measured on
// bench/gateway, this took the backend from ~10 to ~6 sleeps per 100 requests and the proxy's
// throughput up by 6-7%. "Under load": the previous round, less than kBusyWindow ago, had at
// least kBusyEvents events; a lone request is never held.
constexpr int kGatherEvents = 28;
constexpr auto kGatherWait = std::chrono::microseconds(30);
constexpr int kBusyEvents = 4;
constexpr auto kBusyWindow = std::chrono::milliseconds(1);
constexpr int kPollEvents = 256;
// Synchronous reads and writes per round. Past it they complete through io_context's queue, so a
// bulk transfer between two fast peers cannot keep the thread from everything else.
constexpr int kSyncBudget = 64;
// A write waits for the end of its round at most this long (a round of plain HTTP requests takes
// ~200 µs; one of TLS handshakes takes milliseconds).
constexpr auto kMaxDeferral = std::chrono::microseconds(250);

error_code errnoCode(int e) { return error_code(e, boost::system::system_category()); }

// A failed call's errno as an error; EAGAIN also marks that direction not ready (`ready`).
error_code failure(bool& ready) {
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    ready = false;
    return asio::error::would_block;
  }
  return errnoCode(errno);
}

// One recv. A short read drained the socket: the next read waits for an edge.
size_t recvOnce(FdState& s, asio::mutable_buffer b, error_code& ec) {
  for (;;) {
    ssize_t n = ::recv(s.fd, b.data(), b.size(), 0);
    if (n > 0) {
      // A short read drained the socket, unless the peer has closed or failed: the FIN (or
      // error) came with this data's edge, and no further edge will announce it.
      if (static_cast<size_t>(n) < b.size() && !s.closed_by_peer) s.readable = false;
      ec = {};
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      ec = asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    ec = failure(s.readable);
    return 0;
  }
}

// One sendmsg. A short write filled the socket: the next write waits for an edge.
size_t sendOnce(FdState& s, const iovec* iov, size_t n_iov, error_code& ec) {
  size_t total = 0;
  for (size_t i = 0; i < n_iov; ++i) total += iov[i].iov_len;
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = n_iov;
  for (;;) {
    ssize_t n = ::sendmsg(s.fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      if (static_cast<size_t>(n) < total) s.writable = false;
      ec = {};
      return static_cast<size_t>(n);
    }
    if (errno == EINTR) continue;
    ec = failure(s.writable);
    return 0;
  }
}

size_t toIovec(std::span<const asio::const_buffer> bufs, std::array<iovec, 16>& iov) {
  size_t n = 0;
  for (const auto& b : bufs) {
    if (n == iov.size()) break;
    if (b.size() == 0) continue;
    iov[n].iov_base = const_cast<void*>(b.data());
    iov[n].iov_len = b.size();
    ++n;
  }
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reactor

Reactor::~Reactor() {
  shutdown();
  retired_.clear();
}

void Reactor::start(asio::io_context& ioc) {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  watch_.emplace(ioc.get_executor());
  error_code ec;
  watch_->assign(fd, ec);  // owns the descriptor from here on
  if (ec) {
    ::close(fd);
    watch_.reset();
    throw std::system_error(ec.value(), std::generic_category(), "watching the epoll instance");
  }
  events_.resize(4 * kPollEvents);
  sync_left_ = kSyncBudget;
  exec_.emplace(ioc.get_executor());
  arm();
}

void Reactor::shutdown() {
  if (!live()) return;
  // From here on, cancelled operations are dropped, not posted.
  error_code ig;
  watch_->close(ig);
  watch_.reset();
  // Pending handlers own suspended coroutines, whose destruction closes more sockets (and so
  // touches states_): collect first, destroy after.
  std::vector<IoHandler> pending;
  for (FdState* s : states_) {
    if (s->reader) pending.push_back(std::move(s->reader));
    if (s->writer) pending.push_back(std::move(s->writer));
    s->read_op = s->write_op = FdState::Op::kNone;
  }
  pending.clear();
}

std::unique_ptr<FdState> Reactor::add(int fd, error_code& ec) {
  if (!live()) {
    ec = asio::error::shut_down;
    return nullptr;
  }
  auto st = std::make_unique<FdState>();
  st->fd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = st.get();
  if (::epoll_ctl(epfd(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    ec = errnoCode(errno);
    return nullptr;
  }
  states_.insert(st.get());
  ec = {};
  return st;
}

void Reactor::close(std::unique_ptr<FdState> st) {
  // Deregister before closing: a forked child may still share the file, which would keep the
  // registration (and its pointer to the state) alive past close().
  if (live()) {
    epoll_event ev{};
    ::epoll_ctl(epfd(), EPOLL_CTL_DEL, st->fd, &ev);
  }
  ::close(st->fd);
  st->fd = -1;
  states_.erase(st.get());
  if (dispatching_) retired_.push_back(std::move(st));
}

void Reactor::post(IoHandler h, error_code ec, size_t n) {
  if (!live()) return;  // shut down: the handler is destroyed, never run
  asio::post(*exec_, asio::append(std::move(h), ec, n));
}

void Reactor::arm() {
  // Each wait re-arms with EPOLL_CTL_MOD, which re-polls the epoll instance: events a wake-up
  // left behind (round or time limit) wake the next one at once.
  watch_->async_wait(asio::posix::descriptor_base::wait_read, [this](const error_code& ec) {
    if (ec && ec != asio::error::operation_aborted) {
      spdlog::error("edge: an epoll instance failed: {}", ec.message());
    }
    if (ec || !live()) return;
    // While edges keep coming, take them here (one epoll_wait per round) instead of through
    // io_context (a wait, a re-arm and two epoll_waits per round).
    auto wake = std::chrono::steady_clock::now();
    for (int round = 0; round < kMaxRounds && live(); ++round) {
      if (!dispatch() || std::chrono::steady_clock::now() - wake > kWakeBudget) break;
    }
    if (live()) arm();
  });
}

// Marks every socket that got an edge, then completes the operations those edges unblock. The
// handlers run inline (this is itself a completion handler on the worker): a resumed session
// parses and queues its write at once; the round's writes go out together at its end. Sockets
// closed meanwhile stay allocated until the end.
bool Reactor::dispatch() {
  int n = ::epoll_wait(epfd(), events_.data(), kPollEvents, 0);
  if (n <= 0) return false;
  auto start = std::chrono::steady_clock::now();
  if (last_events_ >= kBusyEvents && start - last_round_ < kBusyWindow) {
    while (n < kGatherEvents && n + kPollEvents <= static_cast<int>(events_.size()) &&
           std::chrono::steady_clock::now() - start < kGatherWait) {
      int k = ::epoll_wait(epfd(), events_.data() + n, kPollEvents, 0);
      if (k > 0) n += k;
    }
  }
  last_events_ = n;
  last_round_ = std::chrono::steady_clock::now();
  sync_left_ = kSyncBudget;
  dispatching_ = true;
  for (int i = 0; i < n; ++i) {
    auto* s = static_cast<FdState*>(events_[i].data.ptr);
    uint32_t e = events_[i].events;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->readable = true;
    if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->closed_by_peer = true;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->writable = true;
  }
  auto flushed = last_round_;
  for (int i = 0; i < n; ++i) {
    auto* s = static_cast<FdState*>(events_[i].data.ptr);
    if (s->fd >= 0 && s->readable && s->read_op != FdState::Op::kNone) performRead(*s);
    if (s->fd >= 0 && s->writable && s->write_op != FdState::Op::kNone) performWrite(*s);
    // A round of heavy handlers (TLS handshakes) sends what it has every kMaxDeferral.
    if (!deferred_.empty()) {
      auto now = std::chrono::steady_clock::now();
      if (now - flushed > kMaxDeferral) {
        sendDeferred();
        flushed = now;
      }
    }
  }
  sendDeferred();
  dispatching_ = false;
  retired_.clear();
  return true;
}

// Sends the writes the round's handlers made, together (their handlers may write again).
void Reactor::sendDeferred() {
  while (!deferred_.empty()) {
    std::vector<FdState*> batch;
    batch.swap(deferred_);
    for (FdState* s : batch) {
      if (s->fd >= 0 && s->writable && s->write_op == FdState::Op::kWrite) performWrite(*s);
    }
  }
}

void Reactor::performRead(FdState& s) {
  error_code ec;
  size_t n = 0;
  if (s.read_op == FdState::Op::kRead) {
    n = recvOnce(s, s.read_buf, ec);
    if (ec == asio::error::would_block) return;  // an edge for bytes already read: wait on
  }
  s.read_op = FdState::Op::kNone;
  IoHandler h(std::move(s.reader));
  std::move(h)(ec, n);
}

void Reactor::performWrite(FdState& s) {
  error_code ec;
  size_t n = 0;
  if (s.write_op == FdState::Op::kConnect) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) ec = errnoCode(err);
  } else {
    n = sendOnce(s, s.write_iov.data(), s.write_iov_n, ec);
    if (ec == asio::error::would_block) return;
  }
  s.write_op = FdState::Op::kNone;
  IoHandler h(std::move(s.writer));
  std::move(h)(ec, n);
}

// ---------------------------------------------------------------------------------------------
// Socket

Socket::Socket(Reactor& r, int fd, error_code& ec) : reactor_(&r) {
  st_ = r.add(fd, ec);
  if (!st_) ::close(fd);
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    reactor_ = o.reactor_;
    st_ = std::move(o.st_);
  }
  return *this;
}

void Socket::cancel() {
  if (!st_) return;
  if (st_->reader) {
    st_->read_op = FdState::Op::kNone;
    reactor_->post(std::move(st_->reader), asio::error::operation_aborted, 0);
  }
  if (st_->writer) {
    st_->write_op = FdState::Op::kNone;
    reactor_->post(std::move(st_->writer), asio::error::operation_aborted, 0);
  }
}

void Socket::close() {
  if (!st_) return;
  cancel();
  reactor_->close(std::move(st_));
}

int Socket::accept(tcp::endpoint* peer, error_code& ec) {
  if (!st_) {
    ec = asio::error::bad_descriptor;
    return -1;
  }
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(st_->fd, reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (peer != nullptr && len <= peer->capacity()) {
        std::memcpy(peer->data(), &ss, len);
        peer->resize(len);
      }
      ec = {};
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    ec = failure(st_->readable);
    return -1;
  }
}

bool Socket::shutdownWrite() { return st_ && ::shutdown(st_->fd, SHUT_WR) == 0; }

void Socket::setNoDelay() {
  if (!st_) return;
  int one = 1;
  ::setsockopt(st_->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::optional<tcp::endpoint> Socket::remoteEndpoint() const {
  if (!st_) return std::nullopt;
  tcp::endpoint ep;
  socklen_t len = static_cast<socklen_t>(ep.capacity());
  if (::getpeername(st_->fd, ep.data(), &len) != 0) return std::nullopt;
  ep.resize(len);
  return ep;
}

size_t Socket::readSome(asio::mutable_buffer b, error_code& ec) {
  if (!st_) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  if (b.size() == 0) {
    ec = {};
    return 0;
  }
  if (!st_->readable || !reactor_->takeSync()) {
    ec = asio::error::would_block;
    return 0;
  }
  return recvOnce(*st_, b, ec);
}

bool Socket::idleAndClean() {
  if (!st_ || st_->closed_by_peer) return false;
  if (!st_->readable) return true;
  char byte;
  ssize_t n = ::recv(st_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    st_->readable = false;  // drained: the next edge says the peer spoke
    return true;
  }
  return false;  // bytes waiting, end of stream or an error
}

size_t Socket::writeSome(std::span<const asio::const_buffer> bufs, error_code& ec) {
  if (!st_) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  if (!st_->writable || reactor_->dispatching_ || !reactor_->takeSync()) {
    ec = asio::error::would_block;
    return 0;
  }
  std::array<iovec, 16> iov;
  size_t n = toIovec(bufs, iov);
  if (n == 0) {
    ec = {};
    return 0;
  }
  return sendOnce(*st_, iov.data(), n, ec);
}

void Socket::startRead(IoHandler h, asio::mutable_buffer b) {
  if (!st_) return reactor_->post(std::move(h), asio::error::bad_descriptor, 0);
  // A zero-size read completes at once, even beside a pending one (ssl::stream uses it).
  if (b.size() == 0) return reactor_->post(std::move(h), {}, 0);
  if (st_->read_op != FdState::Op::kNone) {
    return reactor_->post(std::move(h), asio::error::already_started, 0);
  }
  if (st_->readable) {
    error_code ec;
    size_t n = recvOnce(*st_, b, ec);
    if (ec != asio::error::would_block) return reactor_->post(std::move(h), ec, n);
  }
  st_->read_op = FdState::Op::kRead;
  st_->read_buf = b;
  st_->reader.swap(h);
}

void Socket::startWaitReadable(IoHandler h) {
  if (!st_) return reactor_->post(std::move(h), asio::error::bad_descriptor, 0);
  if (st_->read_op != FdState::Op::kNone) {
    return reactor_->post(std::move(h), asio::error::already_started, 0);
  }
  if (st_->readable) return reactor_->post(std::move(h), {}, 0);
  st_->read_op = FdState::Op::kWaitReadable;
  st_->reader.swap(h);
}

void Socket::startWrite(IoHandler h, std::span<const asio::const_buffer> bufs) {
  if (!st_) return reactor_->post(std::move(h), asio::error::bad_descriptor, 0);
  std::array<iovec, 16> iov;
  size_t n_iov = toIovec(bufs, iov);
  if (n_iov == 0) return reactor_->post(std::move(h), {}, 0);
  if (st_->write_op != FdState::Op::kNone) {
    return reactor_->post(std::move(h), asio::error::already_started, 0);
  }
  std::copy_n(iov.begin(), n_iov, st_->write_iov.begin());
  st_->write_iov_n = n_iov;
  if (st_->writable && reactor_->dispatching_) {  // goes out with the batch's other writes
    st_->write_op = FdState::Op::kWrite;
    st_->writer.swap(h);
    reactor_->deferred_.push_back(st_.get());
    return;
  }
  if (st_->writable) {
    error_code ec;
    size_t n = sendOnce(*st_, st_->write_iov.data(), n_iov, ec);
    if (ec != asio::error::would_block) return reactor_->post(std::move(h), ec, n);
  }
  st_->write_op = FdState::Op::kWrite;
  st_->writer.swap(h);
}

void Socket::startConnect(IoHandler h, const tcp::endpoint& ep, const std::string& source) {
  if (st_) close();
  int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return reactor_->post(std::move(h), errnoCode(errno), 0);
  const std::string& from = source.empty() ? reactor_->connect_source_ : source;
  if (!from.empty() && ep.address().is_v4() && !ep.address().is_loopback()) {
    if (Status s = bindSourceAddress(fd, from); !s) {
      ::close(fd);
      return reactor_->post(std::move(h), errnoCode(EADDRNOTAVAIL), 0);
    }
  }
  // Connect first, register after: a socket that has not started connecting polls as writable
  // (and hung up), which would read as an instant success.
  int r;
  do {
    r = ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size()));
  } while (r != 0 && errno == EINTR);
  int err = r == 0 ? 0 : errno;
  if (err != 0 && err != EINPROGRESS) {
    ::close(fd);
    return reactor_->post(std::move(h), errnoCode(err), 0);
  }
  error_code ec;
  st_ = reactor_->add(fd, ec);
  if (!st_) {
    ::close(fd);
    return reactor_->post(std::move(h), ec, 0);
  }
  if (err == 0) return reactor_->post(std::move(h), {}, 0);
  st_->writable = false;
  st_->write_op = FdState::Op::kConnect;
  st_->writer.swap(h);
}

}  // namespace baton::edge
