#include "state/testing/store_conformance.h"

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

namespace baton::state::testing {

using std::chrono::seconds;

// ---- WatchRecorder ----

WatchRecorder::WatchRecorder() : state_(std::make_shared<State>()) {}

WatchCallbacks WatchRecorder::callbacks() {
  std::shared_ptr<State> st = state_;
  WatchCallbacks cb;
  cb.on_events = [st](const std::vector<Event>& events) {
    std::lock_guard lock(st->mu);
    st->batches.push_back(events);
    st->count += events.size();
    st->cv.notify_all();
  };
  cb.on_error = [st](const Status& s) {
    std::lock_guard lock(st->mu);
    st->error = s;
    st->cv.notify_all();
  };
  return cb;
}

bool WatchRecorder::waitForEvents(size_t n, Duration timeout) {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->count >= n; });
}

bool WatchRecorder::waitForError(Duration timeout) {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->error.has_value(); });
}

std::vector<std::vector<Event>> WatchRecorder::batches() const {
  std::lock_guard lock(state_->mu);
  return state_->batches;
}

std::vector<Event> WatchRecorder::events() const {
  std::lock_guard lock(state_->mu);
  std::vector<Event> out;
  for (const auto& b : state_->batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

std::optional<Status> WatchRecorder::error() const {
  std::lock_guard lock(state_->mu);
  return state_->error;
}

// ---- fixture ----

void StoreConformanceTest::SetUp() {
  harness_ = GetParam()();
  store_ = harness_->open();
  ASSERT_NE(store_, nullptr);
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  harness_.reset();
}

void StoreConformanceTest::reopen() {
  store_.reset();
  store_ = harness_->open();
  ASSERT_NE(store_, nullptr);
}

namespace {

Revision rev(Store& s) {
  auto r = s.currentRevision();
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.valueOr(-1);
}

std::optional<KeyValue> getKey(Store& s, const std::string& key) {
  auto r = s.get(key);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? *r : std::nullopt;
}

std::vector<std::string> keysOf(const std::vector<KeyValue>& kvs) {
  std::vector<std::string> out;
  for (const auto& kv : kvs) out.push_back(kv.key);
  return out;
}

// A watch that failed with kCompacted, either at once or through on_error.
bool watchFailsCompacted(Store& s, const std::string& prefix, Revision from) {
  WatchRecorder rec;
  auto w = s.watch(prefix, from, rec.callbacks());
  if (!w.isOk()) return w.status().code() == Code::kCompacted;
  if (!rec.waitForError()) return false;
  return rec.error()->code() == Code::kCompacted;
}

}  // namespace

// ---- KV basics ----

TEST_P(StoreConformanceTest, PutGetRevisionsAndVersions) {
  Revision start = rev(*store_);
  EXPECT_EQ(getKey(*store_, "/t/a"), std::nullopt);

  auto r1 = store_->put("/t/a", "one");
  ASSERT_TRUE(r1.isOk()) << r1.status().toString();
  EXPECT_EQ(*r1, start + 1);
  auto kv = getKey(*store_, "/t/a");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->key, "/t/a");
  EXPECT_EQ(kv->value, "one");
  EXPECT_EQ(kv->create_revision, *r1);
  EXPECT_EQ(kv->mod_revision, *r1);
  EXPECT_EQ(kv->version, 1);
  EXPECT_EQ(kv->lease, 0);

  auto r2 = store_->put("/t/a", "two");
  ASSERT_TRUE(r2.isOk());
  EXPECT_EQ(*r2, *r1 + 1);
  kv = getKey(*store_, "/t/a");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, "two");
  EXPECT_EQ(kv->create_revision, *r1);
  EXPECT_EQ(kv->mod_revision, *r2);
  EXPECT_EQ(kv->version, 2);
  EXPECT_EQ(rev(*store_), *r2);

  // Binary-safe values, empty values.
  std::string bin("a\0b\xff", 4);
  ASSERT_TRUE(store_->put("/t/bin", bin).isOk());
  ASSERT_TRUE(store_->put("/t/empty", "").isOk());
  EXPECT_EQ(getKey(*store_, "/t/bin")->value, bin);
  EXPECT_EQ(getKey(*store_, "/t/empty")->value, "");
}

