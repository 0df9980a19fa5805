#include "controller/reconcile.h"

#include <algorithm>
#include <list>
#include <set>

#include "core/units.h"
#include "model/json.h"
#include "scheduler/scheduler.h"

namespace baton::controller {

int desiredCount(const ScaleBounds& bounds) { return std::clamp(bounds.min, 0, bounds.max); }

namespace {

using model::InstanceState;
using Instances = std::vector<const ObservedInstance*>;

bool healthy(const ObservedInstance& o) {
  return o.status && o.status->state == InstanceState::kHealthy;
}
bool terminal(const ObservedInstance& o) { return o.status && model::isTerminal(o.status->state); }

// Which instances to stop first: not healthy, then (optionally) older versions, then newest.
Instances stopOrder(Instances v, const std::string& current_hash = {}) {
  std::sort(v.begin(), v.end(), [&](const ObservedInstance* a, const ObservedInstance* b) {
    bool ha = healthy(*a), hb = healthy(*b);
    if (ha != hb) return !ha;
    if (!current_hash.empty()) {
      bool na = a->record.spec_hash == current_hash, nb = b->record.spec_hash == current_hash;
      if (na != nb) return !na;
    }
    if (a->record.created_at != b->record.created_at) {
      return a->record.created_at > b->record.created_at;
    }
    return a->record.id > b->record.id;
  });
  return v;
}

std::string failureText(const ObservedInstance& o) {
  std::string s = "instance " + o.record.id + " " + model::toString(o.status->state);
  if (o.status && !o.status->message.empty()) s += " (" + o.status->message + ")";
  return s;
}

struct PendingCreate {
  std::string app;
  std::string service;
  const model::ServiceSpec* spec;
  std::string hash;
  int64_t version;
  int count;
};

class Reconciler {
 public:
  Reconciler(const ControllerSnapshot& snap, TimePoint now, const ReconcileOptions& opts,
             const IdGenerator& ids)
      : snap_(snap), now_(now), opts_(opts), ids_(ids) {}

  ReconcilePlan run() {
    std::map<std::string, Instances> by_service;
    for (const auto& [id, o] : snap_.instances) {
      by_service[scheduler::serviceKey(o.record.app, o.record.service)].push_back(&o);
    }
    for (const auto& [key, group] : by_service) {
      const auto& rec = group.front()->record;
      auto app = snap_.apps.find(rec.app);
      if (app == snap_.apps.end()) {
        orphans(key, group, "app " + rec.app + " was removed");
      } else if (!app->second.spec.services.contains(rec.service)) {
        orphans(key, group, "service " + rec.service + " was removed from app " + rec.app);
      }
    }
    static const Instances kNone;
    for (const auto& [name, app] : snap_.apps) {
      for (const auto& [svc, spec] : app.spec.services) {
        auto it = by_service.find(scheduler::serviceKey(name, svc));
        service(name, svc, app, pinSecrets(spec), it == by_service.end() ? kNone : it->second);
      }
    }
    for (const auto& [key, rec] : snap_.rollouts) {
      auto slash = key.find('/');
      std::string app = key.substr(0, slash);
      std::string svc = slash == std::string::npos ? "" : key.substr(slash + 1);
      auto it = snap_.apps.find(app);
      bool exists = it != snap_.apps.end() && it->second.spec.services.contains(svc);
      if (!exists && !by_service.contains(key)) plan_.delete_rollouts.push_back(key);
    }
    placeCreates();
    return std::move(plan_);
  }

 private:
  bool nodeAlive(const ObservedInstance& o) const { return snap_.nodes.contains(o.record.node); }

  // A service whose instances roll when a secret changes: its instances' spec names the
  // version of each secret they get, so a new version is a new spec hash and a rolling update.
  const model::ServiceSpec& pinSecrets(const model::ServiceSpec& spec) {
    if (spec.secrets.empty() || spec.on_secret_change != "roll") return spec;
    return pinned_.emplace_back(model::pinSecretVersions(spec, snap_.secret_versions));
  }

  void remove(const ObservedInstance& o) {
    if (removed_.insert(o.record.id).second) plan_.remove.push_back(o.record.id);
  }
  void stop(const ObservedInstance& o, std::string reason) {
    plan_.stop.push_back({o.record.id, std::move(reason)});
  }
  void event(std::string kind, std::string message) {
    plan_.events.push_back({std::move(kind), std::move(message)});
  }

