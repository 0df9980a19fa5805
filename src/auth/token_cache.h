// A bounded cache of verified JWTs, so a client that sends the same token on every request pays
// for the signature check once (Envoy's jwt_authn offers the same). What a hit skips: parsing,
// key selection, the signature, issuer and audience checks, all of which depend only on the
// token's bytes and the key set. What a hit does NOT skip: the time checks (exp, nbf, iat;
// checkValidityTimes) and the route's claim rules, which run on every request.
//
// An entry is valid only for the key set it was verified with: after a JWKS rotation or refetch
// the provider holds a new KeySet and every older entry misses (the entry keeps its KeySet
// alive, so a new one can never reuse its address). Keyed by the exact token bytes; failures
// are never cached. Bounded: `capacity` entries over 16 shards; a full shard drops an entry.
//
// Thread safety: every method may be called from any thread (one mutex per shard).
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/jose.h"
#include "auth/jwks.h"

namespace baton::auth {

class VerifiedTokenCache {
 public:
  explicit VerifiedTokenCache(size_t capacity = 4096);

  // The claims verified for `token` under `keys`, or null.
  std::shared_ptr<const Claims> find(std::string_view token,
                                     const std::shared_ptr<const KeySet>& keys) const;
  void insert(std::string_view token, std::shared_ptr<const KeySet> keys,
              std::shared_ptr<const Claims> claims);
  size_t size() const;

 private:
  struct Entry {
    std::shared_ptr<const KeySet> keys;
    std::shared_ptr<const Claims> claims;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> entries;
  };
  static constexpr size_t kShards = 16;
  Shard& shardFor(std::string_view token) const;

  size_t per_shard_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace baton::auth