TEST_P(StoreConformanceTest, ListByPrefixSortedWithLimit) {
  for (const char* k : {"/p/b", "/p/a", "/pa", "/q/x", "/p/c/d"}) {
    ASSERT_TRUE(store_->put(k, std::string("v") + k).isOk());
  }
  auto r = store_->list("/p/");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(keysOf(r->kvs), (std::vector<std::string>{"/p/a", "/p/b", "/p/c/d"}));
  EXPECT_EQ(r->revision, rev(*store_));
  EXPECT_EQ(r->kvs[0].value, "v/p/a");

  auto all = store_->list("");
  ASSERT_TRUE(all.isOk());
  EXPECT_EQ(keysOf(all->kvs), (std::vector<std::string>{"/p/a", "/p/b", "/p/c/d", "/pa", "/q/x"}));

  auto limited = store_->list("/p", 2);
  ASSERT_TRUE(limited.isOk());
  EXPECT_EQ(keysOf(limited->kvs), (std::vector<std::string>{"/p/a", "/p/b"}));

  auto none = store_->list("/zzz/");
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->kvs.empty());
}

TEST_P(StoreConformanceTest, CompareAndSwapBranches) {
  // Create-if-absent succeeds once.
  auto t1 =
      store_->txn({Compare::absent("/c/k")}, {Op::put("/c/k", "first")}, {Op::put("/c/lost", "x")});
  ASSERT_TRUE(t1.isOk());
  EXPECT_TRUE(t1->succeeded);
  EXPECT_EQ(t1->revision, rev(*store_));

  auto t2 = store_->txn({Compare::absent("/c/k")}, {Op::put("/c/k", "second")},
                        {Op::put("/c/lost", "x")});
  ASSERT_TRUE(t2.isOk());
  EXPECT_FALSE(t2->succeeded);
  EXPECT_EQ(getKey(*store_, "/c/k")->value, "first");
  EXPECT_EQ(getKey(*store_, "/c/lost")->value, "x");  // the failure branch ran

  // Mod revision CAS.
  Revision mod = getKey(*store_, "/c/k")->mod_revision;
  auto stale = store_->txn({Compare::modRevisionIs("/c/k", mod - 1)}, {Op::put("/c/k", "s")});
  ASSERT_TRUE(stale.isOk());
  EXPECT_FALSE(stale->succeeded);
  auto fresh = store_->txn({Compare::modRevisionIs("/c/k", mod)}, {Op::put("/c/k", "f")});
  ASSERT_TRUE(fresh.isOk());
  EXPECT_TRUE(fresh->succeeded);
  EXPECT_EQ(getKey(*store_, "/c/k")->value, "f");

  // Value compares, other operators, multiple compares (all must hold).
  Compare value_eq{"/c/k", Compare::Target::kValue, Compare::Op::kEqual, 0, "f"};
  Compare version_gt{"/c/k", Compare::Target::kVersion, Compare::Op::kGreater, 1, {}};
  Compare create_lt{"/c/k", Compare::Target::kCreateRevision, Compare::Op::kLess, 1, {}};
  Compare value_ne{"/c/k", Compare::Target::kValue, Compare::Op::kNotEqual, 0, "f"};
  auto a = store_->txn({value_eq, version_gt}, {Op::put("/c/ok1", "1")});
  ASSERT_TRUE(a.isOk());
  EXPECT_TRUE(a->succeeded);
  auto b = store_->txn({value_eq, create_lt}, {Op::put("/c/bad", "1")});
  ASSERT_TRUE(b.isOk());
  EXPECT_FALSE(b->succeeded);
  auto c = store_->txn({value_ne}, {Op::put("/c/bad", "1")});
  ASSERT_TRUE(c.isOk());
  EXPECT_FALSE(c->succeeded);
  EXPECT_EQ(getKey(*store_, "/c/bad"), std::nullopt);
  // A value compare on an absent key fails (as etcd).
  Compare absent_value{"/c/none", Compare::Target::kValue, Compare::Op::kNotEqual, 0, "x"};
  auto d = store_->txn({absent_value}, {Op::put("/c/bad", "1")});
  ASSERT_TRUE(d.isOk());
  EXPECT_FALSE(d->succeeded);
}

