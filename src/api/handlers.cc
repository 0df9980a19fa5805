#include "api/handlers.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <variant>

#include "api/acl.h"
#include "api/event_bus.h"
#include "api/routes.h"
#include "api/tokens.h"
#include "auth/api_keys.h"
#include "autoscaler/bounds.h"
#include "autoscaler/policy.h"
#include "autoscaler/rhythm.h"
#include "core/units.h"
#include "crypto/aead.h"
#include "mesh/intentions.h"
#include "model/json.h"
#include "model/keys.h"
#include "secrets/seal.h"
#include "spec/manifest.h"

namespace baton::api {
namespace {

using nlohmann::json;
namespace keys = model::keys;

constexpr int kMaxCasAttempts = 8;
constexpr size_t kEventQueueLines = 4096;
constexpr size_t kMaxApiKeyName = 128;
constexpr size_t kMaxApiKeyScopes = 32;
constexpr size_t kMaxApiKeyScope = 256;
constexpr size_t kMaxTokenOwner = 128;
constexpr size_t kMaxTokenRules = 64;
constexpr Duration kMaxTokenTtl = Duration(int64_t{10} * 365 * 24 * 3'600'000);  // 10 years

// A listing's filter: whether the caller may see the app (or secret path) of a row. Empty: all.
using Visible = std::function<bool(const std::string&)>;

// An API key's name or scope: printable ASCII or UTF-8, no control characters.
bool isPrintableText(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// An API key id as auth::ApiKeys makes them: 16 lowercase hex characters.
bool isApiKeyId(std::string_view id) {
  if (id.size() != 16) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

json apiKeyRow(const auth::ApiKeyRecord& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"created_at", toUnixMillis(r.created_at)},
          {"scopes", r.scopes}};
}

// "2026-12-05 04:29:27Z", for messages.
std::string formatUtc(TimePoint t) {
  std::time_t secs = static_cast<std::time_t>(toUnixMillis(t) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

json rulesJson(const std::vector<acl::Rule>& rules) {
  json out = json::array();
  for (const auto& r : rules) {
    out.push_back({{"kind", acl::kindName(r.kind)},
                   {"pattern", r.pattern},
                   {"capabilities", acl::capabilityNames(r.caps)}});
  }
  return out;
}

// A token as GET /v1/tokens shows it: never its hash, never its secret.
json tokenRow(const TokenRecord& r, TimePoint now) {
  return {{"accessor", r.accessor},
          {"owner", r.owner},
          {"rules", rulesJson(r.rules)},
          {"created_at", toUnixMillis(r.created_at)},
          {"expires_at", r.expires_at ? json(toUnixMillis(*r.expires_at)) : json(nullptr)},
          {"expired", r.expires_at && *r.expires_at <= now},
          {"created_by", r.created_by}};
}

ApiResponse jsonResponse(int status, const json& j) {
  ApiResponse r;
  r.status = status;
  r.body = j.dump();
  r.body.push_back('\n');
  return r;
}

int httpStatusFor(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition:
      return 409;
    case Code::kUnavailable:
      return 503;
    case Code::kTimeout:
      return 504;
    default:
      return 500;
  }
}

ApiResponse statusResponse(const Status& s) {
  return errorResponse(httpStatusFor(s.code()), s.message());
}

// "/baton/scale/shop/web" -> "shop/web".
std::string afterPrefix(std::string_view key, std::string_view prefix) {
  return std::string(key.substr(std::min(prefix.size(), key.size())));
}

bool overrideActive(const model::ScaleOverride& ov, TimePoint now) {
  return !ov.expires_at || *ov.expires_at > now;
}

// What the handlers read, one list per key prefix (each list is consistent on its own).
struct Snapshot {
  std::map<std::string, model::AppRecord> apps;
  std::map<std::string, state::Revision> app_mod_revision;
  std::vector<model::InstanceRecord> instances;
  std::map<std::string, model::InstanceStatus> status;    // by instance id
  std::map<std::string, model::ScaleOverride> overrides;  // by "app/svc"
  std::map<std::string, model::RolloutRecord> rollouts;   // by "app/svc"
  std::map<std::string, int64_t> secret_versions;         // by path: the live version
  std::map<std::string, std::string> rhythms;             // by "app/svc": what it learned (JSON)
  state::Revision revision = 0;
};

template <typename T, typename F>
Status listInto(state::Store& store, const std::string& prefix, state::Revision& rev, F&& add) {
  auto r = store.list(prefix);
  if (!r) return r.status();
  rev = std::max(rev, r->revision);
  for (const auto& kv : r->kvs) {
    auto v = model::decode<T>(kv.value);
    if (v) add(kv, std::move(v).value());  // malformed records are skipped, not fatal
  }
  return Status::ok();
}

Result<Snapshot> loadSnapshot(state::Store& store, const std::string& app_filter) {
  Snapshot s;
  std::string app_prefix = std::string(keys::kApps) + app_filter;
  Status st = listInto<model::AppRecord>(store, app_prefix, s.revision,
                                         [&](const state::KeyValue& kv, model::AppRecord rec) {
                                           std::string name(keys::leaf(kv.key));
                                           if (!app_filter.empty() && name != app_filter) return;
                                           s.app_mod_revision[name] = kv.mod_revision;
                                           s.apps.emplace(name, std::move(rec));
                                         });
  if (!st) return st;
  st = listInto<model::InstanceRecord>(store, std::string(keys::kInstances), s.revision,
                                       [&](const state::KeyValue&, model::InstanceRecord rec) {
                                         if (!app_filter.empty() && rec.app != app_filter) return;
                                         s.instances.push_back(std::move(rec));
                                       });
  if (!st) return st;
  st = listInto<model::InstanceStatus>(
      store, std::string(keys::kStatus), s.revision,
      [&](const state::KeyValue& kv, model::InstanceStatus rec) {
        std::string id = rec.id.empty() ? std::string(keys::leaf(kv.key)) : rec.id;
        s.status.emplace(id, std::move(rec));
      });
  if (!st) return st;
  std::string scale_prefix =
      std::string(keys::kScale) + (app_filter.empty() ? "" : app_filter + "/");
  st = listInto<model::ScaleOverride>(
      store, scale_prefix, s.revision, [&](const state::KeyValue& kv, model::ScaleOverride ov) {
        s.overrides.emplace(afterPrefix(kv.key, keys::kScale), std::move(ov));
      });
  if (!st) return st;
  std::string rollout_prefix =
      std::string(keys::kRollouts) + (app_filter.empty() ? "" : app_filter + "/");
  st = listInto<model::RolloutRecord>(
      store, rollout_prefix, s.revision, [&](const state::KeyValue& kv, model::RolloutRecord r) {
        s.rollouts.emplace(afterPrefix(kv.key, keys::kRollouts), std::move(r));
      });
  if (!st) return st;
  // What the autoscaler learned of each service's rhythm (for the next expected call). Not part
  // of the revision: it changes with every burst, and a blocking query must not wake for it.
  auto rhythms = store.list(std::string(keys::kRhythm) + (app_filter.empty() ? "" : app_filter + "/"));
  if (!rhythms) return rhythms.status();
  for (const auto& kv : rhythms->kvs) s.rhythms[afterPrefix(kv.key, keys::kRhythm)] = kv.value;
  // Secrets' versions: an instance of a service that rolls on a new one names them in its spec.
  auto metas = store.list(std::string(secrets::kMetaPrefix));
  if (!metas) return metas.status();
  for (const auto& kv : metas->kvs) {
    if (auto m = secrets::decodeMetadata(kv.value)) {
      s.secret_versions[afterPrefix(kv.key, secrets::kMetaPrefix)] = secrets::liveVersion(*m);
    }
  }
  return s;
}

const char* phaseName(model::RolloutRecord::Phase p) {
  switch (p) {
    case model::RolloutRecord::Phase::kComplete:
      return "complete";
    case model::RolloutRecord::Phase::kFailed:
      return "failed";
    case model::RolloutRecord::Phase::kInProgress:
      return "in_progress";
  }
  return "in_progress";
}

// When the bounds in force stop being in force: the override's expiry (none: it lasts until
// cleared), or the first end of the schedule windows in force. None for the manifest's bounds.
// (BoundsInForce::until is the next instant the bounds may change, which is also the opening of
// a window or a window's end behind an override.)
std::optional<TimePoint> boundsExpireAt(const model::ScaleSpec& scale,
                                        const model::ScaleOverride* ov,
                                        const autoscaler::BoundsInForce& b, TimePoint now) {
  if (b.source == "override") return ov ? ov->expires_at : std::nullopt;
  if (!b.source.starts_with("schedule:")) return std::nullopt;
  autoscaler::Calendar calendar(scale);
  // The calendar skips entries it cannot parse (the manifest check refuses them): then its
  // indices are not the manifest's, and every open window counts.
  bool aligned = calendar.entries() == scale.schedule.size();
  std::optional<TimePoint> end;
  for (size_t i = 0; i < calendar.entries(); ++i) {
    if (aligned && !scale.schedule[i].min && !scale.schedule[i].max) continue;
    auto w = calendar.activeWindow(i, now);
    if (w && (!end || w->end < *end)) end = w->end;
  }
  return end;
}

// The next call a service with a periodic rhythm expects, on or after `now` (a call that is late
// moves it on by whole periods), and its rhythm in words ("period 300 s"); nothing for a service
// with no learned period.
std::optional<std::pair<TimePoint, std::string>> nextExpectedCall(const Snapshot& s,
                                                                  const std::string& id,
                                                                  const model::ScaleSpec& scale,
                                                                  TimePoint now) {
  auto stored = s.rhythms.find(id);
  if (stored == s.rhythms.end()) return std::nullopt;
  auto params = autoscaler::PolicyParams::fromSpec(scale);
  if (!params.rhythm) return std::nullopt;
  auto learned = autoscaler::Rhythm::fromJson(stored->second, params.rhythm_params);
  if (!learned || !learned->lastBurst()) return std::nullopt;
  const autoscaler::Expectation e = learned->expect();
  if (e.kind != autoscaler::Expectation::Kind::kPeriodic || e.head <= Duration(0)) {
    return std::nullopt;
  }
  TimePoint next = *learned->lastBurst() + e.head;
  if (next < now) next += ((now - next) / e.head + 1) * e.head;
  return std::make_pair(next, e.describe());
}

json serviceRow(const Snapshot& s, const std::string& app, const model::AppRecord& rec,
                const model::ServiceSpec& spec, TimePoint now) {
  std::string id = app + "/" + spec.name;
  auto ov_it = s.overrides.find(id);
  const model::ScaleOverride* ov = ov_it == s.overrides.end() ? nullptr : &ov_it->second;
  autoscaler::BoundsInForce b = autoscaler::boundsInForce(spec.scale, ov, now);
  std::optional<TimePoint> expires_at = boundsExpireAt(spec.scale, ov, b, now);
  std::string hash = model::specHash(model::pinSecretVersions(spec, s.secret_versions));
  int desired = 0, ready = 0, current = 0;
  for (const auto& inst : s.instances) {
    if (inst.app != app || inst.service != spec.name || !inst.desired_running) continue;
    ++desired;
    if (inst.spec_hash == hash) ++current;
    auto st = s.status.find(inst.id);
    if (st != s.status.end() && st->second.state == model::InstanceState::kHealthy) ++ready;
  }
  // The rollout of the current spec: none recorded yet means the controller has not started it.
  std::string rollout = "none";
  std::string rollout_message;
  if (auto r = s.rollouts.find(id); r != s.rollouts.end()) {
    if (r->second.spec_hash == hash) {
      rollout = phaseName(r->second.phase);
      rollout_message = r->second.message;
    } else {
      rollout = "pending";
    }
  } else if (current < desired) {
    rollout = "pending";
  }
  json row = {{"app", app},
              {"service", spec.name},
              {"version", rec.version},
              {"desired", desired},
              {"ready", ready},
              {"current", current},
              {"min", b.min},
              {"max", b.max},
              {"source", b.source},
              {"rollout", rollout},
              {"rollout_message", rollout_message},
              {"until", b.until ? json(toUnixMillis(*b.until)) : json(nullptr)},
              {"expires_at", expires_at ? json(toUnixMillis(*expires_at)) : json(nullptr)},
              {"next_expected", nullptr},
              {"rhythm", ""}};
  if (auto next = nextExpectedCall(s, id, spec.scale, now)) {
    row["next_expected"] = toUnixMillis(next->first);
    row["rhythm"] = next->second;
  }
  return row;
}

json instanceRow(const model::InstanceRecord& inst, const model::InstanceStatus* st) {
  model::InstanceStatus empty;
  const model::InstanceStatus& s = st ? *st : empty;
  return {{"id", inst.id},
          {"app", inst.app},
          {"service", inst.service},
          {"node", s.node.empty() ? inst.node : s.node},
          {"state", model::toString(s.state)},
          {"address", s.address},
          {"port", s.port},
          {"pid", s.pid},
          {"version", inst.version},
          {"desired_running", inst.desired_running},
          {"started_at", st ? json(toUnixMillis(s.started_at)) : json(nullptr)},
          {"restarts", s.restarts},
          {"last_exit_code", s.last_exit_code ? json(*s.last_exit_code) : json(nullptr)},
          {"message", s.message},
          {"cpu_throttled", s.cpu_throttled},
          {"last_failure", s.last_failure}};
}

json diagnosticJson(const spec::Diagnostic& d) {
  return {{"file", d.file},
          {"line", d.line},
          {"column", d.column},
          {"key", d.key},
          {"message", d.message}};
}

std::string kindOfKey(std::string_view key) {
  if (key.starts_with(keys::kApps)) return "app";
  if (key.starts_with(keys::kInstances)) return "instance";
  if (key.starts_with(keys::kStatus)) return "status";
  if (key.starts_with(keys::kNodes)) return "node";
  if (key.starts_with(keys::kScale)) return "scale";
  if (key.starts_with(keys::kRollouts)) return "rollout";
  if (key.starts_with(auth::kApiKeysPrefix)) return "apikey";
  if (key.starts_with(keys::kTokens)) return "token";
  if (key.starts_with(keys::kAudit)) return "audit";
  if (key.starts_with("/baton/secrets/")) return "secret";
  if (key.starts_with(keys::kRhythm)) return "rhythm";
  return "other";
}

// For callers with a read token: every `env` object's values (they hold passwords until the
// secrets issue lands) become "(hidden)", and an app's manifest `source` is dropped. Walks our
// own records (apps, instances), whose depth the manifest parser bounds.
void hideEnv(json& j) {
  if (j.is_array()) {
    for (json& e : j) hideEnv(e);
    return;
  }
  if (!j.is_object()) return;
  j.erase("source");
  for (auto& [key, value] : j.items()) {
    if (key == "env" && value.is_object()) {
      for (auto& [_, v] : value.items()) v = "(hidden)";
    } else {
      hideEnv(value);
    }
  }
}

// GET /v1/events: the store's changes under /baton/ from the revision at subscription, plus
// the event bus, one JSON object per line. Store callbacks only queue (bounded) and wake.
// A blocking query (GET /v1/services?index=N&wait=D, as Consul's): the answer, rendered when
// something under `prefixes` changed after revision N (at once when that already happened), or
// when D has passed, whichever comes first. Sent as one chunk of a chunked body, so the server
// holds no thread while it waits.
class BlockingAnswer final : public ChunkSource {
 public:
  BlockingAnswer(std::function<ApiResponse()> render, Clock& clock, SteadyPoint deadline,
                 std::vector<std::string> prefixes)
      : render_(std::move(render)), clock_(clock), deadline_(deadline),
        prefixes_(std::move(prefixes)) {}
  ~BlockingAnswer() override { watch_.reset(); }

  Status start(state::Store& store, state::Revision index) {
    state::WatchCallbacks cb;
    cb.on_events = [this](const std::vector<state::Event>& events) {
      for (const auto& ev : events) {
        for (const auto& p : prefixes_) {
          if (ev.kv.key.compare(0, p.size(), p) == 0) return fire();
        }
      }
    };
    cb.on_error = [this](const Status&) { fire(); };  // compacted past N: answer now
    auto w = store.watch(std::string("/baton/"), index + 1, std::move(cb));
    if (!w) return w.status();
    watch_ = std::move(w).value();
    return Status::ok();
  }

  std::optional<std::string> poll() override {
    {
      std::lock_guard lock(mu_);
      if (done_) return std::nullopt;
      if (!changed_ && clock_.steadyNow() < deadline_) return std::string();
      done_ = true;
    }
    watch_.reset();
    return render_().body;
  }

  void setWakeup(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }

 private:
  void fire() {
    std::lock_guard lock(mu_);
    changed_ = true;
    if (wake_) wake_();
  }

  std::function<ApiResponse()> render_;
  Clock& clock_;
  SteadyPoint deadline_;
  std::vector<std::string> prefixes_;
  std::unique_ptr<state::WatchHandle> watch_;
  std::mutex mu_;
  bool changed_ = false, done_ = false;
  std::function<void()> wake_;
};

class EventStream final : public ChunkSource {
 public:
  // full: objects as stored; else apps with their env values hidden and no API key or audit
  // records. API token records (hashes) are never sent.
  explicit EventStream(bool full) : full_(full) {}
  ~EventStream() override {
    watch_.reset();  // after this no store callback runs
    sub_.reset();
  }

  Status start(state::Store& store, EventBus* bus) {
    auto rev = store.currentRevision();
    if (!rev) return rev.status();
    lines_.push_back(json({{"type", "hello"}, {"revision", *rev}}).dump() + "\n");
    if (bus) sub_ = bus->subscribe(kEventQueueLines, [this] { wake(); });
    state::WatchCallbacks cb;
    cb.on_events = [this](const std::vector<state::Event>& events) {
      std::lock_guard lock(mu_);
      for (const auto& ev : events) {
        json obj = nullptr;
        const std::string kind = kindOfKey(ev.kv.key);
        // Never a token's record nor a secret's (sealed, but the keyring and the versions are
        // no reader's business); API keys and the audit log only for a full reader.
        if (ev.type == state::Event::Type::kPut && kind != "token" && kind != "secret" &&
            (full_ || (kind != "apikey" && kind != "audit"))) {
          obj = json::parse(ev.kv.value, nullptr, false);
          if (obj.is_discarded()) obj = ev.kv.value;
          if (!full_) hideEnv(obj);
        }
        json line = {{"type", ev.type == state::Event::Type::kPut ? "put" : "delete"},
                     {"key", ev.kv.key},
                     {"kind", kind},
                     {"revision", ev.kv.mod_revision},
                     {"object", std::move(obj)}};
        pushLocked(line.dump() + "\n");
      }
      if (wake_) wake_();
    };
    cb.on_error = [this](const Status& s) {
      std::lock_guard lock(mu_);
      if (!ended_) {
        lines_.push_back(json({{"type", "error"}, {"error", s.toString()}}).dump() + "\n");
        ended_ = true;
      }
      if (wake_) wake_();
    };
    auto w = store.watch(std::string("/baton/"), *rev + 1, std::move(cb));
    if (!w) return w.status();
    watch_ = std::move(w).value();
    return Status::ok();
  }

  std::optional<std::string> poll() override {
    std::string out;
    if (sub_) {
      for (auto& ev : sub_->take()) {
        out += json({{"type", "event"},
                     {"kind", ev.kind},
                     {"message", ev.message},
                     {"seq", ev.seq},
                     {"time", toUnixMillis(ev.at)}})
                   .dump() +
               "\n";
      }
      if (sub_->dropped()) {
        std::lock_guard lock(mu_);
        dropLocked();
      }
    }
    std::lock_guard lock(mu_);
    for (auto& l : lines_) out += l;
    lines_.clear();
    if (out.empty() && ended_) return std::nullopt;
    return out;
  }

  void setWakeup(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }

 private:
  void wake() {
    std::lock_guard lock(mu_);
    if (wake_) wake_();
  }
  void pushLocked(std::string line) {
    if (ended_) return;
    if (lines_.size() >= kEventQueueLines) {
      dropLocked();
      return;
    }
    lines_.push_back(std::move(line));
  }
  void dropLocked() {
    if (ended_) return;
    lines_.clear();
    lines_.push_back(
        json({{"type", "error"}, {"error", "subscriber too slow: events were dropped"}}).dump() +
        "\n");
    ended_ = true;
  }

  const bool full_;
  std::mutex mu_;
  std::deque<std::string> lines_;
  bool ended_ = false;
  std::function<void()> wake_;
  std::unique_ptr<EventBus::Subscription> sub_;
  std::unique_ptr<state::WatchHandle> watch_;
};

}  // namespace

ApiRequest ApiRequest::make(std::string method, std::string_view target, std::string body,
                            std::string authorization) {
  ApiRequest r;
  r.method = std::move(method);
  auto q = target.find('?');
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = parseQuery(target.substr(q + 1));
  r.body = std::move(body);
  r.authorization = std::move(authorization);
  return r;
}

ApiResponse errorResponse(int status, std::string_view message) {
  return jsonResponse(status, json{{"error", std::string(message)}});
}

struct Handlers::Impl {
  ApiDeps deps;
  ApiOptions options;
  std::optional<auth::ApiKeys> own_keys;  // over deps.store, only when deps.api_keys is null
  auth::ApiKeys& api_keys;
  TokenStore tokens{deps.store};
  std::mutex counts_mu;
  std::atomic<uint64_t> audit_seq{0};
  std::map<int, uint64_t> counts;

