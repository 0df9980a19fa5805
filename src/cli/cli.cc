#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <termios.h>
#include <unistd.h>
#include <thread>
#include <vector>

#include "api/acl.h"
#include "cli/http_client.h"
#include "core/ascii.h"
#include "core/units.h"
#include "mesh/intentions.h"
#include "spec/manifest.h"

namespace baton::cli {
namespace {

using nlohmann::json;

// Left-aligned columns separated by three spaces, like `docker ps`.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

int64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}

json parseArray(std::string_view text, const char* key) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return json::array();
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : json::array();
}

// Prints an API error answer: manifest diagnostics one per line, or {"error": ...}.
void printApiError(std::ostream& err, const HttpResponse& r) {
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("errors"); e != j.end() && e->is_array() && !e->empty()) {
      for (const auto& d : *e) {
        spec::Diagnostic diag{str(d, "file"), static_cast<int>(num(d, "line")),
                              static_cast<int>(num(d, "column")), str(d, "key"), str(d, "message")};
        err << diag.toString() << "\n";
      }
      return;
    }
    if (auto e = j.find("error"); e != j.end() && e->is_string()) {
      err << "error: " << e->get<std::string>() << "\n";
      return;
    }
  }
  err << "error: the agent answered HTTP " << r.status << "\n";
}

bool ok2xx(const HttpResponse& r) { return r.status >= 200 && r.status < 300; }

std::string urlEncode(std::string_view s) { return percentEncode(s); }

std::string formatTime(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

// GET /v1/apikeys for humans: no secret is ever in the answer.
std::string formatApiKeysTable(std::string_view apikeys_json) {
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "SCOPES", "CREATED"}};
  for (const auto& k : parseArray(apikeys_json, "apikeys")) {
    std::string scopes;
    if (auto s = k.find("scopes"); s != k.end() && s->is_array()) {
      for (const auto& x : *s) {
        if (x.is_string()) scopes += (scopes.empty() ? "" : ",") + x.get<std::string>();
      }
    }
    rows.push_back({str(k, "id"), str(k, "name"), scopes.empty() ? "-" : scopes,
                    formatTime(num(k, "created_at"))});
  }
  return table(rows);
}

// An API key id (auth/api_keys.h) or a token accessor (api/tokens.h): 16 lowercase hex
// characters.
bool isApiKeyId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// "secrets:shop/*:read,list apps:shop:read" from a token row's rules.
std::string rulesText(const json& rules) {
  std::string out;
  if (!rules.is_array()) return out;
  for (const auto& r : rules) {
    std::string caps;
    if (auto c = r.find("capabilities"); c != r.end() && c->is_array()) {
      for (const auto& x : *c) {
        if (x.is_string()) caps += (caps.empty() ? "" : ",") + x.get<std::string>();
      }
    }
    out += (out.empty() ? "" : " ") + str(r, "kind") + ":" + str(r, "pattern") + ":" + caps;
  }
  return out;
}

// GET /v1/tokens for humans: accessors, owners and rules, never a secret.
std::string formatTokensTable(std::string_view tokens_json) {
  std::vector<std::vector<std::string>> rows = {
      {"ACCESSOR", "OWNER", "RULES", "CREATED", "EXPIRES"}};
  for (const auto& t : parseArray(tokens_json, "tokens")) {
    std::string expires = formatTime(num(t, "expires_at"));
    if (t.value("expired", false)) expires += " (expired)";
    rows.push_back({str(t, "accessor"), str(t, "owner"), rulesText(t.value("rules", json())),
                    formatTime(num(t, "created_at")), expires});
  }
  return table(rows);
}

class Runner {
 public:
  Runner(CliContext& ctx, bool json_out) : ctx_(ctx), json_(json_out) {}

  // Makes the client; prints and returns false on a bad BATON_ADDR.
  bool connect() {
    auto base = parseBaseUrl(ctx_.addr);
    if (!base) {
      ctx_.err << "error: BATON_ADDR: " << base.status().message() << "\n";
      return false;
    }
    client_.emplace(*base, ctx_.token);
    return true;
  }

  // One request; prints transport and API errors. nullopt means "failed, already reported".
  std::optional<HttpResponse> call(std::string_view method, const std::string& target,
                                   const std::string& body = {}) {
    auto r = client_->request(method, target, body);
    if (!r) {
      ctx_.err << r.status().message() << "\n";
      return std::nullopt;
    }
    if (!ok2xx(*r)) {
      if (json_) {
        ctx_.out << r->body;
      }
      printApiError(ctx_.err, *r);
      return std::nullopt;
    }
    return std::move(r).value();
  }

