// SqliteStore implementation. See README.md in this directory for the data flow and schema.
#include "state/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

namespace baton::state {
namespace {

constexpr int64_t kSchemaVersion = 1;
constexpr Revision kMaxRevisionsPerRead = 256;  // watch dispatcher reads history in chunks
constexpr int kBusyTimeoutMs = 200;

enum EventType : int64_t { kPutType = 0, kDeleteType = 1 };

// The smallest string greater than every string starting with `prefix`; "" when there is none
// (the prefix is empty or all 0xff bytes).
std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c != 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return end;
}

// A prepared statement in use: bindings and state are reset when it goes out of scope.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // Keys and values are BLOBs so that ordering is bytewise and any bytes are allowed.
  Stmt& bindBlob(int i, std::string_view v) {
    static const char kEmpty = 0;
    sqlite3_bind_blob(s_, i, v.empty() ? &kEmpty : v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::string blob(int c) {
    const void* p = sqlite3_column_blob(s_, c);
    int n = sqlite3_column_bytes(s_, c);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  sqlite3_stmt* s_;
};

// State shared by the store, its dispatcher thread and the watch handles (which may outlive the
// store). Lock order: the store's db mutex before Hub::mu, never the reverse.
struct Watcher {
  uint64_t id = 0;
  std::string prefix;
  Revision next = 0;  // next revision to deliver; touched only by the dispatcher after creation
  WatchCallbacks callbacks;
  bool done = false;  // cancelled or ended; guarded by Hub::mu
};

struct Hub {
  std::mutex mu;
  std::condition_variable work_cv;  // dispatcher: something to do
  std::condition_variable idle_cv;  // cancel(): the running callback has returned
  std::map<uint64_t, std::shared_ptr<Watcher>> watchers;
  uint64_t next_id = 1;
  Revision latest = 0;  // newest committed revision
  bool dirty = false;
  bool stop = false;
  uint64_t running = 0;  // id of the watcher whose callback is running, 0 = none
  std::thread::id dispatcher;

  void cancel(uint64_t id) {
    std::unique_lock lock(mu);
    auto it = watchers.find(id);
    if (it != watchers.end()) {
      it->second->done = true;
      watchers.erase(it);
    }
    // From inside a callback (on the dispatcher thread) the running callback is the caller's
    // own frame: waiting would deadlock, and `done` already stops further callbacks.
    if (std::this_thread::get_id() == dispatcher) return;
    idle_cv.wait(lock, [&] { return running != id; });
  }

  void notify(Revision revision) {
    std::lock_guard lock(mu);
    latest = std::max(latest, revision);
    dirty = true;
    work_cv.notify_one();
  }
};

class SqliteWatchHandle final : public WatchHandle {
 public:
  SqliteWatchHandle(std::shared_ptr<Hub> hub, uint64_t id) : hub_(std::move(hub)), id_(id) {}
  ~SqliteWatchHandle() override { hub_->cancel(id_); }

 private:
  std::shared_ptr<Hub> hub_;
  uint64_t id_;
};

struct HistoryBatch {
  std::vector<std::vector<Event>> revisions;  // one entry per revision with matching events
  Revision next = 0;                          // the next revision to read
};

}  // namespace

struct SqliteStore::Impl {
  Impl(std::filesystem::path p, Clock& c, SqliteStoreOptions o)
      : path(std::move(p)), clock(c), opts(o) {}

  std::filesystem::path path;
  Clock& clock;
  SqliteStoreOptions opts;

  std::mutex mu;  // guards everything below and the connection
  sqlite3* db = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> stmts;
  Revision revision = 0;
  Revision compacted = 0;
  LeaseId next_lease = 1;
  struct Lease {
    Duration ttl;
    SteadyPoint expires;
  };
  std::unordered_map<LeaseId, Lease> leases;

  std::shared_ptr<Hub> hub = std::make_shared<Hub>();
  std::thread dispatcher;

  std::mutex tick_mu;
  std::condition_variable tick_cv;
  bool tick_stop = false;
  std::thread ticker;

  ~Impl() {
    {
      std::lock_guard lock(tick_mu);
      tick_stop = true;
    }
    tick_cv.notify_all();
    if (ticker.joinable()) ticker.join();
    {
      std::lock_guard lock(hub->mu);
      hub->stop = true;
      for (auto& [id, w] : hub->watchers) w->done = true;
      hub->watchers.clear();
    }
    hub->work_cv.notify_all();
    if (dispatcher.joinable()) dispatcher.join();
    for (auto& [sql, s] : stmts) sqlite3_finalize(s);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // ---- SQLite plumbing (callers hold mu) ----

  Status dbError(std::string_view what, int rc = -1) const {
    if (rc == -1) rc = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
    std::string msg = "sqlite store " + path.string() + ": " + std::string(what) + ": " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return unavailable(msg + " (is another process using this store?)");
    }
    return ioError(std::move(msg));
  }

  Status exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      Status s = dbError(sql, rc);
      return {s.code(), "sqlite store " + path.string() + ": " + sql + ": " + msg};
    }
    return {};
  }

