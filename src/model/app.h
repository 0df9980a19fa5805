// The app model: what a manifest (app.toml) says, after parsing and validation. Plain values,
// no I/O. The spec module builds these from TOML; the store keeps them as JSON (model/json.h).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace baton::model {

struct HealthCheck {
  enum class Kind { kTcp, kHttp };
  Kind kind = Kind::kTcp;
  std::string path;                        // kHttp only: "/healthz"
  Duration interval = Duration(1000);      // between probes
  Duration timeout = Duration(1000);       // per probe
  bool operator==(const HealthCheck&) const = default;
};

// One [[services.X.scale.schedule]] entry: a one-off window (start/end) or a recurring one
// (cron + duration), in an IANA time zone. Either bound may be absent (unchanged).
struct ScheduleEntry {
  std::string name;
  std::string start;                       // "YYYY-MM-DD HH:MM[:SS]" in `timezone`, one-off
  std::string end;
  std::string cron;                        // "0 8 * * MON-FRI", recurring
  std::optional<Duration> duration;        // recurring window length
  std::string timezone = "UTC";
  std::optional<int> min;
  std::optional<int> max;
  bool operator==(const ScheduleEntry&) const = default;
};

struct ScaleSpec {
  int min = 1;                             // 0 = scale to zero when idle
  int max = 1;
  int concurrency = 100;                   // target in-flight requests per instance
  Duration idle = Duration(300'000);       // idle time before scaling to zero (min = 0)
  std::vector<ScheduleEntry> schedule;     // later entries win
  bool operator==(const ScaleSpec&) const = default;
};

// What the node puts in every instance's environment besides the service's `env`
// (NodeRuntime::startTask). `${NAME}` in `run` may name these or a key of `env`; the manifest
// parser refuses any other name, as the exec driver would when starting the instance.
inline constexpr std::array<std::string_view, 6> kInstanceEnv = {
    "PORT", "PATH", "BATON_ADDR", "BATON_APP", "BATON_SERVICE", "BATON_INSTANCE_ID"};

// A service that lists secrets also gets BATON_SECRETS_DIR: its secrets' files are there, one
// per key, as PATH/KEY. An `env` value "secret:PATH#KEY" is that key's value.
inline constexpr std::string_view kSecretsDirEnv = "BATON_SECRETS_DIR";
inline constexpr std::string_view kSecretEnvPrefix = "secret:";

struct ServiceSpec {
  std::string name;
  std::string driver = "exec";             // "exec", "docker", "oci", "wasm"
  std::vector<std::string> run;            // exec: argv, ${VAR} expanded from the env
  std::string image;                       // docker / oci
  std::string wasm;                        // wasm: module path
  std::string workdir;                     // the manifest's directory (set by `baton up`):
                                           // exec instances run there; relative paths resolve
  std::optional<int> port;                 // fixed port; default: a free one in ${PORT}
  std::map<std::string, std::string> env;
  HealthCheck health;
  std::vector<std::string> upstreams;      // services this one may call (mesh)
  std::string api;                         // "read": its instances may read their own app
                                           // through the agent's API (docs/mesh.md); "": no
  std::vector<std::string> secrets;        // secret paths made available (docs/secrets.md)
  // What a new version of one of them does to running instances: "roll" (a rolling update) or
  // a signal name ("SIGHUP": the files are rewritten, then the signal is sent).
  std::string on_secret_change = "roll";
  // On instance records only (the controller pins them; empty in the app): the version of each
  // secret the instance gets, so that a new version is a new spec and rolls.
  std::map<std::string, int64_t> secret_versions;
  double cpu = 0.1;                        // cores: placement and a cgroup weight (not a cap)
  double cpu_limit = 0;                    // a hard CPU quota in cores; 0 = none
  uint64_t memory = 128ull << 20;          // bytes, for placement and the memory limit
  std::string user;                        // "" = a dynamic per-service UID; else a user name
  int64_t pids = 0;                        // process/thread limit; 0 = the node's default
  bool read_only = true;                   // containers: a read-only root (a tmpfs on /tmp)
  Duration kill_timeout = Duration(5000);  // SIGTERM -> SIGKILL grace
  ScaleSpec scale;
  bool operator==(const ServiceSpec&) const = default;
};

struct Route {
  std::string host;                        // empty: any host
  std::string path = "/";                  // prefix, longest wins
  std::string service;
  std::string auth = "public";             // "public", "api-key", or an identity provider
  std::map<std::string, std::string> claims;
  bool strip_prefix = false;
  bool forward_authorization = false;  // api-key/identity routes: relay the client's Authorization
  bool operator==(const Route&) const = default;
};

struct AppSpec {
  std::string name;
  std::map<std::string, ServiceSpec> services;  // by name
  std::vector<Route> routes;
  bool operator==(const AppSpec&) const = default;
};

}  // namespace baton::model
