#include "spec/manifest.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <tuple>

#include "model/image_ref.h"
#include "model/names.h"
#include "secrets/kv.h"
#include "spec/calendar.h"
#include "spec/toml_check.h"

namespace baton::spec {

using detail::Checker;
using detail::joinKey;
using detail::quote;

std::string Diagnostic::toString() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

namespace {

constexpr int64_t kMaxInstances = 1'000'000;
constexpr double kMaxCpu = 1024;
constexpr std::string_view kSecretPrefix = model::kSecretEnvPrefix;

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

using model::isValidName;
using model::kNameRule;

// [A-Za-z_][A-Za-z0-9_]*
bool isEnvKey(std::string_view s) {
  if (s.empty() || !(isAlpha(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return isAlpha(c) || isDigit(c) || c == '_'; });
}

// An identity provider's name: [A-Za-z][A-Za-z0-9_-]*
bool isIdentifier(std::string_view s) {
  if (s.empty() || !isAlpha(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return isAlpha(c) || isDigit(c) || c == '_' || c == '-'; });
}

// A host name, optionally a leading "*." wildcard, optionally ":port".
bool isHost(std::string_view s) {
  if (s.starts_with("*.")) s.remove_prefix(2);
  if (size_t colon = s.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), isDigit) ||
        std::stoi(std::string(port)) > 65535) {
      return false;
    }
    s = s.substr(0, colon);
  }
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return isAlpha(c) || isDigit(c) || c == '-' || c == '.'; });
}

// The drivers that exist: a service for another would be stored and never start.
bool driverAvailable(std::string_view driver) {
  return driver == "exec" || driver == "docker" || driver == "oci";
}

std::string driverNotAvailable(std::string_view driver) {
  std::string when = driver == "wasm" ? "WebAssembly comes with a later issue"
                                      : "this driver is not done yet";
  return "the " + std::string(driver) + " driver is not available yet (" + when +
         "); run = [\"command\", ...] runs a process, image = \"...\" a container through "
         "the Docker Engine API";
}

class ManifestParser {
 public:
  ManifestParser(Checker& c, const ManifestOptions& options) : c_(c), options_(options) {}

  std::optional<model::AppSpec> parse(const toml::table& root) {
    c_.checkKeys(root, "", {"app", "services", "routes"});
    model::AppSpec app;
    if (const toml::node* n = root.get("app")) {
      const auto* s = n->as_string();
      if (s == nullptr || !isValidName(s->get())) {
        c_.expected(*n, "app", kNameRule);
      } else {
        app.name = s->get();
      }
    } else {
      c_.error(root.source(), "app",
               "missing: the manifest must name its app, e.g. app = \"shop\"");
    }

    const toml::table* services = c_.table(root, "", "services");
    if (services == nullptr && root.get("services") == nullptr) {
      c_.error(root.source(), "services",
               "missing: the manifest must define at least one service, e.g. [services.web]");
    }
    if (services != nullptr) {
      if (services->empty()) {
        c_.error(*services, "services", "expected at least one service, e.g. [services.web]");
      }
      for (auto&& [k, v] : *services) {
        std::string path = joinKey("services", k.str());
        if (!isValidName(k.str())) {
          c_.error(
              k.source(), path,
              "invalid service name " + quote(k.str()) + "; expected " + std::string(kNameRule));
        }
        const auto* t = v.as_table();
        if (t == nullptr) {
          c_.expected(v, path, "a table ([" + path + "])");
          continue;
        }
        model::ServiceSpec svc = parseService(*t, path);
        svc.name = std::string(k.str());
        app.services.emplace(svc.name, std::move(svc));
      }
      checkFixedPorts(*services, app);
    }

    if (const toml::array* routes = c_.tableArray(root, "", "routes")) {
      std::map<std::pair<std::string, std::string>, int> seen;  // (host, path) -> line
      for (size_t i = 0; i < routes->size(); ++i) {
        const toml::table& t = *routes->get(i)->as_table();
        std::string path = detail::indexKey("routes", i);
        std::optional<model::Route> r = parseRoute(t, path, app, services);
        if (!r) continue;
        auto [it, inserted] =
            seen.emplace(std::make_pair(r->host, r->path), static_cast<int>(t.source().begin.line));
        if (!inserted) {
          c_.error(c_.keySource(t, "path"), joinKey(path, "path"),
                   "duplicate route for host " + quote(r->host) + " and path " + quote(r->path) +
                       " (first at line " + std::to_string(it->second) + ")");
        }
        app.routes.push_back(std::move(*r));
      }
    }
    if (!c_.ok()) return std::nullopt;
    return app;
  }