  // Sorts a service's instances. Instances asked to stop are deleted once they are down;
  // running ones whose node is gone are deleted (nobody will report on them) and counted in
  // `lost`. Returns the rest: desired running on a live node (failed ones in `failed_out`).
  Instances sweep(const std::string& key, const Instances& group, Instances& failed_out,
                  int& lost) {
    Instances active;
    for (const ObservedInstance* o : group) {
      const auto& r = o->record;
      if (!r.desired_running) {
        bool gone = !o->status && now_ - r.created_at >= opts_.stop_grace;
        if (!nodeAlive(*o) || terminal(*o) || gone) {
          remove(*o);
          event("instance", key + ": instance " + r.id + " stopped and removed");
        }
      } else if (!nodeAlive(*o)) {
        remove(*o);
        ++lost;
        event("instance", key + ": instance " + r.id + " lost with node " + r.node + "; replacing");
      } else if (terminal(*o)) {
        failed_out.push_back(o);  // failed, or stopped although it should run: replace it
      } else {
        active.push_back(o);
      }
    }
    return active;
  }

  void orphans(const std::string& key, const Instances& group, const std::string& why) {
    Instances failed_list;
    int lost = 0;
    Instances active = sweep(key, group, failed_list, lost);
    for (const ObservedInstance* o : failed_list) remove(*o);
    for (const ObservedInstance* o : active) stop(*o, why);
    if (!active.empty()) {
      event("scale", key + ": " + why + "; stopping " + std::to_string(active.size()) +
                         " instance" + (active.size() == 1 ? "" : "s"));
    }
  }

  void create(const std::string& app, const std::string& svc, const model::ServiceSpec& spec,
              const std::string& hash, int64_t version, int count) {
    if (count > 0) creates_.push_back({app, svc, &spec, hash, version, count});
  }

  void stopExtras(const Instances& candidates, size_t n, const std::string& reason,
                  const std::string& current_hash = {}) {
    Instances order = stopOrder(candidates, current_hash);
    for (size_t i = 0; i < n && i < order.size(); ++i) stop(*order[i], reason);
  }

  void scaleEvent(const std::string& key, size_t from, int to, const ScaleBounds& b) {
    if (static_cast<int>(from) != to) {
      // Who chose the count: the bounds' owner when the count sits on a bound it set, else the
      // autoscaler (which moves between them).
      std::string why = to == b.min || to == b.max || !opts_.desired_count
                            ? b.source
                            : "autoscaler; bounds " + std::to_string(b.min) + ".." +
                                  std::to_string(b.max) + " from " + b.source;
      event("scale", key + ": scaled " + std::to_string(from) + " -> " + std::to_string(to) + " (" +
                         why + ")");
    }
  }

  void writeRollout(const std::string& app, const std::string& svc, const std::string& hash,
                    int64_t version, model::RolloutRecord::Phase phase, std::string message) {
    model::RolloutRecord r;
    r.spec_hash = hash;
    r.version = version;
    r.phase = phase;
    r.message = std::move(message);
    r.updated_at = now_;
    plan_.rollouts.push_back({app, svc, std::move(r)});
  }

