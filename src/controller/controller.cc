#include "controller/controller.h"

#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "model/json.h"
#include "model/keys.h"
#include "secrets/secret_store.h"

namespace baton::controller {
namespace {

namespace keys = model::keys;

// etcd's default --max-txn-ops is 128 (for compares and for ops separately).
constexpr size_t kMaxTxnEntries = 100;

IdGenerator randomIds() {
  auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [rng](const std::string& app, const std::string& service) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>((*rng)()));
    return app + "-" + service + "-" + hex;
  };
}

// What the snapshot saw of every key, for the guards.
struct Seen {
  std::map<std::string, state::KeyValue> kvs;  // by key

  // Guard: the key is as the snapshot saw it (absent if it was absent).
  state::Compare unchanged(const std::string& key) const {
    auto it = kvs.find(key);
    return it == kvs.end() ? state::Compare::absent(key)
                           : state::Compare::modRevisionIs(key, it->second.mod_revision);
  }
  // Guard: the node is the same registration (heartbeats may rewrite its record).
  state::Compare sameNode(const std::string& key) const {
    auto it = kvs.find(key);
    if (it == kvs.end()) return state::Compare::absent(key);
    return {key,
            state::Compare::Target::kCreateRevision,
            state::Compare::Op::kEqual,
            it->second.create_revision,
            {}};
  }
};

// One logical change: its guards and its ops, written atomically.
struct Item {
  std::vector<state::Compare> compares;
  std::vector<state::Op> ops;
};

// Packs items into transactions under the size limit, deduplicating guards.
std::vector<Item> batch(std::vector<Item> items) {
  std::vector<Item> txns;
  std::set<std::pair<std::string, int>> guarded;
  Item cur;
  for (auto& item : items) {
    size_t new_compares = 0;
    for (const auto& c : item.compares) {
      if (!guarded.contains({c.key, static_cast<int>(c.target)})) ++new_compares;
    }
    if (!cur.ops.empty() && (cur.compares.size() + new_compares > kMaxTxnEntries ||
                             cur.ops.size() + item.ops.size() > kMaxTxnEntries)) {
      txns.push_back(std::move(cur));
      cur = Item{};
      guarded.clear();
    }
    for (auto& c : item.compares) {
      if (guarded.insert({c.key, static_cast<int>(c.target)}).second) {
        cur.compares.push_back(std::move(c));
      }
    }
    for (auto& op : item.ops) cur.ops.push_back(std::move(op));
  }
  if (!cur.ops.empty()) txns.push_back(std::move(cur));
  return txns;
}

struct Loaded {
  ControllerSnapshot snapshot;
  Seen seen;
  std::vector<std::string> orphan_status;  // status keys without an instance record
  std::vector<std::string> malformed;      // keys that did not decode
};

template <typename T>
bool decodeInto(const state::KeyValue& kv, T& out, Loaded& l) {
  auto r = model::decode<T>(kv.value);
  if (!r) {
    l.malformed.push_back(kv.key + " (" + r.status().message() + ")");
    return false;
  }
  out = std::move(*r);
  return true;
}