 private:
  model::ServiceSpec parseService(const toml::table& t, const std::string& path) {
    c_.checkKeys(t, path,
                 {"run", "image", "driver", "wasm", "port", "env", "health", "upstreams", "api", "secrets",
                  "on_secret_change", "cpu", "cpu_limit", "memory", "user", "pids", "kill_timeout", "scale",
                  "read_only"});
    model::ServiceSpec svc;

    // Workload: run (a command), image (a container; `run` then replaces its command) or wasm.
    std::optional<std::vector<std::string>> run;
    if (const toml::node* n = t.get("run")) {
      const auto* a = n->as_array();
      if (a == nullptr || a->empty()) {
        c_.expected(*n, joinKey(path, "run"),
                    "a non-empty array of strings (the command and its arguments)");
      } else {
        run = c_.stringArray(t, path, "run");
      }
    }
    std::optional<std::string> image = c_.string(t, path, "image");
    std::optional<std::string> wasm = c_.string(t, path, "wasm");
    std::vector<std::string_view> present;
    for (std::string_view k : {"run", "image", "wasm"}) {
      if (t.get(k) != nullptr) present.push_back(k);
    }
    if (present.empty()) {
      c_.error(t.source(), path,
               "missing the workload: expected run (a command), image (a container image, "
               "optionally with run as its command) or wasm (a WebAssembly module)");
    }
    std::string workload = t.get("image") ? "image" : t.get("wasm") ? "wasm" : t.get("run") ? "run" : "";
    // Report each extra workload at its own key, in file order (image + run is one workload).
    std::vector<std::string_view> workloads = present;
    if (t.get("image") && t.get("run") && !t.get("wasm")) workloads = {"image"};
    if (workloads.size() > 1) {
      std::vector<std::pair<toml::source_position, std::string_view>> by_pos;
      for (std::string_view k : workloads) by_pos.emplace_back(c_.keySource(t, k).begin, k);
      std::sort(by_pos.begin(), by_pos.end(), [](const auto& a, const auto& b) {
        return a.first.line != b.first.line ? a.first.line < b.first.line
                                            : a.first.column < b.first.column;
      });
      for (size_t i = 1; i < by_pos.size(); ++i) {
        c_.error(c_.keySource(t, by_pos[i].second), joinKey(path, by_pos[i].second),
                 "a service has exactly one of run, image or wasm, and " +
                     std::string(by_pos[0].second) + " is already set (line " +
                     std::to_string(by_pos[0].first.line) + ")");
      }
      workload.clear();
    }
    if (run) svc.run = std::move(*run);
    if (image) svc.image = std::move(*image);
    if (wasm) svc.wasm = std::move(*wasm);

    std::string default_driver = workload == "image"  ? "docker"
                                 : workload == "wasm" ? "wasm"
                                                      : "exec";
    svc.driver = default_driver;
    if (const toml::node* n = t.get("driver")) {
      const auto* s = n->as_string();
      static const std::set<std::string, std::less<>> kDrivers{"exec", "docker", "oci", "wasm"};
      if (s == nullptr || !kDrivers.contains(s->get())) {
        c_.expected(*n, joinKey(path, "driver"), "one of \"exec\", \"docker\", \"oci\", \"wasm\"");
      } else {
        svc.driver = s->get();
        std::string needs = svc.driver == "exec"                            ? "run"
                            : svc.driver == "docker" || svc.driver == "oci" ? "image"
                                                                            : "wasm";
        if (!workload.empty() && workload != needs) {
          c_.error(*n, joinKey(path, "driver"),
                   "driver " + quote(svc.driver) + " requires " + needs +
                       ", but the service sets " + workload);
        } else if (!driverAvailable(svc.driver)) {
          c_.error(c_.keySource(t, "driver"), joinKey(path, "driver"),
                   driverNotAvailable(svc.driver));
        }
      }
    } else if (workload == "wasm") {
      c_.error(c_.keySource(t, workload), joinKey(path, workload), driverNotAvailable(svc.driver));
    }
    if (image && svc.driver == "docker") {
      if (auto ref = model::parseImageRef(svc.image); !ref) {
        c_.error(*t.get("image"), joinKey(path, "image"),
                 ref.status().message() + "; expected a reference such as "
                 "\"docker.io/library/nginx:1.25\"");
      }
    }
    if (image && svc.driver == "oci") {
      // Where the image's bytes are on the node (a relative path is the manifest's directory's).
      const std::string& ref = svc.image;
      size_t prefix = ref.starts_with("oci-archive:") ? 12 : ref.starts_with("oci:") ? 4 : 0;
      if (prefix == 0 || ref.size() == prefix) {
        c_.expected(*t.get("image"), joinKey(path, "image"),
                    "oci-archive:PATH (an OCI image archive, e.g. from podman save --format "
                    "oci-archive) or oci:PATH (an OCI image layout directory) for driver \"oci\"");
      }
    }
    if (const toml::node* n = t.get("read_only")) {
      if (workload != "image") {
        c_.error(c_.keySource(t, "read_only"), joinKey(path, "read_only"),
                 "read_only applies to container images (image = ...): an exec service has no "
                 "root filesystem of its own");
      } else if (auto b = c_.boolean(t, path, "read_only")) {
        svc.read_only = *b;
        if (!*b && svc.driver == "oci") {
          // Its root is the image cache that every instance of the image shares.
          c_.error(c_.keySource(t, "read_only"), joinKey(path, "read_only"),
                   "read_only = false is not available with driver \"oci\" yet (its root is "
                   "the shared, read-only image cache; /tmp is writable): use the docker driver "
                   "for a writable root");
        }
      }
      (void)n;
    }

    if (auto p = c_.integer(t, path, "port", 1, 65535)) svc.port = static_cast<int>(*p);

    if (const toml::table* env = c_.table(t, path, "env")) {
      std::string env_path = joinKey(path, "env");
      for (auto&& [k, v] : *env) {
        if (!isEnvKey(k.str())) {
          c_.error(k.source(), joinKey(env_path, k.str()),
                   "invalid environment variable name " + quote(k.str()) +
                       "; expected letters, digits and '_', not starting with a digit");
        }
        const auto* s = v.as_string();
        if (s == nullptr) {
          c_.expected(v, joinKey(env_path, k.str()), "a string (quote numbers: \"8080\")");
          continue;
        }
        svc.env[std::string(k.str())] = s->get();
      }
    }

    if (const toml::node* n = t.get("health")) parseHealth(*n, joinKey(path, "health"), svc.health);

    if (auto ups = c_.stringArray(t, path, "upstreams")) {
      const toml::array& a = *t.get("upstreams")->as_array();
      for (size_t i = 0; i < ups->size(); ++i) {
        const std::string& u = (*ups)[i];
        size_t slash = u.find('/');
        bool good = slash == std::string::npos
                        ? isValidName(u)
                        : isValidName(u.substr(0, slash)) && isValidName(u.substr(slash + 1));
        if (!good) {
          c_.expected(*a.get(i), detail::indexKey(joinKey(path, "upstreams"), i),
                      "a service name (\"cart\") or an app and service (\"billing/api\")");
          continue;
        }
        if (std::find(svc.upstreams.begin(), svc.upstreams.end(), u) == svc.upstreams.end()) {
          svc.upstreams.push_back(u);
        }
      }
    }

    if (auto api = c_.string(t, path, "api")) {
      if (*api == "read") {
        svc.api = *api;
      } else if (*api != "none") {
        c_.expected(*t.get("api"), joinKey(path, "api"),
                    "\"read\" (instances read their own app through the agent's API) or \"none\"");
      }
    }

    parseSecrets(t, path, svc);
    if (run) checkInterpolation(*t.get("run")->as_array(), joinKey(path, "run"), svc);

    if (auto cpu = c_.number(t, path, "cpu", 0, kMaxCpu,
                             "a number of cores greater than 0 and at most 1024 (e.g. 0.25)")) {
      svc.cpu = *cpu;
    }
    if (auto limit = c_.number(t, path, "cpu_limit", 0, kMaxCpu,
                               "a hard CPU quota in cores, greater than 0 and at most 1024")) {
      svc.cpu_limit = *limit;
    }
    if (auto mem = c_.bytes(t, path, "memory")) svc.memory = *mem;
    if (auto user = c_.string(t, path, "user")) {
      // A POSIX user name (useradd's rule); whether it exists is the node's to say.
      const bool ok = user->size() <= 32 && (std::islower(static_cast<unsigned char>((*user)[0])) ||
                                             (*user)[0] == '_') &&
                      std::all_of(user->begin(), user->end(), [](char ch) {
                        return std::islower(static_cast<unsigned char>(ch)) ||
                               std::isdigit(static_cast<unsigned char>(ch)) || ch == '_' ||
                               ch == '-';
                      });
      // In an image, a user may also be numeric: "1000" or "1000:1000".
      const bool numeric = workload == "image" && !user->empty() && user->size() <= 23 &&
                           std::all_of(user->begin(), user->end(), [](char ch) {
                             return std::isdigit(static_cast<unsigned char>(ch)) || ch == ':';
                           }) &&
                           std::count(user->begin(), user->end(), ':') <= 1 &&
                           user->front() != ':' && user->back() != ':';
      if (ok || numeric) {
        svc.user = *user;
      } else {
        c_.expected(*t.get("user"), joinKey(path, "user"),
                    workload == "image"
                        ? "a user name ([a-z_][a-z0-9_-]*, at most 32 characters) or uid[:gid]"
                        : "a user name ([a-z_][a-z0-9_-]*, at most 32 characters)");
      }
    }
    if (auto pids = c_.integer(t, path, "pids", 8, 4'194'304)) svc.pids = *pids;
    if (auto kt = c_.duration(t, path, "kill_timeout", false)) svc.kill_timeout = *kt;

    if (const toml::table* scale = c_.table(t, path, "scale")) {
      parseScale(*scale, joinKey(path, "scale"), svc.scale);
    }
    return svc;
  }

