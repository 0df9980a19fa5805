// SqliteStore: the embedded Store backend (DESIGN.md §2), one SQLite file in WAL mode.
//
// Contract (in addition to store.h):
//  - Durability: every txn that changes something is one SQLite transaction committed with
//    synchronous=FULL (fsync on commit); a crash never loses a txn whose call returned, and never
//    leaves a partial txn.
//  - The file is opened in exclusive locking mode: a second process (or a second SqliteStore in
//    this process) opening the same file gets Code::kUnavailable.
//  - History: at most `history_revisions` revisions are kept for watches; older ones are
//    compacted automatically (watchers that fall that far behind get Code::kCompacted).
//  - Leases: expiry runs on a background thread every `tick_interval` (or on tick()) using the
//    injected Clock's steady time. keepAlive() only touches memory (no disk write); as etcd does
//    on a leader change, reopening the store gives every persisted lease a fresh TTL.
//  - watch(prefix, from_revision): from_revision <= 0 means "from the next revision". Callbacks
//    run on one dispatcher thread, never while the database mutex is held, so they may call back
//    into the store; a WatchHandle may be destroyed from inside a callback (even its own). The
//    store itself must not be destroyed from inside a watch callback. Handles may outlive the
//    store (they then cancel nothing); no callback runs after the store is destroyed.
//  - Limits: keys 1..max_key_bytes bytes, values <= max_value_bytes, else kInvalidArgument.
//
// Thread safety: every method may be called from any thread; writes are serialized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "core/clock.h"
#include "core/result.h"
#include "state/store.h"

namespace baton::state {

struct SqliteStoreOptions {
  size_t history_revisions = 10000;        // 0 = keep everything (no automatic compaction)
  Duration tick_interval = Duration(100);  // lease expiry period; 0 = no thread, call tick()
  size_t max_key_bytes = 4 * 1024;
  size_t max_value_bytes = 1536 * 1024;
  bool verify_on_open = true;  // PRAGMA quick_check when opening
};

struct SqliteStoreStats {
  Revision revision = 0;
  Revision compacted_revision = 0;  // watches from below this fail with kCompacted
  int64_t keys = 0;
  int64_t history_rows = 0;
  int64_t leases = 0;
  int64_t page_size = 0;
  int64_t page_count = 0;
  int64_t freelist_pages = 0;
};

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) the store in `file`. The parent directory must exist. `clock`
  // must outlive the store. Errors: kIo (cannot open/create, not a database, corrupt),
  // kUnavailable (locked by another process).
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& file, Clock& clock,
                                                   SqliteStoreOptions opts = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<std::optional<KeyValue>> get(const std::string& key) override;
  Result<RangeResult> list(const std::string& prefix, size_t limit = 0) override;
  Result<TxnResult> txn(const std::vector<Compare>& compare, const std::vector<Op>& success,
                        const std::vector<Op>& failure = {}) override;
  Result<LeaseId> grantLease(Duration ttl) override;
  Status keepAlive(LeaseId lease) override;
  Status revokeLease(LeaseId lease) override;
  Result<std::unique_ptr<WatchHandle>> watch(const std::string& prefix, Revision from_revision,
                                             WatchCallbacks callbacks) override;
  Result<Revision> currentRevision() override;
  Status compact(Revision revision) override;

  // Expires every lease whose TTL has passed (by the Clock), deleting its keys in one revision.
  // Called by the background thread; tests with a FakeClock call it directly.
  void tick();
  // PRAGMA integrity_check: ok, or kInternal listing the problems.
  Status checkIntegrity();
  Result<SqliteStoreStats> stats();

  struct Impl;

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton::state
