#include "mesh/intentions.h"

#include "model/names.h"

namespace baton::mesh {

Result<ServiceRef> parseServiceRef(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || !model::isValidName(text.substr(0, slash)) ||
      !model::isValidName(text.substr(slash + 1))) {
    return invalidArgument("expected APP/SERVICE (such as \"shop/web\"), got \"" +
                           std::string(text.substr(0, 200)) + "\"");
  }
  return ServiceRef{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
}

Result<Pattern> Pattern::parse(std::string_view text) {
  Pattern p;
  p.text_ = std::string(text);
  if (text == "*") return p;
  auto slash = text.find('/');
  if (slash != std::string_view::npos && model::isValidName(text.substr(0, slash))) {
    std::string_view svc = text.substr(slash + 1);
    if (svc == "*" || model::isValidName(svc)) {
      p.app_ = std::string(text.substr(0, slash));
      p.service_ = std::string(svc);
      return p;
    }
  }
  return invalidArgument("expected APP/SERVICE, APP/* or *, got \"" +
                         std::string(text.substr(0, 200)) + "\"");
}

bool Pattern::matches(const ServiceRef& s) const {
  if (app_.empty()) return true;
  return app_ == s.app && (service_ == "*" || service_ == s.service);
}

int Pattern::specificity() const {
  if (app_.empty()) return 0;
  return service_ == "*" ? 1 : 2;
}

const char* toString(Action a) { return a == Action::kAllow ? "allow" : "deny"; }

Result<Rule> toRule(const model::IntentionRecord& r) {
  auto src = Pattern::parse(r.source);
  if (!src) return src.status();
  auto dst = Pattern::parse(r.destination);
  if (!dst) return dst.status();
  if (r.action != "allow" && r.action != "deny") {
    return invalidArgument("expected action \"allow\" or \"deny\", got \"" + r.action.substr(0, 50) + "\"");
  }
  return Rule{std::move(src).value(), std::move(dst).value(),
              r.action == "allow" ? Action::kAllow : Action::kDeny};
}

bool declares(std::string_view app, std::string_view upstream, const ServiceRef& destination) {
  auto slash = upstream.find('/');
  if (slash == std::string_view::npos) {
    return destination.app == app && destination.service == upstream;
  }
  return destination.app == upstream.substr(0, slash) &&
         destination.service == upstream.substr(slash + 1);
}

Verdict decide(const std::vector<Rule>& rules, const Caller& caller, const ServiceRef& destination) {
  const Rule* best = nullptr;
  auto rank = [](const Rule& r) {
    return r.destination.specificity() * 6 + r.source.specificity() * 2 +
           (r.action == Action::kDeny ? 1 : 0);
  };
  for (const Rule& r : rules) {
    if (!r.source.matches(caller.ref) || !r.destination.matches(destination)) continue;
    if (best == nullptr || rank(r) > rank(*best)) best = &r;
  }
  const std::string pair = caller.ref.str() + " -> " + destination.str();
  Verdict v;
  if (best != nullptr) {
    v.allowed = best->action == Action::kAllow;
    v.rule = *best;
    v.reason = std::string(v.allowed ? "allowed" : "denied") + " by the rule `baton " +
               toString(best->action) + " " + best->source.str() + " " +
               best->destination.str() + "`";
    return v;
  }
  bool declared = false;
  for (const auto& u : caller.upstreams) declared = declared || declares(caller.ref.app, u, destination);
  if (declared && destination.app == caller.ref.app) {
    v.allowed = true;
    v.reason = "allowed: " + destination.service + " is an upstream of " + caller.ref.str() +
               " in app " + caller.ref.app + "'s manifest";
  } else if (declared) {
    v.reason = "denied by default: " + caller.ref.str() + " declares " + destination.str() +
               " as an upstream, but a call to another app needs `baton allow " +
               caller.ref.str() + " " + destination.str() + "`";
  } else {
    v.reason = "denied by default: " + destination.str() + " is not an upstream of " +
               caller.ref.str() + " and no rule allows " + pair;
  }
  return v;
}

}  // namespace baton::mesh
