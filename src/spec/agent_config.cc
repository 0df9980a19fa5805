#include <algorithm>
#include <set>

#include "spec/manifest.h"
#include "spec/toml_check.h"

namespace baton::spec {

using detail::Checker;
using detail::joinKey;
using detail::quote;

namespace {

constexpr std::string_view kListenWhat =
    "an address \"host:port\" such as \"127.0.0.1:4646\", \"0.0.0.0:8080\" or \"[::]:8443\"";

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlnum(char c) { return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// "host:port", "[v6]:port" or ":port"; port 0-65535 (0: any free port).
bool isListenAddress(std::string_view s) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = s.substr(0, colon);
  std::string_view port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), isDigit)) {
    return false;
  }
  if (std::stoi(std::string(port)) > 65535) return false;
  if (host.starts_with("[")) {
    if (host.size() < 3 || !host.ends_with("]")) return false;
    std::string_view v6 = host.substr(1, host.size() - 2);
    return std::all_of(v6.begin(), v6.end(),
                       [](char c) { return isAlnum(c) || c == ':' || c == '.' || c == '%'; });
  }
  return std::all_of(host.begin(), host.end(),
                     [](char c) { return isAlnum(c) || c == '.' || c == '-'; });
}

bool isUrl(std::string_view s) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (s.starts_with(scheme) && s.size() > scheme.size()) {
      return std::none_of(s.begin(), s.end(),
                          [](char c) { return c == ' ' || static_cast<unsigned char>(c) < 0x20; });
    }
  }
  return false;
}

// A node name: a host name, [A-Za-z0-9][A-Za-z0-9.-]{0,252}.
bool isNodeName(std::string_view s) {
  if (s.empty() || s.size() > 253 || !isAlnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isAlnum(c) || c == '.' || c == '-'; });
}

