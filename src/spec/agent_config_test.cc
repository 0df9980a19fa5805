#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "spec/manifest.h"

namespace baton::spec {
namespace {

using ::testing::HasSubstr;

// DESIGN.md §1, verbatim.
constexpr std::string_view kDesignConfig = R"toml(data_dir = "/var/lib/baton"
[api]
listen = "127.0.0.1:4646"
[store]
backend = "sqlite"                        # or "etcd"
endpoints = ["http://127.0.0.1:2379"]     # etcd only
[gateway]
http  = "0.0.0.0:8080"
https = "0.0.0.0:8443"
certs = [{ cert = "site.pem", key = "site.key" }]   # default: a self-signed dev certificate
[[identity]]                              # routes name it in `auth`
name = "corp"
issuer = "https://id.example.com/"
audiences = ["shop"]
jwks = "/etc/baton/corp-jwks.json"        # a file, or an https URL (cached, refreshed on unknown kid)
algorithms = ["RS256", "ES256", "EdDSA"]  # pinned; anything else is refused
forward = { sub = "X-User", email = "X-Email" }   # verified claims -> request headers
[drivers.docker]
socket = "/var/run/docker.sock"           # or Podman's socket
[drivers.exec]
allow_root = true
)toml";

std::string dump(const AgentConfigResult& r) {
  std::string out;
  for (const Diagnostic& d : r.errors) out += d.toString() + "\n";
  return out;
}

TEST(AgentConfig, DesignExampleParses) {
  AgentConfigResult r = parseAgentConfig(kDesignConfig, "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  const AgentConfig& c = *r.config;
  EXPECT_EQ(c.data_dir, "/var/lib/baton");
  EXPECT_EQ(c.api_listen, "127.0.0.1:4646");
  EXPECT_EQ(c.docker_socket, "/var/run/docker.sock");
  EXPECT_EQ(c.store_backend, "sqlite");
  EXPECT_EQ(c.etcd_endpoints, std::vector<std::string>{"http://127.0.0.1:2379"});
  EXPECT_EQ(c.gateway_http, "0.0.0.0:8080");
  EXPECT_EQ(c.gateway_https, "0.0.0.0:8443");
  ASSERT_EQ(c.certs.size(), 1u);
  EXPECT_EQ(c.certs[0].cert, "site.pem");
  EXPECT_EQ(c.certs[0].key, "site.key");
  ASSERT_EQ(c.identity.size(), 1u);
  const IdentityProvider& id = c.identity[0];
  EXPECT_EQ(id.name, "corp");
  EXPECT_EQ(id.issuer, "https://id.example.com/");
  EXPECT_EQ(id.audiences, std::vector<std::string>{"shop"});
  EXPECT_EQ(id.jwks, "/etc/baton/corp-jwks.json");
  EXPECT_EQ(id.algorithms, (std::vector<std::string>{"RS256", "ES256", "EdDSA"}));
  EXPECT_EQ(id.forward,
            (std::map<std::string, std::string>{{"sub", "X-User"}, {"email", "X-Email"}}));
  EXPECT_TRUE(c.exec_allow_root);
  EXPECT_EQ(c.dns_listen, "127.0.0.1:8600");
  EXPECT_FALSE(c.node_cpu);
}

TEST(AgentConfig, EmptyFileGivesDefaults) {
  AgentConfigResult r = parseAgentConfig("", "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  AgentConfig defaults;
  EXPECT_EQ(r.config->data_dir, defaults.data_dir);
  EXPECT_EQ(r.config->api_listen, defaults.api_listen);
  EXPECT_EQ(r.config->store_backend, "sqlite");
}

TEST(AgentConfig, DnsNetworkAndMesh) {
  AgentConfigResult r = parseAgentConfig(
      "[dns]\nlisten = \"127.0.0.1:5353\"\n[node]\nnetwork = \"host\"\n[mesh]\ncert_ttl = \"1h\"\n",
      "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  EXPECT_EQ(r.config->dns_listen, "127.0.0.1:5353");
  EXPECT_EQ(r.config->node_network, "host");
  EXPECT_EQ(r.config->mesh_cert_ttl, Duration(3'600'000));
  r = parseAgentConfig("[dns]\nlisten = \"off\"\n", "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  EXPECT_TRUE(r.config->dns_listen.empty());
}

TEST(AgentConfig, SecretsSeal) {
  AgentConfigResult r = parseAgentConfig("", "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  EXPECT_EQ(r.config->secrets_seal, "file");
  r = parseAgentConfig("[secrets]\nseal = \"shares\"\n", "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  EXPECT_EQ(r.config->secrets_seal, "shares");
}

TEST(AgentConfig, NodeAndEtcd) {
  AgentConfigResult r = parseAgentConfig(R"(node_name = "pi-1.lan"
[store]
backend = "etcd"
endpoints = ["http://10.0.0.1:2379", "https://10.0.0.2:2379"]
[node]
cpu = 3.5
memory = "2GiB"
log_retention = "2h"
[gateway]
https = "[::]:0"
upstream_idle_timeout = "1500ms"
upstream_response_timeout = "3s"
max_connections = 500
)",
                                         "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  EXPECT_EQ(r.config->node_name, "pi-1.lan");
  EXPECT_EQ(r.config->store_backend, "etcd");
  EXPECT_EQ(r.config->etcd_endpoints.size(), 2u);
  EXPECT_EQ(r.config->dns_listen, "127.0.0.1:8600");
  EXPECT_TRUE(r.config->node_network.empty());
  EXPECT_EQ(r.config->node_cpu, 3.5);
  EXPECT_EQ(r.config->node_memory, 2ull << 30);
  EXPECT_EQ(r.config->node_log_retention, Duration(2 * 3'600'000));
  EXPECT_EQ(r.config->gateway_https, "[::]:0");
  EXPECT_EQ(r.config->gateway_upstream_idle_timeout, Duration(1500));
  EXPECT_EQ(r.config->gateway_upstream_response_timeout, Duration(3000));
  EXPECT_EQ(r.config->gateway_max_connections, 500);
}

struct BadCase {
  const char* name;
  const char* text;
  int line;
  const char* key;
  const char* message;
};
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

const BadCase kBadCases[] = {
    {"unknown top-level key", "data_dir = \"/x\"\ndatadir = \"/y\"\n", 2, "datadir", "unknown key"},
    {"unknown api key", "[api]\nlisten = \"127.0.0.1:1\"\nport = 3\n", 3, "api.port",
     "unknown key"},
    {"listen without port", "[api]\nlisten = \"127.0.0.1\"\n", 2, "api.listen", "host:port"},
    {"listen as number", "[gateway]\nhttp = 8080\n", 2, "gateway.http", "got integer 8080"},
    {"bad backend", "[store]\nbackend = \"redis\"\n", 2, "store.backend",
     "expected \"sqlite\" or \"etcd\", got string \"redis\""},
    {"etcd without endpoints", "[store]\nbackend = \"etcd\"\n", 2, "store.endpoints", "missing"},
    {"endpoint not a url", "[store]\nbackend = \"etcd\"\nendpoints = [\"10.0.0.1:2379\"]\n", 3,
     "store.endpoints[0]", "URL"},
    {"cert without key", "[gateway]\ncerts = [{ cert = \"a.pem\" }]\n", 2, "gateway.certs[0].key",
     "needs cert and key"},
    {"unknown algorithm",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\njwks = \"j.json\"\n"
     "algorithms = [\"RS256\", \"HS256\"]\n",
     5, "identity[0].algorithms[1]", "one of RS256"},
    {"identity missing jwks",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\nalgorithms = [\"RS256\"]\n", 1,
     "identity[0].jwks", "missing"},
    {"identity unknown key",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\njwks = \"j.json\"\n"
     "algorithms = [\"RS256\"]\naudience = \"x\"\n",
     6, "identity[0].audience", "unknown key"},
    {"duplicate identity",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\njwks = \"j.json\"\n"
     "algorithms = [\"RS256\"]\n[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\n"
     "jwks = \"j.json\"\nalgorithms = [\"RS256\"]\n",
     7, "identity[1].name", "duplicate identity provider"},
    {"identity named public",
     "[[identity]]\nname = \"public\"\nissuer = \"https://i/\"\njwks = \"j.json\"\n"
     "algorithms = [\"RS256\"]\n",
     2, "identity[0].name", "other than \"public\""},
    {"forward to bad header",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\njwks = \"j.json\"\n"
     "algorithms = [\"RS256\"]\nforward = { sub = \"X User\" }\n",
     6, "identity[0].forward.sub", "HTTP header name"},
    {"jwks over http",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\njwks = \"http://i/jwks\"\n"
     "algorithms = [\"RS256\"]\n",
     4, "identity[0].jwks", "plain http is refused"},
    {"unknown driver", "[drivers.podman]\nsocket = \"/run/podman.sock\"\n", 1, "drivers.podman",
     "unknown key"},
    {"ca_file for a jwks file",
     "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\njwks = \"j.json\"\n"
     "ca_file = \"ca.pem\"\nalgorithms = [\"RS256\"]\n",
     5, "identity[0].ca_file", "for a jwks fetched over https"},
    {"docker socket relative", "[drivers.docker]\nsocket = \"docker.sock\"\n", 2,
     "drivers.docker.socket", "an absolute path to the engine's unix socket"},
    {"docker unknown key", "[drivers.docker]\nendpoint = \"tcp://x\"\n", 2,
     "drivers.docker.endpoint", "unknown key"},
    {"allow_root not a boolean", "[drivers.exec]\nallow_root = \"yes\"\n", 2,
     "drivers.exec.allow_root", "boolean"},
    {"node memory bad unit", "[node]\nmemory = \"2 GB\"\n", 2, "node.memory", "size such as"},
    {"node cpu zero", "[node]\ncpu = 0\n", 2, "node.cpu", "greater than 0"},
    {"identity as table", "[identity]\nname = \"corp\"\n", 1, "identity",
     "expected an array of tables"},
    {"syntax error", "[api\n", 1, "", ""},
    {"dns listen not an address", "[dns]\nlisten = \"port 53\"\n", 2, "dns.listen", "host:port"},
    {"dns unknown key", "[dns]\nrecursors = [\"1.1.1.1\"]\n", 2, "dns.recursors", "unknown key"},
    {"node network", "[node]\nnetwork = \"bridge\"\n", 2, "node.network",
     "\"isolated\" or \"host\""},
    {"mesh cert_ttl too short", "[mesh]\ncert_ttl = \"1s\"\n", 2, "mesh.cert_ttl", "from 10s"},
    {"secrets seal unknown", "[secrets]\nseal = \"kms\"\n", 2, "secrets.seal",
     "\"file\" (the key in <data_dir>/secrets.kek) or \"shares\""},
    {"secrets seal not a string", "[secrets]\nseal = 3\n", 2, "secrets.seal", "\"shares\""},
    {"secrets unknown key", "[secrets]\nshares = 5\n", 2, "secrets.shares", "unknown key"},
    {"deep dotted key",
     "[api]\nlisten.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a = 1\n", 2, "",
     "nesting deeper than 32 levels"},
};

class BadAgentConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadAgentConfig, ReportsLineKeyAndMessage) {
  const BadCase& c = GetParam();
  AgentConfigResult r = parseAgentConfig(c.text, "baton.toml");
  EXPECT_FALSE(r.config);
  ASSERT_FALSE(r.errors.empty()) << c.name;
  EXPECT_EQ(r.errors.size(), 1u) << dump(r);
  const Diagnostic& d = r.errors[0];
  EXPECT_EQ(d.file, "baton.toml");
  EXPECT_EQ(d.line, c.line) << dump(r);
  EXPECT_EQ(d.key, c.key) << dump(r);
  EXPECT_THAT(d.message, HasSubstr(c.message)) << dump(r);
  EXPECT_FALSE(d.message.empty());
}

INSTANTIATE_TEST_SUITE_P(Table, BadAgentConfig, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           std::string n;
                           for (const char* p = info.param.name; *p; ++p) {
                             n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                           }
                           return n;
                         });

TEST(AgentConfig, IdentityProviderCaFile) {
  AgentConfigResult r = parseAgentConfig(
      "[[identity]]\nname = \"corp\"\nissuer = \"https://i/\"\n"
      "jwks = \"https://id.internal/jwks.json\"\nca_file = \"/etc/baton/corp-ca.pem\"\n"
      "algorithms = [\"RS256\"]\n",
      "baton.toml");
  ASSERT_TRUE(r.config) << dump(r);
  EXPECT_EQ(r.config->identity[0].ca_file, "/etc/baton/corp-ca.pem");
}

TEST(AgentConfig, CollectsAllErrors) {
  AgentConfigResult r = parseAgentConfig(R"(data_dir = 3
[api]
listen = "nowhere"
[store]
backend = "etcd"
endpoints = ["ftp://x"]
)",
                                         "baton.toml");
  ASSERT_EQ(r.errors.size(), 3u) << dump(r);
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_EQ(r.errors[1].line, 3);
  EXPECT_EQ(r.errors[2].line, 6);
}

TEST(AgentConfig, DeepNestingIsRefusedBeforeParsing) {
  std::string key;
  for (int i = 0; i < 100'000; ++i) key += "gateway.";
  AgentConfigResult r = parseAgentConfig("data_dir = \"/x\"\n" + key + "http = 1\n", "baton.toml");
  EXPECT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u) << dump(r).substr(0, 500);
  EXPECT_EQ(r.errors[0].toString(),
            "baton.toml:2:256: nesting deeper than 32 levels: expected at most 32 levels of table "
            "headers, dotted keys, arrays and inline tables together");
}

TEST(AgentConfigFile, MissingFile) {
  AgentConfigResult r = parseAgentConfigFile("/nonexistent/baton.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].toString(),
            "/nonexistent/baton.toml: cannot read the file: No such file or directory");
}

}  // namespace
}  // namespace baton::spec