  // One line of the first input line; on a terminal, asked for without echo.
  std::string readShare() {
    std::istream& in = ctx_.in ? *ctx_.in : std::cin;
    std::string line;
    termios saved{};
    const bool tty = ctx_.in == nullptr && ::isatty(STDIN_FILENO) == 1 &&
                     ::tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
      ctx_.err << "Unseal share (not echoed): " << std::flush;
    }
    std::getline(in, line);
    if (tty) {
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
      ctx_.err << "\n";
    }
    return line;
  }

  // GET /v1/operator/seal (and the unseal answer) for humans.
  void printSeal(const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    const bool sealed = j.value("sealed", true);
    const std::string mode = str(j, "mode");
    ctx_.out << "Seal:      " << mode << (mode == "file" ? " (<data_dir>/secrets.kek)" : "") << "\n";
    if (mode == "shares") {
      ctx_.out << "Key id:    " << (j.value("initialized", false) ? str(j, "key_id") : "-") << "\n"
               << "Threshold: " << num(j, "threshold") << " of " << num(j, "shares") << "\n";
      if (sealed) ctx_.out << "Progress:  " << num(j, "progress") << "/" << num(j, "threshold") << "\n";
    }
    ctx_.out << "Sealed:    " << (sealed ? "yes" : "no") << "\n";
    if (sealed && !str(j, "message").empty()) ctx_.out << str(j, "message") << "\n";
  }

  void printJson(const HttpResponse& r) {
    ctx_.out << r.body;
    if (r.body.empty() || r.body.back() != '\n') ctx_.out << "\n";
  }

  int up(const std::string& file, bool wait, Duration timeout) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      ctx_.err << "error: cannot read " << file << ": " << std::strerror(errno) << "\n";
      return kExitFailed;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    spec::ManifestResult parsed = spec::parseManifest(text, file);
    if (!parsed.errors.empty() || !parsed.app) {
      for (const auto& d : parsed.errors) ctx_.err << d.toString() << "\n";
      if (parsed.errors.empty()) ctx_.err << file << ": invalid manifest\n";
      return kExitFailed;
    }
    const std::string app = parsed.app->name;
    if (!connect()) return kExitFailed;
    std::error_code ec;
    auto base_dir = std::filesystem::absolute(file, ec).parent_path();
    json body = {{"manifest", text}, {"filename", file}};
    if (!ec) body["base_dir"] = base_dir.lexically_normal().string();
    auto r = call("PUT", "/v1/apps/" + urlEncode(app), body.dump());
    if (!r) return kExitFailed;
    json j = json::parse(r->body, nullptr, false);
    if (json_) {
      printJson(*r);
    } else if (!j.is_discarded()) {
      ctx_.out << app << ": version " << num(j, "version") << " ("
               << (j.value("changed", false) ? "changed" : "unchanged") << ")\n";
    }
    if (!wait) return kExitOk;
    return waitSettled(app, timeout);
  }

  int waitSettled(const std::string& app, Duration timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string why;
    std::map<std::string, std::string> said;  // instance -> the message last printed
    for (;;) {
      if (!json_) reportProgress(app, said);
      auto r = call("GET", "/v1/services?app=" + urlEncode(app));
      if (!r) return kExitFailed;
      bool failed = false;
      if (servicesSettled(r->body, &why, &failed)) {
        if (!json_) ctx_.out << app << ": ready\n";
        return kExitOk;
      }
      if (failed) {
        ctx_.err << app << ": " << why << "\n";
        return kExitFailed;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ctx_.err << app << ": timed out after " << formatDuration(timeout) << " waiting for " << why
                 << "\n";
        return kExitFailed;
      }
      pause(Duration(500));
    }
  }

  // What instances that are not running yet are doing, once per change: an image being pulled
  // ("shop/web shop-web-1a2b: pulling image nginx:1.25: 2 layers, 12.0 of 40.1 MB"), a failed
  // start and its backoff.
  void reportProgress(const std::string& app, std::map<std::string, std::string>& said) {
    auto r = call("GET", "/v1/instances?app=" + urlEncode(app));
    if (!r || r->status != 200) return;
    for (const auto& i : parseArray(r->body, "instances")) {
      std::string state = str(i, "state"), message = str(i, "message");
      if (message.empty() || (state != "pending" && state != "unhealthy" && state != "failed")) {
        continue;
      }
      std::string& last = said[str(i, "id")];
      if (last == message) continue;
      last = message;
      ctx_.out << app << "/" << str(i, "service") << " " << str(i, "id") << ": " << message << "\n";
    }
  }

  void pause(Duration d) {
    if (ctx_.sleep) {
      ctx_.sleep(d);
    } else {
      std::this_thread::sleep_for(d);
    }
  }

  // "2 instances of shop to stop (shop-web-1 stopping, shop-web-2 healthy)".
  static std::string instancesLeft(const std::string& app, const json& left) {
    std::string s = std::to_string(left.size()) + (left.size() == 1 ? " instance" : " instances") +
                    " of " + app + " to stop (";
    size_t shown = 0;
    for (const auto& i : left) {
      if (shown == 3) {
        s += ", ...";
        break;
      }
      s += (shown++ ? ", " : "") + str(i, "id") + " " + str(i, "state");
    }
    return s + ")";
  }

  // Deletes the app; unless `detach`, then waits until the controller has deleted its last
  // instance (it does so once the node reports the instance stopped, after its kill_timeout at
  // worst).
  int down(const std::string& app, bool detach, Duration timeout) {
    if (!connect()) return kExitFailed;
    auto r = call("DELETE", "/v1/apps/" + urlEncode(app));
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
    } else {
      ctx_.out << app << ": deleted\n";
    }
    if (detach) return kExitOk;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool told = false;
    for (;;) {
      auto i = call("GET", "/v1/instances?app=" + urlEncode(app));
      if (!i) return kExitFailed;
      json left = parseArray(i->body, "instances");
      if (left.empty()) {
        if (!json_ && told) ctx_.out << app << ": stopped\n";
        return kExitOk;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ctx_.err << app << ": timed out after " << formatDuration(timeout) << " waiting for "
                 << instancesLeft(app, left) << "; the app is deleted and they are still being "
                 << "stopped (baton ps " << app << " -i)\n";
        return kExitFailed;
      }
      if (!json_ && !told) {
        ctx_.out << app << ": waiting for " << instancesLeft(app, left) << "\n";
        told = true;
      }
      pause(Duration(250));
    }
  }

  int ps(const std::string& app, bool instances) {
    if (!connect()) return kExitFailed;
    std::string q = app.empty() ? "" : "?app=" + urlEncode(app);
    auto s = call("GET", "/v1/services" + q);
    if (!s) return kExitFailed;
    std::optional<HttpResponse> i;
    if (instances) {
      i = call("GET", "/v1/instances" + q);
      if (!i) return kExitFailed;
    }
    if (json_) {
      if (!instances) {
        printJson(*s);
      } else {
        json both = {{"services", parseArray(s->body, "services")},
                     {"instances", parseArray(i->body, "instances")}};
        ctx_.out << both.dump() << "\n";
      }
      return kExitOk;
    }
    ctx_.out << formatServicesTable(s->body);
    if (instances) ctx_.out << "\n" << formatInstancesTable(i->body);
    // Where instances are not isolated, say so: the mesh's guarantees do not hold there.
    if (auto n = call("GET", "/v1/nodes")) ctx_.out << isolationNote(n->body);
    return kExitOk;
  }

  int scale(const std::string& app, const std::string& svc, std::optional<int> min,
            std::optional<int> max, const std::string& for_text, bool clear) {
    if (!connect()) return kExitFailed;
    std::string path = "/v1/apps/" + urlEncode(app) + "/services/" + urlEncode(svc) + "/scale";
    if (clear) {
      auto r = call("DELETE", path);
      if (!r) return kExitFailed;
      if (json_) {
        printJson(*r);
      } else {
        ctx_.out << app << "/" << svc << ": override cleared\n";
      }
      return kExitOk;
    }
    json body = json::object();
    if (min) body["min"] = *min;
    if (max) body["max"] = *max;
    if (!for_text.empty()) body["for"] = for_text;
    auto r = call("POST", path, body.dump());
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded()) j = json::object();
    ctx_.out << app << "/" << svc << ": min " << num(j, "min") << ", max " << num(j, "max");
    if (num(j, "expires_at") > 0) ctx_.out << " until " << formatTime(num(j, "expires_at"));
    ctx_.out << "\n";
    return kExitOk;
  }

  int logs(const std::string& app, const std::string& svc, bool follow, bool stderr_stream,
           std::optional<int> tail) {
    if (!connect()) return kExitFailed;
    std::string target = "/v1/apps/" + urlEncode(app) + "/services/" + urlEncode(svc) +
                         "/logs?stream=" + (stderr_stream ? "stderr" : "stdout");
    if (follow) target += "&follow=1";
    if (tail) target += "&tail=" + std::to_string(*tail);
    return streamTo(target, [this](std::string_view data) {
      ctx_.out.write(data.data(), static_cast<std::streamsize>(data.size()));
      ctx_.out.flush();
      return static_cast<bool>(ctx_.out);
    });
  }

  int nodes() { return listCall("/v1/nodes", formatNodesTable); }

  // POST a new credential: its text (`field` of the answer) goes alone to stdout, so that
  // X=$(baton apikey create ci) works; `note` of the answer (that it is shown once) to stderr.
  int createCredential(const std::string& target, const json& body, const char* field,
                       const std::function<std::string(const json&)>& note) {
    if (!connect()) return kExitFailed;
    auto r = call("POST", target, body.dump());
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || str(j, field).empty()) {
      ctx_.err << "error: the agent's answer has no " << field << "\n";
      return kExitFailed;
    }
    ctx_.out << str(j, field) << "\n";
    ctx_.err << note(j) << ": store it now, it is not shown again\n";
    return kExitOk;
  }

  int apiKeyCreate(const std::string& name, const std::vector<std::string>& scopes) {
    json body = {{"name", name}};
    if (!scopes.empty()) body["scopes"] = scopes;
    return createCredential("/v1/apikeys", body, "key", [](const json& j) {
      return "created API key " + str(j, "id") + " \"" + str(j, "name") + "\"";
    });
  }

  // GET `target`: --json prints the answer, else `table` of it.
  int listCall(const std::string& target, std::string (*table)(std::string_view)) {
    if (!connect()) return kExitFailed;
    auto r = call("GET", target);
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
    } else {
      ctx_.out << table(r->body);
    }
    return kExitOk;
  }

  // DELETE /v1/<collection>/<id> of a credential: --json prints the answer, else "<id>: revoked".
  int revokeCall(const std::string& collection, const std::string& id) {
    if (!connect()) return kExitFailed;
    auto r = call("DELETE", "/v1/" + collection + "/" + urlEncode(id));
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
    } else {
      ctx_.out << id << ": revoked\n";
    }
    return kExitOk;
  }

  int apiKeyList() { return listCall("/v1/apikeys", formatApiKeysTable); }
  int apiKeyRemove(const std::string& id) { return revokeCall("apikeys", id); }

  int tokenCreate(const std::string& owner, const std::string& ttl,
                  const std::vector<std::string>& rules) {
    json body = {{"owner", owner}, {"rules", rules}};
    if (!ttl.empty()) body["ttl"] = ttl;
    return createCredential("/v1/tokens", body, "token", [](const json& j) {
      std::string note = "created token " + str(j, "accessor") + " for " + str(j, "owner");
      if (num(j, "expires_at") > 0) note += ", expires " + formatTime(num(j, "expires_at"));
      return note;
    });
  }

  int tokenList() { return listCall("/v1/tokens", formatTokensTable); }
  int tokenRevoke(const std::string& accessor) { return revokeCall("tokens", accessor); }

  // The caller's own token (BATON_TOKEN): owner, rules, expiry.
  int tokenSelf() {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/tokens/self");
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) j = json::object();
    ctx_.out << formatTokensTable(json{{"tokens", json::array({j})}}.dump());
    return kExitOk;
  }

  // `baton allow|deny SRC DST`, or with --remove the rule for that pair goes.
  int intention(const std::string& action, const std::string& src, const std::string& dst,
                bool remove) {
    if (!connect()) return kExitFailed;
    auto r = remove ? call("DELETE", "/v1/intentions?source=" + urlEncode(src) +
                                         "&destination=" + urlEncode(dst))
                    : call("PUT", "/v1/intentions",
                           json{{"source", src}, {"destination", dst}, {"action", action}}.dump());
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
    } else if (remove) {
      ctx_.out << "removed the rule for " << src << " -> " << dst << "\n";
    } else {
      ctx_.out << action << " " << src << " -> " << dst << "\n";
    }
    return kExitOk;
  }

  // `baton why SRC DST`: the mesh's decision for the pair and the rule or declaration behind
  // it. Exit 0 when allowed, 1 when denied (as `consul intention check`).
  int why(const std::string& src, const std::string& dst) {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/intentions/check?source=" + urlEncode(src) +
                             "&destination=" + urlEncode(dst));
    if (!r) return kExitFailed;
    json j = json::parse(r->body, nullptr, false);
    bool allowed = !j.is_discarded() && j.is_object() && j.value("allowed", false);
    if (json_) {
      printJson(*r);
    } else {
      ctx_.out << src << " -> " << dst << ": " << str(j, "reason") << "\n";
    }
    return allowed ? kExitOk : kExitFailed;
  }

  // `baton secret put PATH KEY=VALUE...` as `vault kv put`: KEY=@FILE reads a file, KEY=- stdin
  // (once). Values never reach the terminal or an error message.
  int secretPut(const std::string& path, const std::vector<std::string>& pairs,
                std::optional<int64_t> cas) {
    json data = json::object();
    bool stdin_used = false;
    for (const std::string& pair : pairs) {
      size_t eq = pair.find('=');
      if (eq == std::string::npos || eq == 0) {
        ctx_.err << "baton: expected KEY=VALUE, KEY=@FILE or KEY=- (got an argument without '=')\n";
        return kExitUsage;
      }
      std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
      if (value == "-") {
        if (stdin_used) {
          ctx_.err << "baton: only one KEY=- may read standard input\n";
          return kExitUsage;
        }
        stdin_used = true;
        std::stringstream ss;
        ss << (ctx_.in ? *ctx_.in : std::cin).rdbuf();
        value = ss.str();
      } else if (value.starts_with("@")) {
        std::ifstream in(value.substr(1), std::ios::binary);
        if (!in) {
          ctx_.err << "baton: cannot read " << value.substr(1) << " for " << key << "\n";
          return kExitFailed;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        value = ss.str();
      }
      data[key] = value;
    }
    json body = {{"data", data}};
    if (cas) body["cas"] = *cas;
    if (!connect()) return kExitFailed;
    auto r = call("PUT", "/v1/secrets/data/" + urlEncode(path), body.dump());
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
    } else {
      json j = json::parse(r->body, nullptr, false);
      ctx_.out << path << ": version " << num(j, "version") << "\n";
    }
    return kExitOk;
  }

  // `baton secret get PATH [--field KEY] [--version N]`.
  int secretGet(const std::string& path, const std::string& field, int64_t version) {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/secrets/data/" + urlEncode(path) +
                             (version > 0 ? "?version=" + std::to_string(version) : ""));
    if (!r) return kExitFailed;
    json j = json::parse(r->body, nullptr, false);
    const json data = j.is_object() && j.contains("data") ? j["data"] : json::object();
    if (!field.empty()) {
      if (!data.contains(field) || !data[field].is_string()) {
        ctx_.err << "baton: " << path << " has no key " << field << "\n";
        return kExitFailed;
      }
      ctx_.out << data[field].get<std::string>() << "\n";
      return kExitOk;
    }
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"KEY", "VALUE"}};
    for (const auto& [k, v] : data.items()) rows.push_back({k, v.is_string() ? v.get<std::string>() : ""});
    ctx_.out << "version " << num(j, "version") << "\n" << table(rows);
    return kExitOk;
  }

  int secretList(const std::string& prefix) {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/secrets?prefix=" + urlEncode(prefix));
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    for (const auto& p : parseArray(r->body, "secrets")) {
      if (p.is_string()) ctx_.out << p.get<std::string>() << "\n";
    }
    return kExitOk;
  }

  // delete (soft; the current version when none is named), undelete, destroy.
  int secretVersions(const std::string& action, const std::string& path,
                     const std::vector<int64_t>& versions) {
    if (!connect()) return kExitFailed;
    std::optional<HttpResponse> r;
    if (action == "delete") {
      std::string list;
      for (int64_t v : versions) list += (list.empty() ? "" : ",") + std::to_string(v);
      r = call("DELETE", "/v1/secrets/data/" + urlEncode(path) +
                             (list.empty() ? "" : "?versions=" + list));
    } else {
      r = call("POST", "/v1/secrets/" + action + "/" + urlEncode(path),
               json{{"versions", versions}}.dump());
    }
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
    } else {
      ctx_.out << path << ": " << action << (action == "delete" ? "d" : "ed") << "\n";
    }
    return kExitOk;
  }

  // `baton operator init`: the unseal shares, one per line on stdout, once; what to do with them
  // on stderr (docs/secrets.md "Unsealing").
  int operatorInit(int shares, int threshold) {
    if (!connect()) return kExitFailed;
    auto r = call("POST", "/v1/operator/init",
                  json{{"shares", shares}, {"threshold", threshold}}.dump());
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    json j = json::parse(r->body, nullptr, false);
    for (const auto& s : parseArray(r->body, "shares")) {
      if (s.is_string()) ctx_.out << s.get<std::string>() << "\n";
    }
    ctx_.err << "These are the " << shares << " unseal shares of key " << str(j, "key_id")
             << "; any " << threshold << " of them unseal the secrets after every start of the "
             << "agent (baton operator unseal, the share on standard input).\n"
             << "Keep them apart: one per person or place, never together and never on this "
                "machine. They are not shown again, and the agent keeps none of them.\n";
    return kExitOk;
  }

  // `baton operator unseal [SHARE]`: one share, from the argument or (better: it stays out of
  // the shell's history and the process list) standard input.
  int operatorUnseal(std::optional<std::string> share) {
    if (!share) {
      share = readShare();
      if (share->find_first_not_of(" \t\r\n") == std::string::npos) {
        ctx_.err << "error: no share given: pass it on standard input (or as the argument)\n";
        return kExitUsage;
      }
    }
    if (!connect()) return kExitFailed;
    auto r = call("POST", "/v1/operator/unseal", json{{"share", *share}}.dump());
    std::fill(share->begin(), share->end(), '\0');
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    printSeal(*r);
    return kExitOk;
  }

  int sealStatus() {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/operator/seal");
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    printSeal(*r);
    return kExitOk;
  }

  // `baton audit [--limit N]`: who wrote what, and who read which secret, when.
  int audit(int limit) {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/audit?limit=" + std::to_string(limit));
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"WHEN", "WHO", "METHOD", "PATH"}};
    for (const auto& e : parseArray(r->body, "entries")) {
      rows.push_back({formatTime(num(e, "at")), str(e, "who"), str(e, "method"), str(e, "path")});
    }
    ctx_.out << table(rows);
    return kExitOk;
  }

  int intentions() {
    if (!connect()) return kExitFailed;
    auto r = call("GET", "/v1/intentions");
    if (!r) return kExitFailed;
    if (json_) {
      printJson(*r);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"SOURCE", "DESTINATION", "ACTION", "UPDATED"}};
    for (const auto& i : parseArray(r->body, "intentions")) {
      rows.push_back({str(i, "source"), str(i, "destination"), str(i, "action"),
                      formatTime(num(i, "updated_at"))});
    }
    ctx_.out << table(rows);
    return kExitOk;
  }

  int events() {
    if (!connect()) return kExitFailed;
    std::string pending;
    return streamTo("/v1/events", [&](std::string_view data) {
      if (json_) {
        ctx_.out.write(data.data(), static_cast<std::streamsize>(data.size()));
      } else {
        pending.append(data);
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          std::string line = pending.substr(0, nl);
          pending.erase(0, nl + 1);
          std::string text = formatEventLine(line);
          if (!text.empty()) ctx_.out << text << "\n";
        }
      }
      ctx_.out.flush();
      return static_cast<bool>(ctx_.out);
    });
  }

 private:
  int streamTo(const std::string& target, const std::function<bool(std::string_view)>& sink) {
    auto r = client_->stream(target, sink);
    if (!r) {
      ctx_.err << r.status().message() << "\n";
      return kExitFailed;
    }
    if (!ok2xx(*r)) {
      printApiError(ctx_.err, *r);
      return kExitFailed;
    }
    return kExitOk;
  }

  CliContext& ctx_;
  bool json_;
  std::optional<HttpClient> client_;
};

}  // namespace

