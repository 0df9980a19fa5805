#include "node/port_allocator.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace baton::node {
namespace {

Result<int> bindEphemeral() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ioError(fmt::format("socket: {}", strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  Status st;
  if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
    st = ioError(fmt::format("bind 127.0.0.1:0: {}", strerror(errno)));
  } else if (::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
    st = ioError(fmt::format("getsockname: {}", strerror(errno)));
  } else {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (!st) return st;
  return port;
}

}  // namespace

Result<int> PortAllocator::allocate(const std::set<int> &in_use) {
  std::lock_guard lock(mu_);
  for (int attempt = 0; attempt < 32; ++attempt) {
    auto port = bindEphemeral();
    if (!port) return port;
    if (in_use.count(*port) || std::find(recent_.begin(), recent_.end(), *port) != recent_.end()) {
      continue;
    }
    recent_.push_back(*port);
    if (recent_.size() > kRemember) recent_.pop_front();
    return port;
  }
  return unavailable("no free TCP port found on 127.0.0.1 after 32 attempts");
}

}  // namespace baton::node
