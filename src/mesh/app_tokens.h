// Tokens for instances granted `api = "read"` (docs/mesh.md "The API for instances"): an
// instance of app A gets "app.<A>.<64 hex>", the hex an HMAC-SHA256 of the app's name under a key
// of this node (<data_dir>/instance-api.key, not in the store). The instances' API listener maps
// a token back to its app and answers reads of that app only. Nothing is stored per token:
// replacing the key file revokes every token (instances get new ones when they next start).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace baton::mesh {

class AppTokens {
 public:
  // `key`: 32 bytes.
  explicit AppTokens(std::string key) : key_(std::move(key)) {}
  // The key in `key_file` (crypto/aead.h loadOrCreateKeyFile).
  static Result<AppTokens> loadOrCreate(const std::filesystem::path& key_file);

  std::string issue(std::string_view app) const;
  // The app of a valid token; nullopt for anything else (compared in constant time).
  std::optional<std::string> check(std::string_view token) const;

 private:
  std::string mac(std::string_view app) const;
  std::string key_;
};

}  // namespace baton::mesh