Result<std::pair<std::string, std::string>> parseAppService(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() ||
      text.find('/', slash + 1) != std::string_view::npos) {
    return invalidArgument("expected APP/SERVICE, got \"" + std::string(text) + "\"");
  }
  return std::make_pair(std::string(text.substr(0, slash)), std::string(text.substr(slash + 1)));
}

std::string formatServicesTable(std::string_view services_json) {
  std::vector<std::vector<std::string>> rows = {
      {"APP", "SERVICE", "READY/DESIRED", "MIN", "MAX", "SOURCE", "ROLLOUT", "EXPIRES", "NEXT CALL",
       "MESSAGE"}};
  for (const auto& s : parseArray(services_json, "services")) {
    // EXPIRES: when SOURCE's min/max stop applying. NEXT CALL: when a service with a learned
    // period expects its next request (prewarmed for it). MESSAGE: the rollout's (why it failed).
    std::string message = str(s, "rollout_message");
    std::string next = formatTime(num(s, "next_expected"));
    if (next != "-") next += " (" + str(s, "rhythm") + ")";
    rows.push_back({str(s, "app"), str(s, "service"),
                    std::to_string(num(s, "ready")) + "/" + std::to_string(num(s, "desired")),
                    std::to_string(num(s, "min")), std::to_string(num(s, "max")), str(s, "source"),
                    str(s, "rollout"), formatTime(num(s, "expires_at")), next,
                    message.empty() ? "-" : message});
  }
  return table(rows);
}

