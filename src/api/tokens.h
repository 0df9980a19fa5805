// API tokens with policies, an owner and a TTL (docs/tokens.md), stored hashed.
//
// A token is "baton_<accessor>_<secret>": accessor = 16 lowercase hex characters (8 random bytes;
// public: it names the token in lists, revocations and the audit log, and is its store key),
// secret = 32 random bytes in base64url (43 characters). The record under /baton/tokens/<accessor>
// holds the SHA-256 of the secret's 32 bytes, never the secret: with 256 random bits a fast hash
// is enough. verify() recomputes it and compares with CRYPTO_memcmp (constant time).
//
// Revocation deletes the record. verify() reads the store on every call (one get by key), so a
// revocation or a new token takes effect on the next request, on every agent of the cluster.
// Expiry is decided against the `now` the caller passes (its injected clock).
//
// Thread safety: every method may be called from any thread (the Store is thread-safe).
// Ownership: borrows the Store, which must outlive it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/acl.h"
#include "core/clock.h"
#include "core/result.h"
#include "model/keys.h"
#include "state/store.h"

namespace baton::api {

inline constexpr std::string_view kTokensPrefix = model::keys::kTokens;
inline std::string tokenStoreKey(std::string_view accessor) {
  return std::string(kTokensPrefix) + std::string(accessor);
}

struct TokenRecord {
  std::string accessor;  // 16 lowercase hex characters
  std::string hash;      // "sha256:<hex>" of the secret's bytes
  std::string owner;     // who it is for (free text, 1-128 printable characters)
  std::vector<acl::Rule> rules;
  TimePoint created_at{};
  std::optional<TimePoint> expires_at;  // none: until revoked
  std::string created_by;               // the audit name of the token that made it
};

struct NewToken {
  TokenRecord record;
  std::string token;  // "baton_<accessor>_<secret>": shown once, never stored
};

std::string encodeTokenRecord(const TokenRecord& r);
Result<TokenRecord> decodeTokenRecord(std::string_view json_text);

// A token of this kind (the prefix only; the form is checked by verify()).
bool isStoreToken(std::string_view text);
// 16 lowercase hex characters.
bool isAccessor(std::string_view text);

struct Verified {
  enum class Result { kOk, kUnknown, kExpired, kUnavailable };
  Result result = Result::kUnknown;
  TokenRecord record;  // kOk and kExpired
};

class TokenStore {
 public:
  explicit TokenStore(state::Store& store) : store_(store) {}

  // Generates a token and stores its record; kAlreadyExists on an accessor collision (retry).
  ::baton::Result<NewToken> create(std::string owner, std::vector<acl::Rule> rules, TimePoint now,
                                   std::optional<TimePoint> expires_at, std::string created_by);
  // kUnknown: not of the form, no such accessor (never made, or revoked), wrong secret.
  Verified verify(std::string_view token, TimePoint now) const;
  // false: there was no such token.
  ::baton::Result<bool> revoke(std::string_view accessor);
  // Oldest first.
  ::baton::Result<std::vector<TokenRecord>> list() const;

 private:
  state::Store& store_;
};

}  // namespace baton::api