bool isIdentifier(std::string_view s) {
  if (s.empty() || !(isAlnum(s[0]) && !isDigit(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isAlnum(c) || c == '_' || c == '-'; });
}

// An HTTP header field name (RFC 9110 token).
bool isHeaderName(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return isAlnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

const std::set<std::string, std::less<>> kAlgorithms{"RS256", "RS384", "RS512", "PS256", "PS384",
                                                     "PS512", "ES256", "ES384", "EdDSA"};

class AgentConfigParser {
 public:
  explicit AgentConfigParser(Checker& c) : c_(c) {}

  std::optional<AgentConfig> parse(const toml::table& root) {
    c_.checkKeys(
        root, "",
        {"data_dir", "node_name", "api", "store", "gateway", "dns", "identity", "drivers", "node",
         "mesh", "secrets"});
    AgentConfig cfg;
    if (auto d = c_.string(root, "", "data_dir")) cfg.data_dir = *d;
    if (auto n = c_.string(root, "", "node_name")) {
      if (!isNodeName(*n)) {
        c_.expected(*root.get("node_name"), "node_name",
                    "a host name: letters, digits, '.' and '-', starting with a letter or digit");
      } else {
        cfg.node_name = *n;
      }
    }
    if (const toml::table* api = c_.table(root, "", "api")) {
      c_.checkKeys(*api, "api", {"listen"});
      listen(*api, "api", "listen", cfg.api_listen);
    }
    if (const toml::table* store = c_.table(root, "", "store")) parseStore(*store, cfg);
    if (const toml::table* gw = c_.table(root, "", "gateway")) parseGateway(*gw, cfg);
    if (const toml::table* dns = c_.table(root, "", "dns")) {
      c_.checkKeys(*dns, "dns", {"listen"});
      const toml::node* n = dns->get("listen");
      if (n != nullptr && n->as_string() && n->as_string()->get() == "off") {
        cfg.dns_listen.clear();
      } else {
        listen(*dns, "dns", "listen", cfg.dns_listen);
      }
    }
    if (const toml::array* ids = c_.tableArray(root, "", "identity")) parseIdentities(*ids, cfg);
    if (const toml::table* mesh = c_.table(root, "", "mesh")) {
      c_.checkKeys(*mesh, "mesh", {"cert_ttl"});
      if (auto d = c_.duration(*mesh, "mesh", "cert_ttl", true)) {
        if (*d < Duration(10'000) || *d > Duration(30LL * 24 * 3'600'000)) {
          c_.expected(*mesh->get("cert_ttl"), "mesh.cert_ttl",
                      "a duration from 10s to 720h (leaves are renewed after 2/3 of it)");
        } else {
          cfg.mesh_cert_ttl = *d;
        }
      }
    }
    if (const toml::table* secrets = c_.table(root, "", "secrets")) {
      c_.checkKeys(*secrets, "secrets", {"seal"});
      if (const toml::node* n = secrets->get("seal")) {
        const auto* s = n->as_string();
        if (s == nullptr || (s->get() != "file" && s->get() != "shares")) {
          c_.expected(*n, "secrets.seal",
                      "\"file\" (the key in <data_dir>/secrets.kek) or \"shares\" (unseal "
                      "shares: baton operator init, baton operator unseal)");
        } else {
          cfg.secrets_seal = s->get();
        }
      }
    }
    if (const toml::table* drivers = c_.table(root, "", "drivers")) {
      c_.checkKeys(*drivers, "drivers", {"exec", "docker"});
      if (const toml::table* exec = c_.table(*drivers, "drivers", "exec")) {
        c_.checkKeys(*exec, "drivers.exec", {"allow_root"});
        if (auto b = c_.boolean(*exec, "drivers.exec", "allow_root")) cfg.exec_allow_root = *b;
      }
      if (const toml::table* docker = c_.table(*drivers, "drivers", "docker")) {
        c_.checkKeys(*docker, "drivers.docker", {"socket"});
        if (auto s = c_.string(*docker, "drivers.docker", "socket")) {
          if (s->empty() || (*s)[0] != '/') {
            c_.expected(*docker->get("socket"), "drivers.docker.socket",
                        "an absolute path to the engine's unix socket (e.g. "
                        "\"/var/run/docker.sock\" or \"/run/podman/podman.sock\")");
          } else {
            cfg.docker_socket = *s;
          }
        }
      }
    }
    if (const toml::table* node = c_.table(root, "", "node")) {
      c_.checkKeys(*node, "node", {"cpu", "memory", "log_retention", "network"});
      if (auto n = c_.string(*node, "node", "network")) {
        if (*n != "isolated" && *n != "host") {
          c_.expected(*node->get("network"), "node.network", "\"isolated\" or \"host\"");
        } else {
          cfg.node_network = *n;
        }
      }
      cfg.node_cpu = c_.number(*node, "node", "cpu", 0, 1024,
                               "a number of cores greater than 0 and at most 1024 (e.g. 4)");
      cfg.node_memory = c_.bytes(*node, "node", "memory");
      if (auto d = c_.duration(*node, "node", "log_retention", true)) cfg.node_log_retention = *d;
    }
    if (!c_.ok()) return std::nullopt;
    return cfg;
  }

 private:
  void listen(const toml::table& t, std::string_view path, std::string_view key, std::string& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return;
    const auto* s = n->as_string();
    if (s == nullptr || !isListenAddress(s->get())) {
      c_.expected(*n, joinKey(path, key), kListenWhat);
      return;
    }
    out = s->get();
  }

  void parseStore(const toml::table& t, AgentConfig& cfg) {
    c_.checkKeys(t, "store", {"backend", "endpoints"});
    if (const toml::node* n = t.get("backend")) {
      const auto* s = n->as_string();
      if (s == nullptr || (s->get() != "sqlite" && s->get() != "etcd")) {
        c_.expected(*n, "store.backend", "\"sqlite\" or \"etcd\"");
      } else {
        cfg.store_backend = s->get();
      }
    }
    if (auto eps = c_.stringArray(t, "store", "endpoints")) {
      const toml::array& a = *t.get("endpoints")->as_array();
      for (size_t i = 0; i < eps->size(); ++i) {
        if (!isUrl((*eps)[i])) {
          c_.expected(*a.get(i), detail::indexKey("store.endpoints", i),
                      "an http:// or https:// URL such as \"http://127.0.0.1:2379\"");
        } else {
          cfg.etcd_endpoints.push_back((*eps)[i]);
        }
      }
    }
    if (cfg.store_backend == "etcd" && t.get("endpoints") == nullptr) {
      c_.error(c_.keySource(t, "backend"), "store.endpoints",
               "missing: backend = \"etcd\" needs endpoints, e.g. [\"http://127.0.0.1:2379\"]");
    } else if (cfg.store_backend == "etcd" && t.get("endpoints")->as_array() != nullptr &&
               t.get("endpoints")->as_array()->empty()) {
      c_.expected(*t.get("endpoints"), "store.endpoints", "at least one etcd endpoint");
    }
  }

  void parseGateway(const toml::table& t, AgentConfig& cfg) {
    c_.checkKeys(t, "gateway",
                 {"http", "https", "certs", "threads", "hold_queue", "hold_timeout", "access_log",
                  "upstream_idle_timeout", "upstream_response_timeout", "max_connections"});
    listen(t, "gateway", "http", cfg.gateway_http);
    listen(t, "gateway", "https", cfg.gateway_https);
    if (auto n = c_.integer(t, "gateway", "threads", 0, 256)) {
      cfg.gateway_threads = static_cast<int>(*n);
    }
    if (auto n = c_.integer(t, "gateway", "hold_queue", 0, 1'000'000)) {
      cfg.gateway_hold_queue = static_cast<size_t>(*n);
    }
    if (auto d = c_.duration(t, "gateway", "hold_timeout", true)) cfg.gateway_hold_timeout = *d;
    if (auto b = c_.boolean(t, "gateway", "access_log")) cfg.gateway_access_log = *b;
    if (auto d = c_.duration(t, "gateway", "upstream_idle_timeout", true)) {
      cfg.gateway_upstream_idle_timeout = *d;
    }
    if (auto d = c_.duration(t, "gateway", "upstream_response_timeout", true)) {
      cfg.gateway_upstream_response_timeout = *d;
    }
    if (auto n = c_.integer(t, "gateway", "max_connections", 1, 10'000'000)) {
      cfg.gateway_max_connections = *n;
    }
    if (const toml::array* certs = c_.tableArray(t, "gateway", "certs")) {
      for (size_t i = 0; i < certs->size(); ++i) {
        const toml::table& c = *certs->get(i)->as_table();
        std::string path = detail::indexKey("gateway.certs", i);
        c_.checkKeys(c, path, {"cert", "key"});
        CertPair pair;
        auto cert = c_.string(c, path, "cert");
        auto key = c_.string(c, path, "key");
        for (std::string_view k : {"cert", "key"}) {
          if (c.get(k) == nullptr) {
            c_.error(c.source(), joinKey(path, k),
                     "missing: a certificate entry needs cert and key (PEM file paths)");
          }
        }
        if (cert && key) cfg.certs.push_back({*cert, *key});
      }
    }
  }

  void parseIdentities(const toml::array& ids, AgentConfig& cfg) {
    std::set<std::string, std::less<>> names;
    for (size_t i = 0; i < ids.size(); ++i) {
      const toml::table& t = *ids.get(i)->as_table();
      std::string path = detail::indexKey("identity", i);
      c_.checkKeys(t, path,
                   {"name", "issuer", "audiences", "jwks", "ca_file", "algorithms", "forward"});
      IdentityProvider idp;
      for (std::string_view k : {"name", "issuer", "jwks", "algorithms"}) {
        if (t.get(k) == nullptr) {
          c_.error(t.source(), joinKey(path, k),
                   "missing: an identity provider needs name, issuer, jwks and algorithms");
        }
      }
      if (auto name = c_.string(t, path, "name")) {
        if (!isIdentifier(*name) || *name == "public" || *name == "api-key") {
          c_.expected(*t.get("name"), joinKey(path, "name"),
                      "an identifier (letters, digits, '_' and '-', starting with a letter) other "
                      "than \"public\" and \"api-key\"");
        } else if (!names.insert(*name).second) {
          c_.error(*t.get("name"), joinKey(path, "name"),
                   "duplicate identity provider " + quote(*name));
        } else {
          idp.name = *name;
        }
      }
      if (auto issuer = c_.string(t, path, "issuer")) idp.issuer = *issuer;
      if (auto aud = c_.stringArray(t, path, "audiences")) idp.audiences = *aud;
      if (auto jwks = c_.string(t, path, "jwks")) {
        if (jwks->starts_with("http://")) {
          c_.expected(*t.get("jwks"), joinKey(path, "jwks"),
                      "a file path or an https:// URL (plain http is refused)");
        } else {
          idp.jwks = *jwks;
        }
      }
      if (auto ca = c_.string(t, path, "ca_file")) {
        if (!idp.jwks.starts_with("https://")) {
          c_.error(*t.get("ca_file"), joinKey(path, "ca_file"),
                   "ca_file is for a jwks fetched over https; this jwks is a file");
        } else {
          idp.ca_file = *ca;
        }
      }
      if (auto algs = c_.stringArray(t, path, "algorithms")) {
        const toml::array& a = *t.get("algorithms")->as_array();
        if (algs->empty()) {
          c_.expected(a, joinKey(path, "algorithms"), "at least one algorithm");
        }
        for (size_t j = 0; j < algs->size(); ++j) {
          if (!kAlgorithms.contains((*algs)[j])) {
            c_.expected(*a.get(j), detail::indexKey(joinKey(path, "algorithms"), j),
                        "one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA");
          } else if (std::find(idp.algorithms.begin(), idp.algorithms.end(), (*algs)[j]) ==
                     idp.algorithms.end()) {
            idp.algorithms.push_back((*algs)[j]);
          }
        }
      }
      if (auto fwd = c_.stringTable(t, path, "forward")) {
        const toml::table& ft = *t.get("forward")->as_table();
        for (auto& [claim, header] : *fwd) {
          if (!isHeaderName(header)) {
            c_.expected(*ft.get(claim), joinKey(joinKey(path, "forward"), claim),
                        "an HTTP header name such as \"X-User\"");
          } else {
            idp.forward[claim] = header;
          }
        }
      }
      cfg.identity.push_back(std::move(idp));
    }
  }

  Checker& c_;
};

}  // namespace

AgentConfigResult parseAgentConfig(std::string_view text, std::string_view filename) {
  AgentConfigResult result;
  Checker checker(filename);
  if (std::optional<toml::table> root = detail::parseToml(text, filename, checker)) {
    result.config = AgentConfigParser(checker).parse(*root);
  }
  result.errors = checker.finish();
  if (!result.errors.empty()) result.config.reset();
  return result;
}

AgentConfigResult parseAgentConfigFile(const std::filesystem::path& path) {
  AgentConfigResult result;
  std::optional<std::string> text = detail::readFile(path, result.errors);
  if (!text) return result;
  return parseAgentConfig(*text, path.string());
}

}  // namespace baton::spec