std::string formatInstancesTable(std::string_view instances_json) {
  std::vector<std::vector<std::string>> rows = {{"ID", "APP", "SERVICE", "NODE", "STATE", "ADDRESS",
                                                 "PID", "VERSION", "RESTARTS", "STARTED",
                                                 "MESSAGE"}};
  for (const auto& i : parseArray(instances_json, "instances")) {
    std::string addr = str(i, "address");
    if (num(i, "port") > 0) addr += ":" + std::to_string(num(i, "port"));
    std::string exit_code = str(i, "last_exit_code");
    std::string msg = str(i, "message");
    if (!exit_code.empty()) msg = "exit " + exit_code + (msg.empty() ? "" : ": " + msg);
    const std::string last_failure = str(i, "last_failure");
    if (!last_failure.empty() && msg.find(last_failure) == std::string::npos) {
      msg += (msg.empty() ? "" : "; ") + std::string("last failure: ") + last_failure;
    }
    if (i.contains("cpu_throttled") && i["cpu_throttled"].is_boolean() &&
        i["cpu_throttled"].get<bool>()) {
      msg = "cpu throttled by its cpu_limit" + (msg.empty() ? "" : "; " + msg);
    }
    rows.push_back({str(i, "id"), str(i, "app"), str(i, "service"), str(i, "node"), str(i, "state"),
                    addr.empty() ? "-" : addr,
                    num(i, "pid") > 0 ? std::to_string(num(i, "pid")) : "-",
                    std::to_string(num(i, "version")), std::to_string(num(i, "restarts")),
                    formatTime(num(i, "started_at")), msg});
  }
  return table(rows);
}