  // `secrets` (paths), `env` values "secret:PATH#KEY" naming one of them, and what a new
  // version does (docs/secrets.md "Delivery").
  void parseSecrets(const toml::table& t, const std::string& path, model::ServiceSpec& svc) {
    if (auto paths = c_.stringArray(t, path, "secrets")) {
      const toml::array& a = *t.get("secrets")->as_array();
      for (size_t i = 0; i < paths->size(); ++i) {
        const std::string& p = (*paths)[i];
        if (Status ok = secrets::checkPath(p); !ok) {
          c_.expected(*a.get(i), detail::indexKey(joinKey(path, "secrets"), i),
                      "a secret path (\"shop/db\"): " + ok.message());
          continue;
        }
        if (std::find(svc.secrets.begin(), svc.secrets.end(), p) == svc.secrets.end()) {
          svc.secrets.push_back(p);
        }
      }
    }
    const toml::table* env = t.get("env") ? t.get("env")->as_table() : nullptr;
    std::vector<std::string> from_secrets;
    for (const auto& [name, value] : svc.env) {
      if (!value.starts_with(kSecretPrefix)) continue;
      from_secrets.push_back(name);
      const std::string ref = value.substr(kSecretPrefix.size());
      const size_t hash = ref.rfind('#');
      const std::string secret = hash == std::string::npos ? ref : ref.substr(0, hash);
      const std::string key = hash == std::string::npos ? "" : ref.substr(hash + 1);
      std::string problem;
      if (hash == std::string::npos) {
        problem = "\"secret:PATH#KEY\" (a key of a secret the service lists in `secrets`)";
      } else if (Status ok = secrets::checkKey(key); !ok) {
        problem = "\"secret:PATH#KEY\" with a valid key: " + ok.message();
      } else if (std::find(svc.secrets.begin(), svc.secrets.end(), secret) == svc.secrets.end()) {
        problem = "a secret the service lists: add \"" + secret + "\" to " +
                  joinKey(path, "secrets");
      }
      if (!problem.empty() && env != nullptr && env->get(name) != nullptr) {
        c_.expected(*env->get(name), joinKey(joinKey(path, "env"), name), problem);
      }
    }
    if (auto change = c_.string(t, path, "on_secret_change")) {
      static const std::set<std::string> kSignals = {"SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT",
                                                     "SIGQUIT", "SIGWINCH"};
      if (*change != "roll" && !kSignals.contains(*change)) {
        c_.expected(*t.get("on_secret_change"), joinKey(path, "on_secret_change"),
                    "\"roll\" (new instances replace the old, as for a new manifest) or a signal "
                    "the instances get after their files are rewritten: SIGHUP, SIGUSR1, SIGUSR2, "
                    "SIGINT, SIGQUIT or SIGWINCH");
      } else if (*change != "roll" && !from_secrets.empty()) {
        // A signal cannot change a running process's environment.
        c_.error(c_.keySource(t, "on_secret_change"), joinKey(path, "on_secret_change"),
                 "a signal cannot change the environment of a running process, and env." +
                     from_secrets[0] + " comes from a secret: use \"roll\", or read the value "
                     "from $" + std::string(model::kSecretsDirEnv) + " instead");
      } else if (svc.secrets.empty()) {
        c_.error(c_.keySource(t, "on_secret_change"), joinKey(path, "on_secret_change"),
                 "the service lists no secrets");
      } else {
        svc.on_secret_change = *change;
      }
    }
  }

