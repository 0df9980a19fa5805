// API token policies (docs/tokens.md): what a token may do, as a list of rules in the manner of
// Vault's paths and Nomad's ACL policies, and what each API route needs. Pure: no I/O, no clock,
// no sockets; the handlers ask it once per request, the CLI parses `--rule` with it.
//
// A rule is KIND:PATTERN:CAPABILITIES.
//   KIND        apps (apps, their services, instances, scale, logs), secrets (secret paths),
//               intentions, nodes, tokens (API tokens and API keys), audit, or * (every kind).
//   PATTERN     exact ("shop", "shop/db") or a trailing-* glob ("shop/*", "sh*", "*"); the
//               operator kinds (intentions, nodes, tokens, audit, *) have no names: only "*".
//   CAPABILITIES read, write, list, delete, admin; admin implies the others. Nothing else
//               implies anything: write does not let a token read.
// Default deny: a need no rule grants is refused.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/routes.h"
#include "core/result.h"

namespace baton::api::acl {

enum class Kind { kAll, kApps, kSecrets, kIntentions, kNodes, kTokens, kAudit };

// Bit flags; a rule holds a set of them.
enum Capability : unsigned {
  kRead = 1u << 0,
  kWrite = 1u << 1,
  kList = 1u << 2,
  kDelete = 1u << 3,
  kAdmin = 1u << 4,
};
using Caps = unsigned;
inline constexpr Caps kAllCaps = kRead | kWrite | kList | kDelete | kAdmin;

struct Rule {
  Kind kind = Kind::kApps;
  std::string pattern;  // "shop", "shop/*", "*"
  Caps caps = 0;        // never 0 in a parsed rule
  bool operator==(const Rule&) const = default;
};

const char* kindName(Kind kind);                       // "apps", "*"
std::optional<Kind> parseKind(std::string_view text);  // the names above
const char* capabilityName(Capability cap);            // "read"
std::optional<Capability> parseCapability(std::string_view text);
std::vector<std::string> capabilityNames(
    Caps caps);  // in the order read, write, list, delete, admin

// A rule from its parts (the API's JSON), checked: a known kind, a pattern valid for it, at
// least one known capability. The error says what was expected.
Result<Rule> makeRule(std::string_view kind, std::string_view pattern,
                      const std::vector<std::string>& capabilities);
// "KIND:PATTERN:CAP[,CAP...]", e.g. "secrets:shop/*:read,list" (the CLI's --rule).
Result<Rule> parseRule(std::string_view text);
std::string ruleText(const Rule& rule);  // the same form

// Whether `pattern` (exact or trailing-* glob) matches `name`.
bool patternMatches(std::string_view pattern, std::string_view name);
// Whether every name `inner` matches is matched by `outer`.
bool patternCovers(std::string_view outer, std::string_view inner);

// What a request needs from its token.
struct Need {
  enum class What {
    kNothing,   // no token (GET /v1/health)
    kAnyToken,  // any valid token (GET /v1/tokens/self)
    kOne,       // `cap` on `kind` `name`
    kSome,      // `cap` on some name of `kind`: a listing, filtered to the names allowed
  };
  What what = What::kNothing;
  Kind kind = Kind::kApps;
  std::string name;  // kOne: the app, the secret's path, or "*" for the operator kinds
  Capability cap = kRead;
};

// The need of a routed request (the route's parameters name the app or secret).
Need needFor(const RouteMatch& route);
// `"read" on secrets "shop/db"`, `"list" on some apps`, for 403 answers.
std::string describe(const Need& need);

struct Decision {
  bool allowed = false;
  std::optional<size_t> rule;  // the index of the rule that allowed it
};
// Default deny. kNothing and kAnyToken are allowed with no rule.
Decision decide(const std::vector<Rule>& rules, const Need& need);
// `cap` on `kind` `name` (a listing's per-item filter).
bool allows(const std::vector<Rule>& rules, Kind kind, std::string_view name, Capability cap);

// What `child` would grant that `parent` does not: for each rule of `child`, the capabilities no
// rule of `parent` grants on all of its names (kind * needs kind *). Empty: no escalation.
std::vector<Rule> notCovered(const std::vector<Rule>& parent, const std::vector<Rule>& child);

// The built-in tokens: agent-token and dev mode may do everything; agent-read-token reads and
// lists everything but secret values, tokens, API keys and the audit log.
std::vector<Rule> managementRules();
std::vector<Rule> readOnlyRules();

}  // namespace baton::api::acl
