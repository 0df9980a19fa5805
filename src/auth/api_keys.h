// API keys (`auth = "api-key"` routes, `baton token create`).
//
// A key is "bk_<id>_<secret>": id = 16 lowercase hex characters (8 random bytes, public, the
// store key), secret = 32 random bytes from RAND_bytes in base64url (43 characters). Only
// SHA-256(secret) is stored: with 256 bits of entropy a fast hash is enough (no dictionary to
// try, so no password KDF is needed). Verification recomputes the hash and compares with
// CRYPTO_memcmp (constant time). The record lives under /baton/apikeys/<id> as JSON:
//   {"id": "...", "hash": "sha256:<hex>", "name": "...", "created_at": <unix ms>,
//    "scopes": ["..."]}
// Clients present the key as `Authorization: Bearer bk_<id>_<secret>`.
//
// Thread safety: every method may be called from any thread (the Store is thread-safe).
// Ownership: the ApiKeys object borrows the Store, which must outlive it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_error.h"
#include "core/clock.h"
#include "core/result.h"
#include "state/store.h"

namespace baton::auth {

inline constexpr std::string_view kApiKeysPrefix = "/baton/apikeys/";
inline std::string apiKeyStoreKey(std::string_view id) {
  return std::string(kApiKeysPrefix) + std::string(id);
}

struct ApiKeyRecord {
  std::string id;
  std::string hash;  // "sha256:<hex>"
  std::string name;
  TimePoint created_at;
  std::vector<std::string> scopes;
};

struct NewApiKey {
  ApiKeyRecord record;
  std::string key;  // "bk_<id>_<secret>": show once, never stored
};

std::string encodeApiKeyRecord(const ApiKeyRecord& r);
Result<ApiKeyRecord> decodeApiKeyRecord(std::string_view json_text);

// Splits "bk_<id>_<secret>" with the exact format above; nullopt-like error otherwise.
struct ApiKeyParts {
  std::string_view id;
  std::string_view secret;
};
AuthOr<ApiKeyParts> parseApiKey(std::string_view key);
// "sha256:<hex of SHA-256(secret)>".
std::string hashApiKeySecret(std::string_view secret);

class ApiKeys {
 public:
  explicit ApiKeys(state::Store& store) : store_(store) {}

  // Generates a key, stores its record (fails with kAlreadyExists on an id collision).
  Result<NewApiKey> create(std::string name, std::vector<std::string> scopes, TimePoint now);
  // The record of a presented key, or kInvalidKey (unknown id, wrong secret, bad format) /
  // kKeysUnavailable (the store failed).
  AuthOr<ApiKeyRecord> verify(std::string_view key) const;
  Status revoke(std::string_view id);
  Result<std::vector<ApiKeyRecord>> list() const;

 private:
  state::Store& store_;
};

}  // namespace baton::auth
