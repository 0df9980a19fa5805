// `baton agent`: the one place that knows the concrete types (STYLE.md). It reads the config,
// opens the store, registers the drivers, and starts the roles in order: controller, node, api.
// On SIGTERM or SIGINT it stops them in reverse order. Instances keep running: they belong to
// their supervisors and are re-adopted by the next agent.
#include "cli/agent.h"

#include <signal.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "api/api_server.h"
#include "api/event_bus.h"
#include "auth/provider.h"
#include "cli/agent_logs.h"
#include "cli/agent_wiring.h"
#include "controller/autoscaling.h"
#include "controller/controller.h"
#include "core/hash.h"
#include "drivers/docker_driver.h"
#include "drivers/exec_driver.h"
#include "drivers/instance_net.h"
#include "drivers/oci_driver.h"
#include "gateway/catalog.h"
#include "gateway/gateway.h"
#include "dns/dns_server.h"
#include "crypto/aead.h"
#include "mesh/app_tokens.h"
#include "mesh/ca.h"
#include "mesh/proxy.h"
#include "mesh/vips.h"
#include "model/json.h"
#include "model/keys.h"
#include "node/node.h"
#include "spec/manifest.h"
#include "secrets/seal.h"
#include "state/snapshot_watcher.h"
#include "state/sqlite_store.h"

namespace baton::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "node-1";
  return buf;
}

// An API token (outside --dev): made once, kept in the data dir in a file created with mode
// 0600 (never readable by others, not even for a moment). Its value is never logged.
Result<std::string> loadOrCreateToken(const fs::path& file) {
  std::ifstream in(file);
  std::string token;
  if (in && std::getline(in, token) && token.size() >= 32) return token;
  unsigned char raw[32];
  if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    return ioError("getrandom failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  token.clear();
  for (unsigned char c : raw) {
    token += kHex[c >> 4];
    token += kHex[c & 0xf];
  }
  fs::path tmp = file;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ioError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  if (::close(fd) != 0 || !written) return ioError("cannot write " + tmp.string());
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) return ioError("cannot rename " + tmp.string() + ": " + ec.message());
  return token;
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Result<spec::AgentConfig> loadConfig(const AgentFlags& flags) {
  spec::AgentConfig config;
  if (flags.config) {
    auto parsed = spec::parseAgentConfigFile(*flags.config);
    if (!parsed.errors.empty() || !parsed.config) {
      std::string msg;
      for (const auto& d : parsed.errors) msg += d.toString() + "\n";
      return invalidArgument(msg.empty() ? "invalid config " + *flags.config : msg);
    }
    config = *parsed.config;
  }
  if (flags.dev) config.dev = true;
  if (flags.data_dir) {
    config.data_dir = *flags.data_dir;
  } else if (config.dev && !flags.config) {
    char tmpl[] = "/tmp/baton-dev-XXXXXX";
    if (!mkdtemp(tmpl)) return ioError("cannot create a temporary data dir");
    config.data_dir = tmpl;
  }
  if (flags.api) config.api_listen = *flags.api;
  if (flags.http) config.gateway_http = *flags.http;
  if (flags.https) config.gateway_https = *flags.https;
  if (flags.dns) config.dns_listen = *flags.dns == "off" ? "" : *flags.dns;
  if (config.node_name.empty()) config.node_name = hostName();
  if (config.store_backend != "sqlite") {
    return invalidArgument("store backend \"" + config.store_backend +
                           "\" is not available yet; use \"sqlite\"");
  }
  return config;
}

// The label on this agent's containers: its node name and data dir, hashed (FNV-1a), so agents
// that share an engine (tests, two data dirs) never adopt each other's containers.
std::string ownerLabel(const std::string& node_name, const std::string& data_dir) {
  return fnv1a64Hex(node_name + "\n" + data_dir);
}

std::string selfExecutable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : p.string();
}

