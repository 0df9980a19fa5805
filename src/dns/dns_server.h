// The agent's DNS server (DESIGN.md §2 "dns"; docs/mesh.md "Names"): UDP, answers from the
// mesh's view (resolver.h), one thread. It listens on the configured address (default
// 127.0.0.1:8600, for the host's tools) and, with the mesh on, on kMeshDnsAddress:53, which
// isolated instances reach through their node and name in their /etc/resolv.conf. Who asks
// decides what a name means: an isolated instance (known by its address) gets service addresses
// of the mesh, the host gets instances' addresses.
//
// Thread safety: public methods may be called from any thread.
#pragma once

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
  // (the mesh's DNS address, which a second agent on the same host cannot have too).
  std::vector<std::string> best_effort;
};

struct DnsStats {
  int64_t queries = 0;
  int64_t nxdomain = 0;
  int64_t refused = 0;
  int64_t malformed = 0;  // dropped or FORMERR
};

class DnsServer {
 public:
  explicit DnsServer(DnsServerOptions options);
  ~DnsServer();  // stop()
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds every listen address (an error names the one that failed) and starts the thread.
  Status start();
  void stop();
  void setView(std::shared_ptr<const mesh::MeshView> view);
  // The bound port of listen address `i` (after start).
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
