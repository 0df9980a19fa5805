// The gateway's entry point to identity: IdentityProvider (one [[identity]] of baton.toml) and
// Authenticator (every provider by name + API keys, dispatching on route.auth).
//
// check() turns an Authorization header value into a decision:
//   allow (status 200)  headers_to_add = the provider's forwarded claims (or the API key id)
//   401                 credentials missing or invalid; www_authenticate is set, e.g.
//                       Bearer realm="corp", error="invalid_token", error_description="token
//                       expired"
//   403                 valid credentials, a route claim rule failed (error="insufficient_scope")
//   503                 keys or the API key store are unavailable (retry later)
//   500                 the route names an unknown provider (configuration error)
// The gateway must also remove headersToStrip() from every incoming request, on every route,
// before forwarding, so that a client can never supply a forwarded-identity header itself.
//
// Thread safety: check() is const and may run concurrently on every gateway thread; it takes
// no lock (key snapshots are atomic shared_ptr loads) and does no I/O except for file JWKS
// sources (an mtime stat at most once a second) and the API key store lookup.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/api_keys.h"
#include "auth/auth_error.h"
#include "auth/claims.h"
#include "auth/jwks_source.h"
#include "auth/jwt.h"
#include "auth/token_cache.h"
#include "core/clock.h"
#include "core/result.h"
#include "model/app.h"

namespace baton::spec {
struct IdentityProvider;
}

namespace baton::auth {

// The header an API-key-authenticated request carries upstream (the key's id).
inline constexpr std::string_view kApiKeyIdHeader = "X-Baton-Api-Key-Id";

struct AuthResult {
  int status = 200;                  // 200 allow, 401, 403, 500, 503
  HeaderList headers_to_add;         // status 200 only
  std::string www_authenticate;      // 401/403: the WWW-Authenticate value
  Reason reason = Reason::kMissing;  // status != 200: why (for logs and metrics)
  std::string message;               // status != 200: safe to log

  bool allowed() const { return status == 200; }
  static AuthResult allow(HeaderList headers = {});
};

// Extracts the credentials from "Bearer <token>" (scheme case-insensitive, surrounding spaces
// ignored); empty when absent or another scheme.
std::string_view bearerCredentials(std::string_view authorization_header);

class IdentityProvider {
 public:
  // From a config entry: validates it (VerifierConfig::fromSpec, ClaimForwarder::create) and
  // opens its JWKS (JwksSource::open with `source_opts`).
  static Result<std::unique_ptr<IdentityProvider>> create(const spec::IdentityProvider& spec,
                                                          Clock& clock,
                                                          JwksSourceOptions source_opts = {});
  // With a given key source (tests, benchmarks).
  static Result<std::unique_ptr<IdentityProvider>> create(const spec::IdentityProvider& spec,
                                                          std::shared_ptr<KeySource> keys);

  AuthResult check(std::string_view authorization_header, const model::Route& route,
                   TimePoint now) const;

  const std::string& name() const { return name_; }
  const VerifierConfig& config() const { return cfg_; }
  const ClaimForwarder& forwarder() const { return forwarder_; }

 private:
  IdentityProvider() = default;
  std::string name_;
  std::string realm_header_;  // `Bearer realm="<name>"`
  VerifierConfig cfg_;
  ClaimForwarder forwarder_;
  std::shared_ptr<KeySource> keys_;
  std::unique_ptr<VerifiedTokenCache> cache_ = std::make_unique<VerifiedTokenCache>();
};

class Authenticator {
 public:
  // `api_keys` may be null: "api-key" routes then answer 500 (misconfigured).
  Authenticator(std::vector<std::unique_ptr<IdentityProvider>> providers,
                std::unique_ptr<ApiKeys> api_keys);
  // Every provider of the agent config; API keys from `store` when given (must outlive).
  static Result<std::unique_ptr<Authenticator>> create(
      const std::vector<spec::IdentityProvider>& specs, state::Store* store, Clock& clock,
      JwksSourceOptions source_opts = {});

  // Dispatches on route.auth: "public" allows with no headers; "api-key" checks an API key;
  // anything else names a provider.
  AuthResult check(std::string_view authorization_header, const model::Route& route,
                   TimePoint now) const;

  // Lowercased header names to remove from every incoming request (all providers' forward
  // headers and kApiKeyIdHeader).
  const std::vector<std::string>& headersToStrip() const { return strip_; }
  const IdentityProvider* provider(std::string_view name) const;
  // The API keys behind "api-key" routes (null without a store), for the agent to share with the
  // API (so that a revocation there reaches this cache at once) and to start its cache.
  ApiKeys* apiKeys() const { return api_keys_.get(); }

 private:
  std::map<std::string, std::unique_ptr<IdentityProvider>, std::less<>> providers_;
  std::unique_ptr<ApiKeys> api_keys_;
  std::vector<std::string> strip_;
};

}  // namespace baton::auth
