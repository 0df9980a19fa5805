#include "node/run_as.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

namespace baton::node {

uint32_t dynamicUidFor(const std::string& app, const std::string& service) {
  uint32_t h = 2166136261u;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 16777619u;
    }
  };
  mix(app);
  mix("/");
  mix(service);
  return kDynamicUidFirst + h % kDynamicUidCount;
}

Result<RunAs> resolveRunAs(const RunAsRequest& req, const UserDb& db) {
  const bool agent_is_root = req.agent_uid == 0;
  if (req.user.empty()) {
    if (!agent_is_root) return RunAs{.describe = "the agent's user"};
    const uint32_t first = dynamicUidFor(req.app, req.service);
    for (uint32_t i = 0; i < kDynamicUidCount; ++i) {
      const uint32_t uid = kDynamicUidFirst + (first - kDynamicUidFirst + i) % kDynamicUidCount;
      if (req.taken_by_other_service && req.taken_by_other_service(uid)) continue;
      if (db.uid_exists && db.uid_exists(uid)) continue;
      return RunAs{.uid = uid, .gid = uid, .groups = {}, .describe = fmt::format("dynamic uid {}", uid)};
    }
    return invalidArgument("no free dynamic UID left for " + req.app + "/" + req.service);
  }
  std::optional<UserEntry> u = db.by_name ? db.by_name(req.user) : std::nullopt;
  if (!u) {
    return invalidArgument(fmt::format("user \"{}\" (services.{}.user) does not exist on this node",
                                       req.user, req.service));
  }
  if (u->uid == 0 && !req.allow_root) {
    return invalidArgument(fmt::format(
        "services.{}.user = \"{}\" runs as root, which this agent does not allow "
        "([drivers.exec] allow_root = true in its config)",
        req.service, req.user));
  }
  if (!agent_is_root) {
    if (u->uid == req.agent_uid) return RunAs{.describe = "the agent's user"};
    return invalidArgument(fmt::format(
        "services.{}.user = \"{}\": the agent runs as uid {} and cannot switch users",
        req.service, req.user, req.agent_uid));
  }
  return RunAs{.uid = u->uid,
               .gid = u->gid,
               .groups = u->groups,
               .describe = fmt::format("user {} ({})", u->name, u->uid)};
}

UserDb UserDb::system() {
  UserDb db;
  db.by_name = [](const std::string& name) -> std::optional<UserEntry> {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
      return std::nullopt;
    }
    UserEntry e{pw.pw_name, pw.pw_uid, pw.pw_gid, {}};
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<size_t>(n));
      if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) n = 0;
    }
    groups.resize(static_cast<size_t>(n));
    e.groups.assign(groups.begin(), groups.end());
    return e;
  };
  db.uid_exists = [](uint32_t uid) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    return ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr;
  };
  return db;
}

}  // namespace baton::node