  // ${NAME} in `run` expands from the instance's environment when the exec driver starts it, and
  // an unknown or unterminated one fails the start there (drivers/exec_internal.h, expandArgv):
  // refuse it here with the same grammar, so that a typo is an error at `baton up` and not an
  // instance that never starts.
  void checkInterpolation(const toml::array& run, const std::string& path,
                          const model::ServiceSpec& svc) {
    const std::map<std::string, std::string>& env = svc.env;
    auto known = [&](const std::string& name) {
      return env.contains(name) ||
             (name == model::kSecretsDirEnv && !svc.secrets.empty()) ||
             std::find(model::kInstanceEnv.begin(), model::kInstanceEnv.end(), name) !=
                 model::kInstanceEnv.end();
    };
    for (size_t i = 0; i < run.size(); ++i) {
      const std::string& arg = run.get(i)->as_string()->get();
      std::string problem;
      for (size_t p = 0; p < arg.size() && problem.empty();) {
        if (arg.compare(p, 3, "$${") == 0) {
          p += 3;
        } else if (arg.compare(p, 2, "${") != 0) {
          ++p;
        } else if (size_t close = arg.find('}', p + 2); close == std::string::npos) {
          problem = "unterminated ${ in " + quote(arg) + "; write $${ for a literal ${";
        } else {
          std::string name = arg.substr(p + 2, close - p - 2);
          if (auto e = env.find(name); e != env.end() && e->second.starts_with(kSecretPrefix)) {
            problem = "${" + name + "} is a secret, and a process's arguments are readable by " +
                      "every user of the node (ps): the program should read it from its " +
                      "environment or from $" + std::string(model::kSecretsDirEnv);
          } else if (!known(name)) {
            std::string names;
            for (std::string_view k : model::kInstanceEnv) {
              names += (names.empty() ? "" : ", ") + std::string(k);
            }
            std::string own;
            for (const auto& [k, v] : env) own += (own.empty() ? "" : ", ") + k;
            problem = "unknown variable ${" + name +
                      "}: not in the instance's environment, which has " + names +
                      (own.empty() ? " (the service sets no env)"
                                   : " and the service's env (" + own + ")") +
                      "; write $${ for a literal ${";
          }
          p = close + 1;
        }
      }
      if (!problem.empty()) c_.error(*run.get(i), detail::indexKey(path, i), problem);
    }
  }

