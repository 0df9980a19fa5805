// CatalogWatcher: keeps the gateway's RouteTable in step with the store. It lists the apps
// (/baton/apps/), desired instances (/baton/instances/) and observed statuses (/baton/status/),
// builds a RouteTable (buildRouteTable(), pure) and hands it to the setter; then it watches
// /baton/ and rebuilds on every relevant change (re-listing after kCompacted or any watch
// error). A change is published within one rebuild (milliseconds) of the store's event.
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
  ~CatalogWatcher();  // stop()
  CatalogWatcher(const CatalogWatcher&) = delete;
  CatalogWatcher& operator=(const CatalogWatcher&) = delete;

  // Builds and publishes the first table synchronously, then starts watching.
  Status start();
  void stop();
  // Number of tables published so far (for tests and metrics).
  int64_t generation() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton::gateway