TEST_P(StoreConformanceTest, DeleteAndDeletePrefix) {
  ASSERT_TRUE(store_->put("/d/a", "1").isOk());
  ASSERT_TRUE(store_->put("/d/b/1", "1").isOk());
  ASSERT_TRUE(store_->put("/d/b/2", "1").isOk());
  ASSERT_TRUE(store_->put("/d/bz", "1").isOk());
  Revision before = rev(*store_);

  auto r = store_->del("/d/a");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, before + 1);
  EXPECT_EQ(getKey(*store_, "/d/a"), std::nullopt);

  // Deleting a missing key changes nothing, so the revision stays.
  auto missing = store_->del("/d/a");
  ASSERT_TRUE(missing.isOk());
  EXPECT_EQ(*missing, before + 1);
  EXPECT_EQ(rev(*store_), before + 1);

  auto t = store_->txn({}, {Op::delPrefix("/d/b/")});
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(t->revision, before + 2);  // both deletes in one revision
  EXPECT_EQ(keysOf(store_->list("/d/")->kvs), (std::vector<std::string>{"/d/bz"}));

  // Re-creating a deleted key starts over at version 1.
  auto again = store_->put("/d/a", "x");
  ASSERT_TRUE(again.isOk());
  auto kv = getKey(*store_, "/d/a");
  EXPECT_EQ(kv->version, 1);
  EXPECT_EQ(kv->create_revision, *again);
}

TEST_P(StoreConformanceTest, TxnIsAtomic) {
  auto t = store_->txn({}, {Op::put("/x/1", "a"), Op::put("/x/2", "b"), Op::put("/x/3", "c")});
  ASSERT_TRUE(t.isOk());
  for (const char* k : {"/x/1", "/x/2", "/x/3"}) {
    auto kv = getKey(*store_, k);
    ASSERT_TRUE(kv.has_value());
    EXPECT_EQ(kv->mod_revision, t->revision) << k;
  }
  // A txn that fails part-way (unknown lease) applies nothing.
  Revision before = rev(*store_);
  auto bad = store_->txn({}, {Op::put("/x/1", "changed"), Op::put("/x/4", "d", 987654321)});
  EXPECT_FALSE(bad.isOk());
  EXPECT_EQ(getKey(*store_, "/x/1")->value, "a");
  EXPECT_EQ(getKey(*store_, "/x/4"), std::nullopt);
  EXPECT_EQ(rev(*store_), before);
}

TEST_P(StoreConformanceTest, TxnThatChangesNothingKeepsRevision) {
  ASSERT_TRUE(store_->put("/n/a", "1").isOk());
  Revision before = rev(*store_);
  auto failed = store_->txn({Compare::absent("/n/a")}, {Op::put("/n/b", "1")});
  ASSERT_TRUE(failed.isOk());
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ(failed->revision, before);
  auto empty = store_->txn({}, {});
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->revision, before);
  auto del = store_->txn({}, {Op::del("/n/none"), Op::delPrefix("/n/none/")});
  ASSERT_TRUE(del.isOk());
  EXPECT_EQ(del->revision, before);
  EXPECT_EQ(rev(*store_), before);
}

TEST_P(StoreConformanceTest, ConcurrentWritersGetDistinctRevisions) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  Revision before = rev(*store_);
  std::vector<std::thread> threads;
  std::vector<std::vector<Revision>> got(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = store_->put("/cc/" + std::to_string(t), std::to_string(i));
        if (r.isOk()) got[t].push_back(*r);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<Revision> all;
  for (auto& v : got) {
    EXPECT_EQ(v.size(), static_cast<size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(rev(*store_), before + kThreads * kPerThread);
}

// ---- leases ----

TEST_P(StoreConformanceTest, LeaseExpiryDeletesKeysVisibleToWatchers) {
  auto lease = store_->grantLease(Duration(5000));
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  ASSERT_TRUE(store_->put("/l/a", "1", *lease).isOk());
  ASSERT_TRUE(store_->put("/l/b", "1", *lease).isOk());
  ASSERT_TRUE(store_->put("/l/keep", "1").isOk());
  EXPECT_EQ(getKey(*store_, "/l/a")->lease, *lease);
  Revision before = rev(*store_);

  WatchRecorder rec;
  auto w = store_->watch("/l/", before + 1, rec.callbacks());
  ASSERT_TRUE(w.isOk());

  harness_->advanceClock(Duration(6000));
  harness_->expireLeases(*store_);
  EXPECT_EQ(getKey(*store_, "/l/a"), std::nullopt);
  EXPECT_EQ(getKey(*store_, "/l/b"), std::nullopt);
  EXPECT_TRUE(getKey(*store_, "/l/keep").has_value());
  EXPECT_EQ(rev(*store_), before + 1);  // one revision for the lease's keys

  ASSERT_TRUE(rec.waitForEvents(2));
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].size(), 2u);
  for (const Event& e : batches[0]) {
    EXPECT_EQ(e.type, Event::Type::kDelete);
    EXPECT_EQ(e.kv.mod_revision, before + 1);
  }
  EXPECT_EQ(store_->keepAlive(*lease).code(), Code::kNotFound);
  // Putting with an expired lease fails.
  EXPECT_FALSE(store_->put("/l/c", "1", *lease).isOk());
}

