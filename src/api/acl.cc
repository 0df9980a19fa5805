#include "api/acl.h"

#include <array>

namespace baton::api::acl {
namespace {

constexpr size_t kMaxPattern = 200;

struct KindName {
  Kind kind;
  const char* name;
};
constexpr std::array<KindName, 7> kKinds = {{{Kind::kAll, "*"},
                                             {Kind::kApps, "apps"},
                                             {Kind::kSecrets, "secrets"},
                                             {Kind::kIntentions, "intentions"},
                                             {Kind::kNodes, "nodes"},
                                             {Kind::kTokens, "tokens"},
                                             {Kind::kAudit, "audit"}}};

struct CapName {
  Capability cap;
  const char* name;
};
constexpr std::array<CapName, 5> kCaps = {
    {{kRead, "read"}, {kWrite, "write"}, {kList, "list"}, {kDelete, "delete"}, {kAdmin, "admin"}}};

// The kinds whose resources have names; the others are one thing each ("*").
bool hasNames(Kind k) { return k == Kind::kApps || k == Kind::kSecrets; }

bool isGlob(std::string_view p) { return !p.empty() && p.back() == '*'; }

Status checkPattern(Kind kind, std::string_view p) {
  const std::string what = std::string("pattern \"") + std::string(p.substr(0, 100)) + "\"";
  if (!hasNames(kind)) {
    if (p != "*") {
      return invalidArgument(what + ": " + kindName(kind) +
                             " has no names, so its pattern is \"*\"");
    }
    return Status::ok();
  }
  if (p.empty()) return invalidArgument("empty pattern: expected a name, PREFIX* or *");
  if (p.size() > kMaxPattern) return invalidArgument(what + ": longer than 200 characters");
  const std::string_view body = isGlob(p) ? p.substr(0, p.size() - 1) : p;
  for (char c : body) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '/';
    if (c == '*') return invalidArgument(what + ": '*' only at the end (as Vault's paths)");
    if (!ok) return invalidArgument(what + ": expected [A-Za-z0-9_.-/] and a trailing '*'");
    if (kind == Kind::kApps && c == '/') {
      return invalidArgument(what + ": app names have no '/' (apps:shop or apps:shop-*)");
    }
  }
  return Status::ok();
}

// Capabilities that `r` grants: admin implies every other.
Caps granted(const Rule& r) { return (r.caps & kAdmin) ? kAllCaps : r.caps; }

bool kindApplies(Kind rule, Kind need) { return rule == Kind::kAll || rule == need; }

}  // namespace

