// What the node proxy knows, as one immutable value built from the store (pure: no sockets).
// The proxy swaps in a new view on every change and decides each connection against the view
// in force; `baton why` and DNS use the same intentions::decide().
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mesh/intentions.h"
#include "state/store.h"

namespace baton::mesh {

struct MeshEndpoint {
  std::string instance;
  std::string node;
  std::string address;  // "127.0.0.1" for instances in the host's network
  int port = 0;
};

struct MeshView {
  std::map<std::string, ServiceRef> vips;             // service address -> service
  std::map<std::string, std::string> vip_of;          // "app/svc" -> its service address
  std::map<std::string, std::vector<std::string>> upstreams;  // "app/svc" -> declared upstreams
  std::map<std::string, std::vector<int>> ports;      // "app/svc" -> the manifest's fixed port
  // Instances of this node in networks of their own, by address: who a connection is from.
  std::map<std::string, ServiceRef> callers;
  std::map<std::string, std::vector<MeshEndpoint>> healthy;  // "app/svc" -> healthy instances
  std::map<std::string, std::string> node_mesh;       // node id -> its proxy's mesh address
  std::vector<Rule> rules;

  // The intentions' decision for caller -> destination with this view's declarations and rules.
  Verdict decide(const ServiceRef& caller, const ServiceRef& destination) const;
  const std::vector<MeshEndpoint>* healthyOf(const ServiceRef& s) const;
  // The service address of `s`; "" when it has none.
  std::string addressOf(const ServiceRef& s) const;
};

// Lists in this order: apps, instances, statuses, intentions, vips, nodes (PrefixSnapshot).
inline constexpr int kMeshViewLists = 6;
std::vector<std::string> meshViewPrefixes();
MeshView buildMeshView(const std::vector<std::vector<state::KeyValue>>& lists,
                       const std::string& this_node);

}  // namespace baton::mesh
