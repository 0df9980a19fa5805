// The node's mesh proxy (DESIGN.md §2 "Mesh"; docs/mesh.md). One per agent, not a sidecar per
// instance. Two sides:
//
//  - Caller side: it listens on every service address of the mesh (mesh/vips.h; port 80 and the
//    service's fixed `port`), which an isolated instance reaches through its veth. The peer's
//    address says which instance (and so which service) is calling: an instance can use only its
//    own address (the veth is point-to-point, and the instance has no privilege to change it).
//    The proxy decides the intentions, holds the connection while the destination is at zero
//    (asking for a cold start), then opens mutual TLS to the destination's node proxy with the
//    caller service's certificate, naming the destination in SNI, and relays bytes.
//  - Destination side: it accepts mutual TLS on `listen`, takes the caller's identity from its
//    certificate (SPIFFE id under this mesh's CA), decides the intentions again (the authority),
//    and connects to a healthy instance of the destination on this node.
//
// On one node both sides run here and the hop between them is still mutual TLS: the path the
// cluster will take between nodes. Every open connection is decided again on every change of
// the view: a new deny cuts it at once.
//
// Thread safety: public methods may be called from any thread; the data path runs on the
// proxy's own thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "mesh/ca.h"
#include "mesh/mesh_view.h"

namespace baton::mesh {

struct MeshProxyOptions {
  std::string node_id;
  std::string listen = "127.0.0.1:0";        // mutual TLS from node proxies; port 0: any
  Duration cert_ttl = Duration(24 * 3'600'000);  // leaves are renewed after 2/3 of it
  Duration hold_timeout = Duration(30'000);  // a caller waits this long for a cold start
  size_t hold_queue = 1000;                  // connections held per service at zero (more: closed)
  Duration connect_timeout = Duration(5'000);  // TCP connect plus TLS handshake
  int vip_port = 80;                         // every service address listens here
  // Connections being held, handshaken or relayed at once (each side counts; on one node a
  // call is two); past it new ones are closed at once (over_limit).
  int max_connections = 4096;
};

struct MeshProxyHooks {
  // A caller waits for a service with no healthy instance (the first held, then at most once a
  // second: core/hold_queue.h).
  std::function<void(const std::string& app, const std::string& service)> on_cold;
};

struct MeshProxyStats {
  int64_t outbound = 0;       // connections from callers relayed
  int64_t inbound = 0;        // mutual TLS connections relayed to instances
  int64_t denied = 0;         // refused by the intentions (either side)
  int64_t unknown_peer = 0;   // connections from an address that is no instance's
  int64_t cut = 0;            // open connections closed by a new deny
  int64_t failed = 0;         // no instance in time, connect or handshake failures
  int64_t certs_issued = 0;
  int64_t open = 0;           // gauge: relayed connections open now (both sides)
  int64_t limited = 0;        // closed at once: max_connections were in progress
  int64_t resumed = 0;        // caller-side mutual TLS connections that resumed a session
};

// Demand for one destination service seen by this node's callers (for the autoscaler).
struct MeshDemand {
  int64_t arrivals = 0;  // connections from callers so far (monotonic)
  int64_t open = 0;      // gauge: relayed connections open now
  int64_t held = 0;      // gauge: connections waiting for an instance (service at zero)
};

class MeshProxy {
 public:
  // `ca` and `clock` must outlive the proxy.
  MeshProxy(MeshProxyOptions options, MeshCa& ca, Clock& clock, MeshProxyHooks hooks = {});
  ~MeshProxy();  // stop()
  MeshProxy(const MeshProxy&) = delete;
  MeshProxy& operator=(const MeshProxy&) = delete;

  // Binds the mutual TLS listener and starts the thread. Service addresses are bound as views
  // name them (the host must route 169.254.64.0/18 locally: `ip route add local ... dev lo`).
  Status start();
  void stop();
  // Swaps in a view; re-decides every open connection against it and (un)binds addresses.
  void setView(std::shared_ptr<const MeshView> view);
  // "127.0.0.1:port" of the mutual TLS listener (after start).
  std::string meshAddress() const;
  MeshProxyStats stats() const;
  // By "app/svc".
  std::map<std::string, MeshDemand> demand() const;
  std::string prometheus() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "cart.shop.mesh.baton" for shop/cart: the SNI that names a destination.
std::string meshServerName(const ServiceRef& s);
std::optional<ServiceRef> parseMeshServerName(std::string_view name);

}  // namespace baton::mesh
