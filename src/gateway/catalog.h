// CatalogWatcher: keeps the gateway's RouteTable in step with the store. A SnapshotWatcher
// (state/snapshot_watcher.h) lists the apps (/baton/apps/), desired instances
// (/baton/instances/) and observed statuses (/baton/status/); each snapshot becomes a RouteTable
// (buildRouteTable(), pure) handed to the setter. A change is published within one rebuild
// (milliseconds) of the store's event.
//
// A backend is healthy when its status says "healthy", its instance record exists with
// desired_running = true, and it has a port (an empty address means 127.0.0.1).
//
// Thread safety: start()/stop() from one thread; the setter runs on the watcher's own thread,
// never concurrently with itself. The store must outlive the watcher.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "gateway/route_table.h"
#include "state/snapshot_watcher.h"
#include "state/store.h"

namespace baton::gateway {

// Pure: the table for these records (values as stored: JSON; malformed ones are skipped).
RouteTable buildRouteTable(const std::vector<state::KeyValue>& apps,
                           const std::vector<state::KeyValue>& instances,
                           const std::vector<state::KeyValue>& statuses);

class CatalogWatcher {
 public:
  using Setter = std::function<void(std::shared_ptr<const RouteTable>)>;
  CatalogWatcher(state::Store& store, Setter setter);

  // Builds and publishes the first table synchronously, then starts watching.
  Status start() { return watcher_.start(); }
  void stop() { watcher_.stop(); }
  // Number of tables published so far (for tests and metrics).
  int64_t generation() const { return watcher_.generation(); }

 private:
  state::SnapshotWatcher watcher_;
};

}  // namespace baton::gateway
