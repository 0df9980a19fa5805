// Who an instance runs as (docs/security.md "Instances"): the decision as a pure function over
// an injected user database, so it is tested without /etc/passwd or root.
//
//   user = ""      a dynamic UID of the service's own (GID the same number), from
//                  kDynamicUidFirst + [0, kDynamicUidCount): every service a different one, so
//                  services cannot signal, trace or read each other's files; stable for a
//                  service (a hash of app/service, probing past UIDs that are taken);
//   user = "name"  that user, its primary group and its supplementary groups;
//   root           (user = "root", or a name whose UID is 0) only when the agent allows it.
// An agent that is not root cannot switch users: its instances run as itself, and a `user`
// other than the agent's own is an error.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace baton::node {

// Above systemd's container range (524288-1879048191) and below 2^31: no distribution, systemd
// DynamicUser= or nspawn allocates here.
inline constexpr uint32_t kDynamicUidFirst = 0x70000000;
inline constexpr uint32_t kDynamicUidCount = 65536;

struct UserEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary, primary included
};

// The system's user database (getpwnam_r/getpwuid_r/getgrouplist in the agent).
struct UserDb {
  std::function<std::optional<UserEntry>(const std::string& name)> by_name;
  std::function<bool(uint32_t uid)> uid_exists;  // in passwd, or known to NSS
  static UserDb system();
};

struct RunAs {
  int64_t uid = -1;  // -1: as the agent
  int64_t gid = -1;
  std::vector<uint32_t> groups = {};
  std::string describe = {};  // "dynamic uid 1879052331", "user www-data (33)", "the agent's user"
};

struct RunAsRequest {
  std::string app = {};
  std::string service = {};
  std::string user = {};     // the manifest's `user`
  bool allow_root = false;   // the agent's [drivers.exec] allow_root
  uint32_t agent_uid = 0;    // geteuid()
  // Dynamic UIDs other services have on this node: never given to another one.
  std::function<bool(uint32_t uid)> taken_by_other_service = {};
};

// Errors (kInvalidArgument) say what to change.
Result<RunAs> resolveRunAs(const RunAsRequest& request, const UserDb& db);

// The first probe of a service's dynamic UID: FNV-1a of "app/service" in the range.
uint32_t dynamicUidFor(const std::string& app, const std::string& service);

}  // namespace baton::node