std::string isolationNote(std::string_view nodes_json) {
  std::string out;
  for (const auto& n : parseArray(nodes_json, "nodes")) {
    if (str(n, "network") == "isolated") continue;
    out += "note: node " + str(n, "id") +
           " runs instances in the host's network: they can reach each other and the agent, "
           "and the mesh is off (docs/mesh.md)\n";
  }
  return out;
}

std::string formatNodesTable(std::string_view nodes_json) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "ADDRESS", "API", "NETWORK", "CPU", "MEMORY", "DRIVERS", "STARTED"}};
  for (const auto& n : parseArray(nodes_json, "nodes")) {
    std::string drivers;
    if (auto d = n.find("drivers"); d != n.end() && d->is_array()) {
      for (const auto& x : *d) {
        if (!x.is_string()) continue;
        drivers += (drivers.empty() ? "" : ",") + x.get<std::string>();
      }
    }
    std::ostringstream cpu;
    cpu << (n.contains("cpu") && n["cpu"].is_number() ? n["cpu"].get<double>() : 0.0);
    uint64_t mem =
        n.contains("memory") && n["memory"].is_number_unsigned() ? n["memory"].get<uint64_t>() : 0;
    rows.push_back({str(n, "id"), str(n, "address"), str(n, "api"),
                    str(n, "network").empty() ? "host" : str(n, "network"), cpu.str(),
                    formatBytes(mem),
                    drivers, formatTime(num(n, "started_at"))});
  }
  return table(rows);
}