  Impl(ApiDeps d, ApiOptions o)
      : deps(std::move(d)),
        options(std::move(o)),
        api_keys(deps.api_keys ? *deps.api_keys : own_keys.emplace(deps.store)) {}

  state::Store& store() { return deps.store; }
  TimePoint now() { return deps.clock.now(); }

  // Who is calling and what its token may do (docs/tokens.md).
  struct Caller {
    std::string who;  // the audit log's name: "dev", "agent-token", "alice (tok 3f2a...)"
    std::vector<acl::Rule> rules;
    std::optional<TokenRecord> token;  // a store token's record; none for the built-ins
  };

  // The caller of `req`, or the 401/503 answer. Dev mode may do everything; outside it the
  // token is a store token ("baton_...", read from the store on every request, so a revocation
  // holds at once) or one of the two built-in file tokens (check_token).
  std::variant<Caller, ApiResponse> authenticate(const ApiRequest& req) {
    if (options.dev) return Caller{"dev", acl::managementRules(), std::nullopt};
    std::string_view h = req.authorization;
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view t =
        h.size() > kBearer.size() && h.starts_with(kBearer) ? h.substr(kBearer.size()) : "";
    const std::string needed = "this request needs a valid token (Authorization: Bearer ...)";
    if (t.empty()) return errorResponse(401, needed);
    if (isStoreToken(t)) {
      Verified v = tokens.verify(t, now());
      switch (v.result) {
        case Verified::Result::kOk: {
          std::string who = v.record.owner + " (tok " + v.record.accessor + ")";
          auto rules = v.record.rules;
          return Caller{std::move(who), std::move(rules), std::move(v.record)};
        }
        case Verified::Result::kExpired:
          return errorResponse(401, "the token " + v.record.accessor + " expired at " +
                                        formatUtc(*v.record.expires_at) +
                                        "; this request needs a valid token");
        case Verified::Result::kUnavailable:
          return errorResponse(503, "the tokens cannot be read from the store now");
        case Verified::Result::kUnknown:
          return errorResponse(401, "unknown or revoked token: " + needed);
      }
    }
    const Access a = options.check_token ? options.check_token(t) : Access::kNone;
    if (a == Access::kWrite) return Caller{"agent-token", acl::managementRules(), std::nullopt};
    if (a == Access::kRead) return Caller{"agent-read-token", acl::readOnlyRules(), std::nullopt};
    return errorResponse(401, needed);
  }

