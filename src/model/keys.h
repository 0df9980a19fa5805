// Store key layout. Every key starts with "/baton/"; a prefix ends with "/".
#pragma once

#include <string>
#include <string_view>

namespace baton::model::keys {

inline constexpr std::string_view kApps = "/baton/apps/";
inline constexpr std::string_view kInstances = "/baton/instances/";
inline constexpr std::string_view kStatus = "/baton/status/";
inline constexpr std::string_view kNodes = "/baton/nodes/";
inline constexpr std::string_view kScale = "/baton/scale/";
inline constexpr std::string_view kRollouts = "/baton/rollouts/";
inline constexpr std::string_view kIntentions = "/baton/intentions/";
inline constexpr std::string_view kAudit = "/baton/audit/";  // <13-digit ms>-<8 hex>: an entry
// The secrets' data key sealed under the KEK, and the seal's configuration (shares, threshold,
// key id; never the KEK or a share): docs/secrets.md.
inline constexpr std::string_view kSecretsKeyring = "/baton/secrets/keyring";
inline constexpr std::string_view kSecretsSeal = "/baton/secrets/seal";
inline constexpr std::string_view kTokens = "/baton/tokens/";  // <accessor>: an API token (hashed)
// <app>/<service>: what the autoscaler learned of the service's rhythm (autoscaler/rhythm.h).
inline constexpr std::string_view kRhythm = "/baton/rhythm/";

inline std::string app(std::string_view name) { return std::string(kApps) + std::string(name); }
inline std::string instance(std::string_view id) { return std::string(kInstances) + std::string(id); }
inline std::string status(std::string_view id) { return std::string(kStatus) + std::string(id); }
inline std::string node(std::string_view id) { return std::string(kNodes) + std::string(id); }
inline std::string scale(std::string_view app, std::string_view svc) {
  return std::string(kScale) + std::string(app) + "/" + std::string(svc);
}
inline std::string rollout(std::string_view app, std::string_view svc) {
  return std::string(kRollouts) + std::string(app) + "/" + std::string(svc);
}
// Sides are "app/svc", "app/*" or "*": neither contains '|'.
inline std::string intention(std::string_view source, std::string_view destination) {
  return std::string(kIntentions) + std::string(source) + "|" + std::string(destination);
}
// The last path segment of a key: "/baton/apps/shop" -> "shop".
inline std::string_view leaf(std::string_view key) {
  auto pos = key.rfind('/');
  return pos == std::string_view::npos ? key : key.substr(pos + 1);
}

}  // namespace baton::model::keys