std::string formatEventLine(std::string_view line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::string(line);
  std::string type = str(j, "type");
  if (type == "hello") return "watching from revision " + std::to_string(num(j, "revision") + 1);
  if (type == "event") return "[" + str(j, "kind") + "] " + str(j, "message");
  if (type == "error") return "error: " + str(j, "error");
  return std::to_string(num(j, "revision")) + " " + type + " " + str(j, "kind") + " " +
         str(j, "key");
}

bool servicesSettled(std::string_view services_json, std::string* why, bool* failed) {
  *failed = false;
  json j = json::parse(services_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("services")) {
    *why = "a valid answer from the agent";
    return false;
  }
  for (const auto& s : parseArray(services_json, "services")) {
    std::string name = str(s, "app") + "/" + str(s, "service");
    int64_t ready = num(s, "ready"), desired = num(s, "desired"), current = num(s, "current");
    std::string rollout = str(s, "rollout");
    if (rollout == "failed") {
      *failed = true;
      *why = "the rollout of " + name + " failed: " + str(s, "rollout_message");
      return false;
    }
    if (ready != desired || current != desired || desired < num(s, "min") ||
        rollout == "in_progress" || rollout == "pending") {
      *why = name + " (ready " + std::to_string(ready) + "/" + std::to_string(desired) +
             ", rollout " + rollout + ")";
      return false;
    }
  }
  return true;
}

