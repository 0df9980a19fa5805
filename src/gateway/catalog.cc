#include "gateway/catalog.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

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

struct CatalogWatcher::Impl {
  state::Store& store;
  Setter setter;
  std::mutex mu;
  std::condition_variable cv;
  bool dirty = false;
  bool rewatch = false;
  bool stopping = false;
  std::thread thread;
  std::unique_ptr<state::WatchHandle> watch;
  std::atomic<int64_t> generation{0};

  Impl(state::Store& s, Setter f) : store(s), setter(std::move(f)) {}

  static bool relevant(const std::string& key) {
    auto starts = [&](std::string_view p) { return key.compare(0, p.size(), p) == 0; };
    return starts(model::keys::kApps) || starts(model::keys::kInstances) ||
           starts(model::keys::kStatus);
  }

  // Lists and publishes; returns the revision to watch from (0 on error).
  state::Revision rebuild() {
    auto apps = store.list(std::string(model::keys::kApps));
    auto inst = store.list(std::string(model::keys::kInstances));
    auto stat = store.list(std::string(model::keys::kStatus));
    if (!apps || !inst || !stat) {
      spdlog::warn("gateway catalog: list failed: {}", (!apps   ? apps.status()
                                                        : !inst ? inst.status()
                                                                : stat.status())
                                                           .toString());
      return 0;
    }
    auto table =
        std::make_shared<const RouteTable>(buildRouteTable(apps->kvs, inst->kvs, stat->kvs));
    setter(table);
    generation.fetch_add(1);
    return std::min({apps->revision, inst->revision, stat->revision});
  }

  Status startWatch(state::Revision from) {
    state::WatchCallbacks cb;
    cb.on_events = [this](const std::vector<state::Event>& events) {
      for (const auto& e : events) {
        if (relevant(e.kv.key)) {
          std::lock_guard lock(mu);
          dirty = true;
          cv.notify_one();
          return;
        }
      }
    };
    cb.on_error = [this](const Status& s) {
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
      state::Revision rev = rebuild();
      if (need_watch || periodic) {
        if (!watch || need_watch) {
          Status s = rev > 0 ? startWatch(rev + 1) : Status(Code::kUnavailable, "list failed");
          if (!s) {
            spdlog::warn("gateway catalog: watch failed: {}", s.toString());
            lock.lock();
            rewatch = true;
            lock.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
          }
        }
      }
      lock.lock();
    }
  }
};

CatalogWatcher::CatalogWatcher(state::Store& store, Setter setter)
    : impl_(std::make_unique<Impl>(store, std::move(setter))) {}

CatalogWatcher::~CatalogWatcher() { stop(); }

Status CatalogWatcher::start() {
  state::Revision rev = impl_->rebuild();
  if (rev == 0) return unavailable("gateway catalog: cannot list the store");
  Status s = impl_->startWatch(rev + 1);
  if (!s) return s;
  impl_->thread = std::thread([this] { impl_->run(); });
  return Status::ok();
}

void CatalogWatcher::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->watch.reset();
}

int64_t CatalogWatcher::generation() const { return impl_->generation.load(); }

}  // namespace baton::gateway