// How instances' supervisors run: `baton-supervise` beside this binary (small: it maps a
// handful of libraries), else `baton supervise`.
std::vector<std::string> supervisorArgv() {
  fs::path self = selfExecutable();
  fs::path small = self.parent_path() / "baton-supervise";
  if (::access(small.c_str(), X_OK) == 0) return {small.string()};
  return {self.string(), "supervise"};
}

// An audit entry for a secret handed to an instance (docs/secrets.md "Audit"), in the API's
// format: who is the node, for which instance; never a value.
Status auditSecretDelivery(state::Store& store, Clock& clock, const std::string& node,
                           const std::string& instance, const std::string& path) {
  uint32_t salt = 0;
  if (::getrandom(&salt, sizeof salt, 0) != sizeof salt) salt = static_cast<uint32_t>(::getpid());
  const int64_t now_ms = toUnixMillis(clock.now());
  char key[64];
  std::snprintf(key, sizeof key, "%013lld-%08x", static_cast<long long>(now_ms), salt);
  nlohmann::json entry = {{"at", now_ms},
                          {"who", "node " + node},
                          {"method", "DELIVER"},
                          {"route", "secret-to-instance"},
                          {"path", "/instances/" + instance},
                          {"secret", path}};
  auto put = store.put(std::string(model::keys::kAudit) + key, entry.dump());
  return put ? Status::ok() : put.status();
}

}  // namespace

