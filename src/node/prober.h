// Health probes with hard timeouts, on plain blocking-free sockets
// (non-blocking connect + poll; no Asio). Each call returns within about
// `timeout` whatever the peer does.
//
//   TCP:  success = the connection is accepted.
//   HTTP: success = "HTTP/1.x NNN" with NNN in 200..399, after "GET path
//   HTTP/1.1" with
//         Connection: close; only the status line is read (at most 1 KiB).
//
// Thread safety: the functions are reentrant; call them from any thread.
#pragma once

#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "model/app.h"

namespace baton::node {

// `host` is a numeric IPv4/IPv6 address or a name (resolved with getaddrinfo).
Status probeTcp(const std::string &host, int port, Duration timeout);
Status probeHttp(const std::string &host, int port, const std::string &path, Duration timeout);
// The probe that `check` describes.
Status probe(const model::HealthCheck &check, const std::string &host, int port);

}  // namespace baton::node
