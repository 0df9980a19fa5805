// The source address of an outgoing connection: the mesh's destination side and the gateway
// connect to isolated instances from an address that says who is calling (docs/mesh.md "Who is
// calling"). One helper for both, on a plain descriptor (no Asio here).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/ipv4.h"
#include "core/result.h"

namespace baton {

// Binds the unconnected IPv4 socket `fd` to `address` with any port. IP_BIND_ADDRESS_NO_PORT
// leaves the port to connect(), so one source address serves as many connections as there are
// (destination, port) pairs instead of running out of ports at bind().
inline Status bindSourceAddress(int fd, const std::string& address) {
  auto ip = parseIpv4(address);
  if (!ip) return invalidArgument("not an IPv4 address: " + address);
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(*ip);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    return unavailable("cannot bind " + address + ": " + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace baton
