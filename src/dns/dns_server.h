// The agent's DNS server (DESIGN.md §2 "dns"; docs/mesh.md "Names"): UDP and TCP on the same
// addresses and ports, answers from the mesh's view (resolver.h reply(), the same for both),
// one thread. It listens on the configured address (default 127.0.0.1:8600, for the host's
// tools) and, with the mesh on, on kMeshDnsAddress:53, which isolated instances reach through
// their node and name in their /etc/resolv.conf. Who asks decides what a name means: an isolated
// instance (known by its source address, over either transport) gets service addresses of the
// mesh, the host gets instances' addresses.
//
// UDP answers are at most 512 bytes (TC set when not every answer fits; no EDNS0). TCP
// (RFC 7766): 2-byte length framing (tcp_framing.h), queries on one connection answered one
// after the other in order, answers up to 65535 bytes; a connection is closed when no complete
// query arrives (or an answer cannot be written) within tcp_idle_timeout, when a length prefix
// announces more than kMaxQueryBytes or zero, and at once when tcp_max_connections are open.
//
// Thread safety: public methods may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "mesh/mesh_view.h"

namespace baton::dns {

// The mesh's DNS address: the last-but-one of 169.254.64.0/18, never a service's (mesh/vips.h).
inline constexpr const char* kMeshDnsAddress = "169.254.127.254";

struct DnsServerOptions {
  std::vector<std::string> listen = {"127.0.0.1:8600"};  // "host:port"; port 0: any
  // Addresses bound when they can be: one that fails is a warning (warnings()), not an error
  // (the mesh's DNS address, which a second agent on the same host cannot have too); one whose
  // TCP port alone is taken answers over UDP, with a warning.
  std::vector<std::string> best_effort;
  std::chrono::milliseconds tcp_idle_timeout{10'000};
  size_t tcp_max_connections = 64;  // open at once, over every address; the next are closed
};

struct DnsStats {
  int64_t queries = 0;
  int64_t nxdomain = 0;
  int64_t refused = 0;
  int64_t malformed = 0;  // dropped or FORMERR (over TCP also a bad length prefix)
  int64_t truncated = 0;  // answers sent with TC (UDP answers that did not fit)
  int64_t tcp_accepted = 0;
  int64_t tcp_rejected = 0;  // closed at once: tcp_max_connections were open
  int64_t tcp_idle_closed = 0;
  int64_t tcp_open = 0;
};

class DnsServer {
 public:
  explicit DnsServer(DnsServerOptions options);
  ~DnsServer();  // stop()
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds every listen address, UDP and TCP (an error names the one that failed) and starts the
  // thread.
  Status start();
  void stop();
  void setView(std::shared_ptr<const mesh::MeshView> view);
  // The bound port of listen address `i` (after start), UDP and TCP alike.
  int port(size_t i = 0) const;
  // Why best-effort addresses were not bound (after start).
  std::vector<std::string> warnings() const;
  DnsStats stats() const;
  std::string prometheus() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton::dns
