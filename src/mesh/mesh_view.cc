#include "mesh/mesh_view.h"

#include <algorithm>

#include "mesh/vips.h"
#include "model/json.h"
#include "model/keys.h"

namespace baton::mesh {

Verdict MeshView::decide(const ServiceRef& caller, const ServiceRef& destination) const {
  Caller c{caller, {}};
  if (auto it = upstreams.find(caller.str()); it != upstreams.end()) c.upstreams = it->second;
  return mesh::decide(rules, c, destination);
}

const std::vector<MeshEndpoint>* MeshView::healthyOf(const ServiceRef& s) const {
  auto it = healthy.find(s.str());
  return it == healthy.end() || it->second.empty() ? nullptr : &it->second;
}

std::string MeshView::addressOf(const ServiceRef& s) const {
  auto it = vip_of.find(s.str());
  return it == vip_of.end() ? std::string() : it->second;
}

std::vector<std::string> meshViewPrefixes() {
  return {std::string(model::keys::kApps),       std::string(model::keys::kInstances),
          std::string(model::keys::kStatus),     std::string(model::keys::kIntentions),
          "/baton/vips/",                        std::string(model::keys::kNodes)};
}

MeshView buildMeshView(const std::vector<std::vector<state::KeyValue>>& lists,
                       const std::string& this_node) {
  MeshView v;
  if (lists.size() != kMeshViewLists) return v;
  for (const auto& kv : lists[0]) {
    auto rec = model::decode<model::AppRecord>(kv.value);
    if (!rec) continue;
    for (const auto& [name, svc] : rec->spec.services) {
      const std::string key = rec->spec.name + "/" + name;
      v.upstreams[key] = svc.upstreams;
      if (svc.port && *svc.port != 80) v.ports[key].push_back(*svc.port);
    }
  }
  std::map<std::string, model::InstanceStatus> status;
  for (const auto& kv : lists[2]) {
    auto st = model::decode<model::InstanceStatus>(kv.value);
    if (st) status[st->id.empty() ? std::string(model::keys::leaf(kv.key)) : st->id] = *st;
  }
  for (const auto& kv : lists[1]) {
    auto inst = model::decode<model::InstanceRecord>(kv.value);
    if (!inst) continue;
    auto it = status.find(inst->id);
    if (it == status.end()) continue;
    const model::InstanceStatus& st = it->second;
    const ServiceRef ref{inst->app, inst->service};
    const bool own_network = !st.address.empty() && st.address != "127.0.0.1" &&
                             st.address != "0.0.0.0";
    // A caller is known while its task may run (a stopping one may still send).
    if (own_network && st.node == this_node && !model::isTerminal(st.state)) {
      v.callers[st.address] = ref;
    }
    if (inst->desired_running && st.state == model::InstanceState::kHealthy && st.port > 0) {
      v.healthy[ref.str()].push_back(
          {inst->id, st.node, own_network ? st.address : "127.0.0.1", st.port});
    }
  }
  for (auto& [_, eps] : v.healthy) {
    std::sort(eps.begin(), eps.end(),
              [](const MeshEndpoint& a, const MeshEndpoint& b) { return a.instance < b.instance; });
  }
  for (const auto& kv : lists[3]) {
    auto rec = model::decode<model::IntentionRecord>(kv.value);
    if (!rec) continue;
    if (auto rule = toRule(*rec)) v.rules.push_back(std::move(rule).value());
  }
  v.vips = parseVips(lists[4]);
  for (const auto& [address, ref] : v.vips) v.vip_of[ref.str()] = address;
  for (const auto& kv : lists[5]) {
    auto n = model::decode<model::NodeRecord>(kv.value);
    if (n && !n->mesh.empty()) v.node_mesh[n->id] = n->mesh;
  }
  return v;
}

}  // namespace baton::mesh