TEST_P(StoreConformanceTest, KeepAliveExtendsLease) {
  auto lease = store_->grantLease(Duration(5000));
  ASSERT_TRUE(lease.isOk());
  ASSERT_TRUE(store_->put("/ka/a", "1", *lease).isOk());
  harness_->advanceClock(Duration(3000));
  ASSERT_TRUE(store_->keepAlive(*lease).isOk());
  harness_->advanceClock(Duration(3000));  // 6s after grant, 3s after keepAlive
  harness_->expireLeases(*store_);
  EXPECT_TRUE(getKey(*store_, "/ka/a").has_value());
  harness_->advanceClock(Duration(3000));
  harness_->expireLeases(*store_);
  EXPECT_EQ(getKey(*store_, "/ka/a"), std::nullopt);
}

TEST_P(StoreConformanceTest, RevokeDeletesKeys) {
  auto lease = store_->grantLease(Duration(60'000));
  ASSERT_TRUE(lease.isOk());
  auto other = store_->grantLease(Duration(60'000));
  ASSERT_TRUE(other.isOk());
  EXPECT_NE(*lease, *other);
  ASSERT_TRUE(store_->put("/r/a", "1", *lease).isOk());
  ASSERT_TRUE(store_->put("/r/b", "1", *other).isOk());
  Revision before = rev(*store_);
  ASSERT_TRUE(store_->revokeLease(*lease).isOk());
  EXPECT_EQ(rev(*store_), before + 1);
  EXPECT_EQ(getKey(*store_, "/r/a"), std::nullopt);
  EXPECT_TRUE(getKey(*store_, "/r/b").has_value());
  EXPECT_EQ(store_->keepAlive(*lease).code(), Code::kNotFound);
  EXPECT_EQ(store_->revokeLease(*lease).code(), Code::kNotFound);
  EXPECT_TRUE(store_->keepAlive(*other).isOk());
  // Revoking a lease without keys does not bump the revision.
  auto empty = store_->grantLease(Duration(60'000));
  ASSERT_TRUE(empty.isOk());
  Revision r = rev(*store_);
  ASSERT_TRUE(store_->revokeLease(*empty).isOk());
  EXPECT_EQ(rev(*store_), r);
}

TEST_P(StoreConformanceTest, PutWithoutLeaseDetachesKey) {
  auto lease = store_->grantLease(Duration(5000));
  ASSERT_TRUE(lease.isOk());
  ASSERT_TRUE(store_->put("/dl/a", "1", *lease).isOk());
  ASSERT_TRUE(store_->put("/dl/a", "2").isOk());
  harness_->advanceClock(Duration(6000));
  harness_->expireLeases(*store_);
  auto kv = getKey(*store_, "/dl/a");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, 0);
}

// ---- watches ----

TEST_P(StoreConformanceTest, WatchReplaysHistoryThenLive) {
  auto r1 = store_->put("/w/a", "1");
  ASSERT_TRUE(r1.isOk());
  ASSERT_TRUE(store_->put("/other", "x").isOk());
  ASSERT_TRUE(store_->put("/w/b", "2").isOk());
  ASSERT_TRUE(store_->del("/w/a").isOk());

  WatchRecorder rec;
  auto w = store_->watch("/w/", *r1, rec.callbacks());
  ASSERT_TRUE(w.isOk());
  ASSERT_TRUE(rec.waitForEvents(3));
  ASSERT_TRUE(store_->put("/w/c", "3").isOk());
  ASSERT_TRUE(rec.waitForEvents(4));

  auto events = rec.events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, Event::Type::kPut);
  EXPECT_EQ(events[0].kv.key, "/w/a");
  EXPECT_EQ(events[0].kv.value, "1");
  EXPECT_EQ(events[0].kv.mod_revision, *r1);
  EXPECT_EQ(events[0].kv.version, 1);
  EXPECT_EQ(events[1].kv.key, "/w/b");
  EXPECT_EQ(events[2].type, Event::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, "/w/a");
  EXPECT_EQ(events[3].kv.key, "/w/c");
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].kv.mod_revision, events[i - 1].kv.mod_revision);
  }
  EXPECT_EQ(events[3].kv.mod_revision, rev(*store_));
}

TEST_P(StoreConformanceTest, WatchFromZeroStartsAtNextRevision) {
  ASSERT_TRUE(store_->put("/wz/old", "1").isOk());
  WatchRecorder rec;
  auto w = store_->watch("/wz/", 0, rec.callbacks());
  ASSERT_TRUE(w.isOk());
  auto r = store_->put("/wz/new", "1");
  ASSERT_TRUE(r.isOk());
  ASSERT_TRUE(rec.waitForEvents(1));
  auto events = rec.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.key, "/wz/new");
}