  // The scheduler may put two services of the app on one node, where only one can listen on a
  // given port: a second service fixing the same port would fail to bind when it starts.
  void checkFixedPorts(const toml::table& services, const model::AppSpec& app) {
    std::vector<std::tuple<int, int, std::string, int>> fixed;  // line, column, service, port
    for (auto&& [k, v] : services) {
      auto svc = app.services.find(std::string(k.str()));
      if (svc == app.services.end() || !svc->second.port || !v.is_table()) continue;
      if (svc->second.driver != "exec") continue;  // a container listens in its own network
      toml::source_position at = c_.keySource(*v.as_table(), "port").begin;
      fixed.emplace_back(at.line, at.column, svc->first, *svc->second.port);
    }
    std::sort(fixed.begin(), fixed.end());  // file order: the first to fix a port keeps it
    std::map<int, std::pair<std::string, int>> first;  // port -> (service, line)
    for (const auto& [line, column, name, port] : fixed) {
      auto [it, inserted] = first.emplace(port, std::make_pair(name, line));
      if (inserted) continue;
      const toml::table& t = *services.get(name)->as_table();
      c_.error(c_.keySource(t, "port"), joinKey(joinKey("services", name), "port"),
               "port " + std::to_string(port) + " is already fixed by service " +
                   quote(it->second.first) + " (line " + std::to_string(it->second.second) +
                   "); two services of an app cannot listen on the same port (they may share a "
                   "node): remove port from one to get a free one in ${PORT}");
    }
  }

