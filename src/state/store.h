// The store: a key-value store with revisions, compare-and-swap transactions, leases and
// watches, on the etcd v3 model (DESIGN.md §2). Everything above this interface is written
// against it and does not know which backend it has (sqlite for one machine, etcd for many).
//
// Semantics (as etcd's):
//  - One global revision counts every committed transaction that changed something; each key
//    carries create_revision, mod_revision and version (1 on create, +1 per put; a delete
//    resets it).
//  - txn() evaluates every compare against the state at one revision; if all hold it applies
//    `success`, otherwise `failure`, atomically; a txn that writes nothing does not bump the
//    revision.
//  - A lease expires `ttl` after its grant or last keepAlive; its keys are then deleted in one
//    revision, and watchers see the deletes.
//  - watch(prefix, from_revision) delivers every change at revision >= from_revision in
//    revision order, then live ones, on a store-owned thread; events of one revision arrive in
//    one batch. If from_revision is below the compacted revision the watch fails with
//    Code::kCompacted (the caller re-lists and watches from the list's revision + 1).
//
// Thread safety: every method may be called from any thread. Callbacks must not block for long
// and may call back into the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace baton::state {

using Revision = int64_t;
using LeaseId = int64_t;  // 0 = no lease

struct KeyValue {
  std::string key;
  std::string value;
  Revision create_revision = 0;
  Revision mod_revision = 0;
  int64_t version = 0;
  LeaseId lease = 0;
};

struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kVersion;
  Op op = Op::kEqual;
  int64_t number = 0;        // kVersion, kCreateRevision, kModRevision (0 = key absent)
  std::string value;         // kValue

  static Compare versionIs(std::string key, int64_t v) {
    return {std::move(key), Target::kVersion, Op::kEqual, v, {}};
  }
  static Compare absent(std::string key) { return versionIs(std::move(key), 0); }
  static Compare modRevisionIs(std::string key, Revision r) {
    return {std::move(key), Target::kModRevision, Op::kEqual, r, {}};
  }
};

struct Op {
  enum class Kind { kPut, kDelete, kDeletePrefix };
  Kind kind = Kind::kPut;
  std::string key;           // kDeletePrefix: the prefix
  std::string value;
  LeaseId lease = 0;

  static Op put(std::string key, std::string value, LeaseId lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), lease};
  }
  static Op del(std::string key) { return {Kind::kDelete, std::move(key), {}, 0}; }
  static Op delPrefix(std::string prefix) { return {Kind::kDeletePrefix, std::move(prefix), {}, 0}; }
};

struct TxnResult {
  bool succeeded = false;
  Revision revision = 0;     // the store's revision after the txn
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // sorted by key
  Revision revision = 0;      // the revision the range was read at
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;                // for kDelete: key and mod_revision (the delete's revision)
};

class WatchHandle {
 public:
  virtual ~WatchHandle() = default;  // destroying the handle cancels the watch; after the
                                     // destructor returns no callback runs
};

struct WatchCallbacks {
  std::function<void(const std::vector<Event>&)> on_events;  // one revision's events
  std::function<void(const Status&)> on_error;               // the watch has ended
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<std::optional<KeyValue>> get(const std::string& key) = 0;
  // Every key starting with `prefix` ("" = all), sorted; at most `limit` (0 = no limit).
  virtual Result<RangeResult> list(const std::string& prefix, size_t limit = 0) = 0;
  virtual Result<TxnResult> txn(const std::vector<Compare>& compare,
                                const std::vector<Op>& success,
                                const std::vector<Op>& failure = {}) = 0;
  // Shorthands for single-op txns.
  Result<Revision> put(const std::string& key, const std::string& value, LeaseId lease = 0);
  Result<Revision> del(const std::string& key);

  virtual Result<LeaseId> grantLease(Duration ttl) = 0;
  virtual Status keepAlive(LeaseId lease) = 0;   // kNotFound once expired or revoked
  virtual Status revokeLease(LeaseId lease) = 0;

  virtual Result<std::unique_ptr<WatchHandle>> watch(const std::string& prefix,
                                                     Revision from_revision,
                                                     WatchCallbacks callbacks) = 0;

  virtual Result<Revision> currentRevision() = 0;
  // Drops history below `revision`; watches from before it then fail with kCompacted.
  virtual Status compact(Revision revision) = 0;
};

}  // namespace baton::state
