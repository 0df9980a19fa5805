#include "node/prober.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/unique_fd.h"

namespace baton::node {
namespace {

using SteadyClock = std::chrono::steady_clock;

using Fd = UniqueFd;

int remainingMs(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline. kTimeout or kIo on failure.
Status waitFor(int fd, short events, SteadyClock::time_point deadline, const char *what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remainingMs(deadline));
    if (n > 0) return Status::ok();
    if (n == 0) return {Code::kTimeout, fmt::format("timed out {}", what)};
    if (errno != EINTR) return ioError(fmt::format("poll failed {}: {}", what, strerror(errno)));
  }
}

struct Resolved {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

Result<Resolved> resolve(const std::string &host, int port) {
  Resolved r;
  auto *v4 = reinterpret_cast<sockaddr_in *>(&r.addr);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&r.addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    r.len = sizeof(sockaddr_in);
    return r;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    r.len = sizeof(sockaddr_in6);
    return r;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return unavailable(fmt::format("cannot resolve {}: {}", host, gai_strerror(rc)));
  }
  std::memcpy(&r.addr, res->ai_addr, res->ai_addrlen);
  r.len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return r;
}

// A connected non-blocking socket, or why not.
Result<int> connectWithDeadline(const std::string &host, int port,
                                SteadyClock::time_point deadline) {
  if (port <= 0 || port > 65535) return invalidArgument(fmt::format("bad port {}", port));
  auto addr = resolve(host, port);
  if (!addr) return addr.status();
  int fd = ::socket(addr->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ioError(fmt::format("socket: {}", strerror(errno)));
  auto fail = [fd](Status s) -> Result<int> {
    ::close(fd);
    return s;
  };
  std::string where = fmt::format("{}:{}", host, port);
  if (::connect(fd, reinterpret_cast<const sockaddr *>(&addr->addr), addr->len) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      return fail(unavailable(fmt::format("connect {}: {}", where, strerror(errno))));
    }
    Status w = waitFor(fd, POLLOUT, deadline, ("connecting to " + where).c_str());
    if (!w) return fail(w);
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return fail(unavailable(fmt::format("connect {}: {}", where, strerror(err))));
  }
  return fd;
}

}  // namespace

Status probeTcp(const std::string &host, int port, Duration timeout) {
  auto deadline = SteadyClock::now() + timeout;
  auto fd = connectWithDeadline(host, port, deadline);
  if (!fd) return fd.status();
  Fd closer(*fd);
  return Status::ok();
}

Status probeHttp(const std::string &host, int port, const std::string &path, Duration timeout) {
  auto deadline = SteadyClock::now() + timeout;
  auto connected = connectWithDeadline(host, port, deadline);
  if (!connected) return connected.status();
  Fd fd(*connected);

  std::string target = path.empty() || path[0] != '/' ? "/" + path : path;
  std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: "
      "baton-health\r\nAccept: */*\r\n"
      "Connection: close\r\n\r\n",
      target, host, port);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      Status w = waitFor(fd.get(), POLLOUT, deadline, "sending the health request");
      if (!w) return w;
      continue;
    }
    return unavailable(fmt::format("sending the health request: {}", strerror(errno)));
  }

  constexpr size_t kMaxStatusLine = 1024;
  std::string buf;
  char chunk[256];
  while (buf.find("\r\n") == std::string::npos && buf.size() < kMaxStatusLine) {
    Status w = waitFor(fd.get(), POLLIN, deadline, "waiting for the health response");
    if (!w) return w;
    ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), 0);
    if (n > 0) {
      buf.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;  // closed: parse what we have
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
    return unavailable(fmt::format("reading the health response: {}", strerror(errno)));
  }
  std::string line = buf.substr(0, std::min(buf.find("\r\n"), buf.size()));
  if (line.size() > 80) line.resize(80);
  // "HTTP/1.1 200 OK"
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(line[9])) ||
      !std::isdigit(static_cast<unsigned char>(line[10])) ||
      !std::isdigit(static_cast<unsigned char>(line[11]))) {
    return unavailable(fmt::format("GET {}: not an HTTP response: \"{}\"", target, line));
  }
  int code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (code < 200 || code > 399) {
    return unavailable(fmt::format("GET {} returned {}", target, code));
  }
  return Status::ok();
}

Status probe(const model::HealthCheck &check, const std::string &host, int port) {
  if (check.kind == model::HealthCheck::Kind::kHttp) {
    return probeHttp(host, port, check.path, check.timeout);
  }
  return probeTcp(host, port, check.timeout);
}

}  // namespace baton::node