  void service(const std::string& app_name, const std::string& svc, const model::AppRecord& app,
               const model::ServiceSpec& spec, const Instances& group) {
    const std::string key = scheduler::serviceKey(app_name, svc);
    const std::string hash = model::specHash(spec);
    const std::string version = "version " + std::to_string(app.version);
    auto ov = snap_.overrides.find(key);
    ScaleBounds bounds =
        boundsInForce(spec.scale, ov == snap_.overrides.end() ? nullptr : &ov->second, now_);
    int want =
        opts_.desired_count ? opts_.desired_count(app_name, svc, bounds) : desiredCount(bounds);
    want = std::clamp(want, 0, std::max(0, bounds.max));
    const auto size_want = static_cast<size_t>(want);
    auto rit = snap_.rollouts.find(key);
    const model::RolloutRecord* rollout = rit == snap_.rollouts.end() ? nullptr : &rit->second;

    Instances failed_list;
    int lost = 0;
    Instances active = sweep(key, group, failed_list, lost);
    Instances fresh, old, fresh_failed, old_failed;
    for (const ObservedInstance* o : active) {
      (o->record.spec_hash == hash ? fresh : old).push_back(o);
    }
    for (const ObservedInstance* o : failed_list) {
      (o->record.spec_hash == hash ? fresh_failed : old_failed).push_back(o);
    }

    bool held = rollout && rollout->spec_hash == hash &&
                rollout->phase == model::RolloutRecord::Phase::kFailed;
    bool rolling = !held && !old.empty() && want > 0;

    if (rolling) {
      std::string why;
      if (!fresh_failed.empty()) why = failureText(*fresh_failed.front());
      for (const ObservedInstance* o : fresh) {
        if (why.empty() && !healthy(*o) && now_ - o->record.created_at > opts_.rollout_deadline) {
          why = "instance " + o->record.id + " not healthy after " +
                formatDuration(opts_.rollout_deadline);
        }
      }
      if (!why.empty()) {
        writeRollout(app_name, svc, hash, app.version, model::RolloutRecord::Phase::kFailed, why);
        event("rollout", key + ": rollout of " + version + " failed: " + why +
                             "; keeping the previous version");
        held = true;
        rolling = false;
      }
    }

    if (held) {
      // The new spec failed: it is not retried until it changes. Keep the old version serving
      // at the desired count, cloning its newest instance.
      for (const ObservedInstance* o : fresh) stop(*o, "rollout of " + version + " failed");
      for (const ObservedInstance* o : fresh_failed) remove(*o);
      for (const ObservedInstance* o : old_failed) {
        remove(*o);
        event("instance", key + ": replacing " + failureText(*o));
      }
      const ObservedInstance* tmpl = nullptr;
      for (const ObservedInstance* o : group) {
        if (o->record.spec_hash == hash) continue;
        if (!tmpl || o->record.created_at > tmpl->record.created_at ||
            (o->record.created_at == tmpl->record.created_at && o->record.id > tmpl->record.id)) {
          tmpl = o;
        }
      }
      size_t replaced = static_cast<size_t>(lost) + old_failed.size();
      if (old.size() < size_want) {
        if (tmpl) {
          create(app_name, svc, tmpl->record.spec, tmpl->record.spec_hash, tmpl->record.version,
                 want - static_cast<int>(old.size()));
          scaleEvent(key, old.size() + replaced, want, bounds);
        } else {
          plan_.warnings.push_back(
              {"rollout", key + ": " + version +
                              " failed to roll out and no previous version remains; deploy a "
                              "fixed manifest"});
        }
      } else if (old.size() > size_want) {
        stopExtras(old, old.size() - size_want, "scaled down");
        scaleEvent(key, old.size() + replaced, want, bounds);
      }
      return;
    }

    if (rolling) {
      if (!rollout || rollout->spec_hash != hash ||
          rollout->phase != model::RolloutRecord::Phase::kInProgress) {
        writeRollout(app_name, svc, hash, app.version, model::RolloutRecord::Phase::kInProgress,
                     "replacing " + std::to_string(old.size()) + " instances");
        std::string why;
        if (!spec.secret_versions.empty() && !old.empty() &&
            old.front()->record.version == app.version) {
          // The manifest is the same: a secret changed.
          for (const auto& [path, v] : spec.secret_versions) {
            why += (why.empty() ? "; secrets " : ", ") + path + " v" + std::to_string(v);
          }
        }
        event("rollout", key + ": rolling update to " + version + " started (" +
                             std::to_string(old.size()) + " old instances" + why + ")");
      }
      for (const ObservedInstance* o : fresh_failed) remove(*o);  // not reached: fails above
      for (const ObservedInstance* o : old_failed) {
        remove(*o);
        event("instance", key + ": replacing " + failureText(*o));
      }
      size_t total = fresh.size() + old.size();
      size_t replaced = static_cast<size_t>(lost) + old_failed.size();
      if (total < size_want) {
        // Fill a deficit (scale up, lost or failed old instances) with the new version.
        create(app_name, svc, spec, hash, app.version, want - static_cast<int>(total));
        scaleEvent(key, total + replaced, want, bounds);
      } else if (total > size_want + 1) {
        // Scale down during the roll: keep one surge instance.
        stopExtras(active, total - size_want - 1, "scaled down", hash);
        scaleEvent(key, total + replaced, want, bounds);
      } else {
        bool waiting = std::any_of(fresh.begin(), fresh.end(),
                                   [](const ObservedInstance* o) { return !healthy(*o); });
        if (!waiting) {
          size_t old_left = old.size();
          if (total == size_want + 1) {
            // The surge instance is healthy: retire one old instance.
            stopExtras(old, 1, "rolling update: replaced by " + version);
            --old_left;
            --total;
            event("rollout", key + ": rolling update to " + version + ": " +
                                 std::to_string(fresh.size()) + " new healthy, " +
                                 std::to_string(old_left) + " old left");
          }
          if (old_left > 0 && total == size_want) {
            create(app_name, svc, spec, hash, app.version, 1);  // the next surge instance
          }
        }
      }
      return;
    }

    // Steady state: every active instance runs the current spec (or want is 0).
    for (const ObservedInstance* o : failed_list) {
      remove(*o);
      event("instance", key + ": replacing " + failureText(*o));
    }
    size_t replaced = static_cast<size_t>(lost) + failed_list.size();
    if (active.size() < size_want) {
      create(app_name, svc, spec, hash, app.version, want - static_cast<int>(active.size()));
    } else if (active.size() > size_want) {
      stopExtras(active, active.size() - size_want, "scaled down", hash);
    }
    scaleEvent(key, active.size() + replaced, want, bounds);
    if (old.empty()) completeRollout(app_name, svc, key, hash, app.version, rollout);
  }