  void parseHealth(const toml::node& n, const std::string& path, model::HealthCheck& out) {
    constexpr std::string_view kWhat =
        "an HTTP path such as \"/healthz\", or a table such as { tcp = true } or "
        "{ path = \"/healthz\", interval = \"2s\", timeout = \"1s\" }";
    if (const auto* s = n.as_string()) {
      if (!s->get().starts_with("/")) {
        c_.expected(n, path, kWhat);
        return;
      }
      out.kind = model::HealthCheck::Kind::kHttp;
      out.path = s->get();
      return;
    }
    const auto* t = n.as_table();
    if (t == nullptr) {
      c_.expected(n, path, kWhat);
      return;
    }
    c_.checkKeys(*t, path, {"tcp", "path", "interval", "timeout"});
    std::optional<bool> tcp = c_.boolean(*t, path, "tcp");
    std::optional<std::string> p = c_.string(*t, path, "path");
    if (p && !p->starts_with("/")) {
      c_.expected(*t->get("path"), joinKey(path, "path"), "an HTTP path starting with \"/\"");
      p.reset();
    }
    if (p) {
      if (tcp && *tcp) {
        c_.error(
            c_.keySource(*t, "tcp"), joinKey(path, "tcp"),
            "tcp = true and path are exclusive: a check is either a TCP connect or an HTTP GET");
      }
      out.kind = model::HealthCheck::Kind::kHttp;
      out.path = *p;
    } else if (tcp && !*tcp && t->get("path") == nullptr) {
      c_.error(c_.keySource(*t, "tcp"), joinKey(path, "tcp"),
               "tcp = false needs a path for an HTTP check");
    }
    if (auto i = c_.duration(*t, path, "interval", true)) out.interval = *i;
    if (auto to = c_.duration(*t, path, "timeout", true)) out.timeout = *to;
  }

  void parseScale(const toml::table& t, const std::string& path, model::ScaleSpec& out) {
    c_.checkKeys(t, path, {"min", "max", "concurrency", "idle", "schedule"});
    std::optional<int64_t> min = c_.integer(t, path, "min", 0, kMaxInstances);
    std::optional<int64_t> max = c_.integer(t, path, "max", 1, kMaxInstances);
    if (min) out.min = static_cast<int>(*min);
    out.max = max ? static_cast<int>(*max) : std::max(out.min, 1);
    if (min && max && *min > *max) {
      c_.error(c_.keySource(t, "min"), joinKey(path, "min"),
               "min (" + std::to_string(*min) + ") must not be greater than max (" +
                   std::to_string(*max) + ")");
    }
    if (auto c = c_.integer(t, path, "concurrency", 1, kMaxInstances)) {
      out.concurrency = static_cast<int>(*c);
    }
    if (auto idle = c_.duration(t, path, "idle", false)) out.idle = *idle;

    if (const toml::array* sched = c_.tableArray(t, path, "schedule")) {
      std::string spath = joinKey(path, "schedule");
      std::map<std::string, int, std::less<>> names;  // name -> line
      for (size_t i = 0; i < sched->size(); ++i) {
        const toml::table& e = *sched->get(i)->as_table();
        std::string epath = detail::indexKey(spath, i);
        model::ScheduleEntry entry = parseScheduleEntry(e, epath, out);
        if (entry.name.empty()) continue;
        auto [it, inserted] = names.emplace(entry.name, static_cast<int>(e.source().begin.line));
        if (!inserted) {
          c_.error(*e.get("name"), joinKey(epath, "name"),
                   "duplicate schedule name " + quote(entry.name) + " (first at line " +
                       std::to_string(it->second) + ")");
        }
        out.schedule.push_back(std::move(entry));
      }
    }
  }