TEST_P(StoreConformanceTest, WatchBatchesOneRevision) {
  Revision from = rev(*store_) + 1;
  WatchRecorder rec;
  auto w = store_->watch("/wb/", from, rec.callbacks());
  ASSERT_TRUE(w.isOk());
  auto t = store_->txn({}, {Op::put("/wb/1", "a"), Op::put("/wb/2", "b"), Op::put("/wb/3", "c")});
  ASSERT_TRUE(t.isOk());
  ASSERT_TRUE(store_->txn({}, {Op::delPrefix("/wb/")}).isOk());
  ASSERT_TRUE(rec.waitForEvents(6));
  auto batches = rec.batches();
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_EQ(batches[0].size(), 3u);
  for (const Event& e : batches[0]) {
    EXPECT_EQ(e.type, Event::Type::kPut);
    EXPECT_EQ(e.kv.mod_revision, t->revision);
  }
  ASSERT_EQ(batches[1].size(), 3u);
  for (const Event& e : batches[1]) {
    EXPECT_EQ(e.type, Event::Type::kDelete);
    EXPECT_EQ(e.kv.mod_revision, t->revision + 1);
  }
}

TEST_P(StoreConformanceTest, CancelledWatchGetsNoCallbacks) {
  struct Probe {
    std::atomic<bool> cancelled{false};
    std::atomic<int> late{0};
  };
  auto probe = std::make_shared<Probe>();
  WatchCallbacks cb;
  cb.on_events = [probe](const std::vector<Event>&) {
    if (probe->cancelled) ++probe->late;
  };
  auto w = store_->watch("/wc/", 0, cb);
  ASSERT_TRUE(w.isOk());
  WatchRecorder sentinel;
  auto s = store_->watch("/wc/", 0, sentinel.callbacks());
  ASSERT_TRUE(s.isOk());
  // Keep the watch busy while it is destroyed.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->put("/wc/k", std::to_string(i)).isOk());
  w->reset();
  probe->cancelled = true;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->put("/wc/k", "after").isOk());
  ASSERT_TRUE(sentinel.waitForEvents(25));
  EXPECT_EQ(probe->late.load(), 0);
}

