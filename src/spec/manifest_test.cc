#include "spec/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace baton::spec {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// DESIGN.md §1, verbatim.
constexpr std::string_view kDesignExample = R"toml(app = "shop"

[services.web]
run = ["python3", "-m", "http.server", "${PORT}"]   # exec driver; ${VAR} from the instance's env
# image = "docker.io/library/nginx:1.25"      # docker driver (Docker Engine API; Podman works)
# driver = "oci"; image = "oci-archive:app.tar" # runc directly, for hosts without an engine
# wasm  = "handlers/hello.wasm"                 # wasm driver (WAGI, instance per request)
port    = 8000            # optional; default: a free port is given in ${PORT}
env     = { GREETING = "hello" }
health  = "/healthz"      # HTTP GET path; or { tcp = true }; default: TCP connect
upstreams = ["cart"]      # services this one may call (mesh); everything else is denied
secrets = ["shop/db"]     # secret paths made available to the instance
cpu     = 0.25            # cores, used for placement
memory  = "128MiB"        # placement and limit

[services.web.scale]
min = 0                   # 0 = scale to zero when idle
max = 5
concurrency = 20          # target in-flight requests per instance
idle = "5m"               # idle time before scaling to zero (when min = 0)

[[services.web.scale.schedule]]      # overrides; the last matching entry wins
name = "black-friday"
start = "2026-11-27 00:00"           # one-off window in `timezone` ("YYYY-MM-DD HH:MM[:SS]")
end   = "2026-11-30 23:59"
timezone = "America/Detroit"
min = 2
max = 100

[[services.web.scale.schedule]]
name = "weekday-mornings"
cron = "0 8 * * MON-FRI"             # recurring window start
duration = "4h"
timezone = "Europe/Berlin"
min = 1

[[routes]]                # the front door
host = "shop.example.com" # optional
path = "/"                # prefix; longest match wins
service = "web"
auth = "public"           # "public", "api-key", or the name of an identity provider
claims = { scope = "shop:read" }    # optional required claims
strip_prefix = false      # optional: drop `path` before forwarding
)toml";

std::string dump(const ManifestResult& r) {
  std::string out;
  for (const Diagnostic& d : r.errors) out += d.toString() + "\n";
  return out;
}

TEST(Manifest, SecretsEnvReferencesAndChangeMode) {
  ManifestResult r = parseManifest(R"toml(app = "shop"
[services.web]
run = ["./web", "--secrets=${BATON_SECRETS_DIR}"]
secrets = ["shop/db", "shop/tls", "shop/db"]
env = { DB = "secret:shop/db#password", PLAIN = "secret-ish" }
[services.worker]
run = ["./worker"]
secrets = ["shop/db"]
on_secret_change = "SIGHUP"
)toml",
                                   "app.toml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  const model::ServiceSpec& web = r.app->services.at("web");
  EXPECT_EQ(web.secrets, (std::vector<std::string>{"shop/db", "shop/tls"}));
  EXPECT_EQ(web.env.at("DB"), "secret:shop/db#password");
  EXPECT_EQ(web.on_secret_change, "roll");
  EXPECT_TRUE(web.secret_versions.empty());
  EXPECT_EQ(r.app->services.at("worker").on_secret_change, "SIGHUP");
  // Without secrets, ${BATON_SECRETS_DIR} is unknown.
  ManifestResult bare = parseManifest(
      "app = \"shop\"\n[services.web]\nrun = [\"./web\", \"${BATON_SECRETS_DIR}\"]\n", "app.toml");
  ASSERT_EQ(bare.errors.size(), 1u) << dump(bare);
  EXPECT_THAT(bare.errors[0].message, HasSubstr("unknown variable ${BATON_SECRETS_DIR}"));
}