  // Statements are cached by their (static) SQL text.
  sqlite3_stmt* prepare(const char* sql, Status* status) {
    auto it = stmts.find(sql);
    if (it != stmts.end()) return it->second;
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) {
      *status = dbError(std::string("prepare ") + sql, rc);
      return nullptr;
    }
    stmts.emplace(sql, s);
    return s;
  }

  Result<int64_t> queryInt(const char* sql) {
    Status st;
    sqlite3_stmt* raw = prepare(sql, &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    if (s.step() != SQLITE_ROW) return dbError(sql);
    return s.i64(0);
  }

  Status setMeta(const char* name, int64_t value) {
    Status st;
    sqlite3_stmt* raw = prepare(
        "INSERT INTO meta(name, value) VALUES (?1, ?2) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    sqlite3_bind_text(raw, 1, name, -1, SQLITE_STATIC);
    s.bind(2, value);
    if (s.step() != SQLITE_DONE) return dbError("write meta");
    return {};
  }

  Result<int64_t> getMeta(const char* name, int64_t fallback) {
    Status st;
    sqlite3_stmt* raw = prepare("SELECT value FROM meta WHERE name = ?1", &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    sqlite3_bind_text(raw, 1, name, -1, SQLITE_STATIC);
    int rc = s.step();
    if (rc == SQLITE_ROW) return s.i64(0);
    if (rc == SQLITE_DONE) return fallback;
    return dbError("read meta");
  }

  Status openDb() {
    int rc =
        sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Status s = dbError("cannot open or create the database file", rc);
      return s;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    // Exclusive locking before the first access: no -shm file, and one process per store.
    if (Status s = exec("PRAGMA locking_mode = EXCLUSIVE"); !s) return s;
    // auto_vacuum only takes effect on a new (empty) database, so it goes before the schema.
    if (Status s = exec("PRAGMA auto_vacuum = INCREMENTAL"); !s) return s;
    auto mode = queryJournalMode();
    if (!mode) return mode.status();
    if (*mode != "wal") return ioError("sqlite store " + path.string() + ": cannot enable WAL");
    if (Status s = exec("PRAGMA synchronous = FULL"); !s) return s;
    if (Status s = exec("PRAGMA journal_size_limit = 8388608"); !s) return s;
    if (opts.verify_on_open) {
      if (Status s = integrity("PRAGMA quick_check"); !s) return s;
    }
    const char* schema =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY, value BLOB NOT NULL,"
        "  create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,"
        "  lease INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease != 0;"
        "CREATE TABLE IF NOT EXISTS history(revision INTEGER NOT NULL, seq INTEGER NOT NULL,"
        "  type INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
        "  create_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,"
        "  PRIMARY KEY(revision, seq)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS leases(id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL);"
        "INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', 1),"
        "  ('revision', 0), ('compacted', 0), ('next_lease', 1);"
        "COMMIT;";
    if (Status s = exec(schema); !s) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return s;
    }
    auto version = getMeta("schema_version", 0);
    if (!version) return version.status();
    if (*version != kSchemaVersion) {
      return ioError("sqlite store " + path.string() + ": unsupported schema version " +
                     std::to_string(*version) + " (expected " + std::to_string(kSchemaVersion) +
                     ")");
    }
    auto rev = getMeta("revision", 0);
    auto comp = getMeta("compacted", 0);
    auto next = getMeta("next_lease", 1);
    if (!rev) return rev.status();
    if (!comp) return comp.status();
    if (!next) return next.status();
    revision = *rev;
    compacted = *comp;
    next_lease = *next;
    hub->latest = revision;
    // Leases get a fresh TTL on open (etcd does the same on a leader change).
    Status st;
    sqlite3_stmt* raw = prepare("SELECT id, ttl_ms FROM leases", &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    SteadyPoint now = clock.steadyNow();
    int rc2;
    while ((rc2 = s.step()) == SQLITE_ROW) {
      Duration ttl(s.i64(1));
      leases[s.i64(0)] = Lease{ttl, now + ttl};
    }
    if (rc2 != SQLITE_DONE) return dbError("load leases");
    return {};
  }

  Result<std::string> queryJournalMode() {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, nullptr);
    if (rc != SQLITE_OK) return dbError("PRAGMA journal_mode = WAL", rc);
    rc = sqlite3_step(s);
    std::string mode;
    if (rc == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s, 0);
      if (t != nullptr) mode = reinterpret_cast<const char*>(t);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return dbError("PRAGMA journal_mode = WAL", rc);
    return mode;
  }

  Status integrity(const char* pragma) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, pragma, -1, &s, nullptr);
    if (rc != SQLITE_OK) return dbError(pragma, rc);
    std::string problems;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s, 0);
      std::string line = t != nullptr ? reinterpret_cast<const char*>(t) : "";
      if (line != "ok") problems += (problems.empty() ? "" : "; ") + line;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return dbError(pragma, rc);
    if (!problems.empty()) {
      return {Code::kInternal,
              "sqlite store " + path.string() + ": database is corrupt: " + problems};
    }
    return {};
  }

  // ---- reads (callers hold mu) ----

  Result<std::optional<KeyValue>> readKey(std::string_view key) {
    Status st;
    sqlite3_stmt* raw =
        prepare("SELECT value, create_rev, mod_rev, version, lease FROM kv WHERE key = ?1", &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    s.bindBlob(1, key);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<KeyValue>();
    if (rc != SQLITE_ROW) return dbError("read key");
    KeyValue kv;
    kv.key = std::string(key);
    kv.value = s.blob(0);
    kv.create_revision = s.i64(1);
    kv.mod_revision = s.i64(2);
    kv.version = s.i64(3);
    kv.lease = s.i64(4);
    return std::optional<KeyValue>(std::move(kv));
  }

  // Keys in [prefix, prefixEnd(prefix)), sorted; limit 0 = all.
  Status readRange(std::string_view prefix, size_t limit, std::vector<KeyValue>* out) {
    Status st;
    sqlite3_stmt* raw = prepare(
        "SELECT key, value, create_rev, mod_rev, version, lease FROM kv "
        "WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key LIMIT ?3",
        &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    s.bindBlob(1, prefix);
    std::string end = prefixEnd(prefix);
    if (end.empty()) {
      s.bindNull(2);
    } else {
      s.bindBlob(2, end);
    }
    s.bind(3, limit == 0 ? -1 : static_cast<int64_t>(limit));
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      KeyValue kv;
      kv.key = s.blob(0);
      kv.value = s.blob(1);
      kv.create_revision = s.i64(2);
      kv.mod_revision = s.i64(3);
      kv.version = s.i64(4);
      kv.lease = s.i64(5);
      out->push_back(std::move(kv));
    }
    if (rc != SQLITE_DONE) return dbError("read range");
    return {};
  }

  Result<HistoryBatch> readHistory(const std::string& prefix, Revision from, Revision upto) {
    HistoryBatch batch;
    if (from < compacted) {
      return Status(Code::kCompacted, "watch from revision " + std::to_string(from) +
                                          ": history before revision " + std::to_string(compacted) +
                                          " was compacted");
    }
    upto = std::min({upto, revision, from + kMaxRevisionsPerRead - 1});
    batch.next = std::max(from, upto + 1);
    if (upto < from) return batch;
    Status st;
    sqlite3_stmt* raw = prepare(
        "SELECT revision, type, key, value, create_rev, version, lease FROM history "
        "WHERE revision >= ?1 AND revision <= ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4) "
        "ORDER BY revision, seq",
        &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    s.bind(1, from).bind(2, upto).bindBlob(3, prefix);
    std::string end = prefixEnd(prefix);
    if (end.empty()) {
      s.bindNull(4);
    } else {
      s.bindBlob(4, end);
    }
    int rc;
    Revision current = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      Revision rev = s.i64(0);
      if (rev != current) {
        batch.revisions.emplace_back();
        current = rev;
      }
      Event e;
      e.type = s.i64(1) == kDeleteType ? Event::Type::kDelete : Event::Type::kPut;
      e.kv.key = s.blob(2);
      e.kv.value = s.blob(3);
      e.kv.create_revision = s.i64(4);
      e.kv.mod_revision = rev;
      e.kv.version = s.i64(5);
      e.kv.lease = s.i64(6);
      batch.revisions.back().push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return dbError("read history");
    return batch;
  }

  // ---- writes (callers hold mu) ----

  // One write transaction in progress.
  struct Write {
    Revision rev = 0;  // the revision this write commits as, if it changes something
    int64_t seq = 0;   // events recorded so far
  };

  Status begin(Write* w) {
    w->rev = revision + 1;
    w->seq = 0;
    return exec("BEGIN IMMEDIATE");
  }

  void rollback() { sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr); }

  bool leaseAlive(LeaseId id) const {
    auto it = leases.find(id);
    return it != leases.end() && it->second.expires > clock.steadyNow();
  }

  Status recordEvent(Write* w, EventType type, const KeyValue& kv) {
    Status st;
    sqlite3_stmt* raw = prepare(
        "INSERT INTO history(revision, seq, type, key, value, create_rev, version, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    s.bind(1, w->rev).bind(2, w->seq++).bind(3, type).bindBlob(4, kv.key).bindBlob(5, kv.value);
    s.bind(6, kv.create_revision).bind(7, kv.version).bind(8, kv.lease);
    if (s.step() != SQLITE_DONE) return dbError("write history");
    return {};
  }

  Status applyPut(Write* w, const Op& op) {
    if (op.lease != 0 && !leaseAlive(op.lease)) {
      return notFound("lease " + std::to_string(op.lease) + " not found (expired or revoked)");
    }
    auto existing = readKey(op.key);
    if (!existing) return existing.status();
    KeyValue kv;
    kv.key = op.key;
    kv.value = op.value;
    kv.create_revision = existing->has_value() ? (*existing)->create_revision : w->rev;
    kv.mod_revision = w->rev;
    kv.version = existing->has_value() ? (*existing)->version + 1 : 1;
    kv.lease = op.lease;
    Status st;
    sqlite3_stmt* raw = prepare(
        "INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev, version, lease) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &st);
    if (raw == nullptr) return st;
    {
      Stmt s(raw);
      s.bindBlob(1, kv.key).bindBlob(2, kv.value).bind(3, kv.create_revision);
      s.bind(4, kv.mod_revision).bind(5, kv.version).bind(6, kv.lease);
      if (s.step() != SQLITE_DONE) return dbError("write key");
    }
    return recordEvent(w, kPutType, kv);
  }

  Status applyDelete(Write* w, const std::string& key) {
    Status st;
    sqlite3_stmt* raw = prepare("DELETE FROM kv WHERE key = ?1", &st);
    if (raw == nullptr) return st;
    {
      Stmt s(raw);
      s.bindBlob(1, key);
      if (s.step() != SQLITE_DONE) return dbError("delete key");
    }
    if (sqlite3_changes(db) == 0) return {};
    KeyValue kv;
    kv.key = key;
    kv.mod_revision = w->rev;
    return recordEvent(w, kDeleteType, kv);
  }

  Status applyDeletePrefix(Write* w, const std::string& prefix) {
    std::vector<KeyValue> kvs;
    if (Status s = readRange(prefix, 0, &kvs); !s) return s;
    for (const KeyValue& kv : kvs) {
      if (Status s = applyDelete(w, kv.key); !s) return s;
    }
    return {};
  }

  Status applyOp(Write* w, const Op& op) {
    switch (op.kind) {
      case Op::Kind::kPut:
        return applyPut(w, op);
      case Op::Kind::kDelete:
        return applyDelete(w, op.key);
      case Op::Kind::kDeletePrefix:
        return applyDeletePrefix(w, op.key);
    }
    return invalidArgument("unknown op kind");
  }

  Status deleteHistoryBelow(Revision r) {
    Status st;
    sqlite3_stmt* raw = prepare("DELETE FROM history WHERE revision < ?1", &st);
    if (raw == nullptr) return st;
    Stmt s(raw);
    s.bind(1, r);
    if (s.step() != SQLITE_DONE) return dbError("compact history");
    return setMeta("compacted", r);
  }

  // Ends the write: commits when it changed something (or `force`), otherwise rolls back. On
  // success updates the in-memory revision and notifies watchers. Returns whether it committed
  // a new revision.
  Result<bool> finish(Write* w, bool force = false) {
    bool changed = w->seq > 0;
    if (!changed && !force) {
      rollback();
      return false;
    }
    Revision new_compacted = compacted;
    if (changed) {
      if (Status s = setMeta("revision", w->rev); !s) {
        rollback();
        return s;
      }
      // Bounded history: once more than history_revisions revisions are kept, drop the oldest
      // eighth at once (fewer, larger deletes).
      size_t limit = opts.history_revisions;
      Revision oldest = std::max<Revision>(compacted, 1);
      if (limit > 0 && w->rev - oldest + 1 > static_cast<Revision>(limit)) {
        Revision keep = std::max<Revision>(1, static_cast<Revision>(limit - limit / 8));
        new_compacted = w->rev - keep + 1;
        if (Status s = deleteHistoryBelow(new_compacted); !s) {
          rollback();
          return s;
        }
      }
    }
    if (Status s = exec("COMMIT"); !s) {
      rollback();
      return s;
    }
    if (changed) {
      revision = w->rev;
      hub->notify(revision);
    }
    if (new_compacted != compacted) {
      compacted = new_compacted;
      maybeVacuum();
    }
    return changed;
  }

  // Returns free pages to the file system once a quarter of the file is free; rare, so the
  // extra writes do not matter for SD cards.
  void maybeVacuum() {
    auto free_pages = queryInt("PRAGMA freelist_count");
    auto pages = queryInt("PRAGMA page_count");
    if (!free_pages || !pages) return;
    if (*free_pages < 16 || *free_pages * 4 < *pages) return;
    if (Status s = exec("PRAGMA incremental_vacuum"); !s) {
      spdlog::warn("{}", s.toString());
      return;
    }
    if (Status s = exec("PRAGMA wal_checkpoint(TRUNCATE)"); !s) spdlog::warn("{}", s.toString());
  }

  Status validateOp(const Op& op) const {
    if (op.kind != Op::Kind::kDeletePrefix && op.key.empty()) {
      return invalidArgument("store key must not be empty");
    }
    if (op.key.size() > opts.max_key_bytes) {
      return invalidArgument("store key of " + std::to_string(op.key.size()) +
                             " bytes is longer than the limit of " +
                             std::to_string(opts.max_key_bytes));
    }
    if (op.value.size() > opts.max_value_bytes) {
      return invalidArgument("value for key \"" + op.key.substr(0, 64) + "\" has " +
                             std::to_string(op.value.size()) + " bytes, over the limit of " +
                             std::to_string(opts.max_value_bytes));
    }
    return {};
  }

  Status validateOps(const std::vector<Op>& ops) const {
    std::set<std::string_view> keys;
    for (const Op& op : ops) {
      if (Status s = validateOp(op); !s) return s;
      if (op.kind != Op::Kind::kDeletePrefix && !keys.insert(op.key).second) {
        return invalidArgument("key \"" + op.key.substr(0, 64) + "\" appears twice in one txn");
      }
    }
    return {};
  }

  static bool compareNumber(Compare::Op op, int64_t actual, int64_t expected) {
    switch (op) {
      case Compare::Op::kEqual:
        return actual == expected;
      case Compare::Op::kNotEqual:
        return actual != expected;
      case Compare::Op::kLess:
        return actual < expected;
      case Compare::Op::kGreater:
        return actual > expected;
    }
    return false;
  }

  Result<bool> evaluate(const Compare& c) {
    auto kv = readKey(c.key);
    if (!kv) return kv.status();
    const std::optional<KeyValue>& v = *kv;
    switch (c.target) {
      case Compare::Target::kVersion:
        return compareNumber(c.op, v ? v->version : 0, c.number);
      case Compare::Target::kCreateRevision:
        return compareNumber(c.op, v ? v->create_revision : 0, c.number);
      case Compare::Target::kModRevision:
        return compareNumber(c.op, v ? v->mod_revision : 0, c.number);
      case Compare::Target::kValue: {
        if (!v) return false;  // as etcd: a value compare on an absent key fails
        int cmp = v->value.compare(c.value);
        return compareNumber(c.op, cmp < 0 ? -1 : (cmp > 0 ? 1 : 0), 0);
      }
    }
    return false;
  }

  // Deletes the leases and their keys in one transaction (one revision if any key existed).
  Status removeLeases(const std::vector<LeaseId>& ids) {
    Write w;
    if (Status s = begin(&w); !s) return s;
    for (LeaseId id : ids) {
      std::vector<std::string> keys;
      {
        Status st;
        sqlite3_stmt* raw = prepare("SELECT key FROM kv WHERE lease = ?1 ORDER BY key", &st);
        if (raw == nullptr) {
          rollback();
          return st;
        }
        Stmt s(raw);
        s.bind(1, id);
        int rc;
        while ((rc = s.step()) == SQLITE_ROW) keys.push_back(s.blob(0));
        if (rc != SQLITE_DONE) {
          Status e = dbError("read lease keys");
          rollback();
          return e;
        }
      }
      for (const std::string& key : keys) {
        if (Status s = applyDelete(&w, key); !s) {
          rollback();
          return s;
        }
      }
      Status st;
      sqlite3_stmt* raw = prepare("DELETE FROM leases WHERE id = ?1", &st);
      if (raw == nullptr) {
        rollback();
        return st;
      }
      Stmt s(raw);
      s.bind(1, id);
      if (s.step() != SQLITE_DONE) {
        Status e = dbError("delete lease");
        rollback();
        return e;
      }
    }
    auto done = finish(&w, /*force=*/true);
    if (!done) return done.status();
    for (LeaseId id : ids) leases.erase(id);
    return {};
  }

  // ---- watch dispatcher ----

  void dispatchLoop() {
    std::unique_lock lock(hub->mu);
    hub->dispatcher = std::this_thread::get_id();
    while (true) {
      hub->work_cv.wait(lock, [&] { return hub->stop || hub->dirty; });
      if (hub->stop) return;
      hub->dirty = false;
      bool more = true;
      while (more && !hub->stop) {
        more = false;
        Revision latest = hub->latest;
        std::vector<std::shared_ptr<Watcher>> ready;
        for (auto& [id, w] : hub->watchers) {
          if (!w->done && w->next <= latest) ready.push_back(w);
        }
        lock.unlock();
        for (auto& w : ready) {
          if (serve(w, latest)) more = true;
        }
        lock.lock();
      }
    }
  }

  // Delivers one chunk of history to `w`; returns whether it still lags behind `latest`.
  // Called on the dispatcher thread without Hub::mu.
  bool serve(const std::shared_ptr<Watcher>& w, Revision latest) {
    Result<HistoryBatch> batch = [&] {
      std::lock_guard db_lock(mu);
      return readHistory(w->prefix, w->next, latest);
    }();
    std::unique_lock lock(hub->mu);
    if (!batch) {
      if (w->done || hub->stop) return false;
      w->done = true;
      hub->watchers.erase(w->id);
      if (w->callbacks.on_error) {
        hub->running = w->id;
        lock.unlock();
        w->callbacks.on_error(batch.status());
        lock.lock();
        hub->running = 0;
        hub->idle_cv.notify_all();
      }
      return false;
    }
    for (const std::vector<Event>& events : batch->revisions) {
      if (w->done || hub->stop) return false;
      if (!w->callbacks.on_events) continue;
      hub->running = w->id;
      lock.unlock();
      w->callbacks.on_events(events);
      lock.lock();
      hub->running = 0;
      hub->idle_cv.notify_all();
    }
    if (w->done) return false;
    w->next = batch->next;
    return w->next <= latest;
  }
};

// ---- SqliteStore ----

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& file,
                                                       Clock& clock, SqliteStoreOptions opts) {
  auto impl = std::make_unique<Impl>(file, clock, opts);
  {
    std::lock_guard lock(impl->mu);
    if (Status s = impl->openDb(); !s) return s;
  }
  Impl* p = impl.get();
  p->dispatcher = std::thread([p] { p->dispatchLoop(); });
  if (opts.tick_interval.count() > 0) {
    p->ticker = std::thread([p] {
      std::unique_lock lock(p->tick_mu);
      while (!p->tick_stop) {
        p->tick_cv.wait_for(lock, p->opts.tick_interval);
        if (p->tick_stop) break;
        lock.unlock();
        std::vector<LeaseId> expired;
        {
          std::lock_guard db_lock(p->mu);
          SteadyPoint now = p->clock.steadyNow();
          for (auto& [id, l] : p->leases) {
            if (l.expires <= now) expired.push_back(id);
          }
          if (!expired.empty()) {
            if (Status s = p->removeLeases(expired); !s) spdlog::warn("{}", s.toString());
          }
        }
        lock.lock();
      }
    });
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

Result<std::optional<KeyValue>> SqliteStore::get(const std::string& key) {
  std::lock_guard lock(impl_->mu);
  return impl_->readKey(key);
}

Result<RangeResult> SqliteStore::list(const std::string& prefix, size_t limit) {
  std::lock_guard lock(impl_->mu);
  RangeResult r;
  if (Status s = impl_->readRange(prefix, limit, &r.kvs); !s) return s;
  r.revision = impl_->revision;
  return r;
}

Result<TxnResult> SqliteStore::txn(const std::vector<Compare>& compare,
                                   const std::vector<Op>& success, const std::vector<Op>& failure) {
  if (Status s = impl_->validateOps(success); !s) return s;
  if (Status s = impl_->validateOps(failure); !s) return s;
  std::lock_guard lock(impl_->mu);
  Impl::Write w;
  if (Status s = impl_->begin(&w); !s) return s;
  bool ok = true;
  for (const Compare& c : compare) {
    auto r = impl_->evaluate(c);
    if (!r) {
      impl_->rollback();
      return r.status();
    }
    if (!*r) {
      ok = false;
      break;
    }
  }
  for (const Op& op : ok ? success : failure) {
    if (Status s = impl_->applyOp(&w, op); !s) {
      impl_->rollback();
      return s;
    }
  }
  auto done = impl_->finish(&w);
  if (!done) return done.status();
  return TxnResult{ok, impl_->revision};
}

Result<LeaseId> SqliteStore::grantLease(Duration ttl) {
  if (ttl.count() <= 0) return invalidArgument("lease ttl must be positive");
  std::lock_guard lock(impl_->mu);
  Impl::Write w;
  if (Status s = impl_->begin(&w); !s) return s;
  LeaseId id = impl_->next_lease;
  Status st;
  sqlite3_stmt* raw =
      impl_->prepare("INSERT INTO leases(id, ttl_ms, expires_at) VALUES (?1, ?2, ?3)", &st);
  if (raw == nullptr) {
    impl_->rollback();
    return st;
  }
  {
    Stmt s(raw);
    s.bind(1, id).bind(2, ttl.count()).bind(3, toUnixMillis(impl_->clock.now() + ttl));
    if (s.step() != SQLITE_DONE) {
      Status e = impl_->dbError("write lease");
      impl_->rollback();
      return e;
    }
  }
  if (Status s = impl_->setMeta("next_lease", id + 1); !s) {
    impl_->rollback();
    return s;
  }
  auto done = impl_->finish(&w, /*force=*/true);
  if (!done) return done.status();
  impl_->next_lease = id + 1;
  impl_->leases[id] = Impl::Lease{ttl, impl_->clock.steadyNow() + ttl};
  return id;
}

Status SqliteStore::keepAlive(LeaseId lease) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->leases.find(lease);
  SteadyPoint now = impl_->clock.steadyNow();
  if (it == impl_->leases.end() || it->second.expires <= now) {
    return notFound("lease " + std::to_string(lease) + " not found (expired or revoked)");
  }
  it->second.expires = now + it->second.ttl;
  return {};
}

Status SqliteStore::revokeLease(LeaseId lease) {
  std::lock_guard lock(impl_->mu);
  if (impl_->leases.count(lease) == 0) {
    return notFound("lease " + std::to_string(lease) + " not found (expired or revoked)");
  }
  return impl_->removeLeases({lease});
}

void SqliteStore::tick() {
  std::lock_guard lock(impl_->mu);
  SteadyPoint now = impl_->clock.steadyNow();
  std::vector<LeaseId> expired;
  for (auto& [id, l] : impl_->leases) {
    if (l.expires <= now) expired.push_back(id);
  }
  if (expired.empty()) return;
  std::sort(expired.begin(), expired.end());
  if (Status s = impl_->removeLeases(expired); !s) spdlog::warn("{}", s.toString());
}

Result<std::unique_ptr<WatchHandle>> SqliteStore::watch(const std::string& prefix,
                                                        Revision from_revision,
                                                        WatchCallbacks callbacks) {
  if (prefix.size() > impl_->opts.max_key_bytes) {
    return invalidArgument("watch prefix longer than the key limit");
  }
  std::lock_guard lock(impl_->mu);
  auto w = std::make_shared<Watcher>();
  w->prefix = prefix;
  w->next = from_revision <= 0 ? impl_->revision + 1 : from_revision;
  w->callbacks = std::move(callbacks);
  std::shared_ptr<Hub> hub = impl_->hub;
  std::lock_guard hub_lock(hub->mu);
  w->id = hub->next_id++;
  hub->watchers.emplace(w->id, w);
  // Wake the dispatcher: it replays history, or reports kCompacted through on_error.
  hub->dirty = true;
  hub->work_cv.notify_one();
  return std::unique_ptr<WatchHandle>(new SqliteWatchHandle(hub, w->id));
}

Result<Revision> SqliteStore::currentRevision() {
  std::lock_guard lock(impl_->mu);
  return impl_->revision;
}

Status SqliteStore::compact(Revision revision) {
  std::lock_guard lock(impl_->mu);
  if (revision <= impl_->compacted) return {};
  if (revision > impl_->revision) {
    return invalidArgument("cannot compact to revision " + std::to_string(revision) +
                           ": the store is at revision " + std::to_string(impl_->revision));
  }
  if (Status s = impl_->exec("BEGIN IMMEDIATE"); !s) return s;
  if (Status s = impl_->deleteHistoryBelow(revision); !s) {
    impl_->rollback();
    return s;
  }
  if (Status s = impl_->exec("COMMIT"); !s) {
    impl_->rollback();
    return s;
  }
  impl_->compacted = revision;
  impl_->maybeVacuum();
  return {};
}

Status SqliteStore::checkIntegrity() {
  std::lock_guard lock(impl_->mu);
  return impl_->integrity("PRAGMA integrity_check");
}

Result<SqliteStoreStats> SqliteStore::stats() {
  std::lock_guard lock(impl_->mu);
  SqliteStoreStats st;
  st.revision = impl_->revision;
  st.compacted_revision = impl_->compacted;
  struct Q {
    const char* sql;
    int64_t* out;
  };
  for (Q q :
       {Q{"SELECT count(*) FROM kv", &st.keys}, Q{"SELECT count(*) FROM history", &st.history_rows},
        Q{"SELECT count(*) FROM leases", &st.leases}, Q{"PRAGMA page_size", &st.page_size},
        Q{"PRAGMA page_count", &st.page_count}, Q{"PRAGMA freelist_count", &st.freelist_pages}}) {
    auto v = impl_->queryInt(q.sql);
    if (!v) return v.status();
    *q.out = *v;
  }
  return st;
}

}  // namespace baton::state