  model::ScheduleEntry parseScheduleEntry(const toml::table& t, const std::string& path,
                                          const model::ScaleSpec& base) {
    c_.checkKeys(t, path, {"name", "start", "end", "cron", "duration", "timezone", "min", "max"});
    model::ScheduleEntry e;
    if (auto name = c_.string(t, path, "name")) {
      e.name = *name;
    } else if (t.get("name") == nullptr) {
      c_.error(t.source(), joinKey(path, "name"), "missing: every schedule entry needs a name");
    }

    bool has_start = t.get("start") != nullptr;
    bool has_end = t.get("end") != nullptr;
    bool has_cron = t.get("cron") != nullptr;
    bool has_duration = t.get("duration") != nullptr;
    constexpr std::string_view kDateWhat = "a date and time \"YYYY-MM-DD HH:MM[:SS]\"";
    std::optional<LocalDateTime> start, end;
    auto readDate = [&](std::string_view key, std::string& text) -> std::optional<LocalDateTime> {
      const toml::node* n = t.get(key);
      if (n == nullptr) return std::nullopt;
      const auto* s = n->as_string();
      std::optional<LocalDateTime> v;
      if (s != nullptr) v = parseLocalDateTime(s->get());
      if (!v) {
        c_.expected(*n, joinKey(path, key),
                    std::string(kDateWhat) + " with a real calendar date, as a quoted string");
        return std::nullopt;
      }
      text = s->get();
      return v;
    };
    start = readDate("start", e.start);
    end = readDate("end", e.end);
    if (start && end && *end <= *start) {
      c_.error(*t.get("end"), joinKey(path, "end"),
               "end (" + quote(e.end) + ") must be after start (" + quote(e.start) + ")");
    }
    if (const toml::node* n = t.get("cron")) {
      const auto* s = n->as_string();
      if (s == nullptr) {
        c_.expected(*n, joinKey(path, "cron"),
                    "a 5-field cron expression such as \"0 8 * * MON-FRI\"");
      } else if (Result<CronExpr> cron = parseCron(s->get()); !cron.isOk()) {
        c_.error(*n, joinKey(path, "cron"),
                 "expected a 5-field cron expression (minute hour day-of-month month "
                 "day-of-week) such as \"0 8 * * MON-FRI\", got " +
                     quote(s->get()) + ": " + cron.status().message());
      } else {
        e.cron = s->get();
      }
    }
    if (auto d = c_.duration(t, path, "duration", true)) e.duration = *d;

    bool one_off = has_start || has_end;
    bool recurring = has_cron || has_duration;
    if (one_off && recurring) {
      std::string_view k = has_cron ? "cron" : "duration";
      c_.error(c_.keySource(t, k), joinKey(path, k),
               "an entry is either a one-off window (start and end) or a recurring one (cron and "
               "duration), not both");
    } else if (one_off && !(has_start && has_end)) {
      std::string_view missing = has_start ? "end" : "start";
      c_.error(t.source(), joinKey(path, missing),
               "missing: a one-off window needs both start and end");
    } else if (recurring && !(has_cron && has_duration)) {
      std::string_view missing = has_cron ? "duration" : "cron";
      c_.error(t.source(), joinKey(path, missing),
               "missing: a recurring window needs both cron and duration");
    } else if (!one_off && !recurring) {
      c_.error(t.source(), path,
               "missing the window: expected start and end, or cron and duration");
    }

    if (const toml::node* n = t.get("timezone")) {
      const auto* s = n->as_string();
      if (s == nullptr || !isKnownTimeZone(s->get())) {
        c_.expected(*n, joinKey(path, "timezone"),
                    "an IANA time zone such as \"Europe/Berlin\" or \"UTC\"");
      } else {
        e.timezone = s->get();
      }
    }

    std::optional<int64_t> min = c_.integer(t, path, "min", 0, kMaxInstances);
    std::optional<int64_t> max = c_.integer(t, path, "max", 0, kMaxInstances);
    if (min) e.min = static_cast<int>(*min);
    if (max) e.max = static_cast<int>(*max);
    if (t.get("min") == nullptr && t.get("max") == nullptr) {
      c_.error(t.source(), path, "missing: a schedule entry sets min, max or both");
    }
    if (min && max && *min > *max) {
      c_.error(c_.keySource(t, "min"), joinKey(path, "min"),
               "min (" + std::to_string(*min) + ") must not be greater than max (" +
                   std::to_string(*max) + ")");
    } else if (min && !max && t.get("max") == nullptr && *min > base.max) {
      c_.error(c_.keySource(t, "min"), joinKey(path, "min"),
               "min (" + std::to_string(*min) + ") is greater than the service's max (" +
                   std::to_string(base.max) + "); set max in this entry too");
    } else if (max && !min && t.get("min") == nullptr && *max < base.min) {
      c_.error(c_.keySource(t, "max"), joinKey(path, "max"),
               "max (" + std::to_string(*max) + ") is less than the service's min (" +
                   std::to_string(base.min) + "); set min in this entry too");
    }
    return e;
  }

  // A route prefix as the gateway's normalized request paths can match it.
  static bool normalPathPrefix(std::string_view p) {
    if (p.find("//") != std::string_view::npos) return false;
    if (p.find_first_of("%;\\?#") != std::string_view::npos) return false;
    size_t i = 0;
    while (i < p.size()) {
      size_t j = p.find('/', i + 1);
      std::string_view seg = p.substr(i + 1, (j == std::string_view::npos ? p.size() : j) - i - 1);
      if (seg == "." || seg == "..") return false;
      if (j == std::string_view::npos) break;
      i = j;
    }
    return true;
  }

