// API keys (`auth = "api-key"` routes, `baton apikey create`; not the API tokens of api/tokens.h).
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
// Cache: after watchForChanges(), verify() keeps the records it read (and the ids it found
// absent) in memory, so an `auth = "api-key"` request does not read the store. A change under
// /baton/apikeys/ (from any agent) drops the entry when the store's watch delivers it; revoke()
// and create() on this object drop it at once. If the watch ends, the cache is switched off and
// every verify() reads the store again. The secret's hash is compared on every request.
//
// Thread safety: every method may be called from any thread (the Store is thread-safe; the cache
// has a mutex).
// Ownership: the ApiKeys object borrows the Store, which must outlive it.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
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
  ~ApiKeys();

  // Starts the store watch that keeps the cache correct, and with it the cache.
  Status watchForChanges();

  // Generates a key, stores its record (fails with kAlreadyExists on an id collision).
  Result<NewApiKey> create(std::string name, std::vector<std::string> scopes, TimePoint now);
  // The record of a presented key, or kInvalidKey (unknown id, wrong secret, bad format) /
  // kKeysUnavailable (the store failed).
  AuthOr<ApiKeyRecord> verify(std::string_view key) const;
  Status revoke(std::string_view id);
  Result<std::vector<ApiKeyRecord>> list() const;

  size_t cachedForTest() const;
  uint64_t changesSeenForTest() const;  // grows with every change the cache learns of

 private:
  static constexpr size_t kMaxCached = 4096;  // a full cache starts over
  void forget(std::string_view id);           // drops a cached id (and bumps the generation)
  AuthOr<std::optional<ApiKeyRecord>> lookup(std::string_view id) const;

  state::Store& store_;
  mutable std::mutex mu_;
  bool cache_on_ = false;  // guarded by mu_
  // Bumped by every change; a record read from the store is cached only if no change came in
  // meanwhile (so a revocation racing a read can never be cached over).
  mutable uint64_t generation_ = 0;
  mutable std::unordered_map<std::string, std::optional<ApiKeyRecord>> cache_;  // nullopt: absent
  std::unique_ptr<state::WatchHandle> watch_;
};

}  // namespace baton::auth
