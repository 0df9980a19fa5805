// Listen addresses as the agent's config and flags give them: "host:port", "[v6]:port" or
// ":port" (any address). One parser for the API, the gateway, the mesh proxy and DNS.
#pragma once

#include <charconv>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.h"

namespace baton {

// (host, port): the brackets of a v6 host removed, an empty host as "0.0.0.0" and "localhost"
// as "127.0.0.1"; port 0-65535 (0: any free port). The host is not resolved.
inline Result<std::pair<std::string, int>> parseListenAddress(std::string_view listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return invalidArgument("invalid listen address \"" + std::string(listen) +
                           "\": expected host:port");
  }
  std::string host(listen.substr(0, colon));
  std::string_view port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return invalidArgument("invalid port in listen address \"" + std::string(listen) +
                           "\": expected 0 to 65535");
  }
  if (host.empty()) host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  return std::make_pair(host, port);
}

}  // namespace baton
