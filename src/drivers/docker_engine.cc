// The only translation unit of the drivers module that includes Beast (compile time). The
// socket is a plain blocking-free fd driven by poll(), so a deadline bounds every step and
// StreamHandle::cancel() can end a read from another thread (shutdown()).
#include "drivers/docker_engine.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/unique_fd.h"
#include "drivers/exec_internal.h"

namespace baton::drivers::docker {
namespace {

namespace http = boost::beast::http;
using steady = std::chrono::steady_clock;


using Fd = UniqueFd;

// Waits until `fd` is ready for `events` or the deadline passes (nullopt deadline: forever).
// Returns 1 ready, 0 timed out, -1 error (errno set).
int waitFor(int fd, short events, std::optional<steady::time_point> deadline) {
  while (true) {
    int ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - steady::now());
      ms = left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

std::optional<steady::time_point> deadlineAfter(Duration d) {
  if (d.count() <= 0) return std::nullopt;
  return steady::now() + d;
}

}  // namespace

void StreamHandle::cancel() {
  cancelled_ = true;
  int fd = fd_.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void StreamHandle::attach(int fd) {
  fd_ = fd;
  if (cancelled_) ::shutdown(fd, SHUT_RDWR);
}

void StreamHandle::detach() { fd_ = -1; }

EngineClient::EngineClient(EngineOptions options) : options_(std::move(options)) {}

Result<EngineResponse> EngineClient::request(std::string_view method, std::string_view target,
                                             std::string_view json_body) {
  return exchange(method, target, json_body, nullptr, options_.timeout, nullptr);
}

Result<EngineResponse> EngineClient::stream(std::string_view method, std::string_view target,
                                            std::string_view json_body,
                                            const std::function<bool(std::string_view)>& on_data,
                                            Duration idle_timeout, StreamHandle* handle) {
  return exchange(method, target, json_body, &on_data, idle_timeout, handle);
}

Result<EngineResponse> EngineClient::exchange(std::string_view method, std::string_view target,
                                              std::string_view json_body,
                                              const std::function<bool(std::string_view)>* on_data,
                                              Duration read_timeout, StreamHandle* handle) {
  const std::string where = options_.socket.string();
  auto unreachable = [&](int err) {
    return Status(Code::kUnavailable,
                  "cannot reach the container engine at " + where + ": " + exec::errnoText(err));
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (where.size() >= sizeof addr.sun_path) {
    return invalidArgument("the container engine socket path is too long: " + where);
  }
  std::memcpy(addr.sun_path, where.c_str(), where.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return unreachable(errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return unreachable(errno);
    int r = waitFor(fd.get(), POLLOUT, deadlineAfter(options_.timeout));
    if (r == 0) return Status(Code::kTimeout, "the container engine at " + where + " did not accept a connection in time");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (r < 0 || err != 0) return unreachable(r < 0 ? errno : err);
  }
  if (handle) handle->attach(fd.get());
  struct Detach {
    StreamHandle* h;
    ~Detach() {
      if (h) h->detach();
    }
  } detach{handle};

  std::string req;
  req.reserve(256 + json_body.size());
  req.append(method).append(" /").append(options_.api_version).append(target);
  req.append(" HTTP/1.1\r\nHost: docker\r\nUser-Agent: baton\r\nConnection: close\r\n");
  if (!json_body.empty() || method == "POST" || method == "PUT") {
    req.append("Content-Type: application/json\r\nContent-Length: ")
        .append(std::to_string(json_body.size()))
        .append("\r\n");
  }
  req.append("\r\n").append(json_body);
  size_t sent = 0;
  auto write_deadline = deadlineAfter(options_.timeout);
  while (sent < req.size()) {
    ssize_t n = ::send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      int r = waitFor(fd.get(), POLLOUT, write_deadline);
      if (r == 0) return Status(Code::kTimeout, "the container engine at " + where + " did not take the request in time");
      if (r > 0) continue;
    }
    return ioError("sending a request to the container engine at " + where + ": " +
                   exec::errnoText(errno));
  }

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  parser.eager(true);
  std::string in;
  std::vector<char> chunk(65536);
  EngineResponse resp;
  bool headers_seen = false;
  bool deliver = false;
  bool eof = false;
  while (!parser.is_done()) {
    boost::system::error_code ec;
    size_t used = 0;
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    if (eof) {
      parser.put_eof(ec);
    } else if (!in.empty()) {
      used = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
      in.erase(0, used);
    } else {
      ec = http::error::need_more;
    }
    if (!headers_seen && parser.is_header_done()) {
      headers_seen = true;
      resp.status = static_cast<int>(parser.get().result_int());
      deliver = on_data && resp.status >= 200 && resp.status < 300;
    }
    size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      std::string_view data(chunk.data(), got);
      if (deliver) {
        if (!(*on_data)(data)) return resp;
      } else {
        if (resp.body.size() + got > options_.max_body_bytes) {
          return ioError("the container engine's answer to " + std::string(target) +
                         " is larger than " + std::to_string(options_.max_body_bytes) + " bytes");
        }
        resp.body.append(data);
      }
    }
    if (eof) {
      if (ec && !parser.is_done()) {
        if (handle && handle->cancelled()) return resp;
        return ioError("the container engine at " + where + " closed the connection early");
      }
      break;
    }
    if (ec == http::error::need_buffer) continue;
    if (ec && ec != http::error::need_more) {
      return ioError("a malformed answer from the container engine at " + where + ": " +
                     ec.message());
    }
    if (ec != http::error::need_more && used > 0) continue;
    // Read more.
    // A stream waits at most its idle timeout for the status line too: an engine that holds a
    // log stream of a silent, ended container open sends no headers at all (Podman does, now
    // and then), and the follower must get to ask whether the container still runs.
    Duration wait = options_.timeout;
    if (on_data && (headers_seen || (read_timeout.count() > 0 && read_timeout < wait))) {
      wait = read_timeout;
    }
    int r = waitFor(fd.get(), POLLIN, deadlineAfter(wait));
    if (r == 0) {
      return Status(Code::kTimeout, headers_seen ? "the container engine at " + where + " stopped sending"
                                                 : "the container engine at " + where + " did not answer in time");
    }
    if (r < 0) return ioError("reading from the container engine at " + where + ": " + exec::errnoText(errno));
    char buf[16384];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      eof = true;
    } else if (errno != EINTR && errno != EAGAIN) {
      if (handle && handle->cancelled()) return resp;
      return ioError("reading from the container engine at " + where + ": " + exec::errnoText(errno));
    }
  }
  return resp;
}

std::string engineMessage(const EngineResponse& r) {
  try {
    auto j = nlohmann::json::parse(r.body);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) {
      return j["message"].get<std::string>();
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::string s = r.body;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  if (s.size() > 300) s.resize(300);
  if (s.empty()) s = "HTTP " + std::to_string(r.status);
  return s;
}

}  // namespace baton::drivers::docker