Result<Loaded> load(state::Store& store) {
  static constexpr std::array<std::string_view, 7> kPrefixes = {
      keys::kApps,  keys::kInstances, keys::kStatus,          keys::kNodes,
      keys::kScale, keys::kRollouts,  secrets::kMetaPrefix};
  std::array<state::RangeResult, 7> ranges;
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool same = true;
    for (size_t i = 0; i < kPrefixes.size(); ++i) {
      auto r = store.list(std::string(kPrefixes[i]));
      if (!r) return r.status();
      ranges[i] = std::move(*r);
      if (ranges[i].revision != ranges[0].revision) same = false;
    }
    if (same) break;
  }
  Loaded l;
  auto& snap = l.snapshot;
  for (const auto& range : ranges) {
    for (const auto& kv : range.kvs) l.seen.kvs[kv.key] = kv;
  }
  for (const auto& kv : ranges[0].kvs) {
    model::AppRecord app;
    if (decodeInto(kv, app, l)) snap.apps[std::string(keys::leaf(kv.key))] = std::move(app);
  }
  for (const auto& kv : ranges[1].kvs) {
    ObservedInstance o;
    if (decodeInto(kv, o.record, l)) {
      o.record.id = std::string(keys::leaf(kv.key));  // the key is the truth
      snap.instances[o.record.id] = std::move(o);
    }
  }
  for (const auto& kv : ranges[2].kvs) {
    std::string id(keys::leaf(kv.key));
    auto it = snap.instances.find(id);
    if (it == snap.instances.end()) {
      l.orphan_status.push_back(kv.key);
      continue;
    }
    model::InstanceStatus st;
    if (decodeInto(kv, st, l)) it->second.status = std::move(st);
  }
  for (const auto& kv : ranges[3].kvs) {
    model::NodeRecord n;
    if (decodeInto(kv, n, l)) {
      n.id = std::string(keys::leaf(kv.key));
      snap.nodes[n.id] = std::move(n);
    }
  }
  for (const auto& kv : ranges[4].kvs) {
    model::ScaleOverride o;
    if (decodeInto(kv, o, l)) snap.overrides[kv.key.substr(keys::kScale.size())] = std::move(o);
  }
  for (const auto& kv : ranges[5].kvs) {
    model::RolloutRecord r;
    if (decodeInto(kv, r, l)) snap.rollouts[kv.key.substr(keys::kRollouts.size())] = std::move(r);
  }
  for (const auto& kv : ranges[6].kvs) {
    auto meta = secrets::decodeMetadata(kv.value);
    if (!meta) {
      l.malformed.push_back(kv.key + " (" + meta.status().message() + ")");
      continue;
    }
    snap.secret_versions[kv.key.substr(secrets::kMetaPrefix.size())] = secrets::liveVersion(*meta);
  }
  return l;
}

// The guards that tie a change of app/service to the app and override the plan was made from.
void guardService(const Seen& seen, const std::string& app, const std::string& service,
                  std::vector<state::Compare>& out) {
  out.push_back(seen.unchanged(keys::app(app)));
  out.push_back(seen.unchanged(keys::scale(app, service)));
}

std::vector<Item> toItems(const ReconcilePlan& plan, const Loaded& l) {
  const Seen& seen = l.seen;
  const auto& instances = l.snapshot.instances;
  std::vector<Item> items;
  for (const auto& w : plan.rollouts) {
    Item it;
    std::string key = keys::rollout(w.app, w.service);
    it.compares.push_back(seen.unchanged(key));
    guardService(seen, w.app, w.service, it.compares);
    it.ops.push_back(state::Op::put(key, model::encode(w.record)));
    items.push_back(std::move(it));
  }
  for (const auto& r : plan.create) {
    Item it;
    std::string key = keys::instance(r.id);
    it.compares.push_back(state::Compare::absent(key));
    it.compares.push_back(seen.sameNode(keys::node(r.node)));
    guardService(seen, r.app, r.service, it.compares);
    it.ops.push_back(state::Op::put(key, model::encode(r)));
    items.push_back(std::move(it));
  }
  for (const auto& s : plan.stop) {
    const auto& o = instances.at(s.id);
    model::InstanceRecord rec = o.record;
    rec.desired_running = false;
    Item it;
    std::string key = keys::instance(s.id);
    it.compares.push_back(seen.unchanged(key));
    guardService(seen, rec.app, rec.service, it.compares);
    it.ops.push_back(state::Op::put(key, model::encode(rec)));
    items.push_back(std::move(it));
  }
  for (const auto& id : plan.remove) {
    Item it;
    it.compares.push_back(seen.unchanged(keys::instance(id)));
    it.compares.push_back(seen.unchanged(keys::status(id)));
    it.ops.push_back(state::Op::del(keys::instance(id)));
    it.ops.push_back(state::Op::del(keys::status(id)));
    items.push_back(std::move(it));
  }
  for (const auto& svc : plan.delete_rollouts) {
    Item it;
    std::string key = std::string(keys::kRollouts) + svc;
    it.compares.push_back(seen.unchanged(key));
    it.ops.push_back(state::Op::del(key));
    items.push_back(std::move(it));
  }
  for (const auto& key : l.orphan_status) {
    // A node reported after its instance was deleted; the instance is gone for good.
    Item it;
    it.compares.push_back(seen.unchanged(key));
    it.compares.push_back(state::Compare::absent(keys::instance(keys::leaf(key))));
    it.ops.push_back(state::Op::del(key));
    items.push_back(std::move(it));
  }
  return items;
}

}  // namespace

