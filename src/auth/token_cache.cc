#include "auth/token_cache.h"

#include <functional>

namespace baton::auth {

VerifiedTokenCache::VerifiedTokenCache(size_t capacity)
    : per_shard_(std::max<size_t>(1, capacity / kShards)) {}

VerifiedTokenCache::Shard& VerifiedTokenCache::shardFor(std::string_view token) const {
  return shards_[std::hash<std::string_view>{}(token) % kShards];
}

std::shared_ptr<const Claims> VerifiedTokenCache::find(
    std::string_view token, const std::shared_ptr<const KeySet>& keys) const {
  Shard& s = shardFor(token);
  std::lock_guard lock(s.mu);
  auto it = s.entries.find(std::string(token));
  if (it == s.entries.end() || it->second.keys != keys) return nullptr;
  return it->second.claims;
}

void VerifiedTokenCache::insert(std::string_view token, std::shared_ptr<const KeySet> keys,
                                std::shared_ptr<const Claims> claims) {
  Shard& s = shardFor(token);
  std::lock_guard lock(s.mu);
  if (s.entries.size() >= per_shard_ && !s.entries.count(std::string(token))) {
    s.entries.erase(s.entries.begin());
  }
  s.entries[std::string(token)] = Entry{std::move(keys), std::move(claims)};
}

size_t VerifiedTokenCache::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.entries.size();
  }
  return n;
}

}  // namespace baton::auth
