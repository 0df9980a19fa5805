// Intentions: which service may open connections to which (DESIGN.md §2 "Mesh"). Pure: one
// decision function used by the node proxy, DNS and `baton why`, so the three never disagree.
//
// A caller is allowed to reach a destination when
//   1. the most specific explicit rule (`baton allow|deny SRC DST`) matching the pair allows it,
//      or, with no rule matching,
//   2. the destination is in the caller's `upstreams` and both are in the same app.
// Everything else is denied (default deny). A service declaring an upstream in another app
// ("billing/api") gets its address, but the call needs an explicit `baton allow`: an app cannot
// grant itself access to another app's services.
//
// Specificity (as Consul's intentions): the destination counts first, then the source; per side
// an exact service beats "app/*", which beats "*". Between an allow and a deny equally specific,
// deny wins.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "model/records.h"

namespace baton::mesh {

// One service: app and service name.
struct ServiceRef {
  std::string app;
  std::string service;
  std::string str() const { return app + "/" + service; }
  friend bool operator==(const ServiceRef&, const ServiceRef&) = default;
};
// "shop/web" -> {shop, web}; anything else (wildcards included) is an error saying so.
Result<ServiceRef> parseServiceRef(std::string_view text);

// A side of a rule: "app/svc", "app/*" or "*".
class Pattern {
 public:
  static Result<Pattern> parse(std::string_view text);
  bool matches(const ServiceRef& s) const;
  int specificity() const;  // 2 exact, 1 "app/*", 0 "*"
  const std::string& str() const { return text_; }
  friend bool operator==(const Pattern&, const Pattern&) = default;

 private:
  std::string text_, app_, service_;  // app_/service_ empty for "*"; service_ "*" for "app/*"
};

enum class Action { kAllow, kDeny };
const char* toString(Action a);

struct Rule {
  Pattern source;
  Pattern destination;
  Action action = Action::kDeny;
};

// The rule a stored record holds; an error for a malformed one.
Result<Rule> toRule(const model::IntentionRecord& r);

// What a caller may reach, as its app's manifest says.
struct Caller {
  ServiceRef ref;
  std::vector<std::string> upstreams;  // "cart" (same app) or "billing/api"
};

struct Verdict {
  bool allowed = false;
  std::optional<Rule> rule;  // the explicit rule that decided, if one did
  std::string reason;        // one line for humans: which rule or declaration, or why denied
};

// The decision for `caller` opening a connection to `destination`.
Verdict decide(const std::vector<Rule>& rules, const Caller& caller, const ServiceRef& destination);

// Whether `upstream` (an entry of `upstreams`) names `destination` when written in `app`.
bool declares(std::string_view app, std::string_view upstream, const ServiceRef& destination);

}  // namespace baton::mesh