  // Steady state, nothing of another spec running: the record must say that the current spec
  // is rolled out. It may still be about another spec: the user went back to the spec the
  // instances already run after a rollout failed (the record names the failed spec), or changed
  // the spec while the service had no instance. Left so, the API would report the rollout of
  // the current spec as `pending` for ever and `baton up --wait` would never return.
  void completeRollout(const std::string& app_name, const std::string& svc, const std::string& key,
                       const std::string& hash, int64_t app_version,
                       const model::RolloutRecord* rollout) {
    using Phase = model::RolloutRecord::Phase;
    if (!rollout || (rollout->spec_hash == hash && rollout->phase != Phase::kInProgress)) return;
    const std::string version = "version " + std::to_string(app_version);
    std::string message = "all instances run " + version;
    if (rollout->spec_hash != hash && rollout->phase == Phase::kFailed) {
      // Keep the reason the previous release failed: `baton ps` is where the user looks.
      message += "; the rollout of version " + std::to_string(rollout->version) +
                 " had failed: " + rollout->message;
    }
    writeRollout(app_name, svc, hash, app_version, Phase::kComplete, std::move(message));
    event("rollout", key + ": rollout of " + version + " complete");
  }

  void placeCreates() {
    if (creates_.empty()) return;
    scheduler::ClusterSnapshot cluster;
    std::map<std::string, size_t> index;
    for (const auto& [id, n] : snap_.nodes) {
      index[id] = cluster.nodes.size();
      scheduler::NodeState s;
      s.id = id;
      s.cpu_capacity = n.cpu;
      s.memory_capacity = n.memory;
      s.drivers = n.drivers;
      cluster.nodes.push_back(std::move(s));
    }
    for (const auto& [id, o] : snap_.instances) {
      if (removed_.contains(id)) continue;
      auto it = index.find(o.record.node);
      if (it == index.end()) continue;
      auto& s = cluster.nodes[it->second];
      s.used_cpu += o.record.spec.cpu;
      s.used_memory += o.record.spec.memory;
      if (o.record.desired_running) {
        ++s.service_counts[scheduler::serviceKey(o.record.app, o.record.service)];
      }
    }
    std::vector<scheduler::PlacementRequest> requests;
    for (const auto& c : creates_) {
      requests.push_back({c.app, c.service, c.spec->cpu, c.spec->memory, c.spec->driver, c.count});
    }
    scheduler::Plan placed = scheduler::place(cluster, requests, opts_.seed);
    for (const auto& p : placed.placements) {
      const PendingCreate& c = creates_[p.request];
      model::InstanceRecord r;
      r.id = ids_(c.app, c.service);
      r.app = c.app;
      r.service = c.service;
      r.node = p.node;
      r.version = c.version;
      r.spec_hash = c.hash;
      r.spec = *c.spec;
      r.desired_running = true;
      r.created_at = now_;
      plan_.create.push_back(std::move(r));
    }
    for (const auto& f : placed.failures) {
      const PendingCreate& c = creates_[f.request];
      plan_.warnings.push_back({"placement", scheduler::serviceKey(c.app, c.service) +
                                                 ": cannot place " + std::to_string(f.unplaced) +
                                                 " of " + std::to_string(c.count) +
                                                 " new instances: " + f.reason});
    }
  }

  const ControllerSnapshot& snap_;
  std::list<model::ServiceSpec> pinned_;  // pinSecrets() copies; stable addresses for creates_
  TimePoint now_;
  const ReconcileOptions& opts_;
  const IdGenerator& ids_;
  ReconcilePlan plan_;
  std::set<std::string> removed_;
  std::vector<PendingCreate> creates_;
};

}  // namespace

ReconcilePlan reconcile(const ControllerSnapshot& snapshot, TimePoint now,
                        const ReconcileOptions& options, const IdGenerator& ids) {
  return Reconciler(snapshot, now, options, ids).run();
}

}  // namespace baton::controller