  std::optional<model::Route> parseRoute(const toml::table& t, const std::string& path,
                                         const model::AppSpec& app, const toml::table* services) {
    c_.checkKeys(t, path,
                 {"host", "path", "service", "auth", "claims", "strip_prefix",
                  "forward_authorization"});
    model::Route r;
    size_t before = errorCount();
    if (auto host = c_.string(t, path, "host")) {
      if (!isHost(*host)) {
        c_.expected(*t.get("host"), joinKey(path, "host"),
                    "a host name such as \"shop.example.com\" or \"*.example.com\"");
      } else {
        r.host = *host;
      }
    }
    if (auto p = c_.string(t, path, "path")) {
      if (!p->starts_with("/")) {
        c_.expected(*t.get("path"), joinKey(path, "path"), "a path prefix starting with \"/\"");
      } else if (!normalPathPrefix(*p)) {
        // The gateway matches requests after normalizing their paths (docs/security.md), so
        // a prefix that is not in that form would never match.
        c_.expected(*t.get("path"), joinKey(path, "path"),
                    "a path in normal form: no \".\" or \"..\" segments, \"//\", "
                    "percent-encoding, \";\" or \"\\\"");
      } else {
        r.path = *p;
      }
    }
    if (auto svc = c_.string(t, path, "service")) {
      r.service = *svc;
      bool exists = services != nullptr && services->get(*svc) != nullptr;
      if (!exists) {
        std::string known;
        if (services != nullptr) {
          for (auto&& [k, v] : *services)
            known += (known.empty() ? "" : ", ") + std::string(k.str());
        }
        c_.error(*t.get("service"), joinKey(path, "service"),
                 "no service " + quote(*svc) + " in " +
                     (app.name.empty() ? std::string("this app") : "app " + quote(app.name)) +
                     (known.empty() ? "" : "; services: " + known));
      }
    } else if (t.get("service") == nullptr) {
      c_.error(t.source(), joinKey(path, "service"), "missing: a route names its service");
    }
    if (auto auth = c_.string(t, path, "auth")) {
      const std::optional<std::vector<std::string>>& providers = options_.identity_providers;
      bool builtin = *auth == "public" || *auth == "api-key";
      if (!builtin && !isIdentifier(*auth)) {
        c_.expected(*t.get("auth"), joinKey(path, "auth"),
                    "\"public\", \"api-key\" or the name of an identity provider");
      } else if (!builtin && providers &&
                 std::find(providers->begin(), providers->end(), *auth) == providers->end()) {
        // The gateway would answer every request to the route with a 500.
        std::string known;
        for (const std::string& p : *providers) known += (known.empty() ? "" : ", ") + p;
        c_.error(*t.get("auth"), joinKey(path, "auth"),
                 "no identity provider " + quote(*auth) +
                     " on this agent; expected \"public\", \"api-key\" or " +
                     (known.empty() ? "an [[identity]] of the agent's config, which has none"
                                    : "one of the agent's identity providers: " + known));
      } else {
        r.auth = *auth;
      }
    }
    if (auto claims = c_.stringTable(t, path, "claims")) {
      for (auto& [k, v] : *claims) r.claims[k] = v;
    }
    if (auto sp = c_.boolean(t, path, "strip_prefix")) r.strip_prefix = *sp;
    if (auto fa = c_.boolean(t, path, "forward_authorization")) {
      if (*fa && r.auth == "public") {
        c_.error(*t.get("forward_authorization"), joinKey(path, "forward_authorization"),
                 "only for routes with auth = \"api-key\" or an identity provider (a public "
                 "route forwards Authorization as sent)");
      } else {
        r.forward_authorization = *fa;
      }
    }
    if (errorCount() != before) return std::nullopt;
    return r;
  }

  size_t errorCount() const { return c_.count(); }

  Checker& c_;
  const ManifestOptions& options_;
};

}  // namespace

ManifestResult parseManifest(std::string_view text, std::string_view filename,
                             const ManifestOptions& options) {
  ManifestResult result;
  Checker checker(filename);
  if (std::optional<toml::table> root = detail::parseToml(text, filename, checker)) {
    result.app = ManifestParser(checker, options).parse(*root);
  }
  result.errors = checker.finish();
  if (!result.errors.empty()) result.app.reset();
  return result;
}

ManifestResult parseManifestFile(const std::filesystem::path& path,
                                 const ManifestOptions& options) {
  ManifestResult result;
  std::optional<std::string> text = detail::readFile(path, result.errors);
  if (!text) return result;
  return parseManifest(*text, path.string(), options);
}

}  // namespace baton::spec