int runAgent(const AgentFlags& flags) {
  auto config = loadConfig(flags);
  if (!config) {
    std::cerr << "baton agent: " << config.status().message() << "\n";
    return 1;
  }
  const spec::AgentConfig& cfg = *config;
  // Everything the agent and its supervisors create (the store, its WAL, task configs, logs,
  // tokens) is theirs alone from the first byte; instances get the usual 022 back (drivers).
  ::umask(077);
  std::error_code ec;
  fs::create_directories(cfg.data_dir, ec);
  if (!ec) fs::permissions(cfg.data_dir, fs::perms::owner_all, ec);  // 0700, also when it existed
  if (ec) {
    std::cerr << "baton agent: cannot create data dir " << cfg.data_dir << ": " << ec.message()
              << "\n";
    return 1;
  }
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals are taken by sigwait() below; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Clock& clock = SystemClock::instance();
  auto store = state::SqliteStore::open(fs::path(cfg.data_dir) / "baton.db", clock);
  if (!store) {
    std::cerr << "baton agent: opening the store: " << store.status().message() << "\n";
    return 1;
  }

  // Outside --dev: the built-in tokens (docs/tokens.md), made at the first start: agent-token,
  // the bootstrap (management) token that may do everything, and agent-read-token. Scoped
  // tokens live in the store (api/tokens.h) and are made with the first.
  std::string token, read_token;
  if (!cfg.dev) {
    auto t = loadOrCreateToken(fs::path(cfg.data_dir) / "agent-token");
    auto r = t ? loadOrCreateToken(fs::path(cfg.data_dir) / "agent-read-token") : t;
    if (!t || !r) {
      std::cerr << "baton agent: " << (t ? r : t).status().message() << "\n";
      return 1;
    }
    token = *t;
    read_token = *r;
  }

  drivers::DriverRegistry registry;
  // As many descriptors as the hard limit allows (instances get the soft limit they would have
  // had), then the gateway's share of them.
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  const rlim_t inherited_nofile = nofile.rlim_cur;
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    ::getrlimit(RLIMIT_NOFILE, &nofile);
  }
  auto max_connections = gateway::connectionLimit(nofile.rlim_cur, cfg.gateway_max_connections);
  if (!max_connections) {
    std::cerr << "baton agent: " << max_connections.status().message() << "\n";
    return 1;
  }
  spdlog::info("gateway: at most {} client connections (file-descriptor limit {})",
               *max_connections, static_cast<uint64_t>(nofile.rlim_cur));

  // Each instance in its own network namespace where the agent can make them (docs/mesh.md):
  // one InstanceNetworks for every driver, so that no two pick the same address.
  std::optional<drivers::InstanceNetworks> networks;
  const bool can_isolate = ::geteuid() == 0 && drivers::runCommand({"ip", "netns", "list"}).isOk();
  if (cfg.node_network == "isolated" && !can_isolate) {
    std::cerr << "baton agent: [node] network = \"isolated\" needs root and iproute2 (ip netns); "
                 "use \"host\" to run instances in the host's network\n";
    return 1;
  }
  if (cfg.node_network == "isolated" || (cfg.node_network.empty() && can_isolate)) {
    networks.emplace();
    spdlog::info("node: every instance gets its own network namespace");
  } else {
    spdlog::warn("node: instances share the host's network (no isolation between them){}",
                 can_isolate ? "" : ": making network namespaces needs root and iproute2");
  }
  drivers::InstanceNetworks* nets = networks ? &*networks : nullptr;

  // Isolated instances resolve names with the mesh's DNS (docs/mesh.md "Names").
  const std::string resolv_conf = std::string("nameserver ") + dns::kMeshDnsAddress +
                                  "\nsearch service.baton\noptions ndots:1 timeout:2 attempts:2\n";
  drivers::ExecDriverOptions exec_options;
  exec_options.networks = nets;
  if (nets) exec_options.resolv_conf = resolv_conf;
  exec_options.child_nofile = static_cast<uint64_t>(inherited_nofile);
  exec_options.state_dir = fs::path(cfg.data_dir) / "tasks";
  exec_options.supervisor_argv = supervisorArgv();
  registry.add(std::make_unique<drivers::ExecDriver>(exec_options, clock));
  drivers::DockerDriverOptions docker_options;
  docker_options.engine.socket = cfg.docker_socket;
  docker_options.state_dir = fs::path(cfg.data_dir) / "docker";
  docker_options.owner = ownerLabel(cfg.node_name, fs::absolute(cfg.data_dir).string());
  docker_options.child_nofile = static_cast<uint64_t>(inherited_nofile);
  docker_options.networks = nets;
  if (nets) docker_options.resolv_conf = resolv_conf;
  registry.add(std::make_unique<drivers::DockerDriver>(docker_options));
  drivers::OciDriverOptions oci_options;
  oci_options.state_dir = fs::path(cfg.data_dir) / "oci";
  oci_options.supervisor_argv = supervisorArgv();
  oci_options.child_nofile = static_cast<uint64_t>(inherited_nofile);
  oci_options.networks = nets;
  if (nets) oci_options.resolv_conf = resolv_conf;
  registry.add(std::make_unique<drivers::OciDriver>(oci_options, clock));

  api::EventBus bus(clock);
  auto publish = [&bus](const std::string& kind, const std::string& message) {
    bus.publish(kind, message);
  };

  // Identity for the gateway's non-public routes.
  auto authenticator = auth::Authenticator::create(cfg.identity, &**store, clock);
  if (!authenticator) {
    std::cerr << "baton agent: identity providers: " << authenticator.status().message() << "\n";
    return 1;
  }
  // Shared with the API below; owned by the authenticator, which the gateway keeps (and the
  // gateway outlives the API server).
  auth::ApiKeys* api_keys = (*authenticator)->apiKeys();
  if (api_keys) {
    // Without the watch, api-key routes read the store on every request (still correct).
    if (Status s = api_keys->watchForChanges(); !s) {
      spdlog::warn("api keys: no cache ({}); every api-key request reads the store", s.toString());
    }
  }

  // The gateway, the autoscaler that reads its load, and the controller that acts on both.
  // on_cold is set below, once the autoscaler exists (the gateway is not started before that).
  gateway::GatewayOptions gw_options;
  gw_options.http_listen = cfg.gateway_http;
  gw_options.https_listen = cfg.gateway_https;
  for (const auto& c : cfg.certs) gw_options.certs.push_back({c.cert, c.key});
  gw_options.dev_cert_dir = (fs::path(cfg.data_dir) / "certs").string();
  gw_options.threads = cfg.gateway_threads;
  gw_options.hold_queue = cfg.gateway_hold_queue;
  gw_options.hold_timeout = cfg.gateway_hold_timeout;
  gw_options.access_log = cfg.gateway_access_log;
  gw_options.limits.upstream_idle_timeout = cfg.gateway_upstream_idle_timeout;
  gw_options.limits.upstream_response_timeout = cfg.gateway_upstream_response_timeout;
  gw_options.limits.max_connections = *max_connections;
  // Isolated instances see the gateway's connections come from its own address.
  if (nets) gw_options.upstream_source = mesh::kGatewayAddress;
  controller::Autoscaling* autoscaling_ptr = nullptr;
  controller::Controller* controller_ptr = nullptr;
  gateway::GatewayHooks hooks;
  hooks.authorizer = std::make_shared<GatewayAuthorizer>(std::move(*authenticator), clock);
  hooks.on_cold = [&autoscaling_ptr](const std::string& app, const std::string& service) {
    if (autoscaling_ptr) autoscaling_ptr->kick(app, service);
  };
  hooks.scaled_off = [&autoscaling_ptr](const std::string& app, const std::string& service) {
    return autoscaling_ptr != nullptr && autoscaling_ptr->scaledOff(app, service);
  };
  gateway::Gateway gw(gw_options, clock, hooks);
  gateway::CatalogWatcher catalog(**store, [&gw](std::shared_ptr<const gateway::RouteTable> t) {
    gw.setTable(std::move(t));
  });

  GatewayLoad load(gw, clock);
  controller::AutoscalingOptions scaling_options;
  scaling_options.on_event = publish;
  scaling_options.on_change = [&controller_ptr] {
    if (controller_ptr) controller_ptr->poke();
  };
  controller::Autoscaling autoscaling(**store, clock, [&load] { return load.sample(); },
                                      scaling_options);
  autoscaling_ptr = &autoscaling;

  controller::ControllerOptions controller_options;
  controller_options.on_event = publish;
  controller_options.reconcile.desired_count =
      [&autoscaling](const std::string& app, const std::string& service,
                     const controller::ScaleBounds& bounds) {
        return autoscaling.desired(app, service, bounds);
      };
  controller::Controller controller(**store, clock, controller_options);
  controller_ptr = &controller;

  // Secrets for instances (docs/secrets.md "Delivery"): set once the secrets store is open.
  std::atomic<secrets::Seal*> instance_secrets{nullptr};
  node::NodeOptions node_options;
  node_options.node_id = cfg.node_name;
  node_options.read_secret = [&instance_secrets, &store, &clock, node = cfg.node_name](
                                 const std::string& path, int64_t version,
                                 const std::string& instance) -> Result<node::SecretRead> {
    secrets::Seal* seal = instance_secrets.load();
    secrets::SecretStore* vault = seal ? seal->store() : nullptr;
    if (!vault) {
      return Status(Code::kUnavailable,
                    seal ? seal->status().message() : std::string("the secrets are not open yet"));
    }
    if (Status s = auditSecretDelivery(**store, clock, node, instance, path); !s) {
      return Status(Code::kUnavailable, "the audit log cannot be written: " + s.message());
    }
    auto got = vault->get(path, version);
    if (!got) return got.status();
    return node::SecretRead{got->version, std::move(got->data)};
  };
  node_options.secret_version = [&instance_secrets](const std::string& path) -> int64_t {
    secrets::Seal* seal = instance_secrets.load();
    secrets::SecretStore* vault = seal ? seal->store() : nullptr;
    auto meta = vault ? vault->metadata(path) : Result<secrets::Metadata>(Status(Code::kUnavailable, ""));
    return meta ? secrets::liveVersion(*meta) : 0;
  };
  // One tmpfs per instance when root; else files under /dev/shm (memory too), the agent's alone.
  const std::string data_dir_tag = fnv1a64Hex(fs::absolute(cfg.data_dir).string()).substr(0, 12);
  node_options.secrets_dir = ::geteuid() == 0
                                 ? fs::path("/run/baton/secrets") / data_dir_tag
                                 : fs::path("/dev/shm") / ("baton-" + std::to_string(::geteuid()) +
                                                           "-" + data_dir_tag);
  node_options.secrets_tmpfs = ::geteuid() == 0;
  if (::geteuid() == 0) {
    // Each exec service goes through these to its own directory (and sees nothing in them).
    std::error_code ec;
    fs::create_directories("/run/baton/secrets", ec);
    fs::permissions("/run/baton", fs::perms(0711), ec);
    fs::permissions("/run/baton/secrets", fs::perms(0711), ec);
  }
  node_options.api_address = cfg.api_listen;
  node_options.data_dir = cfg.data_dir;
  node_options.cpu = cfg.node_cpu.value_or(std::max(1u, std::thread::hardware_concurrency()));
  node_options.memory = cfg.node_memory.value_or(static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                                                 static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE)));
  node_options.env["PATH"] = kDefaultPath;
  node_options.agent_uid = ::geteuid();
  node_options.log_retention = cfg.node_log_retention;
  node_options.allow_root = cfg.exec_allow_root;
  // The mesh (docs/mesh.md): only where instances have networks of their own, since the proxy
  // tells callers apart by the address of their veth.
  std::unique_ptr<mesh::MeshCa> mesh_ca;
  std::unique_ptr<mesh::MeshProxy> mesh_proxy;
  std::optional<mesh::AppTokens> app_tokens;
  std::unique_ptr<state::SnapshotWatcher> mesh_watch;
  if (nets != nullptr) {
    // Every service address is local to the host (Linux "AnyIP"): the proxy binds any of them
    // without an address per service.
    auto route = drivers::runCommand({"ip", "route", "replace", "local", "169.254.64.0/18", "dev",
                                      "lo"});
    auto ca = route ? mesh::MeshCa::loadOrCreate(**store, fs::path(cfg.data_dir) / "mesh-ca.kek",
                                                 "baton", clock)
                    : Result<std::unique_ptr<mesh::MeshCa>>(route.status());
    if (!ca) {
      std::cerr << "baton agent: mesh: " << ca.status().message() << "\n";
      return 1;
    }
    mesh_ca = std::move(*ca);
    mesh::MeshProxyOptions mo;
    mo.node_id = cfg.node_name;
    mo.cert_ttl = cfg.mesh_cert_ttl;
    mo.hold_timeout = cfg.gateway_hold_timeout;
    mo.hold_queue = cfg.gateway_hold_queue;
    mesh::MeshProxyHooks mh;
    mh.on_cold = [&autoscaling](const std::string& app, const std::string& service) {
      autoscaling.kick(app, service);
    };
    mesh_proxy = std::make_unique<mesh::MeshProxy>(mo, *mesh_ca, clock, mh);
    load.setMesh(mesh_proxy.get());
    if (Status s = mesh_proxy->start(); !s) {
      std::cerr << "baton agent: " << s.message() << "\n";
      return 1;
    }
    node_options.network = "isolated";
    node_options.mesh_address = mesh_proxy->meshAddress();
    node_options.upstream_address = [&store](const std::string& app,
                                             const std::string& service) -> Result<std::string> {
      auto vip = mesh::ensureVip(**store, mesh::ServiceRef{app, service});
      if (!vip) return vip.status();
      return *vip + ":80";
    };
    // Instances granted `api = "read"` reach the API at a reserved address with their app's
    // token (docs/mesh.md "The API for instances").
    auto tokens = mesh::AppTokens::loadOrCreate(fs::path(cfg.data_dir) / "instance-api.key");
    if (!tokens) {
      std::cerr << "baton agent: " << tokens.status().message() << "\n";
      return 1;
    }
    app_tokens.emplace(std::move(*tokens));
    node_options.instance_api_address = std::string(mesh::kApiAddress) + ":80";
    node_options.app_token = [&app_tokens](const std::string& app) {
      return app_tokens->issue(app);
    };
  }
  // DNS (docs/mesh.md "Names"): for the host's tools on dns_listen and, with the mesh, for
  // isolated instances at the mesh's DNS address (their /etc/resolv.conf names it).
  std::unique_ptr<dns::DnsServer> dns_server;
  {
    dns::DnsServerOptions dopts;
    dopts.listen.clear();
    if (!cfg.dns_listen.empty()) dopts.listen.push_back(cfg.dns_listen);
    if (mesh_proxy) dopts.best_effort.push_back(std::string(dns::kMeshDnsAddress) + ":53");
    if (!dopts.listen.empty() || !dopts.best_effort.empty()) dns_server = std::make_unique<dns::DnsServer>(dopts);
  }
  // One view of the catalog for the proxy and DNS, rebuilt on every change.
  mesh_watch = std::make_unique<state::SnapshotWatcher>(
      **store, mesh::meshViewPrefixes(),
      [&mesh_proxy, &dns_server, node = cfg.node_name](const state::PrefixSnapshot& snap) {
        auto view = std::make_shared<const mesh::MeshView>(mesh::buildMeshView(snap.lists, node));
        if (mesh_proxy) mesh_proxy->setView(view);
        if (dns_server) dns_server->setView(view);
      },
      "mesh");
  node::NodeRuntime node(**store, registry, clock, node_options);

  api::ApiOptions api_options;
  api_options.listen = cfg.api_listen;
  api_options.dev = cfg.dev;
  api_options.identity_providers.emplace();
  for (const auto& id : cfg.identity) api_options.identity_providers->push_back(id.name);
  api_options.check_token = [token, read_token](std::string_view t) {
    if (!token.empty() && constantTimeEqual(t, token)) return api::Access::kWrite;
    if (!read_token.empty() && constantTimeEqual(t, read_token)) return api::Access::kRead;
    return api::Access::kNone;
  };
  api::ApiDeps deps{**store, clock};
  deps.events = &bus;
  deps.logs = makeFileLogReader(fs::path(cfg.data_dir) / "logs");
  deps.metrics = [&gw, &node, &store, &mesh_proxy, &dns_server] {
    // The node's series of deleted services are dropped (the gateway drops its own).
    std::set<std::string> deployed;
    if (auto apps = (*store)->list(std::string(model::keys::kApps))) {
      for (const auto& kv : apps->kvs) {
        if (auto rec = model::decode<model::AppRecord>(kv.value)) {
          for (const auto& [name, _] : rec->spec.services) deployed.insert(rec->spec.name + "/" + name);
        }
      }
      return gw.prometheus() + node.prometheus(&deployed) +
             (mesh_proxy ? mesh_proxy->prometheus() : "") +
             (dns_server ? dns_server->prometheus() : "");
    }
    return gw.prometheus() + node.prometheus() + (mesh_proxy ? mesh_proxy->prometheus() : "") +
           (dns_server ? dns_server->prometheus() : "");
  };
  deps.api_keys = api_keys;
  // Secrets (docs/secrets.md): their data key sealed under a key-encryption key that is not in
  // the store: this node's key file, or (seal = "shares") one made from unseal shares after every
  // start and never written.
  std::unique_ptr<secrets::Seal> seal;
  if (cfg.secrets_seal == "shares") {
    auto s = secrets::Seal::withShares(**store, clock);
    if (!s) {
      std::cerr << "baton agent: secrets: " << s.status().message() << "\n";
      return 1;
    }
    seal = std::move(*s);
    const secrets::SealStatus st = seal->status();
    if (st.initialized) {
      spdlog::warn("secrets are sealed: {} of {} unseal shares are needed (baton operator unseal)",
                   st.threshold, st.shares);
    } else {
      spdlog::warn("secrets are not initialised: baton operator init makes the key and its "
                   "unseal shares");
    }
  } else {
    auto secrets_kek = crypto::loadOrCreateKeyFile(fs::path(cfg.data_dir) / "secrets.kek");
    if (!secrets_kek) {
      std::cerr << "baton agent: " << secrets_kek.status().message() << "\n";
      return 1;
    }
    auto s = secrets::Seal::withKey(**store, std::move(*secrets_kek), clock);
    if (!s) {
      std::cerr << "baton agent: secrets: " << s.status().message() << "\n";
      return 1;
    }
    seal = std::move(*s);
  }
  deps.seal = seal.get();
  instance_secrets = seal.get();
  api::ApiServer api(deps, api_options);
  std::unique_ptr<api::ApiServer> instance_api;
  if (app_tokens) {
    api::ApiOptions io;
    io.listen = node_options.instance_api_address;
    io.threads = 1;
    io.check_app_token = [&app_tokens](std::string_view t) { return app_tokens->check(t); };
    instance_api = std::make_unique<api::ApiServer>(deps, io);
  }

  // Start in dependency order; stop in reverse (every stop() is idempotent and safe before start).
  auto stopAll = [&] {
    if (instance_api) instance_api->stop();
    api.stop();
    gw.stop();
    catalog.stop();
    if (mesh_watch) mesh_watch->stop();
    if (mesh_proxy) mesh_proxy->stop();
    if (dns_server) dns_server->stop();
    node.stop();
    autoscaling.stop();
    controller.stop();
  };
  // The autoscaler first: its first pass seeds each service's count from the instances that run,
  // so the controller's first pass does not scale a restarted agent's services down to min.
  if (Status s = autoscaling.start(); !s) {
    std::cerr << "baton agent: starting the autoscaler: " << s.toString() << "\n";
    stopAll();
    return 1;
  }
  controller.start();
  if (Status s = node.start(); !s) {
    std::cerr << "baton agent: starting the node: " << s.toString() << "\n";
    stopAll();
    return 1;
  }
  if (dns_server) {
    if (Status s = dns_server->start(); !s) {
      std::cerr << "baton agent: " << s.message() << " (--dns ADDR or [dns] listen to move it, "
                << "\"off\" for none)\n";
      stopAll();
      return 1;
    }
    for (const auto& w : dns_server->warnings()) {
      spdlog::warn("{}: isolated instances of this agent cannot resolve names (is another agent "
                   "running on this host?)", w);
    }
  }
  if (mesh_watch) {
    if (Status s = mesh_watch->start(); !s) {
      std::cerr << "baton agent: reading the mesh's catalog: " << s.toString() << "\n";
      stopAll();
      return 1;
    }
  }
  if (Status s = catalog.start(); !s) {
    std::cerr << "baton agent: reading the catalog: " << s.toString() << "\n";
    stopAll();
    return 1;
  }
  if (Status s = gw.start(); !s) {
    std::cerr << "baton agent: starting the gateway (" << cfg.gateway_http << ", "
              << cfg.gateway_https << "): " << s.message() << "\n";
    stopAll();
    return 1;
  }
  if (Status s = api.start(); !s) {
    std::cerr << "baton agent: starting the API on " << cfg.api_listen << ": " << s.message()
              << "\n";
    stopAll();
    return 1;
  }
  if (instance_api) {
    // Best effort, as the mesh's DNS: the address is the same for every agent on a host.
    if (Status s = instance_api->start(); !s) {
      spdlog::warn("{}: instances granted api = \"read\" cannot reach this agent's API (is "
                   "another agent running on this host?)",
                   s.message());
    }
  }
  spdlog::info("agent {} ready: api http://{}, gateway http :{} https :{}, data dir {}{}",
               cfg.node_name, cfg.api_listen, gw.httpPort(), gw.httpsPort(), cfg.data_dir,
               cfg.dev ? " (dev mode: no token needed)" : "");
  if (!cfg.dev) {
    spdlog::info(
        "API tokens: {0}/agent-token (the bootstrap token: may do everything; "
        "`baton token create` makes scoped ones), {0}/agent-read-token (reads all but "
        "secret values); export BATON_TOKEN=$(cat {0}/agent-token)",
        cfg.data_dir);
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, stopping (instances keep running)", strsignal(sig));
  stopAll();
  spdlog::info("agent stopped");
  return 0;
}

}  // namespace baton::cli