  // One audit entry: who (the caller's name), what (method, route, path; never a body or a
  // value), when. Entries past kAuditKeep are pruned, oldest first, every 256 writes.
  static constexpr size_t kAuditKeep = 10000;
  Status audit(const ApiRequest& req, const RouteMatch& m, const std::string& who) {
    const int64_t now_ms = toUnixMillis(now());
    const uint64_t n = audit_seq.fetch_add(1, std::memory_order_relaxed);
    char key[64];
    std::snprintf(key, sizeof key, "%013lld-%08llx", static_cast<long long>(now_ms),
                  static_cast<unsigned long long>(n & 0xffffffffull));
    json entry = {{"at", now_ms},
                  {"who", who},
                  {"method", req.method},
                  {"route", routeName(m.id)},
                  {"path", req.path}};
    if (auto p = m.params.find("path"); p != m.params.end()) entry["secret"] = p->second;
    auto put = store().put(std::string(model::keys::kAudit) + key, entry.dump());
    if (!put) return put.status();
    if (n % 256 == 255) {
      auto all = store().list(std::string(model::keys::kAudit));
      if (all && all->kvs.size() > kAuditKeep) {
        std::vector<state::Op> ops;
        for (size_t i = 0; i + kAuditKeep < all->kvs.size(); ++i) {
          ops.push_back(state::Op::del(all->kvs[i].key));
        }
        (void)store().txn({}, ops);
      }
    }
    return Status::ok();
  }

  ApiResponse listAudit(const std::string& limit_text) {
    size_t limit = 100;
    if (!limit_text.empty()) {
      if (limit_text.size() > 6 || limit_text.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(limit_text) == 0 || std::stoul(limit_text) > kAuditKeep) {
        return errorResponse(400, "limit is 1 to 10000");
      }
      limit = std::stoul(limit_text);
    }
    auto all = store().list(std::string(model::keys::kAudit));
    if (!all) return statusResponse(all.status());
    json entries = json::array();
    const size_t from = all->kvs.size() > limit ? all->kvs.size() - limit : 0;
    for (size_t i = from; i < all->kvs.size(); ++i) {
      json j = json::parse(all->kvs[i].value, nullptr, false);
      if (!j.is_discarded()) entries.push_back(std::move(j));
    }
    return jsonResponse(200, {{"entries", entries}});
  }