TEST_P(StoreConformanceTest, WatchCanBeCancelledFromItsOwnCallback) {
  struct Shared {
    std::mutex mu;
    std::unique_ptr<WatchHandle> handle;
    std::atomic<int> calls{0};
  };
  auto shared = std::make_shared<Shared>();
  WatchCallbacks cb;
  cb.on_events = [shared](const std::vector<Event>&) {
    ++shared->calls;
    std::unique_ptr<WatchHandle> h;
    {
      std::lock_guard lock(shared->mu);
      h = std::move(shared->handle);
    }
    h.reset();  // cancels from inside the callback: must not deadlock
  };
  {
    std::lock_guard lock(shared->mu);
    auto w = store_->watch("/wself/", 0, cb);
    ASSERT_TRUE(w.isOk());
    shared->handle = std::move(*w);
  }
  WatchRecorder sentinel;
  auto s = store_->watch("/wself/", 0, sentinel.callbacks());
  ASSERT_TRUE(s.isOk());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->put("/wself/k", std::to_string(i)).isOk());
  ASSERT_TRUE(sentinel.waitForEvents(5));
  EXPECT_EQ(shared->calls.load(), 1);
}

TEST_P(StoreConformanceTest, CallbackMayWriteToStore) {
  Store* store = store_.get();
  WatchRecorder rec;
  WatchCallbacks inner = rec.callbacks();
  WatchCallbacks cb;
  cb.on_events = [store, inner](const std::vector<Event>& events) {
    inner.on_events(events);
    for (const Event& e : events) {
      if (e.kv.key == "/cb/ping") (void)store->put("/cb/pong", "1");
    }
  };
  auto w = store_->watch("/cb/", 0, cb);
  ASSERT_TRUE(w.isOk());
  ASSERT_TRUE(store_->put("/cb/ping", "1").isOk());
  ASSERT_TRUE(rec.waitForEvents(2));
  EXPECT_EQ(rec.events()[1].kv.key, "/cb/pong");
}

TEST_P(StoreConformanceTest, CompactionFailsOlderWatches) {
  std::vector<Revision> revs;
  for (int i = 0; i < 5; ++i) {
    auto r = store_->put("/cp/k", std::to_string(i));
    ASSERT_TRUE(r.isOk());
    revs.push_back(*r);
  }
  ASSERT_TRUE(store_->compact(revs[3]).isOk());
  EXPECT_TRUE(watchFailsCompacted(*store_, "/cp/", revs[1]));

  WatchRecorder rec;
  auto w = store_->watch("/cp/", revs[3], rec.callbacks());
  ASSERT_TRUE(w.isOk());
  ASSERT_TRUE(rec.waitForEvents(2));
  auto events = rec.events();
  EXPECT_EQ(events[0].kv.mod_revision, revs[3]);
  EXPECT_EQ(events[1].kv.mod_revision, revs[4]);
  EXPECT_FALSE(rec.error().has_value());
  // The current state is untouched by compaction.
  EXPECT_EQ(getKey(*store_, "/cp/k")->value, "4");
  EXPECT_EQ(getKey(*store_, "/cp/k")->version, 5);
}

// ---- persistence ----

TEST_P(StoreConformanceTest, DataSurvivesReopen) {
  ASSERT_TRUE(store_->put("/ps/a", "1").isOk());
  auto r = store_->put("/ps/a", "2");
  ASSERT_TRUE(r.isOk());
  ASSERT_TRUE(store_->put("/ps/b", "x").isOk());
  ASSERT_TRUE(store_->del("/ps/b").isOk());
  auto lease = store_->grantLease(Duration(60'000));
  ASSERT_TRUE(lease.isOk());
  ASSERT_TRUE(store_->put("/ps/leased", "1", *lease).isOk());
  Revision before = rev(*store_);

  reopen();
  EXPECT_EQ(rev(*store_), before);
  auto kv = getKey(*store_, "/ps/a");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, "2");
  EXPECT_EQ(kv->version, 2);
  EXPECT_EQ(kv->mod_revision, *r);
  EXPECT_EQ(getKey(*store_, "/ps/b"), std::nullopt);
  EXPECT_TRUE(store_->keepAlive(*lease).isOk());
  EXPECT_EQ(getKey(*store_, "/ps/leased")->lease, *lease);

  // History survives too: a watch from an old revision replays it.
  WatchRecorder rec;
  auto w = store_->watch("/ps/", *r, rec.callbacks());
  ASSERT_TRUE(w.isOk());
  ASSERT_TRUE(rec.waitForEvents(4));
  EXPECT_EQ(rec.events()[0].kv.value, "2");

  auto next = store_->put("/ps/c", "1");
  ASSERT_TRUE(next.isOk());
  EXPECT_EQ(*next, before + 1);
}

}  // namespace baton::state::testing
