// The agent's configuration (baton.toml, DESIGN.md §1). Defaults are those of `--dev` except
// where noted; command-line flags override the matching keys after parsing.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace baton::spec {

struct CertPair {
  std::string cert;  // PEM file paths
  std::string key;
};

struct IdentityProvider {
  std::string name;
  std::string issuer;
  std::vector<std::string> audiences;
  std::string jwks;                            // a file path or an https URL
  std::vector<std::string> algorithms;         // pinned: "RS256", "ES256", "EdDSA", ...
  std::map<std::string, std::string> forward;  // claim -> request header
  std::string ca_file = {};                    // https jwks: PEM CAs to trust (default: system)
};

struct AgentConfig {
  std::string data_dir = "/var/lib/baton";
  std::string node_name;  // default: the host name
  std::string api_listen = "127.0.0.1:4646";
  std::string store_backend = "sqlite";     // "sqlite" or "etcd"
  std::vector<std::string> etcd_endpoints;  // etcd only
  std::string gateway_http = "0.0.0.0:8080";
  std::string gateway_https = "0.0.0.0:8443";
  std::vector<CertPair> certs;  // empty: a self-signed dev certificate
  int gateway_threads = 0;                       // 0: one event loop per core
  size_t gateway_hold_queue = 1000;              // requests parked per service at zero
  Duration gateway_hold_timeout = Duration(30'000);
  bool gateway_access_log = false;               // one JSON line per request
  // Idle upstream connections are not reused after this (nor a second before a backend's own
  // Keep-Alive timeout); below the common servers' idle timeouts.
  Duration gateway_upstream_idle_timeout = Duration(4'000);
  // A backend that sends no response head within this gets a 504 (connect retries included).
  Duration gateway_upstream_response_timeout = Duration(30'000);
  // Client connections at once; 0 = from the file-descriptor limit (docs/agent.md).
  int64_t gateway_max_connections = 0;
  // [dns] listen / --dns: the DNS server for the host's tools (docs/mesh.md "Names"); "" = off.
  std::string dns_listen = "127.0.0.1:8600";
  std::vector<IdentityProvider> identity;
  // [drivers.exec] allow_root: services may name user = "root" (default: refused).
  bool exec_allow_root = false;
  // [drivers.docker] socket: the Docker Engine API (Docker's or Podman's) the docker driver uses.
  std::string docker_socket = "/var/run/docker.sock";
  std::optional<double> node_cpu;       // cores offered; default: all online CPUs
  std::optional<uint64_t> node_memory;  // bytes offered; default: physical memory
  // [node] network: "isolated" (each instance in its own network namespace; needs root),
  // "host" (instances share the host's network: loopback, no isolation), or empty: isolated
  // when the agent can make namespaces, else host (docs/mesh.md).
  std::string node_network;
  // [mesh] cert_ttl: how long the mesh's leaf certificates live (renewed after 2/3 of it).
  Duration mesh_cert_ttl = Duration(24 * 3'600'000);
  // [secrets] seal: where the secrets' key-encryption key comes from (docs/secrets.md):
  // "file" (<data_dir>/secrets.kek) or "shares" (Shamir shares given by `baton operator unseal`
  // after each start; the key is never written).
  std::string secrets_seal = "file";
  // How long the logs of an instance that is gone are kept.
  Duration node_log_retention = Duration(24 * 3'600'000);
  bool dev = false;                     // --dev: no tokens needed, temp data dir
};

}  // namespace baton::spec
