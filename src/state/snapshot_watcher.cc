#include "state/snapshot_watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace baton::state {

struct SnapshotWatcher::Impl {
  Store& store;
  std::vector<std::string> prefixes;
  Consumer consumer;
  std::string name;
  std::mutex mu;
  std::condition_variable cv;
  bool dirty = false;
  bool rewatch = false;
  bool stopping = false;
  std::thread thread;
  std::unique_ptr<WatchHandle> watch;
  std::atomic<int64_t> generation{0};

  Impl(Store& s, std::vector<std::string> p, Consumer c, std::string n)
      : store(s), prefixes(std::move(p)), consumer(std::move(c)), name(std::move(n)) {}

  bool relevant(const std::string& key) const {
    return std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
      return key.compare(0, p.size(), p) == 0;
    });
  }

  // Lists and hands over; returns the revision to watch from (0 on error).
  Revision rebuild() {
    PrefixSnapshot snap;
    snap.revision = INT64_MAX;
    for (const auto& p : prefixes) {
      auto r = store.list(p);
      if (!r) {
        spdlog::warn("{}: listing {} failed: {}", name, p, r.status().toString());
        return 0;
      }
      snap.revision = std::min(snap.revision, r->revision);
      snap.lists.push_back(std::move(r->kvs));
    }
    consumer(snap);
    generation.fetch_add(1);
    return snap.revision;
  }

  Status startWatch(Revision from) {
    WatchCallbacks cb;
    cb.on_events = [this](const std::vector<Event>& events) {
      for (const auto& e : events) {
        if (relevant(e.kv.key)) {
          std::lock_guard lock(mu);
          dirty = true;
          cv.notify_one();
          return;
        }
      }
    };
    cb.on_error = [this](const Status&) {
      std::lock_guard lock(mu);
      rewatch = true;
      cv.notify_one();
    };
    auto h = store.watch("/baton/", from, std::move(cb));
    if (!h) return h.status();
    watch = std::move(*h);
    return Status::ok();
  }

  void run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::seconds(5), [&] { return stopping || dirty || rewatch; });
      if (stopping) break;
      bool need_watch = rewatch;
      bool periodic = !dirty && !rewatch;  // level-triggered safety net
      dirty = false;
      rewatch = false;
      lock.unlock();
      if (need_watch) watch.reset();
      Revision rev = rebuild();
      if ((need_watch || periodic) && (!watch || need_watch)) {
        Status s = rev > 0 ? startWatch(rev + 1) : Status(Code::kUnavailable, "list failed");
        if (!s) {
          spdlog::warn("{}: watch failed: {}", name, s.toString());
          lock.lock();
          rewatch = true;
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
      }
      lock.lock();
    }
  }
};

SnapshotWatcher::SnapshotWatcher(Store& store, std::vector<std::string> prefixes,
                                 Consumer consumer, std::string name)
    : impl_(std::make_unique<Impl>(store, std::move(prefixes), std::move(consumer),
                                   std::move(name))) {}

SnapshotWatcher::~SnapshotWatcher() { stop(); }

Status SnapshotWatcher::start() {
  Revision rev = impl_->rebuild();
  if (rev == 0) return unavailable(impl_->name + ": cannot list the store");
  if (Status s = impl_->startWatch(rev + 1); !s) return s;
  impl_->thread = std::thread([this] { impl_->run(); });
  return Status::ok();
}

void SnapshotWatcher::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->watch.reset();
}

int64_t SnapshotWatcher::generation() const { return impl_->generation.load(); }

}  // namespace baton::state