const char* kindName(Kind kind) {
  for (const auto& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

std::optional<Kind> parseKind(std::string_view text) {
  for (const auto& k : kKinds) {
    if (text == k.name) return k.kind;
  }
  return std::nullopt;
}

const char* capabilityName(Capability cap) {
  for (const auto& c : kCaps) {
    if (c.cap == cap) return c.name;
  }
  return "?";
}

std::optional<Capability> parseCapability(std::string_view text) {
  for (const auto& c : kCaps) {
    if (text == c.name) return c.cap;
  }
  return std::nullopt;
}

std::vector<std::string> capabilityNames(Caps caps) {
  std::vector<std::string> out;
  for (const auto& c : kCaps) {
    if (caps & c.cap) out.emplace_back(c.name);
  }
  return out;
}

Result<Rule> makeRule(std::string_view kind, std::string_view pattern,
                      const std::vector<std::string>& capabilities) {
  auto k = parseKind(kind);
  if (!k) {
    return invalidArgument("unknown kind \"" + std::string(kind.substr(0, 100)) +
                           "\": expected apps, secrets, intentions, nodes, tokens, audit or *");
  }
  if (Status s = checkPattern(*k, pattern); !s) return s;
  Rule r{*k, std::string(pattern), 0};
  for (const auto& c : capabilities) {
    auto cap = parseCapability(c);
    if (!cap) {
      return invalidArgument("unknown capability \"" + c.substr(0, 100) +
                             "\": expected read, write, list, delete or admin");
    }
    r.caps |= *cap;
  }
  if (r.caps == 0) return invalidArgument("a rule needs at least one capability");
  return r;
}

Result<Rule> parseRule(std::string_view text) {
  const std::string form = "expected KIND:PATTERN:CAP[,CAP...] such as secrets:shop/*:read,list";
  const size_t a = text.find(':');
  const size_t b = a == std::string_view::npos ? a : text.find(':', a + 1);
  if (b == std::string_view::npos || text.find(':', b + 1) != std::string_view::npos) {
    return invalidArgument("rule \"" + std::string(text.substr(0, 100)) + "\": " + form);
  }
  std::vector<std::string> caps;
  std::string_view rest = text.substr(b + 1);
  while (true) {
    const size_t comma = rest.find(',');
    caps.emplace_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  auto r = makeRule(text.substr(0, a), text.substr(a + 1, b - a - 1), caps);
  if (!r) {
    return invalidArgument("rule \"" + std::string(text.substr(0, 100)) +
                           "\": " + r.status().message());
  }
  return r;
}

std::string ruleText(const Rule& rule) {
  std::string caps;
  for (const auto& c : capabilityNames(rule.caps)) caps += (caps.empty() ? "" : ",") + c;
  return std::string(kindName(rule.kind)) + ":" + rule.pattern + ":" + caps;
}

bool patternMatches(std::string_view pattern, std::string_view name) {
  if (isGlob(pattern)) return name.starts_with(pattern.substr(0, pattern.size() - 1));
  return pattern == name;
}

bool patternCovers(std::string_view outer, std::string_view inner) {
  if (!isGlob(outer)) return !isGlob(inner) && outer == inner;
  // A glob covers the names that start with its prefix: an exact name or a glob's prefix.
  const std::string_view prefix = outer.substr(0, outer.size() - 1);
  const std::string_view inner_prefix = isGlob(inner) ? inner.substr(0, inner.size() - 1) : inner;
  return inner_prefix.starts_with(prefix);
}

Need needFor(const RouteMatch& route) {
  auto one = [&](Kind kind, Capability cap, const char* param) {
    Need n{Need::What::kOne, kind, "*", cap};
    if (param != nullptr) {
      auto it = route.params.find(param);
      n.name = it == route.params.end() ? "" : it->second;
    }
    return n;
  };
  auto some = [](Kind kind, Capability cap) { return Need{Need::What::kSome, kind, "", cap}; };
  switch (route.id) {
    case RouteId::kNotFound:
    case RouteId::kMethodNotAllowed:
    case RouteId::kHealth:
      return {};
    case RouteId::kMetrics:
      return one(Kind::kNodes, kRead, nullptr);
    case RouteId::kListApps:
    case RouteId::kListServices:
    case RouteId::kListInstances:
      return some(Kind::kApps, kList);
    case RouteId::kGetApp:
    case RouteId::kLogs:
      return one(Kind::kApps, kRead, "app");
    case RouteId::kPutApp:
    case RouteId::kSetScale:
    case RouteId::kClearScale:
      return one(Kind::kApps, kWrite, "app");
    case RouteId::kDeleteApp:
      return one(Kind::kApps, kDelete, "app");
    case RouteId::kListNodes:
      return one(Kind::kNodes, kList, nullptr);
    case RouteId::kEvents:
      // Every app's changes: read on all apps ("*" is matched by the pattern * only).
      return one(Kind::kApps, kRead, nullptr);
    case RouteId::kCreateApiKey:
      return one(Kind::kTokens, kWrite, nullptr);
    case RouteId::kListApiKeys:
      return one(Kind::kTokens, kList, nullptr);
    case RouteId::kDeleteApiKey:
      return one(Kind::kTokens, kDelete, nullptr);
    case RouteId::kListIntentions:
      return one(Kind::kIntentions, kList, nullptr);
    case RouteId::kPutIntention:
      return one(Kind::kIntentions, kWrite, nullptr);
    case RouteId::kDeleteIntention:
      return one(Kind::kIntentions, kDelete, nullptr);
    case RouteId::kCheckIntention:
      return one(Kind::kIntentions, kRead, nullptr);
    case RouteId::kListSecrets:
      return some(Kind::kSecrets, kList);
    case RouteId::kGetSecret:
      return one(Kind::kSecrets, kRead, "path");
    case RouteId::kPutSecret:
    case RouteId::kUndeleteSecret:
    case RouteId::kPutSecretMeta:
      return one(Kind::kSecrets, kWrite, "path");
    case RouteId::kDeleteSecret:
    case RouteId::kDestroySecret:
    case RouteId::kDeleteSecretMeta:
      return one(Kind::kSecrets, kDelete, "path");
    case RouteId::kGetSecretMeta:
      // Versions and times, no value: what a listing tells (as Vault's metadata list).
      return one(Kind::kSecrets, kList, "path");
    case RouteId::kListAudit:
      return one(Kind::kAudit, kRead, nullptr);
    case RouteId::kOperatorInit:
    case RouteId::kOperatorUnseal:
      // The key of every secret: management of all of them.
      return one(Kind::kSecrets, kAdmin, nullptr);
    case RouteId::kSealStatus:
      return some(Kind::kSecrets, kList);
    case RouteId::kCreateToken:
    case RouteId::kListTokens:
    case RouteId::kRevokeToken:
      return one(Kind::kTokens, kAdmin, nullptr);
    case RouteId::kTokenSelf:
      return {Need::What::kAnyToken, Kind::kTokens, "", kRead};
  }
  return {Need::What::kOne, Kind::kAll, "*", kAdmin};  // an unknown route: management only
}

std::string describe(const Need& need) {
  const std::string cap = std::string("\"") + capabilityName(need.cap) + "\" on ";
  switch (need.what) {
    case Need::What::kNothing:
      return "nothing";
    case Need::What::kAnyToken:
      return "a valid token";
    case Need::What::kSome:
      return cap + "some " + kindName(need.kind);
    case Need::What::kOne:
      if (!hasNames(need.kind)) return cap + kindName(need.kind);
      if (need.name == "*") return cap + kindName(need.kind) + " \"*\" (all of them)";
      return cap + kindName(need.kind) + " \"" + need.name + "\"";
  }
  return cap;
}

Decision decide(const std::vector<Rule>& rules, const Need& need) {
  if (need.what == Need::What::kNothing || need.what == Need::What::kAnyToken) return {true, {}};
  for (size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    if (!kindApplies(r.kind, need.kind) || !(granted(r) & need.cap)) continue;
    if (need.what == Need::What::kSome || patternMatches(r.pattern, need.name)) return {true, i};
  }
  return {};
}

bool allows(const std::vector<Rule>& rules, Kind kind, std::string_view name, Capability cap) {
  return decide(rules, Need{Need::What::kOne, kind, std::string(name), cap}).allowed;
}

std::vector<Rule> notCovered(const std::vector<Rule>& parent, const std::vector<Rule>& child) {
  std::vector<Rule> out;
  for (const Rule& c : child) {
    Caps missing = 0;
    for (const auto& [cap, _] : kCaps) {
      if (!(c.caps & cap)) continue;
      // admin on the child is admin: the parent must hold admin itself, not its parts.
      bool covered = false;
      for (const Rule& p : parent) {
        const bool kind_ok = p.kind == Kind::kAll || (c.kind != Kind::kAll && p.kind == c.kind);
        if (kind_ok && (granted(p) & cap) && patternCovers(p.pattern, c.pattern)) {
          covered = true;
          break;
        }
      }
      if (!covered) missing |= cap;
    }
    if (missing) out.push_back(Rule{c.kind, c.pattern, missing});
  }
  return out;
}

std::vector<Rule> managementRules() { return {Rule{Kind::kAll, "*", kAdmin}}; }

std::vector<Rule> readOnlyRules() {
  return {Rule{Kind::kApps, "*", kRead | kList}, Rule{Kind::kSecrets, "*", kList},
          Rule{Kind::kIntentions, "*", kRead | kList}, Rule{Kind::kNodes, "*", kRead | kList}};
}

}  // namespace baton::api::acl