  // /v1/secrets (docs/secrets.md). Values travel only in the bodies of GET and PUT data; no
  // error message quotes one.
  ApiResponse secret(const RouteMatch& m, const ApiRequest& req, const Caller& caller) {
    if (deps.seal == nullptr) return errorResponse(503, "this agent keeps no secrets");
    secrets::SecretStore* vault = deps.seal->store();
    if (vault == nullptr) return errorResponse(503, deps.seal->status().message());
    const std::string path = m.params.count("path") ? m.params.at("path") : "";
    auto number = [&](const std::string& text, const char* what) -> Result<int64_t> {
      if (text.empty() || text.size() > 18 ||
          text.find_first_not_of("0123456789") != std::string::npos) {
        return invalidArgument(std::string(what) + " is a non-negative integer");
      }
      return std::stoll(text);
    };
    auto versionsOf = [&](const json& j) -> Result<std::set<int64_t>> {
      std::set<int64_t> out;
      if (j.is_null()) return out;
      if (!j.is_array()) return invalidArgument("\"versions\" is an array of version numbers");
      for (const auto& v : j) {
        if (!v.is_number_unsigned()) return invalidArgument("\"versions\" holds version numbers");
        out.insert(v.get<int64_t>());
      }
      return out;
    };
    auto body = [&]() -> Result<json> {
      json j = json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return invalidArgument("the body is a JSON object");
      return j;
    };
    auto it = req.query.find("version");
    switch (m.id) {
      case RouteId::kListSecrets: {
        auto q = req.query.find("prefix");
        auto paths = vault->list(q == req.query.end() ? "" : q->second);
        if (!paths) return statusResponse(paths.status());
        // Only the paths this token may list (the others are not refused: left out).
        std::vector<std::string> visible;
        for (auto& p : *paths) {
          if (acl::allows(caller.rules, acl::Kind::kSecrets, p, acl::kList)) {
            visible.push_back(std::move(p));
          }
        }
        return jsonResponse(200, {{"secrets", visible}});
      }
      case RouteId::kGetSecret: {
        int64_t version = 0;
        if (it != req.query.end()) {
          auto v = number(it->second, "version");
          if (!v) return statusResponse(v.status());
          version = *v;
        }
        auto got = vault->get(path, version);
        if (!got) return statusResponse(got.status());
        return jsonResponse(200, {{"path", path},
                                  {"version", got->version},
                                  {"created_at", toUnixMillis(got->created)},
                                  {"data", got->data}});
      }
      case RouteId::kPutSecret: {
        auto j = body();
        if (!j) return statusResponse(j.status());
        if (!j->contains("data") || !(*j)["data"].is_object()) {
          return errorResponse(400, "the body is {\"data\": {\"KEY\": \"value\", ...}, \"cas\": N}");
        }
        secrets::SecretData data;
        for (const auto& [k, v] : (*j)["data"].items()) {
          if (!v.is_string()) return errorResponse(400, "the value of " + k + " is not a string");
          data[k] = v.get<std::string>();
        }
        std::optional<int64_t> cas;
        if (j->contains("cas")) {
          if (!(*j)["cas"].is_number_unsigned()) return errorResponse(400, "\"cas\" is a version number");
          cas = (*j)["cas"].get<int64_t>();
        }
        auto v = vault->put(path, data, cas);
        if (!v) return statusResponse(v.status());
        return jsonResponse(200, {{"path", path}, {"version", *v}});
      }
      case RouteId::kDeleteSecret: {
        std::set<int64_t> versions;
        if (auto vs = req.query.find("versions"); vs != req.query.end()) {
          std::string_view rest = vs->second;
          while (!rest.empty()) {
            size_t comma = rest.find(',');
            auto v = number(std::string(rest.substr(0, comma)), "each of versions");
            if (!v) return statusResponse(v.status());
            versions.insert(*v);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
          }
        }
        if (Status s = vault->softDelete(path, versions); !s) return statusResponse(s);
        return jsonResponse(200, {{"path", path}, {"deleted", versions}});
      }
      case RouteId::kUndeleteSecret:
      case RouteId::kDestroySecret: {
        auto j = body();
        if (!j) return statusResponse(j.status());
        auto versions = versionsOf(j->value("versions", json()));
        if (!versions) return statusResponse(versions.status());
        if (versions->empty()) return errorResponse(400, "name the versions: {\"versions\": [1, 2]}");
        Status s = m.id == RouteId::kUndeleteSecret ? vault->undelete(path, *versions)
                                                    : vault->destroy(path, *versions);
        if (!s) return statusResponse(s);
        return jsonResponse(200, {{"path", path},
                                  {m.id == RouteId::kUndeleteSecret ? "undeleted" : "destroyed",
                                   *versions}});
      }
      case RouteId::kGetSecretMeta: {
        auto md = vault->metadata(path);
        if (!md) return statusResponse(md.status());
        json versions = json::array();
        for (const auto& [v, info] : md->versions) {
          versions.push_back({{"version", v},
                              {"created_at", toUnixMillis(info.created)},
                              {"deleted_at", info.deleted ? json(toUnixMillis(*info.deleted)) : json()},
                              {"destroyed", info.destroyed}});
        }
        return jsonResponse(200, {{"path", path},
                                  {"current_version", md->current},
                                  {"max_versions", md->max_versions},
                                  {"versions", versions}});
      }
      case RouteId::kPutSecretMeta: {
        auto j = body();
        if (!j) return statusResponse(j.status());
        if (!j->contains("max_versions") || !(*j)["max_versions"].is_number_integer()) {
          return errorResponse(400, "the body is {\"max_versions\": N}");
        }
        if (Status s = vault->setMaxVersions(path, (*j)["max_versions"].get<int>()); !s) {
          return statusResponse(s);
        }
        return jsonResponse(200, {{"path", path}, {"max_versions", (*j)["max_versions"]}});
      }
      case RouteId::kDeleteSecretMeta:
        if (Status s = vault->purge(path); !s) return statusResponse(s);
        return jsonResponse(200, {{"path", path}, {"purged", true}});
      default:
        return errorResponse(404, "no such endpoint");
    }
  }

  static json sealJson(const secrets::SealStatus& st) {
    return {{"mode", st.mode},         {"initialized", st.initialized}, {"sealed", st.sealed},
            {"threshold", st.threshold}, {"shares", st.shares},         {"progress", st.progress},
            {"key_id", st.key_id},     {"message", st.message()}};
  }

  // /v1/operator (docs/secrets.md "Unsealing"). The shares travel only in the answer to init
  // and the body of unseal; no error message and no log line holds one.
  ApiResponse operatorCall(const RouteMatch& m, const ApiRequest& req) {
    if (deps.seal == nullptr) return errorResponse(503, "this agent keeps no secrets");
    secrets::Seal& seal = *deps.seal;
    if (m.id == RouteId::kSealStatus) return jsonResponse(200, sealJson(seal.status()));
    json j = json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return errorResponse(400, "the body is a JSON object");
    if (m.id == RouteId::kOperatorInit) {
      if (seal.status().mode != "shares") {
        return errorResponse(409, "this agent's secrets are sealed by its key file ([secrets] "
                                  "seal = \"file\"); init is for seal = \"shares\"");
      }
      auto count = [&](const char* k) -> std::optional<int> {
        if (!j.contains(k) || !j[k].is_number_unsigned() || j[k].get<uint64_t>() > 16) {
          return std::nullopt;
        }
        return j[k].get<int>();
      };
      auto shares = count("shares"), threshold = count("threshold");
      if (!shares || !threshold) {
        return errorResponse(400, "the body is {\"shares\": N, \"threshold\": K} with "
                                  "2 <= K <= N <= 16");
      }
      auto made = seal.init(*shares, *threshold);
      if (!made) return statusResponse(made.status());
      const secrets::SealStatus st = seal.status();
      json out = {{"shares", *made},
                  {"threshold", st.threshold},
                  {"key_id", st.key_id},
                  {"sealed", st.sealed}};
      for (auto& s : *made) crypto::cleanse(s);
      return jsonResponse(200, out);
    }
    if (!j.contains("share") || !j["share"].is_string()) {
      return errorResponse(400, "the body is {\"share\": \"bs1....\"}");
    }
    auto st = seal.unseal(j["share"].get_ref<const std::string&>());
    if (!st) return statusResponse(st.status());
    return jsonResponse(200, sealJson(*st));
  }

  // The instances' listener (ApiOptions::check_app_token): reads of the token's own app only.
  ApiResponse dispatchForApp(const ApiRequest& req, RouteMatch& m) {
    if (m.id == RouteId::kHealth) return jsonResponse(200, {{"ok", true}});
    std::string_view h = req.authorization;
    constexpr std::string_view kBearer = "Bearer ";
    std::optional<std::string> own;
    if (h.size() > kBearer.size() && h.starts_with(kBearer)) {
      own = options.check_app_token(h.substr(kBearer.size()));
    }
    if (!own) {
      return errorResponse(401, "this request needs the instance's token (Authorization: Bearer "
                                "$BATON_TOKEN); it is given to services with api = \"read\"");
    }
    const std::string refused = "an instance of app \"" + *own +
                                "\" may only read its own app: GET /v1/apps/" + *own +
                                ", /v1/services, /v1/instances";
    auto q = [&](const char* k) {
      auto it = req.query.find(k);
      return it == req.query.end() ? std::string() : it->second;
    };
    const std::string asked = q("app");
    switch (m.id) {
      case RouteId::kGetApp:
        if (m.params["app"] != *own) return errorResponse(403, refused);
        return getApp(*own, false);
      case RouteId::kListServices:
        if (!asked.empty() && asked != *own) return errorResponse(403, refused);
        if (req.query.count("index")) return blockingServices(*own, q("index"), q("wait"));
        return listServices(*own);
      case RouteId::kListInstances:
        if (!asked.empty() && asked != *own) return errorResponse(403, refused);
        return listInstances(*own, q("service"), q("state"));
      default:
        return errorResponse(403, refused);
    }
  }