Controller::Controller(state::Store& store, Clock& clock, ControllerOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {
  if (!options_.ids) options_.ids = randomIds();
}

Controller::~Controller() { stop(); }

void Controller::emit(const std::string& kind, const std::string& message) {
  spdlog::info("controller: [{}] {}", kind, message);
  if (options_.on_event) options_.on_event(kind, message);
}

Status Controller::reconcileOnce() {
  std::lock_guard lock(pass_mu_);
  auto loaded = load(store_);
  if (!loaded) {
    ++stats_.errors;
    return loaded.status();
  }
  ++stats_.passes;
  ReconcilePlan plan = reconcile(loaded->snapshot, clock_.now(), options_.reconcile, options_.ids);

  // Persistent conditions are reported when they first appear.
  std::set<std::string> warnings;
  for (const auto& m : loaded->malformed) {
    plan.warnings.push_back({"store", "ignoring " + m});
  }
  for (const auto& w : plan.warnings) {
    std::string id = w.kind + "\n" + w.message;
    if (!warnings_.contains(id)) emit(w.kind, w.message);
    warnings.insert(std::move(id));
  }
  warnings_ = std::move(warnings);

  std::vector<Item> txns = batch(toItems(plan, *loaded));
  for (const auto& t : txns) {
    auto r = store_.txn(t.compares, t.ops);
    if (!r) {
      ++stats_.errors;
      return r.status();
    }
    if (!r->succeeded) {
      ++stats_.conflicts;
      spdlog::debug("controller: plan dropped, the store changed under it");
      return conflict("the store changed while the plan was written; retrying next pass");
    }
  }
  if (!txns.empty()) ++stats_.applied;
  for (const auto& e : plan.events) emit(e.kind, e.message);
  return Status::ok();
}

ControllerStats Controller::stats() const {
  std::lock_guard lock(pass_mu_);
  return stats_;
}

void Controller::wake() {
  {
    std::lock_guard lock(loop_mu_);
    dirty_ = true;
  }
  loop_cv_.notify_all();
}

void Controller::start() {
  {
    std::lock_guard lock(loop_mu_);
    if (running_) return;
    running_ = true;
    dirty_ = true;
  }
  thread_ = std::thread([this] { loop(); });
}

void Controller::stop() {
  {
    std::lock_guard lock(loop_mu_);
    if (!running_) return;
    running_ = false;
  }
  loop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Controller::loop() {
  std::unique_ptr<state::WatchHandle> watch;
  auto subscribe = [&] {
    watch.reset();
    auto rev = store_.currentRevision();
    if (!rev) return;
    state::WatchCallbacks cb;
    cb.on_events = [this](const std::vector<state::Event>&) { wake(); };
    cb.on_error = [this](const Status& s) {
      {
        std::lock_guard lock(loop_mu_);
        watch_broken_ = true;
      }
      wake();
    };
    auto w = store_.watch("/baton/", *rev + 1, std::move(cb));
    if (w) watch = std::move(*w);
  };
  subscribe();

  std::unique_lock lock(loop_mu_);
  while (running_) {
    // Debounce: let a burst of changes land before reading the snapshot.
    if (dirty_) loop_cv_.wait_for(lock, options_.debounce, [&] { return !running_; });
    if (!running_) break;
    dirty_ = false;
    bool resubscribe = watch_broken_ || !watch;
    watch_broken_ = false;
    lock.unlock();
    if (resubscribe) subscribe();
    Status s = reconcileOnce();
    if (!s.isOk() && s.code() != Code::kConflict) {
      spdlog::warn("controller: reconcile failed: {}", s.toString());
    }
    lock.lock();
    if (s.code() == Code::kConflict) dirty_ = true;  // retry soon, after the debounce
    loop_cv_.wait_for(lock, options_.resync, [&] { return dirty_ || !running_; });
  }
  lock.unlock();
  watch.reset();  // no callback runs after this
}

}  // namespace baton::controller
