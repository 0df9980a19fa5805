#include "auth/provider.h"

#include <algorithm>

#include "core/ascii.h"
#include "spec/agent_config.h"

namespace baton::auth {
namespace {

// A fixed, token-independent description per reason (RFC 6750 error_description: no quotes,
// no backslashes, printable ASCII).
const char* describe(Reason r) {
  switch (r) {
    case Reason::kMissing:
      return "no credentials";
    case Reason::kMalformed:
      return "malformed token";
    case Reason::kTooLarge:
      return "token too large";
    case Reason::kUnsupported:
      return "unsupported token form";
    case Reason::kAlgNotAllowed:
      return "algorithm not allowed";
    case Reason::kKeyMismatch:
      return "key cannot verify this algorithm";
    case Reason::kUnknownKid:
      return "unknown signing key";
    case Reason::kKeysUnavailable:
      return "keys unavailable";
    case Reason::kBadSignature:
      return "invalid signature";
    case Reason::kExpired:
      return "token expired";
    case Reason::kNotYetValid:
      return "token not yet valid";
    case Reason::kWrongIssuer:
      return "wrong issuer";
    case Reason::kWrongAudience:
      return "wrong audience";
    case Reason::kInvalidKey:
      return "invalid api key";
    case Reason::kInsufficientClaims:
      return "required claim missing";
    case Reason::kMisconfigured:
      return "misconfigured route";
  }
  return "invalid token";
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

AuthResult deny(int status, Reason reason, std::string message, const std::string& realm_header) {
  AuthResult r;
  r.status = status;
  r.reason = reason;
  r.message = std::move(message);
  if (status == 401) {
    r.www_authenticate = realm_header;
    if (reason != Reason::kMissing) {  // RFC 6750 §3.1: no error code when no credentials
      r.www_authenticate += ", error=\"invalid_token\", error_description=\"";
      r.www_authenticate += describe(reason);
      r.www_authenticate += '"';
    }
  } else if (status == 403) {
    r.www_authenticate = realm_header + ", error=\"insufficient_scope\", error_description=\"" +
                         describe(reason) + "\"";
  }
  return r;
}

int statusFor(Reason r) {
  switch (r) {
    case Reason::kKeysUnavailable:
      return 503;
    case Reason::kMisconfigured:
      return 500;
    case Reason::kInsufficientClaims:
      return 403;
    default:
      return 401;
  }
}


std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

AuthResult AuthResult::allow(HeaderList headers) {
  AuthResult r;
  r.status = 200;
  r.headers_to_add = std::move(headers);
  return r;
}

std::string_view bearerCredentials(std::string_view header) {
  header = trim(header);
  if (!istartsWithAscii(header, "bearer ")) return {};
  return trim(header.substr(7));
}

Result<std::unique_ptr<IdentityProvider>> IdentityProvider::create(
    const spec::IdentityProvider& spec, Clock& clock, JwksSourceOptions source_opts) {
  if (spec.jwks.empty()) {
    return invalidArgument("identity provider \"" + spec.name + "\": jwks is required");
  }
  if (!spec.ca_file.empty()) source_opts.ca_file = spec.ca_file;
  auto source = JwksSource::open(spec.jwks, clock, std::move(source_opts));
  if (!source) {
    return invalidArgument("identity provider \"" + spec.name + "\": " + source.status().message());
  }
  return create(spec, std::shared_ptr<KeySource>(std::move(source).value()));
}

Result<std::unique_ptr<IdentityProvider>> IdentityProvider::create(
    const spec::IdentityProvider& spec, std::shared_ptr<KeySource> keys) {
  if (spec.name.empty() || spec.name == "public" || spec.name == "api-key") {
    return invalidArgument("identity provider name \"" + spec.name +
                           "\" is empty or reserved (public, api-key)");
  }
  for (char c : spec.name) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return invalidArgument("identity provider name has a quote or control character");
    }
  }
  auto cfg = VerifierConfig::fromSpec(spec);
  if (!cfg) return cfg.status();
  auto fwd = ClaimForwarder::create(spec.forward);
  if (!fwd) {
    return invalidArgument("identity provider \"" + spec.name + "\": " + fwd.status().message());
  }
  std::unique_ptr<IdentityProvider> p(new IdentityProvider());
  p->name_ = spec.name;
  p->realm_header_ = "Bearer realm=" + quoted(spec.name);
  p->cfg_ = std::move(cfg).value();
  p->forwarder_ = std::move(fwd).value();
  p->keys_ = std::move(keys);
  return p;
}

AuthResult IdentityProvider::check(std::string_view authorization_header, const model::Route& route,
                                   TimePoint now) const {
  std::string_view token = bearerCredentials(authorization_header);
  if (token.empty()) return deny(401, Reason::kMissing, "no bearer token", realm_header_);
  auto keys = keys_->keys();
  if (!keys) {
    return deny(503, Reason::kKeysUnavailable, "provider " + name_ + " has no keys", realm_header_);
  }
  // A token verified before under this key set: only the time checks run again.
  std::shared_ptr<const Claims> verified = cache_->find(token, keys);
  if (verified) {
    if (auto err = checkValidityTimes(*verified, cfg_, now)) {
      return deny(statusFor(err->reason), err->reason, err->message, realm_header_);
    }
  } else {
    auto claims = verifyJwt(token, cfg_, *keys, now);
    if (!claims && claims.reason() == Reason::kUnknownKid) {
      if (auto fresh = keys_->onUnknownKid()) {
        keys = fresh;
        claims = verifyJwt(token, cfg_, *keys, now);
      }
    }
    if (!claims) {
      const AuthError& e = claims.error();
      return deny(statusFor(e.reason), e.reason, e.message, realm_header_);
    }
    verified = std::make_shared<const Claims>(std::move(claims).value());
    cache_->insert(token, keys, verified);
  }
  if (auto unmet = firstUnmetRule(*verified, route.claims)) {
    return deny(403, Reason::kInsufficientClaims, "claim rule on \"" + *unmet + "\" not met",
                realm_header_);
  }
  return AuthResult::allow(forwarder_.headers(*verified));
}

Authenticator::Authenticator(std::vector<std::unique_ptr<IdentityProvider>> providers,
                             std::unique_ptr<ApiKeys> api_keys)
    : api_keys_(std::move(api_keys)) {
  strip_.push_back(lowerAscii(kApiKeyIdHeader));
  for (auto& p : providers) {
    for (const auto& h : p->forwarder().stripHeaders()) {
      if (std::find(strip_.begin(), strip_.end(), h) == strip_.end()) strip_.push_back(h);
    }
    std::string name = p->name();
    providers_.emplace(std::move(name), std::move(p));
  }
}

Result<std::unique_ptr<Authenticator>> Authenticator::create(
    const std::vector<spec::IdentityProvider>& specs, state::Store* store, Clock& clock,
    JwksSourceOptions source_opts) {
  std::vector<std::unique_ptr<IdentityProvider>> providers;
  for (const auto& spec : specs) {
    for (const auto& p : providers) {
      if (p->name() == spec.name) {
        return invalidArgument("identity provider \"" + spec.name + "\" is defined twice");
      }
    }
    auto p = IdentityProvider::create(spec, clock, source_opts);
    if (!p) return p.status();
    providers.push_back(std::move(p).value());
  }
  std::unique_ptr<ApiKeys> keys;
  if (store) keys = std::make_unique<ApiKeys>(*store);
  return std::make_unique<Authenticator>(std::move(providers), std::move(keys));
}

const IdentityProvider* Authenticator::provider(std::string_view name) const {
  auto it = providers_.find(name);
  return it == providers_.end() ? nullptr : it->second.get();
}

AuthResult Authenticator::check(std::string_view authorization_header, const model::Route& route,
                                TimePoint now) const {
  if (route.auth == "public") return AuthResult::allow();
  if (route.auth == "api-key") {
    static const std::string kRealm = "Bearer realm=\"api-key\"";
    if (!api_keys_) return deny(500, Reason::kMisconfigured, "API keys not configured", kRealm);
    std::string_view key = bearerCredentials(authorization_header);
    if (key.empty()) return deny(401, Reason::kMissing, "no API key", kRealm);
    auto rec = api_keys_->verify(key);
    if (!rec) return deny(statusFor(rec.reason()), rec.reason(), rec.error().message, kRealm);
    if (!route.claims.empty()) {
      // An API key's only claim is its scopes ("scope" rule against the key's scope list).
      for (const auto& [claim, required] : route.claims) {
        const bool ok = claim == "scope" && std::find(rec->scopes.begin(), rec->scopes.end(),
                                                      required) != rec->scopes.end();
        if (!ok) {
          return deny(403, Reason::kInsufficientClaims, "claim rule on \"" + claim + "\" not met",
                      kRealm);
        }
      }
    }
    return AuthResult::allow({{std::string(kApiKeyIdHeader), rec->id}});
  }
  const IdentityProvider* p = provider(route.auth);
  if (!p) {
    return deny(500, Reason::kMisconfigured, "route names unknown identity provider", "");
  }
  return p->check(authorization_header, route, now);
}

}  // namespace baton::auth