  ApiResponse dispatch(const ApiRequest& req) {
    RouteMatch m = matchRoute(req.method, req.path);
    if (m.id == RouteId::kNotFound) return errorResponse(404, "no such endpoint: " + req.path);
    if (m.id == RouteId::kMethodNotAllowed) {
      return errorResponse(405, "method " + req.method + " is not allowed on " + req.path);
    }
    if (options.check_app_token) return dispatchForApp(req, m);
    if (options.dev) {
      // Dev mode has no token: it is for this machine's own user only.
      if (!req.peer_loopback) {
        return errorResponse(403, "dev mode answers loopback clients only");
      }
      if (!isLoopbackHost(req.host)) {
        return errorResponse(403, "dev mode answers requests for localhost only (Host: " +
                                      std::string(req.host.substr(0, 100)) + ")");
      }
      if (!req.origin.empty() && !isLoopbackOrigin(req.origin)) {
        return errorResponse(403, "dev mode refuses requests from web pages of other origins");
      }
    }
    const acl::Need need = acl::needFor(m);
    Caller caller;
    if (need.what != acl::Need::What::kNothing) {
      auto who = authenticate(req);
      if (auto* refused = std::get_if<ApiResponse>(&who)) return std::move(*refused);
      caller = std::move(std::get<Caller>(who));
      if (!acl::decide(caller.rules, need).allowed) {
        return errorResponse(403, "this token may not do this: it needs " + acl::describe(need));
      }
    }
    const auto& rules = caller.rules;
    // Listings show the apps the token may list. Holds a copy of the rules: a blocking query
    // renders its answer after this function has returned.
    const Visible may_list = [rules = caller.rules](const std::string& app) {
      return acl::allows(rules, acl::Kind::kApps, app, acl::kList);
    };
    // Every body is JSON: none nested deep enough to exhaust the stack of whatever walks it.
    if (!req.body.empty()) {
      if (Status s = model::checkJsonDepth(req.body); !s) return errorResponse(400, s.message());
    }
    const std::string app = m.params.count("app") ? m.params["app"] : "";
    const std::string svc = m.params.count("svc") ? m.params["svc"] : "";
    if (m.params.count("app") && !isValidName(app)) {
      return errorResponse(400, "invalid app name \"" + app + "\": expected [a-z0-9-], 1-63");
    }
    if (m.params.count("svc") && !isValidName(svc)) {
      return errorResponse(400, "invalid service name \"" + svc + "\"");
    }
    auto q = [&](const char* k) {
      auto it = req.query.find(k);
      return it == req.query.end() ? std::string() : it->second;
    };
    // Every write and every read of a secret's value is in the audit log before it is done
    // (docs/secrets.md "Audit"); when the log cannot be written, nothing is done (as Vault).
    if (m.is_write || m.id == RouteId::kGetSecret) {
      if (Status s = audit(req, m, caller.who); !s) {
        return errorResponse(503, "the audit log cannot be written, so nothing was done: " +
                                      s.message());
      }
    }
    switch (m.id) {
      case RouteId::kListAudit:
        return listAudit(q("limit"));
      case RouteId::kHealth:
        return jsonResponse(200, {{"ok", true}});
      case RouteId::kMetrics:
        return metrics();
      case RouteId::kListApps:
        return listApps(may_list);
      case RouteId::kGetApp:
        // Env values and the manifest's source only for who could have written them.
        return getApp(app, acl::allows(rules, acl::Kind::kApps, app, acl::kWrite));
      case RouteId::kPutApp:
        return putApp(app, req.body, caller);
      case RouteId::kDeleteApp:
        return deleteApp(app);
      case RouteId::kListServices:
        if (req.query.count("index")) {
          return blockingServices(q("app"), q("index"), q("wait"), may_list);
        }
        return listServices(q("app"), may_list);
      case RouteId::kListInstances:
        return listInstances(q("app"), q("service"), q("state"), may_list);
      case RouteId::kListNodes:
        return listNodes();
      case RouteId::kSetScale:
        return setScale(app, svc, req.body);
      case RouteId::kClearScale:
        return clearScale(app, svc);
      case RouteId::kLogs:
        return logs(app, svc, req.query);
      case RouteId::kEvents:
        // Whole records (env values, API keys, the audit log) for who may write every app and
        // list the keys; token records never.
        return events(acl::allows(rules, acl::Kind::kApps, "*", acl::kWrite) &&
                      acl::allows(rules, acl::Kind::kTokens, "*", acl::kList) &&
                      acl::allows(rules, acl::Kind::kAudit, "*", acl::kRead));
      case RouteId::kCreateApiKey:
        return createApiKey(req.body);
      case RouteId::kListApiKeys:
        return listApiKeys();
      case RouteId::kDeleteApiKey:
        return deleteApiKey(m.params["id"]);
      case RouteId::kListIntentions:
        return listIntentions();
      case RouteId::kPutIntention:
        return putIntention(req.body);
      case RouteId::kDeleteIntention:
        return deleteIntention(q("source"), q("destination"));
      case RouteId::kCheckIntention:
        return checkIntention(q("source"), q("destination"));
      case RouteId::kListSecrets:
      case RouteId::kGetSecret:
      case RouteId::kPutSecret:
      case RouteId::kDeleteSecret:
      case RouteId::kUndeleteSecret:
      case RouteId::kDestroySecret:
      case RouteId::kGetSecretMeta:
      case RouteId::kPutSecretMeta:
      case RouteId::kDeleteSecretMeta:
        return secret(m, req, caller);
      case RouteId::kOperatorInit:
      case RouteId::kOperatorUnseal:
      case RouteId::kSealStatus:
        return operatorCall(m, req);
      case RouteId::kCreateToken:
        return createToken(caller, req.body);
      case RouteId::kListTokens:
        return listTokens();
      case RouteId::kRevokeToken:
        return revokeToken(m.params["accessor"]);
      case RouteId::kTokenSelf:
        return tokenSelf(caller);
      default:
        return errorResponse(404, "no such endpoint");
    }
  }

