#include "controller/autoscaling.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "autoscaler/bounds.h"
#include "core/units.h"
#include "model/json.h"
#include "model/keys.h"

namespace baton::controller {

namespace keys = model::keys;

// What a policy learned is written at most this often per service (when it changed).
constexpr Duration kRhythmWriteEvery = Duration(10'000);

// A service that was asked for an instance with none ready has one ready now: that took its cold
// start (a moving average of the last few).
void Autoscaling::measureColdStart(PerService& svc, int ready, TimePoint now) {
  if (ready == 0 || !svc.cold_since) return;
  const Duration took = now - *svc.cold_since;
  svc.cold_since.reset();
  svc.cold_start = svc.cold_start == Duration(0) ? took : (svc.cold_start * 3 + took) / 4;
}

Autoscaling::Autoscaling(state::Store& store, Clock& clock, LoadSource load,
                         AutoscalingOptions options)
    : store_(store), clock_(clock), load_(std::move(load)), options_(std::move(options)) {}

Autoscaling::~Autoscaling() { stop(); }

int Autoscaling::desired(const std::string& app, const std::string& service,
                         const ScaleBounds& bounds) {
  std::lock_guard lock(mu_);
  auto it = services_.find(app + "/" + service);
  if (it == services_.end() || !it->second.policy) return desiredCount(bounds);
  return std::clamp(it->second.desired, bounds.min, std::max(bounds.min, bounds.max));
}

bool Autoscaling::scaledOff(const std::string& app, const std::string& service) {
  std::lock_guard lock(mu_);
  auto it = services_.find(app + "/" + service);
  return it != services_.end() && it->second.max_in_force == 0;
}

void Autoscaling::kick(const std::string& app, const std::string& service) {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

Status Autoscaling::stepOnce() {
  std::lock_guard step_lock(step_mu_);
  const TimePoint now = clock_.now();
  auto apps = store_.list(std::string(keys::kApps));
  if (!apps) return apps.status();
  auto overrides = store_.list(std::string(keys::kScale));
  if (!overrides) return overrides.status();
  auto instances = store_.list(std::string(keys::kInstances));
  if (!instances) return instances.status();
  auto statuses = store_.list(std::string(keys::kStatus));
  if (!statuses) return statuses.status();

  std::map<std::string, model::ScaleOverride> override_by_service;
  for (const auto& kv : overrides->kvs) {
    if (auto o = model::decode<model::ScaleOverride>(kv.value)) {
      override_by_service[kv.key.substr(keys::kScale.size())] = *o;
    }
  }
  std::set<std::string> healthy_ids;
  for (const auto& kv : statuses->kvs) {
    auto st = model::decode<model::InstanceStatus>(kv.value);
    if (st && st->state == model::InstanceState::kHealthy) healthy_ids.insert(st->id);
  }
  std::map<std::string, int> ready;
  // Instances that should run, healthy or not: the count a service first seen runs at. During a
  // rolling update this includes the surge instance (one more than desired, trimmed by the
  // policy once the hold below has passed).
  std::map<std::string, int> running;
  for (const auto& kv : instances->kvs) {
    auto rec = model::decode<model::InstanceRecord>(kv.value);
    if (!rec || !rec->desired_running) continue;
    const std::string id = rec->app + "/" + rec->service;
    ++running[id];
    if (healthy_ids.count(rec->id)) ++ready[id];
  }
  std::map<std::string, ServiceLoad> load = load_ ? load_() : std::map<std::string, ServiceLoad>{};

  std::vector<std::string> changes;
  std::vector<std::pair<std::string, std::string>> rhythm_writes;
  std::vector<std::string> rhythm_deletes;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> seen;
    for (const auto& kv : apps->kvs) {
      auto rec = model::decode<model::AppRecord>(kv.value);
      if (!rec) continue;
      for (const auto& [name, spec] : rec->spec.services) {
        const std::string id = rec->spec.name + "/" + name;
        seen.insert(id);
        auto ov = override_by_service.find(id);
        ScaleBounds bounds = autoscaler::boundsInForce(
            spec.scale, ov == override_by_service.end() ? nullptr : &ov->second, now);
        PerService& svc = services_[id];
        svc.max_in_force = bounds.max;
        const int highest = std::max(bounds.min, bounds.max);  // as desired() clamps
        autoscaler::PolicyParams params = autoscaler::PolicyParams::fromSpec(spec.scale);
        if (!svc.policy || params.concurrency != svc.params.concurrency ||
            params.idle != svc.params.idle) {
          if (!svc.policy) {
            // First seen (the agent started, or the app was deployed): keep what runs.
            svc.desired = std::clamp(running[id], bounds.min, highest);
            if (svc.desired != desiredCount(bounds)) {
              changes.push_back(id + ": desired " + std::to_string(svc.desired) +
                                " (restored: " + std::to_string(running[id]) +
                                " instances running; no scale-down for " +
                                formatDuration(params.scale_down_window) + ")");
            }
          }
          // A new policy has no load history: an empty window must not read as no load, so a
          // count above min (restored, or chosen by the previous policy) is held. At min there is
          // nothing to hold, and a service at zero may return to zero after its keep-alive.
          // What was learned of the rhythm carries over: from the old policy, else the store.
          std::optional<autoscaler::Rhythm> learned;
          if (svc.policy) {
            learned = svc.policy->rhythm();
          } else if (auto kv = store_.get(std::string(keys::kRhythm) + id); kv && kv->has_value()) {
            auto r = autoscaler::Rhythm::fromJson((*kv)->value, params.rhythm_params);
            if (r) {
              learned = std::move(*r);
            } else {
              spdlog::warn("autoscale: {}: the stored rhythm is unreadable; learning again", id);
            }
          }
          svc.policy = std::make_unique<autoscaler::Autoscaler>(params);
          if (learned) {
            svc.saved_burst = learned->lastBurst();
            svc.policy->restore(std::move(*learned));
          }
          svc.params = params;
          svc.no_scale_down_until =
              svc.desired > bounds.min ? now + params.scale_down_window : TimePoint{};
        }
        autoscaler::Observation obs;
        if (auto l = load.find(id); l != load.end()) {
          obs.concurrency = l->second.concurrency;
          obs.queued = l->second.queued;
          obs.arrivals = l->second.arrivals;
          obs.parked = l->second.parked;
        }
        obs.ready = ready[id];
        obs.desired = svc.desired;
        obs.min = bounds.min;
        obs.max = bounds.max;
        measureColdStart(svc, obs.ready, now);
        obs.cold_start = svc.cold_start;
        autoscaler::Decision d = svc.policy->step(obs, now);
        if (now < svc.no_scale_down_until && d.desired < svc.desired) {
          d.desired = std::max(d.desired, std::min(svc.desired, highest));  // bounds still win
          if (d.desired < svc.desired) d.reason = "bounds in force: max " + std::to_string(highest);
        }
        if (d.desired > 0 && obs.ready == 0 && !svc.cold_since) svc.cold_since = now;
        if (d.desired == 0) svc.cold_since.reset();
        if (d.desired != svc.desired) {
          changes.push_back(id + ": desired " + std::to_string(svc.desired) + " -> " +
                            std::to_string(d.desired) + " (" + d.reason + ")");
          svc.desired = d.desired;
          svc.reason = d.reason;
        }
        const autoscaler::Rhythm& rhythm = svc.policy->rhythm();
        if (rhythm.lastBurst() != svc.saved_burst && now - svc.saved_at >= kRhythmWriteEvery) {
          rhythm_writes.emplace_back(std::string(keys::kRhythm) + id, rhythm.toJson());
          svc.saved_burst = rhythm.lastBurst();
          svc.saved_at = now;
        }
      }
    }
    for (auto it = services_.begin(); it != services_.end();) {
      if (seen.count(it->first)) {
        ++it;
      } else {
        rhythm_deletes.push_back(std::string(keys::kRhythm) + it->first);
        it = services_.erase(it);
      }
    }
  }
  for (const auto& [key, value] : rhythm_writes) {
    if (auto put = store_.put(key, value); !put) {
      spdlog::warn("autoscale: keeping {}: {}", key, put.status().toString());
    }
  }
  for (const auto& key : rhythm_deletes) (void)store_.del(key);
  for (const auto& c : changes) {
    spdlog::info("autoscale: {}", c);
    if (options_.on_event) options_.on_event("autoscale", c);
  }
  if (!changes.empty() && options_.on_change) options_.on_change();
  return Status::ok();
}

Status Autoscaling::start() {
  {
    std::lock_guard lock(mu_);
    if (thread_.joinable()) return Status::ok();
  }
  if (Status s = stepOnce(); !s) return s;  // seed before the controller asks
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return Status::ok();
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
  return Status::ok();
}

void Autoscaling::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Autoscaling::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.tick, [this] { return stop_ || kicked_; });
      if (stop_) return;
      kicked_ = false;
    }
    if (Status s = stepOnce(); !s) spdlog::warn("autoscale: {}", s.toString());
  }
}

}  // namespace baton::controller
