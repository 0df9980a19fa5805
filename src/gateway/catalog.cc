#include "gateway/catalog.h"

#include <map>

#include "model/json.h"
#include "model/keys.h"

namespace baton::gateway {

RouteTable buildRouteTable(const std::vector<state::KeyValue>& apps,
                           const std::vector<state::KeyValue>& instances,
                           const std::vector<state::KeyValue>& statuses) {
  std::vector<model::AppRecord> app_records;
  for (const auto& kv : apps) {
    auto r = model::decode<model::AppRecord>(kv.value);
    if (r) app_records.push_back(std::move(*r));
  }
  std::map<std::string, model::InstanceStatus> status_by_id;
  for (const auto& kv : statuses) {
    auto r = model::decode<model::InstanceStatus>(kv.value);
    if (!r) continue;
    std::string id = r->id.empty() ? std::string(model::keys::leaf(kv.key)) : r->id;
    status_by_id[id] = std::move(*r);
  }
  BackendMap backends;
  for (const auto& kv : instances) {
    auto r = model::decode<model::InstanceRecord>(kv.value);
    if (!r || !r->desired_running) continue;
    std::string id = r->id.empty() ? std::string(model::keys::leaf(kv.key)) : r->id;
    auto it = status_by_id.find(id);
    if (it == status_by_id.end()) continue;
    const auto& st = it->second;
    if (st.state != model::InstanceState::kHealthy || st.port <= 0) continue;
    std::string addr = st.address.empty() || st.address == "0.0.0.0" ? "127.0.0.1" : st.address;
    backends[{r->app, r->service}].push_back({addr, st.port, id});
  }
  for (auto& [k, v] : backends) {
    std::sort(v.begin(), v.end(),
              [](const Backend& a, const Backend& b) { return a.instance < b.instance; });
  }
  return RouteTable::build(app_records, backends);
}

CatalogWatcher::CatalogWatcher(state::Store& store, Setter setter)
    : watcher_(store,
               {std::string(model::keys::kApps), std::string(model::keys::kInstances),
                std::string(model::keys::kStatus)},
               [setter = std::move(setter)](const state::PrefixSnapshot& s) {
                 setter(std::make_shared<const RouteTable>(
                     buildRouteTable(s.lists[0], s.lists[1], s.lists[2])));
               },
               "gateway catalog") {}

}  // namespace baton::gateway
