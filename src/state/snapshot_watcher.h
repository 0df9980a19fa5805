// SnapshotWatcher: keeps a consumer in step with a few key prefixes of the store. It lists the
// prefixes, hands the lists to the consumer, then watches "/baton/" and lists again on every
// change under one of them (re-listing after kCompacted or any watch error, and every 5 s as a
// level-triggered safety net). A change reaches the consumer within one re-list (milliseconds)
// of the store's event; changes that arrive during a re-list are coalesced into the next one.
// The gateway's routing table, the mesh proxy and DNS are built this way.
//
// Thread safety: start()/stop() from one thread; the consumer runs on the watcher's own thread
// (the first time on start()'s), never concurrently with itself. The store must outlive the
// watcher.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "state/store.h"

namespace baton::state {

struct PrefixSnapshot {
  std::vector<std::vector<KeyValue>> lists;  // one per prefix, in the order given
  Revision revision = 0;                     // the lowest of the lists' revisions
};

class SnapshotWatcher {
 public:
  using Consumer = std::function<void(const PrefixSnapshot&)>;
  // `name` is for log lines ("gateway catalog").
  SnapshotWatcher(Store& store, std::vector<std::string> prefixes, Consumer consumer,
                  std::string name);
  ~SnapshotWatcher();  // stop()
  SnapshotWatcher(const SnapshotWatcher&) = delete;
  SnapshotWatcher& operator=(const SnapshotWatcher&) = delete;

  // Lists and hands the first snapshot over synchronously, then starts watching.
  Status start();
  void stop();
  // Snapshots handed over so far.
  int64_t generation() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton::state
