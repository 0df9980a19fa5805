#include "model/json.h"

#include <cstdio>

#include "core/hash.h"

namespace baton::model {
namespace {

using nlohmann::json;

template <typename T>
void getOpt(const json& j, const char* key, T& out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) it->get_to(out);
}
template <typename T>
void getOpt(const json& j, const char* key, std::optional<T>& out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) out = it->get<T>();
}
void getDuration(const json& j, const char* key, Duration& out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) out = Duration(it->get<int64_t>());
}
void getTime(const json& j, const char* key, TimePoint& out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) {
    out = fromUnixMillis(it->get<int64_t>());
  }
}
template <typename T>
json optJson(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

void to_json(json& j, const HealthCheck& v) {
  j = {{"kind", v.kind == HealthCheck::Kind::kHttp ? "http" : "tcp"},
       {"path", v.path},
       {"interval_ms", v.interval.count()},
       {"timeout_ms", v.timeout.count()}};
}
void from_json(const json& j, HealthCheck& v) {
  std::string kind = j.value("kind", "tcp");
  v.kind = kind == "http" ? HealthCheck::Kind::kHttp : HealthCheck::Kind::kTcp;
  getOpt(j, "path", v.path);
  getDuration(j, "interval_ms", v.interval);
  getDuration(j, "timeout_ms", v.timeout);
}

void to_json(json& j, const ScheduleEntry& v) {
  j = {{"name", v.name},   {"start", v.start}, {"end", v.end},
       {"cron", v.cron},   {"timezone", v.timezone},
       {"duration_ms", v.duration ? json(v.duration->count()) : json(nullptr)},
       {"min", optJson(v.min)}, {"max", optJson(v.max)}};
}
void from_json(const json& j, ScheduleEntry& v) {
  getOpt(j, "name", v.name);
  getOpt(j, "start", v.start);
  getOpt(j, "end", v.end);
  getOpt(j, "cron", v.cron);
  getOpt(j, "timezone", v.timezone);
  if (auto it = j.find("duration_ms"); it != j.end() && !it->is_null()) {
    v.duration = Duration(it->get<int64_t>());
  }
  getOpt(j, "min", v.min);
  getOpt(j, "max", v.max);
}

void to_json(json& j, const ScaleSpec& v) {
  j = {{"min", v.min}, {"max", v.max}, {"concurrency", v.concurrency},
       {"idle_ms", v.idle.count()}, {"schedule", v.schedule}};
}
void from_json(const json& j, ScaleSpec& v) {
  getOpt(j, "min", v.min);
  getOpt(j, "max", v.max);
  getOpt(j, "concurrency", v.concurrency);
  getDuration(j, "idle_ms", v.idle);
  getOpt(j, "schedule", v.schedule);
}

void to_json(json& j, const ServiceSpec& v) {
  j = {{"name", v.name},
       {"driver", v.driver},
       {"run", v.run},
       {"image", v.image},
       {"wasm", v.wasm},
       {"workdir", v.workdir},
       {"port", optJson(v.port)},
       {"env", v.env},
       {"health", v.health},
       {"upstreams", v.upstreams},
       {"api", v.api},
       {"secrets", v.secrets},
       {"cpu", v.cpu},
       {"cpu_limit", v.cpu_limit},
       {"memory", v.memory},
       {"user", v.user},
       {"pids", v.pids},
       {"read_only", v.read_only},
       {"kill_timeout_ms", v.kill_timeout.count()},
       {"scale", v.scale}};
  // Only when set, so that the specs (and hashes) of services without secrets stay as they were.
  if (v.on_secret_change != "roll") j["on_secret_change"] = v.on_secret_change;
  if (!v.secret_versions.empty()) j["secret_versions"] = v.secret_versions;
}
void from_json(const json& j, ServiceSpec& v) {
  getOpt(j, "name", v.name);
  getOpt(j, "driver", v.driver);
  getOpt(j, "run", v.run);
  getOpt(j, "image", v.image);
  getOpt(j, "wasm", v.wasm);
  getOpt(j, "workdir", v.workdir);
  getOpt(j, "port", v.port);
  getOpt(j, "env", v.env);
  getOpt(j, "health", v.health);
  getOpt(j, "upstreams", v.upstreams);
  getOpt(j, "api", v.api);
  getOpt(j, "secrets", v.secrets);
  getOpt(j, "on_secret_change", v.on_secret_change);
  getOpt(j, "secret_versions", v.secret_versions);
  getOpt(j, "cpu", v.cpu);
  getOpt(j, "cpu_limit", v.cpu_limit);
  getOpt(j, "memory", v.memory);
  getOpt(j, "user", v.user);
  getOpt(j, "pids", v.pids);
  getOpt(j, "read_only", v.read_only);
  getDuration(j, "kill_timeout_ms", v.kill_timeout);
  getOpt(j, "scale", v.scale);
}

void to_json(json& j, const Route& v) {
  j = {{"host", v.host},       {"path", v.path},     {"service", v.service},
       {"auth", v.auth},       {"claims", v.claims}, {"strip_prefix", v.strip_prefix},
       {"forward_authorization", v.forward_authorization}};
}
void from_json(const json& j, Route& v) {
  getOpt(j, "host", v.host);
  getOpt(j, "path", v.path);
  getOpt(j, "service", v.service);
  getOpt(j, "auth", v.auth);
  getOpt(j, "claims", v.claims);
  getOpt(j, "strip_prefix", v.strip_prefix);
  getOpt(j, "forward_authorization", v.forward_authorization);
}

void to_json(json& j, const AppSpec& v) {
  j = {{"name", v.name}, {"services", v.services}, {"routes", v.routes}};
}
void from_json(const json& j, AppSpec& v) {
  getOpt(j, "name", v.name);
  getOpt(j, "services", v.services);
  getOpt(j, "routes", v.routes);
}

void to_json(json& j, const AppRecord& v) {
  j = {{"spec", v.spec}, {"version", v.version}, {"source", v.source},
       {"updated_at", toUnixMillis(v.updated_at)}};
}
void from_json(const json& j, AppRecord& v) {
  j.at("spec").get_to(v.spec);
  getOpt(j, "version", v.version);
  getOpt(j, "source", v.source);
  getTime(j, "updated_at", v.updated_at);
}

const char* toString(InstanceState s) {
  switch (s) {
    case InstanceState::kPending: return "pending";
    case InstanceState::kStarting: return "starting";
    case InstanceState::kHealthy: return "healthy";
    case InstanceState::kUnhealthy: return "unhealthy";
    case InstanceState::kStopping: return "stopping";
    case InstanceState::kStopped: return "stopped";
    case InstanceState::kFailed: return "failed";
  }
  return "pending";
}

std::optional<InstanceState> parseInstanceState(std::string_view s) {
  for (auto st : {InstanceState::kPending, InstanceState::kStarting, InstanceState::kHealthy,
                  InstanceState::kUnhealthy, InstanceState::kStopping, InstanceState::kStopped,
                  InstanceState::kFailed}) {
    if (s == toString(st)) return st;
  }
  return std::nullopt;
}

void to_json(json& j, const InstanceRecord& v) {
  j = {{"id", v.id},
       {"app", v.app},
       {"service", v.service},
       {"node", v.node},
       {"version", v.version},
       {"spec_hash", v.spec_hash},
       {"spec", v.spec},
       {"desired_running", v.desired_running},
       {"created_at", toUnixMillis(v.created_at)}};
}
void from_json(const json& j, InstanceRecord& v) {
  j.at("id").get_to(v.id);
  getOpt(j, "app", v.app);
  getOpt(j, "service", v.service);
  getOpt(j, "node", v.node);
  getOpt(j, "version", v.version);
  getOpt(j, "spec_hash", v.spec_hash);
  getOpt(j, "spec", v.spec);
  getOpt(j, "desired_running", v.desired_running);
  getTime(j, "created_at", v.created_at);
}

void to_json(json& j, const InstanceStatus& v) {
  j = {{"id", v.id},
       {"node", v.node},
       {"state", toString(v.state)},
       {"address", v.address},
       {"port", v.port},
       {"pid", v.pid},
       {"restarts", v.restarts},
       {"last_exit_code", optJson(v.last_exit_code)},
       {"message", v.message},
       {"cpu_throttled", v.cpu_throttled},
       {"last_failure", v.last_failure},
       {"started_at", toUnixMillis(v.started_at)},
       {"updated_at", toUnixMillis(v.updated_at)}};
}
void from_json(const json& j, InstanceStatus& v) {
  j.at("id").get_to(v.id);
  getOpt(j, "node", v.node);
  auto state = parseInstanceState(j.value("state", "pending"));
  if (!state) throw json::other_error::create(501, "unknown instance state", &j);
  v.state = *state;
  getOpt(j, "address", v.address);
  getOpt(j, "port", v.port);
  getOpt(j, "pid", v.pid);
  getOpt(j, "restarts", v.restarts);
  getOpt(j, "last_exit_code", v.last_exit_code);
  getOpt(j, "message", v.message);
  getOpt(j, "cpu_throttled", v.cpu_throttled);
  getOpt(j, "last_failure", v.last_failure);
  getTime(j, "started_at", v.started_at);
  getTime(j, "updated_at", v.updated_at);
}

void to_json(json& j, const NodeRecord& v) {
  j = {{"id", v.id},         {"address", v.address}, {"api", v.api},
       {"mesh", v.mesh},     {"network", v.network}, {"cpu", v.cpu},
       {"memory", v.memory}, {"drivers", v.drivers}, {"started_at", toUnixMillis(v.started_at)}};
}
void from_json(const json& j, NodeRecord& v) {
  j.at("id").get_to(v.id);
  getOpt(j, "address", v.address);
  getOpt(j, "api", v.api);
  getOpt(j, "mesh", v.mesh);
  getOpt(j, "network", v.network);
  getOpt(j, "cpu", v.cpu);
  getOpt(j, "memory", v.memory);
  getOpt(j, "drivers", v.drivers);
  getTime(j, "started_at", v.started_at);
}

void to_json(json& j, const ScaleOverride& v) {
  j = {{"min", optJson(v.min)},
       {"max", optJson(v.max)},
       {"expires_at", v.expires_at ? json(toUnixMillis(*v.expires_at)) : json(nullptr)},
       {"set_at", toUnixMillis(v.set_at)}};
}
void from_json(const json& j, ScaleOverride& v) {
  getOpt(j, "min", v.min);
  getOpt(j, "max", v.max);
  if (auto it = j.find("expires_at"); it != j.end() && !it->is_null()) {
    v.expires_at = fromUnixMillis(it->get<int64_t>());
  }
  getTime(j, "set_at", v.set_at);
}

void to_json(json& j, const IntentionRecord& v) {
  j = {{"source", v.source},
       {"destination", v.destination},
       {"action", v.action},
       {"updated_at", toUnixMillis(v.updated_at)}};
}
void from_json(const json& j, IntentionRecord& v) {
  j.at("source").get_to(v.source);
  j.at("destination").get_to(v.destination);
  j.at("action").get_to(v.action);
  getTime(j, "updated_at", v.updated_at);
}

void to_json(json& j, const RolloutRecord& v) {
  const char* phase = v.phase == RolloutRecord::Phase::kComplete ? "complete"
                      : v.phase == RolloutRecord::Phase::kFailed ? "failed"
                                                                   : "in_progress";
  j = {{"spec_hash", v.spec_hash}, {"version", v.version}, {"phase", phase},
       {"message", v.message}, {"updated_at", toUnixMillis(v.updated_at)}};
}
void from_json(const json& j, RolloutRecord& v) {
  getOpt(j, "spec_hash", v.spec_hash);
  getOpt(j, "version", v.version);
  std::string phase = j.value("phase", "in_progress");
  v.phase = phase == "complete" ? RolloutRecord::Phase::kComplete
            : phase == "failed" ? RolloutRecord::Phase::kFailed
                                : RolloutRecord::Phase::kInProgress;
  getOpt(j, "message", v.message);
  getTime(j, "updated_at", v.updated_at);
}

Status checkJsonDepth(std::string_view text, int max_depth) {
  int depth = 0;
  int line = 1;
  int column = 1;  // in bytes
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return invalidArgument("nesting deeper than " + std::to_string(max_depth) +
                               " levels at line " + std::to_string(line) + ", column " +
                               std::to_string(column) + ": expected at most " +
                               std::to_string(max_depth) + " levels of arrays and objects");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;  // an unbalanced one is the parser's to report
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return Status::ok();
}

Result<json> parseJson(std::string_view text, int max_depth) {
  if (Status s = checkJsonDepth(text, max_depth); !s) return s;
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." without the tag.
    std::string what = e.what();
    if (size_t tag = what.find("] "); what.starts_with("[json.") && tag != std::string::npos) {
      what.erase(0, tag + 2);
    }
    return invalidArgument("malformed JSON: " + what);
  }
}

ServiceSpec pinSecretVersions(const ServiceSpec& spec,
                              const std::map<std::string, int64_t>& versions) {
  ServiceSpec pinned = spec;
  if (spec.secrets.empty() || spec.on_secret_change != "roll") return pinned;
  for (const std::string& path : spec.secrets) {
    auto v = versions.find(path);
    pinned.secret_versions[path] = v == versions.end() ? 0 : v->second;
  }
  return pinned;
}

std::string specHash(const ServiceSpec& spec) {
  // Scale bounds do not change what an instance runs: a `baton scale` or a new schedule must
  // not roll the instances. FNV-1a: an identity check, not a security boundary.
  json j = spec;
  j.erase("scale");
  return fnv1a64Hex(j.dump());
}

}  // namespace baton::model