int runCli(int argc, char** argv, CliContext& ctx) {
  CLI::App app{"Baton: a private cloud in one binary", "baton"};
  app.require_subcommand(1);
  bool json_out = false;
  auto add_json = [&](CLI::App* sub) { sub->add_flag("--json", json_out, "Print the API's JSON"); };

  AgentFlags agent_flags;
  std::string cfg, data_dir, api_addr, http_addr, https_addr, dns_addr;
  auto* agent = app.add_subcommand("agent", "Run an agent");
  auto* o_cfg = agent->add_option("--config", cfg, "The agent's config file (baton.toml)");
  agent->add_flag("--dev", agent_flags.dev, "Everything in one process, SQLite in a temp dir");
  auto* o_dd = agent->add_option("--data-dir", data_dir, "Data directory");
  auto* o_api = agent->add_option("--api", api_addr, "API listen address");
  auto* o_http = agent->add_option("--http", http_addr, "Gateway HTTP listen address");
  auto* o_https = agent->add_option("--https", https_addr, "Gateway HTTPS listen address");
  auto* o_dns = agent->add_option("--dns", dns_addr, "DNS listen address (\"off\": none)");
  add_json(agent);

  std::string up_file, up_timeout = "5m";
  bool up_wait = false;
  auto* up = app.add_subcommand("up", "Create or update an app from its manifest");
  up->add_option("FILE", up_file, "The manifest (app.toml)")->required();
  up->add_flag("--wait", up_wait, "Wait until every service is ready and rolled out");
  up->add_option("--timeout", up_timeout, "How long --wait waits (default 5m)");
  add_json(up);

  std::string down_app, down_timeout = "2m";
  bool down_detach = false;
  auto* down = app.add_subcommand("down", "Delete an app and wait until its instances are stopped");
  down->add_option("APP", down_app, "The app")->required();
  auto* o_detach =
      down->add_flag("--detach", down_detach, "Return once the app is deleted; do not wait");
  auto* o_down_timeout = down->add_option("--timeout", down_timeout,
                                          "How long to wait for the instances (default 2m)");
  o_detach->excludes(o_down_timeout);
  add_json(down);

  std::string ps_app;
  bool ps_instances = false;
  auto* ps = app.add_subcommand("ps", "Show services (and instances)");
  ps->add_option("APP", ps_app, "Only this app");
  ps->add_flag("-i,--instances", ps_instances, "Also list the instances");
  add_json(ps);

  std::string scale_target, scale_for;
  int scale_min = 0, scale_max = 0;
  bool scale_clear = false;
  auto* scale = app.add_subcommand("scale", "Override a service's scale bounds");
  scale->add_option("APP/SVC", scale_target, "The service")->required();
  auto* o_min =
      scale->add_option("--min", scale_min, "Minimum instances")->check(CLI::NonNegativeNumber);
  auto* o_max =
      scale->add_option("--max", scale_max, "Maximum instances")->check(CLI::NonNegativeNumber);
  auto* o_for = scale->add_option("--for", scale_for, "How long the override lasts (e.g. 2h)");
  auto* o_clear = scale->add_flag("--clear", scale_clear, "Remove the override");
  o_clear->excludes(o_min)->excludes(o_max)->excludes(o_for);
  add_json(scale);

  std::string logs_target;
  bool logs_follow = false, logs_stderr = false;
  int logs_tail = 0;
  auto* logs = app.add_subcommand("logs", "Print a service's logs");
  logs->add_option("APP/SVC", logs_target, "The service")->required();
  logs->add_flag("-f,--follow", logs_follow, "Keep printing new lines");
  logs->add_flag("--stderr", logs_stderr, "Standard error instead of standard output");
  auto* o_tail =
      logs->add_option("--tail", logs_tail, "Only the last N lines")->check(CLI::NonNegativeNumber);
  add_json(logs);

  auto* nodes = app.add_subcommand("nodes", "List the nodes");
  add_json(nodes);
  auto* events = app.add_subcommand("events", "Stream state changes and controller events");
  add_json(events);

  // API keys for `auth = "api-key"` routes (docs/cli.md).
  std::string key_name, key_id;
  std::vector<std::string> key_scopes;
  auto add_create = [&](CLI::App* parent, const std::string& help) {
    auto* c = parent->add_subcommand("create", help);
    c->add_option("NAME", key_name, "A name for the key (who or what uses it)")->required();
    c->add_option("--scope", key_scopes, "A scope the key grants (repeatable)");
    add_json(c);
    return c;
  };
  auto* apikey = app.add_subcommand("apikey", "Manage API keys (routes with auth = \"api-key\")");
  apikey->require_subcommand(1);
  auto* apikey_create = add_create(apikey, "Create an API key; prints it once");
  auto* apikey_ls = apikey->add_subcommand("ls", "List API keys (never their secrets)");
  add_json(apikey_ls);
  auto* apikey_rm = apikey->add_subcommand("rm", "Revoke an API key");
  apikey_rm->add_option("ID", key_id, "The key's id (16 hex characters)")->required();
  add_json(apikey_rm);

  // API tokens with policies (docs/tokens.md): what BATON_TOKEN holds.
  std::string tok_owner, tok_ttl, tok_accessor;
  std::vector<std::string> tok_rules;
  auto* token = app.add_subcommand("token", "Manage API tokens (rules, owner, TTL)");
  token->require_subcommand(1);
  auto* token_create = token->add_subcommand("create", "Create a token; prints it once");
  token_create->add_option("--owner", tok_owner, "Who the token is for (required)")->required();
  token_create->add_option("--ttl", tok_ttl,
                           "How long it is valid, e.g. 24h (default: until "
                           "revoked, or its creator's expiry)");
  token_create
      ->add_option("--rule", tok_rules,
                   "KIND:PATTERN:CAP[,CAP...], e.g. secrets:shop/*:read,list (repeatable; "
                   "kinds apps, secrets, intentions, nodes, tokens, audit, *; caps read, write, "
                   "list, delete, admin)")
      ->required();
  add_json(token_create);
  auto* token_ls = token->add_subcommand("ls", "List tokens (never their secrets)");
  add_json(token_ls);
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token at once");
  token_revoke->add_option("ACCESSOR", tok_accessor, "The token's accessor (16 hex characters)")
      ->required();
  add_json(token_revoke);
  auto* token_self = token->add_subcommand("self", "Show the token in BATON_TOKEN");
  add_json(token_self);

  // The mesh's intentions (docs/mesh.md): sides are APP/SERVICE, APP/* or *.
  std::string int_src, int_dst;
  bool int_remove = false;
  auto add_intention = [&](const char* name, const char* help) {
    auto* c = app.add_subcommand(name, help);
    c->add_option("SRC", int_src, "The calling service: APP/SERVICE, APP/* or *")->required();
    c->add_option("DST", int_dst, "The destination: APP/SERVICE, APP/* or *")->required();
    c->add_flag("--remove", int_remove, "Remove the rule for this pair instead");
    add_json(c);
    return c;
  };
  auto* allow = add_intention("allow", "Let SRC's instances connect to DST (mesh)");
  auto* deny = add_intention("deny", "Keep SRC's instances from DST; cuts open connections");
  auto* why = app.add_subcommand("why", "Whether SRC may connect to DST, and which rule says so");
  why->add_option("SRC", int_src, "The calling service (APP/SERVICE)")->required();
  why->add_option("DST", int_dst, "The destination (APP/SERVICE)")->required();
  add_json(why);
  auto* intentions = app.add_subcommand("intentions", "List the allow and deny rules");
  add_json(intentions);

  // Secrets (docs/secrets.md), in the shape of `vault kv`.
  auto* secret = app.add_subcommand("secret", "Keep secrets: versioned and sealed in the store");
  secret->require_subcommand(1);
  std::string sec_path, sec_field, sec_prefix;
  std::vector<std::string> sec_pairs;
  std::vector<int64_t> sec_versions;
  int64_t sec_cas = -1, sec_version = 0;
  auto* secret_put = secret->add_subcommand("put", "Write a new version: KEY=VALUE, KEY=@FILE, KEY=-");
  secret_put->add_option("PATH", sec_path, "The secret's path, e.g. shop/db")->required();
  secret_put->add_option("PAIRS", sec_pairs, "KEY=VALUE, KEY=@FILE or KEY=- (stdin)")->required();
  auto* o_cas = secret_put->add_option("--cas", sec_cas,
                                       "Write only over this version (0: only if it is new)");
  add_json(secret_put);
  auto* secret_get = secret->add_subcommand("get", "Read a secret (the current version)");
  secret_get->add_option("PATH", sec_path, "The secret's path")->required();
  secret_get->add_option("--field", sec_field, "Print only this key's value");
  secret_get->add_option("--version", sec_version, "This version instead of the current one");
  add_json(secret_get);
  auto* secret_ls = secret->add_subcommand("ls", "List the secrets' paths");
  secret_ls->add_option("PREFIX", sec_prefix, "Only paths that start with it");
  add_json(secret_ls);
  auto add_versions = [&](const char* name, const char* help, bool required) {
    auto* c = secret->add_subcommand(name, help);
    c->add_option("PATH", sec_path, "The secret's path")->required();
    auto* o = c->add_option("--versions", sec_versions, "Version numbers")->delimiter(',');
    if (required) o->required();
    add_json(c);
    return c;
  };
  auto* secret_delete = add_versions("delete", "Soft-delete versions (default: the current one)", false);
  secret_delete->alias("rm");  // DESIGN.md's name for it
  auto* secret_undelete = add_versions("undelete", "Bring soft-deleted versions back", true);
  auto* secret_destroy = add_versions("destroy", "Remove versions' data for good", true);

  // The secrets' seal (docs/secrets.md "Unsealing"), in the shape of `vault operator`.
  auto* op = app.add_subcommand("operator", "Initialise and unseal the secrets (seal = \"shares\")");
  op->require_subcommand(1);
  int op_shares = 5, op_threshold = 3;
  std::string op_share;
  auto* op_init = op->add_subcommand("init", "Make the secrets' key and print its unseal shares, once");
  op_init->add_option("--shares", op_shares, "How many shares to make (2-16, default 5)")
      ->check(CLI::Range(2, 16));
  op_init->add_option("--threshold", op_threshold, "How many unseal (2 to --shares, default 3)")
      ->check(CLI::Range(2, 16));
  add_json(op_init);
  auto* op_unseal = op->add_subcommand("unseal", "Give one unseal share (from standard input)");
  auto* o_share = op_unseal->add_option(
      "SHARE", op_share, "The share; better on standard input, out of the shell's history");
  add_json(op_unseal);
  auto* op_status = op->add_subcommand("seal-status", "Whether the secrets are sealed, and the progress");
  add_json(op_status);

  int audit_limit = 100;
  auto* audit = app.add_subcommand("audit", "Every write and every read of a secret: who, what, when");
  audit->add_option("--limit", audit_limit, "The last N entries (1-10000)")
      ->check(CLI::Range(1, 10000));
  add_json(audit);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e, ctx.out, ctx.err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  Runner run(ctx, json_out);
  auto usage = [&](const std::string& msg) {
    ctx.err << "error: " << msg << "\n";
    return kExitUsage;
  };
  if (*agent) {
    if (o_cfg->count()) agent_flags.config = cfg;
    if (o_dd->count()) agent_flags.data_dir = data_dir;
    if (o_api->count()) agent_flags.api = api_addr;
    if (o_http->count()) agent_flags.http = http_addr;
    if (o_https->count()) agent_flags.https = https_addr;
    if (o_dns->count()) agent_flags.dns = dns_addr;
    if (!ctx.agent) {
      ctx.err << "error: this build has no agent\n";
      return kExitFailed;
    }
    return ctx.agent(agent_flags);
  }
  if (*up) {
    auto t = parseDuration(up_timeout);
    if (!t) return usage("--timeout: expected a duration such as 5m, got \"" + up_timeout + "\"");
    return run.up(up_file, up_wait, *t);
  }
  if (*down) {
    auto t = parseDuration(down_timeout);
    if (!t) return usage("--timeout: expected a duration such as 2m, got \"" + down_timeout + "\"");
    return run.down(down_app, down_detach, *t);
  }
  if (*ps) return run.ps(ps_app, ps_instances);
  if (*scale) {
    auto as = parseAppService(scale_target);
    if (!as) return usage(as.status().message());
    if (!scale_clear && !o_min->count() && !o_max->count()) {
      return usage("scale needs --min, --max (or both), or --clear");
    }
    if (o_for->count() && !parseDuration(scale_for)) {
      return usage("--for: expected a duration such as 2h, got \"" + scale_for + "\"");
    }
    if (o_min->count() && o_max->count() && scale_min > scale_max) {
      return usage("--min must not exceed --max");
    }
    return run.scale(
        as->first, as->second, o_min->count() ? std::optional<int>(scale_min) : std::nullopt,
        o_max->count() ? std::optional<int>(scale_max) : std::nullopt, scale_for, scale_clear);
  }
  if (*logs) {
    auto as = parseAppService(logs_target);
    if (!as) return usage(as.status().message());
    return run.logs(as->first, as->second, logs_follow, logs_stderr,
                    o_tail->count() ? std::optional<int>(logs_tail) : std::nullopt);
  }
  if (*nodes) return run.nodes();
  if (*allow || *deny) {
    for (const std::string* side : {&int_src, &int_dst}) {
      if (auto p = mesh::Pattern::parse(*side); !p) return usage(p.status().message());
    }
    return run.intention(*allow ? "allow" : "deny", int_src, int_dst, int_remove);
  }
  if (*audit) return run.audit(audit_limit);
  if (*op_init) {
    if (op_threshold > op_shares) return usage("--threshold must not exceed --shares");
    return run.operatorInit(op_shares, op_threshold);
  }
  if (*op_unseal) {
    return run.operatorUnseal(o_share->count() ? std::optional<std::string>(op_share)
                                               : std::nullopt);
  }
  if (*op_status) return run.sealStatus();
  if (*secret_put) {
    return run.secretPut(sec_path, sec_pairs,
                         o_cas->count() ? std::optional<int64_t>(sec_cas) : std::nullopt);
  }
  if (*secret_get) return run.secretGet(sec_path, sec_field, sec_version);
  if (*secret_ls) return run.secretList(sec_prefix);
  if (*secret_delete) return run.secretVersions("delete", sec_path, sec_versions);
  if (*secret_undelete) return run.secretVersions("undelete", sec_path, sec_versions);
  if (*secret_destroy) return run.secretVersions("destroy", sec_path, sec_versions);
  if (*why) {
    for (const std::string* side : {&int_src, &int_dst}) {
      if (auto r = mesh::parseServiceRef(*side); !r) return usage(r.status().message());
    }
    return run.why(int_src, int_dst);
  }
  if (*intentions) return run.intentions();
  if (*events) return run.events();
  if (*token_create) {
    if (tok_owner.empty()) return usage("--owner: expected who the token is for");
    for (const auto& r : tok_rules) {
      if (auto rule = api::acl::parseRule(r); !rule) {
        return usage("--rule: " + rule.status().message());
      }
    }
    if (!tok_ttl.empty()) {
      auto d = parseDuration(tok_ttl);
      if (!d || d->count() < 1000 || d->count() > int64_t{10} * 365 * 24 * 3'600'000) {
        return usage("--ttl: expected a duration from 1s to 87600h such as 24h, got \"" + tok_ttl +
                     "\"");
      }
    }
    return run.tokenCreate(tok_owner, tok_ttl, tok_rules);
  }
  if (*token_ls) return run.tokenList();
  if (*token_self) return run.tokenSelf();
  if (*token_revoke) {
    if (!isApiKeyId(tok_accessor)) {
      return usage("expected a token accessor of 16 hex characters, got \"" + tok_accessor + "\"");
    }
    return run.tokenRevoke(tok_accessor);
  }
  if (*apikey_create) {
    if (std::any_of(key_scopes.begin(), key_scopes.end(),
                    [](const std::string& s) { return s.empty(); })) {
      return usage("--scope: expected a non-empty scope");
    }
    return run.apiKeyCreate(key_name, key_scopes);
  }
  if (*apikey_ls) return run.apiKeyList();
  if (*apikey_rm) {
    if (!isApiKeyId(key_id)) {
      return usage("expected an API key id of 16 hex characters, got \"" + key_id + "\"");
    }
    return run.apiKeyRemove(key_id);
  }
  return usage("no command given");
}

}  // namespace baton::cli