  ApiResponse putApp(const std::string& app, const std::string& body, const Caller& caller) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return errorResponse(400,
                           "expected a JSON object {\"manifest\": \"<toml>\", "
                           "\"filename\": \"app.toml\"}");
    }
    auto m = j.find("manifest");
    if (m == j.end() || !m->is_string()) {
      return errorResponse(400, "expected \"manifest\": the manifest's TOML text as a string");
    }
    std::string filename = "app.toml";
    if (auto f = j.find("filename"); f != j.end()) {
      if (!f->is_string()) return errorResponse(400, "expected \"filename\" to be a string");
      filename = f->get<std::string>();
    }
    std::string text = m->get<std::string>();
    spec::ManifestResult parsed =
        spec::parseManifest(text, filename, spec::ManifestOptions{options.identity_providers});
    if (!parsed.errors.empty() || !parsed.app) {
      json errs = json::array();
      for (const auto& d : parsed.errors) errs.push_back(diagnosticJson(d));
      std::string msg = std::to_string(parsed.errors.size()) + " error(s) in " + filename;
      return jsonResponse(400, {{"error", msg}, {"errors", errs}});
    }
    model::AppSpec spec = std::move(*parsed.app);
    // The manifest's directory: exec instances run there, so relative paths in `run` resolve
    // as they do for the user (docs/decisions.md).
    if (auto b = j.find("base_dir"); b != j.end()) {
      if (!b->is_string() || b->get<std::string>().empty() || b->get<std::string>()[0] != '/') {
        return errorResponse(400, "expected \"base_dir\" to be an absolute directory path");
      }
      for (auto& [_, svc] : spec.services) svc.workdir = b->get<std::string>();
    }
    if (spec.name != app) {
      spec::Diagnostic d{
          filename, 0, 0, "app",
          "the manifest is for app \"" + spec.name + "\", but the request is for \"" + app + "\""};
      return jsonResponse(400,
                          {{"error", d.message}, {"errors", json::array({diagnosticJson(d)})}});
    }
    // A service's instances get the values of the secrets it lists: deploying it is reading
    // them, so the token must be allowed to (else `apps:shop:write` would read any secret).
    for (const auto& [name, svc] : spec.services) {
      for (const std::string& path : svc.secrets) {
        if (!acl::allows(caller.rules, acl::Kind::kSecrets, path, acl::kRead)) {
          return errorResponse(403, "service " + name + " lists secret " + path +
                                        ", and this token may not read it: it needs \"read\" on "
                                        "secrets \"" + path + "\"");
        }
      }
    }
    const std::string key = keys::app(app);
    for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
      auto cur = store().get(key);
      if (!cur) return statusResponse(cur.status());
      model::AppRecord rec;
      state::Compare cmp = state::Compare::absent(key);
      if (cur->has_value()) {
        auto old = model::decode<model::AppRecord>((*cur)->value);
        if (old) {
          if (old->spec == spec) {
            return jsonResponse(200, {{"app", app}, {"version", old->version}, {"changed", false}});
          }
          rec.version = old->version + 1;
        }
        cmp = state::Compare::modRevisionIs(key, (*cur)->mod_revision);
      }
      rec.spec = spec;
      rec.source = text;
      rec.updated_at = now();
      auto t = store().txn({cmp}, {state::Op::put(key, model::encode(rec))});
      if (!t) return statusResponse(t.status());
      if (t->succeeded) {
        return jsonResponse(200, {{"app", app}, {"version", rec.version}, {"changed", true}});
      }
    }
    return errorResponse(409, "app \"" + app + "\" is being changed concurrently; try again");
  }

  ApiResponse listApps(const Visible& visible) {
    auto r = store().list(std::string(keys::kApps));
    if (!r) return statusResponse(r.status());
    json apps = json::array();
    for (const auto& kv : r->kvs) {
      if (visible && !visible(std::string(keys::leaf(kv.key)))) continue;
      auto rec = model::decode<model::AppRecord>(kv.value);
      if (!rec) continue;
      json services = json::array();
      for (const auto& [name, _] : rec->spec.services) services.push_back(name);
      apps.push_back({{"app", std::string(keys::leaf(kv.key))},
                      {"version", rec->version},
                      {"updated_at", toUnixMillis(rec->updated_at)},
                      {"services", services}});
    }
    return jsonResponse(200, {{"apps", apps}, {"revision", r->revision}});
  }

  ApiResponse getApp(const std::string& app, bool full) {
    auto s = loadSnapshot(store(), app);
    if (!s) return statusResponse(s.status());
    auto it = s->apps.find(app);
    if (it == s->apps.end()) return errorResponse(404, "app \"" + app + "\" does not exist");
    const auto& rec = it->second;
    json services = json::array();
    for (const auto& [_, svc] : rec.spec.services) {
      services.push_back(serviceRow(*s, app, rec, svc, now()));
    }
    json out = {{"app", app},
                {"version", rec.version},
                {"updated_at", toUnixMillis(rec.updated_at)},
                {"spec", rec.spec},
                {"source", rec.source},
                {"services", services},
                {"revision", s->revision}};
    if (!full) hideEnv(out);
    return jsonResponse(200, out);
  }

  ApiResponse deleteApp(const std::string& app) {
    const std::string key = keys::app(app);
    auto t = store().txn(
        {state::Compare{
            key, state::Compare::Target::kVersion, state::Compare::Op::kGreater, 0, {}}},
        {state::Op::del(key), state::Op::delPrefix(std::string(keys::kScale) + app + "/")});
    if (!t) return statusResponse(t.status());
    if (!t->succeeded) return errorResponse(404, "app \"" + app + "\" does not exist");
    return jsonResponse(200, {{"app", app}, {"deleted", true}, {"revision", t->revision}});
  }

  ApiResponse listServices(const std::string& app, const Visible& visible = {}) {
    if (!app.empty() && !isValidName(app)) return errorResponse(400, "invalid app name");
    auto s = loadSnapshot(store(), app);
    if (!s) return statusResponse(s.status());
    json rows = json::array();
    for (const auto& [name, rec] : s->apps) {
      if (visible && !visible(name)) continue;
      for (const auto& [_, svc] : rec.spec.services) {
        rows.push_back(serviceRow(*s, name, rec, svc, now()));
      }
    }
    return jsonResponse(200, {{"services", rows}, {"revision", s->revision}});
  }

  // GET /v1/services?index=N[&wait=5m]: blocks until the services or their instances change
  // after revision N (the `revision` of a previous answer), for at most `wait` (default 5m,
  // at most 10m).
  ApiResponse blockingServices(const std::string& app, const std::string& index_text,
                               const std::string& wait_text, Visible visible = {}) {
    if (!app.empty() && !isValidName(app)) return errorResponse(400, "invalid app name");
    int64_t index = -1;
    if (!index_text.empty() && index_text.size() <= 18 &&
        std::all_of(index_text.begin(), index_text.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
      index = std::stoll(index_text);
    }
    if (index < 0) return errorResponse(400, "expected index=N, the revision of an earlier answer");
    Duration wait = Duration(5 * 60'000);
    if (!wait_text.empty()) {
      auto d = parseDuration(wait_text);
      if (!d || d->count() < 0 || *d > Duration(10 * 60'000)) {
        return errorResponse(400, "expected wait=D, a duration of at most 10m (e.g. 30s)");
      }
      wait = *d;
    }
    auto src = std::make_unique<BlockingAnswer>(
        [this, app, visible = std::move(visible)] { return listServices(app, visible); },
        deps.clock, deps.clock.steadyNow() + wait,
        std::vector<std::string>{std::string(keys::kApps), std::string(keys::kInstances),
                                 std::string(keys::kStatus), std::string(keys::kScale),
                                 std::string(keys::kRollouts)});
    if (Status st = src->start(store(), index); !st) return statusResponse(st);
    ApiResponse r;
    r.stream = std::move(src);
    return r;
  }

  ApiResponse listInstances(const std::string& app, const std::string& service,
                            const std::string& state, const Visible& visible = {}) {
    if (!app.empty() && !isValidName(app)) return errorResponse(400, "invalid app name");
    if (!state.empty() && !model::parseInstanceState(state)) {
      return errorResponse(400, "unknown state \"" + state +
                                    "\": expected pending, starting, healthy, unhealthy, "
                                    "stopping, stopped or failed");
    }
    auto s = loadSnapshot(store(), app);
    if (!s) return statusResponse(s.status());
    json rows = json::array();
    for (const auto& inst : s->instances) {
      if (visible && !visible(inst.app)) continue;
      if (!service.empty() && inst.service != service) continue;
      auto st = s->status.find(inst.id);
      const model::InstanceStatus* sp = st == s->status.end() ? nullptr : &st->second;
      auto state_now = sp ? sp->state : model::InstanceState::kPending;
      if (!state.empty() && model::toString(state_now) != state) continue;
      rows.push_back(instanceRow(inst, sp));
    }
    return jsonResponse(200, {{"instances", rows}, {"revision", s->revision}});
  }

  ApiResponse listNodes() {
    auto r = store().list(std::string(keys::kNodes));
    if (!r) return statusResponse(r.status());
    json rows = json::array();
    for (const auto& kv : r->kvs) {
      auto rec = model::decode<model::NodeRecord>(kv.value);
      if (rec) rows.push_back(*rec);
    }
    return jsonResponse(200, {{"nodes", rows}, {"revision", r->revision}});
  }

  // The app record and the service's spec, or a 404 response.
  std::variant<std::pair<model::AppRecord, model::ServiceSpec>, ApiResponse> findService(
      const std::string& app, const std::string& svc) {
    auto cur = store().get(keys::app(app));
    if (!cur) return statusResponse(cur.status());
    if (!cur->has_value()) return errorResponse(404, "app \"" + app + "\" does not exist");
    auto rec = model::decode<model::AppRecord>((*cur)->value);
    if (!rec) return statusResponse(rec.status());
    auto it = rec->spec.services.find(svc);
    if (it == rec->spec.services.end()) {
      return errorResponse(404, "app \"" + app + "\" has no service \"" + svc + "\"");
    }
    auto spec = it->second;
    return std::make_pair(std::move(rec).value(), std::move(spec));
  }

  ApiResponse setScale(const std::string& app, const std::string& svc, const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return errorResponse(400, "expected a JSON object {\"min\": N, \"max\": N, \"for\": \"2h\"}");
    }
    std::optional<int> min, max;
    std::optional<Duration> for_;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "min" || k == "max") {
        if (it->is_null()) continue;
        if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 100000) {
          return errorResponse(400, "expected \"" + k + "\" to be an integer from 0 to 100000");
        }
        (k == "min" ? min : max) = static_cast<int>(it->get<int64_t>());
      } else if (k == "for") {
        if (it->is_null()) continue;
        auto d = it->is_string() ? parseDuration(it->get<std::string>()) : std::nullopt;
        if (!d || d->count() <= 0) {
          return errorResponse(400, "expected \"for\" to be a duration such as \"2h\" or \"30m\"");
        }
        for_ = *d;
      } else {
        return errorResponse(400, "unknown key \"" + k + "\": expected min, max or for");
      }
    }
    if (!min && !max) return errorResponse(400, "expected \"min\" or \"max\" (or both)");
    auto found = findService(app, svc);
    if (auto* err = std::get_if<ApiResponse>(&found)) return std::move(*err);
    const auto& spec = std::get<0>(found).second;
    const std::string key = keys::scale(app, svc);
    for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
      auto cur = store().get(key);
      if (!cur) return statusResponse(cur.status());
      model::ScaleOverride ov;
      state::Compare cmp = state::Compare::absent(key);
      if (cur->has_value()) {
        cmp = state::Compare::modRevisionIs(key, (*cur)->mod_revision);
        auto old = model::decode<model::ScaleOverride>((*cur)->value);
        if (old && overrideActive(*old, now())) ov = *old;  // merge into the one in force
      }
      if (min) ov.min = min;
      if (max) ov.max = max;
      ov.set_at = now();
      ov.expires_at = for_ ? std::optional<TimePoint>(now() + *for_) : std::nullopt;
      // Checked before boundsInForce(), which would lower min to max.
      autoscaler::BoundsInForce base = autoscaler::boundsInForce(spec.scale, nullptr, now());
      int want_min = ov.min.value_or(base.min), want_max = ov.max.value_or(base.max);
      if (want_min > want_max) {
        return errorResponse(400, "min (" + std::to_string(want_min) + ") must not exceed max (" +
                                      std::to_string(want_max) + ") for " + app + "/" + svc);
      }
      autoscaler::BoundsInForce b = autoscaler::boundsInForce(spec.scale, &ov, now());
      auto t = store().txn({cmp}, {state::Op::put(key, model::encode(ov))});
      if (!t) return statusResponse(t.status());
      if (t->succeeded) {
        return jsonResponse(200, {{"app", app},
                                  {"service", svc},
                                  {"min", b.min},
                                  {"max", b.max},
                                  {"source", "override"},
                                  {"expires_at", ov.expires_at ? json(toUnixMillis(*ov.expires_at))
                                                               : json(nullptr)}});
      }
    }
    return errorResponse(409, "the scale of " + app + "/" + svc + " is being changed concurrently");
  }

  ApiResponse clearScale(const std::string& app, const std::string& svc) {
    auto t = store().txn({}, {state::Op::del(keys::scale(app, svc))});
    if (!t) return statusResponse(t.status());
    return jsonResponse(200, {{"app", app}, {"service", svc}, {"cleared", true}});
  }

  ApiResponse logs(const std::string& app, const std::string& svc,
                   const std::map<std::string, std::string>& query) {
    LogRequest lr{app, svc, "stdout", false, std::nullopt};
    for (const auto& [k, v] : query) {
      if (k == "stream") {
        if (v != "stdout" && v != "stderr") {
          return errorResponse(400, "expected stream=stdout or stream=stderr");
        }
        lr.stream = v;
      } else if (k == "follow") {
        lr.follow = v == "1" || v == "true";
      } else if (k == "tail") {
        int n = 0;
        bool ok = !v.empty() && v.size() <= 7 &&
                  std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (ok) n = std::stoi(v);
        if (!ok) return errorResponse(400, "expected tail=N, a number of lines");
        lr.tail = n;
      }
    }
    auto found = findService(app, svc);
    if (auto* err = std::get_if<ApiResponse>(&found)) return std::move(*err);
    if (!deps.logs) return errorResponse(503, "logs are not available on this agent");
    auto src = deps.logs(lr);
    if (!src) return statusResponse(src.status());
    ApiResponse r;
    r.content_type = "text/plain; charset=utf-8";
    // Streamed, followed or not: the reader takes the files from disk a chunk at a time as the
    // client reads, so neither their size nor a slow client costs the agent memory.
    r.stream = std::move(src).value();
    return r;
  }

  // POST /v1/apikeys {"name": "...", "scopes": ["..."]}: the key is in this answer only.
  ApiResponse createApiKey(const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return errorResponse(400, "expected a JSON object {\"name\": \"...\"}");
    }
    std::string name;
    std::vector<std::string> scopes;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "name") {
        if (!it->is_string() || it->get<std::string>().empty() ||
            it->get<std::string>().size() > kMaxApiKeyName ||
            !isPrintableText(it->get<std::string>())) {
          return errorResponse(400,
                               "expected \"name\" to be a string of 1-128 printable "
                               "characters");
        }
        name = it->get<std::string>();
      } else if (k == "scopes") {
        if (it->is_null()) continue;
        bool ok = it->is_array() && it->size() <= kMaxApiKeyScopes;
        for (const auto& e : ok ? *it : json::array()) {
          ok = ok && e.is_string() && !e.get<std::string>().empty() &&
               e.get<std::string>().size() <= kMaxApiKeyScope &&
               isPrintableText(e.get<std::string>());
          if (ok) scopes.push_back(e.get<std::string>());
        }
        if (!ok) {
          return errorResponse(400,
                               "expected \"scopes\" to be an array of at most 32 "
                               "non-empty strings");
        }
      } else {
        return errorResponse(400, "unknown key \"" + k + "\": expected name or scopes");
      }
    }
    if (name.empty()) return errorResponse(400, "expected \"name\": the key's name");
    // An id collision (8 random bytes) is retried once; a second one means something is off.
    for (int attempt = 0;; ++attempt) {
      auto created = api_keys.create(name, scopes, now());
      if (!created && created.status().code() == Code::kAlreadyExists && attempt == 0) continue;
      if (!created) return statusResponse(created.status());
      json row = apiKeyRow(created->record);
      row["key"] = created->key;
      return jsonResponse(201, row);
    }
  }

  ApiResponse listApiKeys() {
    auto all = api_keys.list();
    if (!all) return statusResponse(all.status());
    std::sort(all->begin(), all->end(), [](const auto& a, const auto& b) {
      return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
    });
    json rows = json::array();
    for (const auto& r : *all) rows.push_back(apiKeyRow(r));
    return jsonResponse(200, {{"apikeys", rows}});
  }

  ApiResponse deleteApiKey(const std::string& id) {
    if (!isApiKeyId(id)) {
      return errorResponse(400, "invalid API key id \"" + id + "\": expected 16 hex characters");
    }
    auto cur = store().get(auth::apiKeyStoreKey(id));
    if (!cur) return statusResponse(cur.status());
    if (!cur->has_value()) return errorResponse(404, "API key \"" + id + "\" does not exist");
    Status st = api_keys.revoke(id);
    if (!st) return statusResponse(st);
    return jsonResponse(200, {{"id", id}, {"deleted", true}});
  }

  // POST /v1/tokens {"owner": "alice", "ttl": "24h", "rules": [...]}: the token text is in this
  // answer only. A token may not grant more than it holds, nor outlive itself.
  ApiResponse createToken(const Caller& caller, const std::string& body) {
    json j = json::parse(body, nullptr, false);
    const std::string form =
        "expected {\"owner\": \"...\", \"ttl\": \"24h\", \"rules\": [{\"kind\": \"secrets\", "
        "\"pattern\": \"shop/*\", \"capabilities\": [\"read\"]}]}";
    if (j.is_discarded() || !j.is_object()) return errorResponse(400, form);
    std::string owner;
    std::optional<Duration> ttl;
    std::vector<acl::Rule> rules;
    bool has_rules = false;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "owner") {
        if (!it->is_string() || it->get<std::string>().empty() ||
            it->get<std::string>().size() > kMaxTokenOwner ||
            !isPrintableText(it->get<std::string>())) {
          return errorResponse(400, "expected \"owner\" to be 1-128 printable characters");
        }
        owner = it->get<std::string>();
      } else if (k == "ttl") {
        if (it->is_null()) continue;
        auto d = it->is_string() ? parseDuration(it->get<std::string>()) : std::nullopt;
        if (!d || d->count() < 1000 || *d > kMaxTokenTtl) {
          return errorResponse(400,
                               "expected \"ttl\" to be a duration from 1s to 87600h (10 "
                               "years), e.g. \"24h\"");
        }
        ttl = *d;
      } else if (k == "rules") {
        has_rules = true;
        if (!it->is_array() || it->empty() || it->size() > kMaxTokenRules) {
          return errorResponse(400, "expected \"rules\" to be an array of 1 to 64 rules");
        }
        for (const auto& e : *it) {
          Result<acl::Rule> rule =
              invalidArgument("a rule is \"KIND:PATTERN:CAPS\" or " +
                              std::string("{\"kind\", \"pattern\", \"capabilities\"}"));
          if (e.is_string()) {
            rule = acl::parseRule(e.get<std::string>());
          } else if (e.is_object() && e.size() == 3 && e.contains("kind") &&
                     e["kind"].is_string() && e.contains("pattern") && e["pattern"].is_string() &&
                     e.contains("capabilities") && e["capabilities"].is_array()) {
            std::vector<std::string> caps;
            for (const auto& c : e["capabilities"]) {
              caps.push_back(c.is_string() ? c.get<std::string>() : c.dump());
            }
            rule =
                acl::makeRule(e["kind"].get<std::string>(), e["pattern"].get<std::string>(), caps);
          }
          if (!rule) return errorResponse(400, rule.status().message());
          rules.push_back(std::move(rule).value());
        }
      } else {
        return errorResponse(
            400, "unknown key \"" + k.substr(0, 100) + "\": expected owner, ttl and rules");
      }
    }
    if (owner.empty()) return errorResponse(400, "expected \"owner\": who the token is for");
    if (!has_rules) return errorResponse(400, "expected \"rules\": what the token may do");
    if (auto extra = acl::notCovered(caller.rules, rules); !extra.empty()) {
      std::string what;
      for (const auto& r : extra) what += (what.empty() ? "" : ", ") + acl::ruleText(r);
      return errorResponse(403,
                           "a token may not grant more than its own rules; this one does "
                           "not hold " +
                               what);
    }
    std::optional<TimePoint> expires_at;
    if (ttl) expires_at = now() + *ttl;
    if (caller.token && caller.token->expires_at) {
      const TimePoint limit = *caller.token->expires_at;
      if (!expires_at) {
        expires_at = limit;  // a child never outlives the token that made it
      } else if (*expires_at > limit) {
        return errorResponse(403, "the new token would outlive this one, which expires at " +
                                      formatUtc(limit) + "; ask for a shorter ttl");
      }
    }
    for (int attempt = 0;; ++attempt) {
      auto created = tokens.create(owner, rules, now(), expires_at, caller.who);
      if (!created && created.status().code() == Code::kAlreadyExists && attempt == 0) continue;
      if (!created) return statusResponse(created.status());
      json row = tokenRow(created->record, now());
      row["token"] = created->token;
      return jsonResponse(201, row);
    }
  }

  ApiResponse listTokens() {
    auto all = tokens.list();
    if (!all) return statusResponse(all.status());
    json rows = json::array();
    for (const auto& r : *all) rows.push_back(tokenRow(r, now()));
    return jsonResponse(200, {{"tokens", rows}});
  }

  ApiResponse revokeToken(const std::string& accessor) {
    if (!isAccessor(accessor)) {
      return errorResponse(
          400, "invalid accessor \"" + accessor.substr(0, 100) + "\": expected 16 hex characters");
    }
    auto gone = tokens.revoke(accessor);
    if (!gone) return statusResponse(gone.status());
    if (!*gone) return errorResponse(404, "no token has the accessor " + accessor);
    return jsonResponse(200, {{"accessor", accessor}, {"revoked", true}});
  }

  ApiResponse tokenSelf(const Caller& caller) {
    if (caller.token) return jsonResponse(200, tokenRow(*caller.token, now()));
    return jsonResponse(200, {{"accessor", nullptr},
                              {"owner", caller.who},
                              {"rules", rulesJson(caller.rules)},
                              {"created_at", nullptr},
                              {"expires_at", nullptr},
                              {"expired", false},
                              {"created_by", nullptr}});
  }

  ApiResponse listIntentions() {
    auto r = store().list(std::string(keys::kIntentions));
    if (!r) return statusResponse(r.status());
    json rows = json::array();
    for (const auto& kv : r->kvs) {
      auto rec = model::decode<model::IntentionRecord>(kv.value);
      if (rec) rows.push_back(*rec);
    }
    return jsonResponse(200, {{"intentions", rows}, {"revision", r->revision}});
  }

  // PUT /v1/intentions {"source": "shop/web", "destination": "billing/*", "action": "allow"}:
  // one rule per pair; a new action replaces the old one.
  ApiResponse putIntention(const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return errorResponse(400,
                           "expected a JSON object {\"source\": \"app/svc\", \"destination\": "
                           "\"app/svc\", \"action\": \"allow\"}");
    }
    model::IntentionRecord rec;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      std::string* into = k == "source"        ? &rec.source
                          : k == "destination" ? &rec.destination
                          : k == "action"      ? &rec.action
                                               : nullptr;
      if (into == nullptr) {
        return errorResponse(400, "unknown key \"" + k.substr(0, 100) +
                                      "\": expected source, destination and action");
      }
      if (!it->is_string()) return errorResponse(400, "expected \"" + k + "\" to be a string");
      *into = it->get<std::string>();
    }
    for (const char* k : {"source", "destination", "action"}) {
      if (!j.contains(k)) return errorResponse(400, std::string("expected \"") + k + "\"");
    }
    if (auto rule = mesh::toRule(rec); !rule) {
      return errorResponse(400, rule.status().message());
    }
    rec.updated_at = now();
    const std::string key = keys::intention(rec.source, rec.destination);
    auto t = store().txn({}, {state::Op::put(key, model::encode(rec))});
    if (!t) return statusResponse(t.status());
    json out = rec;
    out["revision"] = t->revision;
    return jsonResponse(200, out);
  }

  ApiResponse deleteIntention(const std::string& source, const std::string& destination) {
    if (!mesh::Pattern::parse(source) || !mesh::Pattern::parse(destination)) {
      return errorResponse(400,
                           "expected ?source=...&destination=..., each APP/SERVICE, APP/* or *");
    }
    const std::string key = keys::intention(source, destination);
    auto t = store().txn(
        {state::Compare{
            key, state::Compare::Target::kVersion, state::Compare::Op::kGreater, 0, {}}},
        {state::Op::del(key)});
    if (!t) return statusResponse(t.status());
    if (!t->succeeded) {
      return errorResponse(404, "no rule for " + source + " -> " + destination);
    }
    return jsonResponse(200, {{"source", source},
                              {"destination", destination},
                              {"deleted", true},
                              {"revision", t->revision}});
  }

  // GET /v1/intentions/check?source=shop/web&destination=billing/api: the decision the mesh
  // makes for that pair now, and why (`baton why`).
  ApiResponse checkIntention(const std::string& source, const std::string& destination) {
    auto src = mesh::parseServiceRef(source);
    if (!src) return errorResponse(400, "source: " + src.status().message());
    auto dst = mesh::parseServiceRef(destination);
    if (!dst) return errorResponse(400, "destination: " + dst.status().message());
    auto found = findService(src->app, src->service);
    if (auto* err = std::get_if<ApiResponse>(&found)) return std::move(*err);
    auto r = store().list(std::string(keys::kIntentions));
    if (!r) return statusResponse(r.status());
    std::vector<mesh::Rule> rules;
    for (const auto& kv : r->kvs) {
      auto rec = model::decode<model::IntentionRecord>(kv.value);
      if (!rec) continue;
      if (auto rule = mesh::toRule(*rec)) rules.push_back(std::move(rule).value());
    }
    mesh::Caller caller{*src, std::get<0>(found).second.upstreams};
    mesh::Verdict v = mesh::decide(rules, caller, *dst);
    json rule = nullptr;
    if (v.rule) {
      rule = {{"source", v.rule->source.str()},
              {"destination", v.rule->destination.str()},
              {"action", mesh::toString(v.rule->action)}};
    }
    return jsonResponse(200, {{"source", source},
                              {"destination", destination},
                              {"allowed", v.allowed},
                              {"reason", v.reason},
                              {"rule", rule},
                              {"revision", r->revision}});
  }

  ApiResponse events(bool full) {
    auto s = std::make_unique<EventStream>(full);
    Status st = s->start(store(), deps.events);
    if (!st) return statusResponse(st);
    ApiResponse r;
    r.content_type = "application/x-ndjson";
    r.stream = std::move(s);
    return r;
  }

  ApiResponse metrics() {
    std::string out;
    auto apps = store().list(std::string(keys::kApps));
    if (!apps) return statusResponse(apps.status());
    out += "# HELP baton_apps Apps deployed.\n# TYPE baton_apps gauge\n";
    out += "baton_apps " + std::to_string(apps->kvs.size()) + "\n";
    std::map<std::string, int> by_state;
    for (auto st : {model::InstanceState::kPending, model::InstanceState::kStarting,
                    model::InstanceState::kHealthy, model::InstanceState::kUnhealthy,
                    model::InstanceState::kStopping, model::InstanceState::kStopped,
                    model::InstanceState::kFailed}) {
      by_state[model::toString(st)] = 0;
    }
    auto s = loadSnapshot(store(), "");
    if (!s) return statusResponse(s.status());
    for (const auto& inst : s->instances) {
      auto st = s->status.find(inst.id);
      by_state[model::toString(st == s->status.end() ? model::InstanceState::kPending
                                                     : st->second.state)]++;
    }
    out += "# HELP baton_instances Instances by state.\n# TYPE baton_instances gauge\n";
    for (const auto& [state, n] : by_state) {
      out += "baton_instances{state=\"" + state + "\"} " + std::to_string(n) + "\n";
    }
    out +=
        "# HELP baton_api_requests_total API responses by status code.\n"
        "# TYPE baton_api_requests_total counter\n";
    {
      std::lock_guard lock(counts_mu);
      for (const auto& [code, n] : counts) {
        out += "baton_api_requests_total{code=\"" + std::to_string(code) + "\"} " +
               std::to_string(n) + "\n";
      }
    }
    if (deps.metrics) out += deps.metrics();
    ApiResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = std::move(out);
    return r;
  }
};

Handlers::Handlers(ApiDeps deps, ApiOptions options)
    : impl_(std::make_unique<Impl>(std::move(deps), std::move(options))) {}

Handlers::~Handlers() = default;

ApiResponse Handlers::handle(const ApiRequest& request) {
  ApiResponse r;
  try {
    r = impl_->dispatch(request);
  } catch (const std::exception& e) {
    // Should not happen: handlers check their input. Never let a request take the agent down.
    r = errorResponse(500, std::string("internal error: ") + e.what());
  }
  countResponse(r.status);
  return r;
}

void Handlers::countResponse(int status) {
  std::lock_guard lock(impl_->counts_mu);
  impl_->counts[status]++;
}

}  // namespace baton::api