TEST(Manifest, DesignExampleFieldsLand) {
  ManifestResult r = parseManifest(kDesignExample, "app.toml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  ASSERT_TRUE(r.app);
  const model::AppSpec& app = *r.app;
  EXPECT_EQ(app.name, "shop");
  ASSERT_EQ(app.services.size(), 1u);
  const model::ServiceSpec& web = app.services.at("web");
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.driver, "exec");
  EXPECT_EQ(web.run, (std::vector<std::string>{"python3", "-m", "http.server", "${PORT}"}));
  EXPECT_TRUE(web.image.empty());
  EXPECT_EQ(web.port, 8000);
  EXPECT_EQ(web.env, (std::map<std::string, std::string>{{"GREETING", "hello"}}));
  EXPECT_EQ(web.health.kind, model::HealthCheck::Kind::kHttp);
  EXPECT_EQ(web.health.path, "/healthz");
  EXPECT_EQ(web.upstreams, std::vector<std::string>{"cart"});
  EXPECT_EQ(web.secrets, std::vector<std::string>{"shop/db"});
  EXPECT_EQ(web.on_secret_change, "roll");
  EXPECT_DOUBLE_EQ(web.cpu, 0.25);
  EXPECT_EQ(web.memory, 128ull << 20);
  EXPECT_EQ(web.kill_timeout, Duration(5000));
  EXPECT_EQ(web.scale.min, 0);
  EXPECT_EQ(web.scale.max, 5);
  EXPECT_EQ(web.scale.concurrency, 20);
  EXPECT_EQ(web.scale.idle, Duration(300'000));
  ASSERT_EQ(web.scale.schedule.size(), 2u);
  const model::ScheduleEntry& bf = web.scale.schedule[0];
  EXPECT_EQ(bf.name, "black-friday");
  EXPECT_EQ(bf.start, "2026-11-27 00:00");
  EXPECT_EQ(bf.end, "2026-11-30 23:59");
  EXPECT_EQ(bf.timezone, "America/Detroit");
  EXPECT_EQ(bf.min, 2);
  EXPECT_EQ(bf.max, 100);
  EXPECT_TRUE(bf.cron.empty());
  const model::ScheduleEntry& wm = web.scale.schedule[1];
  EXPECT_EQ(wm.name, "weekday-mornings");
  EXPECT_EQ(wm.cron, "0 8 * * MON-FRI");
  EXPECT_EQ(wm.duration, Duration(4 * 3'600'000));
  EXPECT_EQ(wm.timezone, "Europe/Berlin");
  EXPECT_EQ(wm.min, 1);
  EXPECT_EQ(wm.max, std::nullopt);
  ASSERT_EQ(app.routes.size(), 1u);
  const model::Route& route = app.routes[0];
  EXPECT_EQ(route.host, "shop.example.com");
  EXPECT_EQ(route.path, "/");
  EXPECT_EQ(route.service, "web");
  EXPECT_EQ(route.auth, "public");
  EXPECT_EQ(route.claims, (std::map<std::string, std::string>{{"scope", "shop:read"}}));
  EXPECT_FALSE(route.strip_prefix);
}

TEST(Manifest, DefaultsForAMinimalService) {
  ManifestResult r = parseManifest("app = \"a\"\n[services.api]\nrun = [\"./api\"]\n", "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  const model::ServiceSpec& s = r.app->services.at("api");
  EXPECT_EQ(s.driver, "exec");
  EXPECT_EQ(s.run, std::vector<std::string>{"./api"});
  EXPECT_TRUE(s.image.empty());
  EXPECT_EQ(s.port, std::nullopt);
  EXPECT_EQ(s.health.kind, model::HealthCheck::Kind::kTcp);
  EXPECT_EQ(s.scale.min, 1);
  EXPECT_EQ(s.scale.max, 1);
  EXPECT_EQ(s.scale.concurrency, 100);
  EXPECT_EQ(s.scale.idle, Duration(300'000));
  EXPECT_TRUE(r.app->routes.empty());
}

TEST(Manifest, UserPidsAndCpuLimit) {
  ManifestResult r = parseManifest(
      "app = \"a\"\n[services.api]\nrun = [\"./api\"]\nuser = \"www-data\"\npids = 64\n"
      "cpu = 0.5\ncpu_limit = 2\n",
      "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  const model::ServiceSpec& s = r.app->services.at("api");
  EXPECT_EQ(s.user, "www-data");
  EXPECT_EQ(s.pids, 64);
  EXPECT_DOUBLE_EQ(s.cpu, 0.5);
  EXPECT_DOUBLE_EQ(s.cpu_limit, 2);
  // Defaults: a dynamic user, the node's pids default, no quota.
  r = parseManifest("app = \"a\"\n[services.api]\nrun = [\"./api\"]\n", "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->services.at("api").user, "");
  EXPECT_EQ(r.app->services.at("api").pids, 0);
  EXPECT_EQ(r.app->services.at("api").cpu_limit, 0);
}

TEST(Manifest, HealthForms) {
  ManifestResult r = parseManifest(R"(app = "a"
[services.w]
run = ["./w"]
driver = "exec"
health = { tcp = true }
[services.o]
run = ["./o"]
health = { path = "/up", interval = "2s", timeout = "500ms" }
kill_timeout = "30s"
cpu = 2
[services.o.scale]
min = 3
)",
                                   "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->services.at("w").driver, "exec");
  EXPECT_EQ(r.app->services.at("w").health.kind, model::HealthCheck::Kind::kTcp);
  const model::ServiceSpec& o = r.app->services.at("o");
  EXPECT_EQ(o.driver, "exec");
  EXPECT_EQ(o.health.kind, model::HealthCheck::Kind::kHttp);
  EXPECT_EQ(o.health.path, "/up");
  EXPECT_EQ(o.health.interval, Duration(2000));
  EXPECT_EQ(o.health.timeout, Duration(500));
  EXPECT_EQ(o.kill_timeout, Duration(30'000));
  EXPECT_DOUBLE_EQ(o.cpu, 2.0);
  EXPECT_EQ(o.scale.min, 3);
  EXPECT_EQ(o.scale.max, 3);  // max defaults to max(min, 1)
}

struct BadCase {
  const char* name;
  const char* text;
  int line;
  const char* key;
  const char* message;  // a substring of the message
};
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

// Lines 1-3 of every case are this header unless the case replaces it.
#define HEADER "app = \"shop\"\n[services.web]\nrun = [\"./web\"]\n"

const BadCase kBadCases[] = {
    {"unknown top-level key", "colour = \"red\"\n" HEADER, 1, "colour", "unknown key \"colour\""},
    {"unknown service key", HEADER "prot = 80\n", 4, "services.web.prot", "unknown key"},
    {"unknown scale key", HEADER "[services.web.scale]\nmin = 1\nmaximum = 3\n", 6,
     "services.web.scale.maximum", "expected one of: min, max"},
    {"unknown route key", HEADER "[[routes]]\nservice = \"web\"\npth = \"/\"\n", 6, "routes[0].pth",
     "unknown key"},
    {"port as string", HEADER "port = \"http\"\n", 4, "services.web.port",
     "expected an integer from 1 to 65535, got string \"http\""},
    {"port zero", HEADER "port = 0\n", 4, "services.web.port",
     "expected an integer from 1 to 65535, got integer 0"},
    {"user with a space", HEADER "user = \"www data\"\n", 4, "services.web.user",
     "expected a user name"},
    {"user as number", HEADER "user = 33\n", 4, "services.web.user", "got integer 33"},
    {"pids too few", HEADER "pids = 2\n", 4, "services.web.pids", "from 8 to"},
    {"cpu_limit zero", HEADER "cpu_limit = 0\n", 4, "services.web.cpu_limit", "hard CPU quota"},
    {"port too big", HEADER "port = 70000\n", 4, "services.web.port", "got integer 70000"},
    {"memory with a space", HEADER "memory = \"128MB \"\n", 4, "services.web.memory",
     "got string \"128MB \""},
    {"memory as number", HEADER "memory = 128\n", 4, "services.web.memory",
     "expected a positive size such as \"128MiB\""},
    {"idle in words", HEADER "[services.web.scale]\nidle = \"5 minutes\"\n", 5,
     "services.web.scale.idle", "duration such as"},
    {"cpu negative", HEADER "cpu = -1\n", 4, "services.web.cpu", "greater than 0"},
    {"cpu as string", HEADER "cpu = \"1\"\n", 4, "services.web.cpu", "got string \"1\""},
    {"min greater than max", HEADER "[services.web.scale]\nmin = 5\nmax = 2\n", 5,
     "services.web.scale.min", "min (5) must not be greater than max (2)"},
    {"max zero", HEADER "[services.web.scale]\nmax = 0\n", 5, "services.web.scale.max",
     "from 1 to"},
    {"concurrency zero", HEADER "[services.web.scale]\nconcurrency = 0\n", 5,
     "services.web.scale.concurrency", "from 1 to"},
    {"bad cron",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\ncron = \"0 8 * * MON-FRY\"\n"
            "duration = \"1h\"\nmin = 1\n",
     6, "services.web.scale.schedule[0].cron", "day-of-week"},
    {"cron with four fields",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "cron = \"0 8 * *\"\nduration = \"1h\"\nmin = 1\n",
     6, "services.web.scale.schedule[0].cron", "expected 5"},
    {"cron minute out of range",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "cron = \"60 8 * * *\"\nduration = \"1h\"\nmin = 1\n",
     6, "services.web.scale.schedule[0].cron", "minute"},
    {"bad timezone",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\ncron = \"0 8 * * *\"\n"
            "duration = \"1h\"\ntimezone = \"Mars/Olympus\"\nmin = 1\n",
     8, "services.web.scale.schedule[0].timezone", "IANA time zone"},
    {"bad date",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\nstart = \"2026-02-30 00:00\"\n"
            "end = \"2026-03-02 00:00\"\nmax = 3\n",
     6, "services.web.scale.schedule[0].start", "real calendar date"},
    {"date with bad hour",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "start = \"2026-02-01 00:00\"\nend = \"2026-03-02 24:00\"\nmax = 3\n",
     7, "services.web.scale.schedule[0].end", "YYYY-MM-DD HH:MM[:SS]"},
    {"end before start",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "start = \"2026-03-02 00:00\"\nend = \"2026-03-01 00:00\"\nmax = 3\n",
     7, "services.web.scale.schedule[0].end", "must be after start"},
    {"schedule without bounds",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "cron = \"0 8 * * *\"\nduration = \"1h\"\n",
     4, "services.web.scale.schedule[0]", "sets min, max or both"},
    {"schedule min over max",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "cron = \"0 8 * * *\"\nduration = \"1h\"\nmin = 4\nmax = 3\n",
     8, "services.web.scale.schedule[0].min", "must not be greater than max"},
    {"schedule cron without duration",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "cron = \"0 8 * * *\"\nmin = 1\n",
     4, "services.web.scale.schedule[0].duration", "needs both cron and duration"},
    {"schedule mixes kinds",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "start = \"2026-03-01 00:00\"\nend = \"2026-03-02 00:00\"\n"
            "cron = \"0 8 * * *\"\nduration = \"1h\"\nmin = 1\n",
     8, "services.web.scale.schedule[0].cron", "not both"},
    {"schedule without name",
     HEADER "[[services.web.scale.schedule]]\ncron = \"0 8 * * *\"\n"
            "duration = \"1h\"\nmin = 1\n",
     4, "services.web.scale.schedule[0].name", "needs a name"},
    {"duplicated schedule name",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\ncron = \"0 8 * * *\"\n"
            "duration = \"1h\"\nmin = 1\n[[services.web.scale.schedule]]\nname = \"x\"\n"
            "cron = \"0 9 * * *\"\nduration = \"1h\"\nmin = 1\n",
     10, "services.web.scale.schedule[1].name", "duplicate schedule name \"x\" (first at line 4)"},
    {"route to missing service", HEADER "[[routes]]\npath = \"/\"\nservice = \"api\"\n", 6,
     "routes[0].service", "no service \"api\" in app \"shop\"; services: web"},
    {"route without service", HEADER "[[routes]]\npath = \"/\"\n", 4, "routes[0].service",
     "missing"},
    {"route path without slash", HEADER "[[routes]]\npath = \"api\"\nservice = \"web\"\n", 5,
     "routes[0].path", "starting with \"/\""},
    {"route path not normal", HEADER "[[routes]]\npath = \"/a/../b\"\nservice = \"web\"\n", 5,
     "routes[0].path", "a path in normal form"},
    {"route path encoded", HEADER "[[routes]]\npath = \"/%61pi\"\nservice = \"web\"\n", 5,
     "routes[0].path", "a path in normal form"},
    {"forward_authorization on a public route",
     HEADER "[[routes]]\nservice = \"web\"\nforward_authorization = true\n", 6,
     "routes[0].forward_authorization", "only for routes with auth"},
    {"route bad auth", HEADER "[[routes]]\nservice = \"web\"\nauth = \"no such!\"\n", 6,
     "routes[0].auth", "identity provider"},
    {"route claim not a string",
     HEADER "[[routes]]\nservice = \"web\"\nauth = \"corp\"\n"
            "claims = { admin = true }\n",
     7, "routes[0].claims.admin", "expected a string, got boolean true"},
    {"routes as a table", HEADER "[routes]\nservice = \"web\"\n", 4, "routes",
     "expected an array of tables"},
    {"duplicate route",
     HEADER "[[routes]]\nservice = \"web\"\n[[routes]]\nservice = \"web\"\n"
            "path = \"/\"\n",
     8, "routes[1].path", "duplicate route"},
    {"two drivers", HEADER "wasm = \"h.wasm\"\n", 4, "services.web.wasm",
     "exactly one of run, image or wasm, and run is already set (line 3)"},
    {"no workload", "app = \"shop\"\n[services.web]\nport = 80\n", 2, "services.web",
     "missing the workload: expected run"},
    {"bad image reference", "app = \"shop\"\n[services.web]\nimage = \"Nginx:1\"\n", 3,
     "services.web.image", "image \"Nginx:1\": the repository name must be lower case"},
    {"read_only on exec", HEADER "read_only = false\n", 4, "services.web.read_only",
     "read_only applies to container images"},
    {"writable root on oci",
     "app = \"shop\"\n[services.web]\ndriver = \"oci\"\nimage = \"oci:img\"\nread_only = false\n", 5,
     "services.web.read_only", "read_only = false is not available with driver \"oci\" yet"},
    {"numeric user on exec", HEADER "user = \"1000\"\n", 4, "services.web.user",
     "a user name ([a-z_][a-z0-9_-]*, at most 32 characters)"},
    {"oci without image", HEADER "driver = \"oci\"\n", 4, "services.web.driver",
     "driver \"oci\" requires image, but the service sets run"},
    {"unknown driver", HEADER "driver = \"lxc\"\n", 4, "services.web.driver", "one of \"exec\""},
    {"run as string", "app = \"shop\"\n[services.web]\nrun = \"./web --port 80\"\n", 3,
     "services.web.run", "non-empty array of strings"},
    {"run element not a string", "app = \"shop\"\n[services.web]\nrun = [\"./web\", 80]\n", 3,
     "services.web.run[1]", "got integer 80"},
    {"bad app name", "app = \"Shop\"\n[services.web]\nrun = [\"x\"]\n", 1, "app",
     "a name of 1 to 63 characters"},
    {"missing app", "[services.web]\nrun = [\"x\"]\n", 1, "app", "missing"},
    {"bad service name", "app = \"shop\"\n[services.Web_1]\nrun = [\"x\"]\n", 2, "services.Web_1",
     "invalid service name"},
    {"bad env key", HEADER "env = { \"1X\" = \"a\" }\n", 4, "services.web.env.1X",
     "invalid environment variable name"},
    {"env value not a string", HEADER "env = { PORT = 80 }\n", 4, "services.web.env.PORT",
     "expected a string"},
    {"health without slash", HEADER "health = \"healthz\"\n", 4, "services.web.health",
     "an HTTP path"},
    {"health unknown key", HEADER "health = { tcp = true, udp = true }\n", 4,
     "services.web.health.udp", "unknown key"},
    {"health zero interval", HEADER "health = { path = \"/h\", interval = \"0s\" }\n", 4,
     "services.web.health.interval", "positive duration"},
    {"upstream bad name", HEADER "upstreams = [\"cart\", \"Billing/API\"]\n", 4,
     "services.web.upstreams[1]", "a service name"},
    {"secret path empty", HEADER "secrets = [\"shop/db\", \"\"]\n", 4, "services.web.secrets[1]",
     "expected a non-empty string"},
    {"secret path dot-dot", HEADER "secrets = [\"shop/../db\"]\n", 4, "services.web.secrets[0]",
     "a secret path"},
    {"secrets not a list", HEADER "secrets = \"shop/db\"\n", 4, "services.web.secrets",
     "an array of strings"},
    {"env secret not listed", HEADER "env = { DB = \"secret:shop/db#password\" }\n", 4,
     "services.web.env.DB", "add \"shop/db\" to services.web.secrets"},
    {"env secret without key", HEADER "secrets = [\"shop/db\"]\nenv = { DB = \"secret:shop/db\" }\n",
     5, "services.web.env.DB", "\"secret:PATH#KEY\""},
    {"env secret bad key", HEADER "secrets = [\"shop/db\"]\nenv = { DB = \"secret:shop/db#a-b\" }\n",
     5, "services.web.env.DB", "with a valid key"},
    {"on_secret_change unknown", HEADER "secrets = [\"shop/db\"]\non_secret_change = \"HUP\"\n", 5,
     "services.web.on_secret_change", "\"roll\" (new instances replace the old"},
    {"on_secret_change signal with env secret",
     HEADER "secrets = [\"shop/db\"]\nenv = { DB = \"secret:shop/db#pw\" }\n"
            "on_secret_change = \"SIGHUP\"\n",
     6, "services.web.on_secret_change", "a signal cannot change the environment"},
    {"on_secret_change without secrets", HEADER "on_secret_change = \"SIGHUP\"\n", 4,
     "services.web.on_secret_change", "lists no secrets"},
    {"secret in run", "app = \"shop\"\n[services.web]\nrun = [\"./web\", \"${DB}\"]\n"
     "secrets = [\"shop/db\"]\nenv = { DB = \"secret:shop/db#pw\" }\n",
     3, "services.web.run[1]", "${DB} is a secret"},
    {"wasm", "app = \"shop\"\n[services.web]\nwasm = \"h.wasm\"\n", 3, "services.web.wasm",
     "the wasm driver is not available yet (WebAssembly comes with a later issue)"},
    {"oci driver with a registry image",
     "app = \"shop\"\n[services.web]\nimage = \"nginx:1.25\"\ndriver = \"oci\"\n", 3,
     "services.web.image", "oci-archive:PATH (an OCI image archive"},
    {"docker driver with run", HEADER "driver = \"docker\"\n", 4, "services.web.driver",
     "driver \"docker\" requires image, but the service sets run"},
    {"unknown variable in run",
     "app = \"shop\"\n[services.web]\nrun = [\"./web\", \"--port=${PORT}\", \"${GRETING}\"]\n"
     "env = { GREETING = \"hi\" }\n",
     3, "services.web.run[2]",
     "unknown variable ${GRETING}: not in the instance's environment, which has PORT, PATH, "
     "BATON_ADDR, BATON_APP, BATON_SERVICE, BATON_INSTANCE_ID and the service's env (GREETING); "
     "write $${ for a literal ${"},
    {"unterminated variable in run",
     "app = \"shop\"\n[services.web]\nrun = [\"./web\", \"${PORT\"]\n", 3, "services.web.run[1]",
     "unterminated ${ in \"${PORT\"; write $${ for a literal ${"},
    {"two services fix one port",
     HEADER "port = 8000\n[services.api]\nrun = [\"./api\"]\nport = 8000\n", 7, "services.api.port",
     "port 8000 is already fixed by service \"web\" (line 4); two services of an app cannot "
     "listen on the same port"},
    {"syntax error", "app = \"shop\"\n[services.web\nrun = [\"x\"]\n", 2, "", ""},
    {"unquoted date",
     HEADER "[[services.web.scale.schedule]]\nname = \"x\"\n"
            "start = 2026-03-01T00:00:00\nend = \"2026-03-02 00:00\"\nmax = 3\n",
     6, "services.web.scale.schedule[0].start", "got date-time 2026-03-01T00:00:00"},
};

class BadManifest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadManifest, ReportsLineKeyAndMessage) {
  const BadCase& c = GetParam();
  ManifestResult r = parseManifest(c.text, "app.toml");
  EXPECT_FALSE(r.app);
  ASSERT_FALSE(r.errors.empty()) << c.name;
  const Diagnostic& d = r.errors[0];
  EXPECT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(d.file, "app.toml");
  EXPECT_EQ(d.line, c.line) << dump(r);
  EXPECT_EQ(d.key, c.key) << dump(r);
  EXPECT_THAT(d.message, HasSubstr(c.message)) << dump(r);
  EXPECT_FALSE(d.message.empty());
}

INSTANTIATE_TEST_SUITE_P(Table, BadManifest, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           std::string n;
                           for (const char* p = info.param.name; *p; ++p) {
                             n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                           }
                           return n;
                         });

TEST(Manifest, ToStringFormat) {
  ManifestResult r = parseManifest(HEADER "port = \"http\"\n", "app.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].toString(),
            "app.toml:4:8: services.web.port: expected an integer from 1 to 65535, got string "
            "\"http\"");
  Diagnostic whole{"app.toml", 0, 0, "", "cannot read the file"};
  EXPECT_EQ(whole.toString(), "app.toml: cannot read the file");
}

TEST(Manifest, CollectsAllErrorsSortedByLine) {
  ManifestResult r = parseManifest(R"(app = "shop"
[services.web]
run = ["./web"]
port = 0
memory = "lots"
bogus = 1
[services.web.scale]
min = 3
max = 2
[[routes]]
service = "nope"
)",
                                   "app.toml");
  ASSERT_EQ(r.errors.size(), 5u) << dump(r);
  EXPECT_FALSE(r.app);
  std::vector<std::pair<int, std::string>> got;
  for (const Diagnostic& d : r.errors) got.emplace_back(d.line, d.key);
  EXPECT_EQ(got, (std::vector<std::pair<int, std::string>>{{4, "services.web.port"},
                                                           {5, "services.web.memory"},
                                                           {6, "services.web.bogus"},
                                                           {8, "services.web.scale.min"},
                                                           {11, "routes[0].service"}}));
}

TEST(Manifest, SyntaxErrorHasPosition) {
  ManifestResult r = parseManifest("app = \"shop\"\nport = = 3\n", "app.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_GT(r.errors[0].column, 0);
  EXPECT_TRUE(r.errors[0].key.empty());
  EXPECT_THAT(r.errors[0].toString(), HasSubstr("app.toml:2:"));
}

TEST(Manifest, ScheduleAgainstServiceBounds) {
  ManifestResult r = parseManifest(HEADER R"([services.web.scale]
min = 0
max = 2
[[services.web.scale.schedule]]
name = "big"
cron = "*/15 8-17 * JAN-MAR,dec mon-fri"
duration = "30m"
min = 5
)",
                                   "app.toml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].key, "services.web.scale.schedule[0].min");
  EXPECT_THAT(r.errors[0].message, HasSubstr("greater than the service's max (2)"));
}

TEST(Manifest, ScheduleMaxZeroTurnsServiceOff) {
  ManifestResult r = parseManifest(HEADER R"([services.web.scale]
min = 0
[[services.web.scale.schedule]]
name = "night"
cron = "0 22 * * *"
duration = "8h"
max = 0
)",
                                   "app.toml");
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->services.at("web").scale.schedule[0].max, 0);
}

TEST(Manifest, UpstreamsAcceptOtherApps) {
  ManifestResult r = parseManifest(HEADER "upstreams = [\"cart\", \"billing/api\"]\n", "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->services.at("web").upstreams, (std::vector<std::string>{"cart", "billing/api"}));
}

TEST(Manifest, ApiGrantIsReadOrNone) {
  ManifestResult r = parseManifest(HEADER "api = \"read\"\n", "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->services.at("web").api, "read");
  r = parseManifest(HEADER "api = \"none\"\n", "a.toml");
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->services.at("web").api, "");
  r = parseManifest(HEADER "api = \"write\"\n", "a.toml");
  ASSERT_FALSE(r.app);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].key, "services.web.api");
  EXPECT_NE(r.errors[0].message.find("\"read\""), std::string::npos) << r.errors[0].message;
}

TEST(Manifest, KeepsParsingPastAnUnavailableDriver) {
  ManifestResult r = parseManifest(R"(app = "shop"
[services.proxy]
wasm = "h.wasm"
[services.web]
run = ["./web"]
port = "http"
)",
                                   "app.toml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].key, "services.proxy.wasm");
  EXPECT_EQ(r.errors[1].key, "services.web.port");
}

TEST(Manifest, AContainerImageWithItsCommandUserAndWritableRoot) {
  ManifestResult r = parseManifest(R"(app = "shop"
[services.web]
image = "localhost/baton/busybox:test"
run = ["httpd", "-f", "-p", "${PORT}"]
port = 80
user = "1000:1000"
read_only = false
[services.api]
image = "nginx:1.25"
port = 80
)",
                                   "app.toml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  const model::ServiceSpec& web = r.app->services.at("web");
  EXPECT_EQ(web.driver, "docker");
  EXPECT_EQ(web.image, "localhost/baton/busybox:test");
  EXPECT_EQ(web.run, (std::vector<std::string>{"httpd", "-f", "-p", "${PORT}"}));
  EXPECT_EQ(web.user, "1000:1000");
  EXPECT_FALSE(web.read_only);
  EXPECT_TRUE(r.app->services.at("api").read_only);  // the default: a read-only root
  EXPECT_TRUE(r.app->services.at("api").run.empty());  // the image's own command
}

TEST(Manifest, AnOciImageForRunc) {
  ManifestResult r = parseManifest(R"(app = "shop"
[services.web]
driver = "oci"
image = "oci-archive:images/web.tar"
)",
                                   "app.toml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.app->services.at("web").driver, "oci");
  EXPECT_EQ(r.app->services.at("web").image, "oci-archive:images/web.tar");
}

TEST(Manifest, RunExpandsOnlyTheInstanceEnvironment) {
  ManifestResult r = parseManifest(R"(app = "shop"
[services.web]
run = ["sh", "-c", "exec ./web $PORT $1 $$ --greeting=${GREETING}", "$${HOME}", "${PORT}",
       "${PATH}", "${BATON_ADDR}/v1", "${BATON_APP}${BATON_SERVICE}${BATON_INSTANCE_ID}", "$"]
env = { GREETING = "hi" }
)",
                                   "app.toml");
  ASSERT_TRUE(r.app) << dump(r);
  // Every element is checked, and each reports its first problem.
  r = parseManifest(HEADER "[services.api]\nrun = [\"${A}${B}\", \"${PORT}\", \"${C}\"]\n",
                    "app.toml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].key, "services.api.run[0]");
  EXPECT_THAT(r.errors[0].message, HasSubstr("${A}"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("BATON_INSTANCE_ID (the service sets no env)"));
  EXPECT_EQ(r.errors[1].key, "services.api.run[2]");
  // One service's env is not another's.
  r = parseManifest(R"(app = "shop"
[services.web]
run = ["./web"]
env = { TOKEN = "x" }
[services.api]
run = ["./api", "${TOKEN}"]
)",
                    "app.toml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].key, "services.api.run[1]");
}

TEST(Manifest, FixedPortsAreTheirServicesAlone) {
  ManifestResult r = parseManifest(
      HEADER "port = 8000\n[services.api]\nrun = [\"./api\"]\nport = 8001\n", "app.toml");
  ASSERT_TRUE(r.app) << dump(r);
  r = parseManifest(R"(app = "shop"
[services.web]
run = ["./web"]
port = 8000
[services.api]
run = ["./api"]
port = 8000
[services.admin]
run = ["./admin"]
port = 8000
)",
                    "app.toml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].key, "services.api.port");
  EXPECT_EQ(r.errors[0].line, 7);
  EXPECT_EQ(r.errors[1].key, "services.admin.port");
  EXPECT_THAT(r.errors[1].message, HasSubstr("already fixed by service \"web\" (line 4)"));
}

TEST(Manifest, IdentityProvidersAreCheckedWhenKnown) {
  const char* text = HEADER R"([[routes]]
path = "/admin"
service = "web"
auth = "corp"
[[routes]]
path = "/api"
service = "web"
auth = "api-key"
[[routes]]
service = "web"
auth = "public"
)";
  // Unknown to the caller (the CLI): the name's form only.
  EXPECT_TRUE(parseManifest(text, "app.toml").app);
  ManifestOptions corp{std::vector<std::string>{"okta", "corp"}};
  ManifestResult r = parseManifest(text, "app.toml", corp);
  ASSERT_TRUE(r.app) << dump(r);
  EXPECT_EQ(r.app->routes[0].auth, "corp");

  ManifestOptions okta{std::vector<std::string>{"okta", "azure"}};
  r = parseManifest(text, "app.toml", okta);
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].toString(),
            "app.toml:7:8: routes[0].auth: no identity provider \"corp\" on this agent; expected "
            "\"public\", \"api-key\" or one of the agent's identity providers: okta, azure");

  ManifestOptions none{std::vector<std::string>{}};
  r = parseManifest(text, "app.toml", none);
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_THAT(r.errors[0].message,
              HasSubstr("an [[identity]] of the agent's config, which has none"));
}

std::string repeat(std::string_view unit, int n) {
  std::string out;
  out.reserve(unit.size() * n);
  for (int i = 0; i < n; ++i) out += unit;
  return out;
}

// toml++ recurses once per level: the first case overflowed the stack before the pre-scan.
TEST(Manifest, DeepNestingIsRefusedBeforeParsing) {
  struct Deep {
    const char* name;
    std::string text;
    int line;
    int column;  // of the character that goes one level too deep
  };
  const int n = 100'000;
  const Deep cases[] = {
      {"dotted key", "app = \"a\"\n" + repeat("a.", n) + "a = 1\n", 2, 64},
      {"dotted key with spaces", repeat("a . ", n) + "a = 1\n", 1, 127},
      {"quoted key segments", repeat("\"a.b\".'c'.", n) + "d = 1\n", 1, 160},
      {"array", "app = \"a\"\nx = " + repeat("[", n) + repeat("]", n) + "\n", 2, 36},
      {"unclosed array", "x = " + repeat("[", n), 1, 36},
      {"array over lines", "x = [\n" + repeat("[ # [\n", n), 32, 1},
      {"table header", "[" + repeat("a.", n) + "a]\n", 1, 65},
      {"array of tables", "[[" + repeat("a.", n) + "a]]\n", 1, 64},
      {"inline tables", "x = " + repeat("{ a = ", n) + "1" + repeat(" }", n) + "\n", 1, 195},
      {"arrays of inline tables", "x = " + repeat("[{a=", n) + "\n", 1, 68},
  };
  for (const Deep& c : cases) {
    ManifestResult r = parseManifest(c.text, "app.toml");
    EXPECT_FALSE(r.app) << c.name;
    ASSERT_EQ(r.errors.size(), 1u) << c.name << "\n" << dump(r).substr(0, 500);
    const Diagnostic& d = r.errors[0];
    EXPECT_EQ(d.file, "app.toml") << c.name;
    EXPECT_EQ(d.line, c.line) << c.name;
    EXPECT_EQ(d.column, c.column) << c.name;
    EXPECT_TRUE(d.key.empty()) << c.name;
    EXPECT_THAT(d.message, HasSubstr("nesting deeper than 32 levels")) << c.name;
  }
}

TEST(Manifest, NestingUpToTheLimitIsLeftToTheParser) {
  // 32 levels: parsed (and refused for what it says); 33: refused before parsing.
  ManifestResult r = parseManifest("app = \"a\"\n" + repeat("a.", 31) + "a = 1\n", "app.toml");
  ASSERT_FALSE(r.errors.empty());
  EXPECT_THAT(r.errors[0].message, Not(HasSubstr("nesting")));
  r = parseManifest("app = \"a\"\n" + repeat("a.", 32) + "a = 1\n", "app.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].toString(),
            "app.toml:2:64: nesting deeper than 32 levels: expected at most 32 levels of table "
            "headers, dotted keys, arrays and inline tables together");
  // Depths add up: under a header of 30 segments, a key of 2 segments fits, not one of 3.
  std::string header = "[" + repeat("a.", 29) + "a]\n";
  r = parseManifest(header + "b.c = 1\n", "app.toml");
  ASSERT_FALSE(r.errors.empty());
  EXPECT_THAT(r.errors[0].message, Not(HasSubstr("nesting")));
  r = parseManifest(header + "b.c.d = 1\n", "app.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_THAT(r.errors[0].message, HasSubstr("nesting deeper"));
  r = parseManifest(header + "b = [[1]]\n", "app.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].column, 6);
  EXPECT_THAT(r.errors[0].message, HasSubstr("nesting deeper"));
  // A byte order mark does not hide a header.
  r = parseManifest("\xEF\xBB\xBF" + header + "b.c.d = 1\n", "app.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("nesting deeper"));
  r = parseManifest("\xEF\xBB\xBF" HEADER, "app.toml");
  EXPECT_TRUE(r.app) << dump(r);
}

// Brackets, braces and dots inside strings and comments are not nesting.
TEST(Manifest, NestingScanSkipsStringsAndComments) {
  // Each @ becomes 200 times "[{.".
  std::string text = R"(# @
app = "shop"  # @
[services.web]
run = ["sh", "-c", "@", "\"@\\", '@', """@""", '''@''']
health = { path = "/a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a" }
[services.web.env]
"A.B.C.D.E.F.G.H.I.J.K.L.M.N.O.P.Q.R.S.T.U.V.W.X.Y.Z.a.b.c.d.e.f.g.h" = "x"
MULTI = """
@
\"""
@ \
   @ """
LITERAL = '''@
@''''
ONE_QUOTE = """a""""
EMPTY = ""
# [@
[[routes]]   # @
service = "web"
claims = { "x.y" = "@" }
)";
  const std::string deep = repeat("[{.", 200);
  for (size_t at; (at = text.find('@')) != std::string::npos;) text.replace(at, 1, deep);
  ManifestResult r = parseManifest(text, "app.toml");
  // The one error: an env key that is not a variable name (the quoted key is one segment).
  ASSERT_EQ(r.errors.size(), 1u) << dump(r).substr(0, 2000);
  EXPECT_EQ(r.errors[0].line, 7);
  EXPECT_THAT(r.errors[0].message, HasSubstr("invalid environment variable name"));
}

TEST(ManifestFile, ReadsTheFile) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("spec_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::path file = dir / "app.toml";
  {
    std::ofstream out(file);
    out << HEADER << "port = 0\n";
  }
  ManifestResult r = parseManifestFile(file);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, file.string());
  EXPECT_EQ(r.errors[0].line, 4);

  ManifestResult missing = parseManifestFile(dir / "nope.toml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].line, 0);
  EXPECT_THAT(missing.errors[0].message, HasSubstr("cannot read"));

  ManifestResult directory = parseManifestFile(dir);
  ASSERT_EQ(directory.errors.size(), 1u);
  EXPECT_EQ(directory.errors[0].line, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace baton::spec
