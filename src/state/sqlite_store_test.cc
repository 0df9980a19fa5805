#include "state/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/testing/fake_clock.h"
#include "core/testing/temp_dir.h"
#include "state/testing/store_conformance.h"

namespace baton::state {
namespace {

namespace fs = std::filesystem;

using TempDir = baton::testing::TempDir;

SqliteStoreOptions testOptions() {
  SqliteStoreOptions o;
  o.tick_interval = Duration(0);  // leases expire only on tick()
  return o;
}

class SqliteHarness : public testing::StoreHarness {
 public:
  std::unique_ptr<Store> open() override {
    auto s = SqliteStore::open(dir_.path() / "store.db", clock_, testOptions());
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    if (!s.isOk()) return nullptr;
    return std::move(*s);
  }
  void advanceClock(Duration d) override { clock_.advance(d); }
  void expireLeases(Store& store) override { static_cast<SqliteStore&>(store).tick(); }

 private:
  TempDir dir_;
  baton::testing::FakeClock clock_;
};

BATON_INSTANTIATE_STORE_CONFORMANCE(Sqlite, [] { return std::make_unique<SqliteHarness>(); });

std::unique_ptr<SqliteStore> mustOpen(const fs::path& file, Clock& clock,
                                      SqliteStoreOptions opts = testOptions()) {
  auto s = SqliteStore::open(file, clock, opts);
  EXPECT_TRUE(s.isOk()) << s.status().toString();
  return s.isOk() ? std::move(*s) : nullptr;
}

uintmax_t storeBytes(const fs::path& file) {
  uintmax_t total = 0;
  for (const char* suffix : {"", "-wal", "-journal"}) {
    std::error_code ec;
    auto n = fs::file_size(file.string() + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

TEST(SqliteStoreTest, RejectsOversizedKeysAndValues) {
  TempDir dir;
  baton::testing::FakeClock clock;
  auto store = mustOpen(dir.path() / "s.db", clock);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->put(std::string(5000, 'k'), "v").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store->put("/k", std::string(2 * 1024 * 1024, 'v')).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store->put("", "v").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store->txn({}, {Op::put("/a", "1"), Op::put("/a", "2")}).status().code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(store->put("/k", std::string(1024 * 1024, 'v')).isOk());
  EXPECT_EQ(*store->currentRevision(), 1);
}

TEST(SqliteStoreTest, BadPathsGiveClearErrors) {
  TempDir dir;
  baton::testing::FakeClock clock;
  auto missing_dir = SqliteStore::open(dir.path() / "nope" / "s.db", clock, testOptions());
  ASSERT_FALSE(missing_dir.isOk());
  EXPECT_EQ(missing_dir.status().code(), Code::kIo);
  EXPECT_NE(missing_dir.status().message().find("nope/s.db"), std::string::npos)
      << missing_dir.status().message();

  fs::path garbage = dir.path() / "garbage.db";
  {
    std::ofstream out(garbage);
    for (int i = 0; i < 1000; ++i) out << "this is not a database file at all ";
  }
  auto bad = SqliteStore::open(garbage, clock, testOptions());
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), Code::kIo);
  EXPECT_NE(bad.status().message().find("not a database"), std::string::npos)
      << bad.status().message();

  auto is_dir = SqliteStore::open(dir.path(), clock, testOptions());
  ASSERT_FALSE(is_dir.isOk());
  EXPECT_EQ(is_dir.status().code(), Code::kIo);
}

TEST(SqliteStoreTest, SecondOpenerIsRefused) {
  TempDir dir;
  baton::testing::FakeClock clock;
  auto first = mustOpen(dir.path() / "s.db", clock);
  ASSERT_NE(first, nullptr);
  auto second = SqliteStore::open(dir.path() / "s.db", clock, testOptions());
  ASSERT_FALSE(second.isOk());
  EXPECT_EQ(second.status().code(), Code::kUnavailable) << second.status().toString();
  first.reset();
  EXPECT_NE(mustOpen(dir.path() / "s.db", clock), nullptr);
}

TEST(SqliteStoreTest, HistoryIsBoundedAndFileShrinks) {
  TempDir dir;
  baton::testing::FakeClock clock;
  fs::path file = dir.path() / "s.db";
  SqliteStoreOptions opts = testOptions();
  opts.history_revisions = 100;
  auto store = mustOpen(file, clock, opts);
  ASSERT_NE(store, nullptr);

  // Many small writes: history stays within the limit.
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(store->put("/h/" + std::to_string(i % 10), std::to_string(i)).isOk());
    auto st = store->stats();
    ASSERT_TRUE(st.isOk());
    ASSERT_LE(st->history_rows, 100) << "after write " << i;
  }
  auto st = store->stats();
  EXPECT_GT(st->compacted_revision, 0);
  EXPECT_LE(st->revision - st->compacted_revision + 1, 100);

  // Big values, then delete them all and let them fall out of history: the file gives the
  // space back.
  std::string big(64 * 1024, 'x');
  for (int t = 0; t < 20; ++t) {
    std::vector<Op> ops;
    for (int i = 0; i < 10; ++i) ops.push_back(Op::put("/big/" + std::to_string(t * 10 + i), big));
    ASSERT_TRUE(store->txn({}, ops).isOk());
  }
  uintmax_t peak = storeBytes(file);
  EXPECT_GT(peak, 20u * 1024 * 1024);  // values in kv + history
  ASSERT_TRUE(store->txn({}, {Op::delPrefix("/big/")}).isOk());
  for (int i = 0; i < 150; ++i) ASSERT_TRUE(store->put("/small", std::to_string(i)).isOk());
  st = store->stats();
  ASSERT_TRUE(st.isOk());
  EXPECT_LE(st->history_rows, 100);
  EXPECT_TRUE(store->checkIntegrity().isOk());
  store.reset();
  uintmax_t after = storeBytes(file);
  EXPECT_LT(after, 2u * 1024 * 1024) << "peak " << peak;
}

TEST(SqliteStoreTest, ManualCompactionRejectsFutureRevision) {
  TempDir dir;
  baton::testing::FakeClock clock;
  auto store = mustOpen(dir.path() / "s.db", clock);
  ASSERT_TRUE(store->put("/a", "1").isOk());
  EXPECT_EQ(store->compact(5).code(), Code::kInvalidArgument);
  EXPECT_TRUE(store->compact(1).isOk());
  EXPECT_TRUE(store->compact(1).isOk());  // idempotent
}

TEST(SqliteStoreTest, BackgroundTickExpiresLeases) {
  TempDir dir;
  baton::testing::FakeClock clock;
  SqliteStoreOptions opts;
  opts.tick_interval = Duration(5);
  auto store = mustOpen(dir.path() / "s.db", clock, opts);
  auto lease = store->grantLease(Duration(1000));
  ASSERT_TRUE(lease.isOk());
  ASSERT_TRUE(store->put("/bt/a", "1", *lease).isOk());
  testing::WatchRecorder rec;
  auto w = store->watch("/bt/", 0, rec.callbacks());
  ASSERT_TRUE(w.isOk());
  clock.advance(Duration(2000));
  // The background thread notices within a few ticks; the watcher sees the delete.
  ASSERT_TRUE(rec.waitForEvents(1));
  EXPECT_EQ(rec.events()[0].type, Event::Type::kDelete);
}

TEST(SqliteStoreTest, LeasesGetAFreshTtlOnReopen) {
  TempDir dir;
  baton::testing::FakeClock clock;
  fs::path file = dir.path() / "s.db";
  LeaseId lease = 0;
  {
    auto store = mustOpen(file, clock);
    auto l = store->grantLease(Duration(5000));
    ASSERT_TRUE(l.isOk());
    lease = *l;
    ASSERT_TRUE(store->put("/fr/a", "1", lease).isOk());
  }
  clock.advance(Duration(60'000));  // "down" for longer than the TTL
  auto store = mustOpen(file, clock);
  store->tick();
  EXPECT_TRUE(store->get("/fr/a")->has_value());
  clock.advance(Duration(6000));
  store->tick();
  EXPECT_FALSE(store->get("/fr/a")->has_value());
  // Lease ids are not reused.
  auto next = store->grantLease(Duration(1000));
  ASSERT_TRUE(next.isOk());
  EXPECT_GT(*next, lease);
}

// Crash safety: a child process commits txns in a tight loop (a counter mirrored in two keys plus
// a log key per step) and reports each committed step through a pipe; the parent SIGKILLs it
// mid-stream and checks that the reopened store is intact, consistent, and holds every step the
// child saw committed.
[[noreturn]] void crashChild(const fs::path& file, int out_fd, int64_t start) {
  SystemClock clock;
  SqliteStoreOptions opts;
  opts.tick_interval = Duration(0);
  opts.history_revisions = 300;  // exercise automatic compaction too
  opts.verify_on_open = false;
  auto s = SqliteStore::open(file, clock, opts);
  if (!s.isOk()) _exit(3);
  Store& store = **s;
  std::string pad(3000, 'p');
  for (int64_t i = start;; ++i) {
    std::string v = std::to_string(i);
    auto r = store.txn({}, {Op::put("/crash/a", v), Op::put("/crash/b", v),
                            Op::put("/crash/log/" + std::to_string(i % 50), v + pad),
                            Op::del("/crash/log/" + std::to_string((i + 25) % 50))});
    if (!r.isOk()) _exit(4);
    int64_t msg[2] = {i, r->revision};
    if (write(out_fd, msg, sizeof msg) != sizeof msg) _exit(5);
  }
}

TEST(SqliteStoreTest, SurvivesSigkillMidTransaction) {
  TempDir dir;
  fs::path file = dir.path() / "crash.db";
  std::mt19937 rng(42);
  int64_t next = 1;
  Revision last_rev = 0;
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      crashChild(file, fds[1], next);
    }
    close(fds[1]);
    // Let it commit a random number of steps, then kill it without warning.
    int steps = 20 + static_cast<int>(rng() % 200);
    int64_t committed = next - 1;
    Revision committed_rev = last_rev;
    for (int i = 0; i < steps; ++i) {
      int64_t msg[2];
      ASSERT_EQ(read(fds[0], msg, sizeof msg), static_cast<ssize_t>(sizeof msg))
          << "child died early";
      committed = msg[0];
      ASSERT_GT(msg[1], committed_rev);
      committed_rev = msg[1];
    }
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    // Drain what the child reported before dying: those steps committed too.
    int64_t msg[2];
    while (read(fds[0], msg, sizeof msg) == static_cast<ssize_t>(sizeof msg)) {
      committed = msg[0];
      committed_rev = msg[1];
    }
    close(fds[0]);

    baton::testing::FakeClock clock;
    auto store = mustOpen(file, clock);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->checkIntegrity().isOk());
    auto a = store->get("/crash/a");
    auto b = store->get("/crash/b");
    ASSERT_TRUE(a.isOk() && b.isOk());
    ASSERT_TRUE(a->has_value() && b->has_value());
    EXPECT_EQ((*a)->value, (*b)->value);
    EXPECT_EQ((*a)->mod_revision, (*b)->mod_revision);
    int64_t value = std::stoll((*a)->value);
    // Every reported step is there; at most one more (committed, not yet reported).
    EXPECT_GE(value, committed);
    EXPECT_LE(value, committed + 1);
    Revision rev = *store->currentRevision();
    EXPECT_GE(rev, committed_rev);
    EXPECT_GT(rev, last_rev);
    EXPECT_EQ((*a)->mod_revision, rev);
    auto st = store->stats();
    ASSERT_TRUE(st.isOk());
    EXPECT_LE(st->history_rows, 300 * 4);
    next = value + 1;
    last_rev = rev;
  }
}

}  // namespace
}  // namespace baton::state
