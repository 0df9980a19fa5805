#include "auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "auth/jose.h"
#include "core/hex.h"

namespace baton::auth {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "bk_";
constexpr size_t kIdBytes = 8;
constexpr size_t kSecretBytes = 32;
constexpr size_t kSecretChars = 43;  // base64url of 32 bytes, unpadded


bool isLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string hashApiKeySecret(std::string_view secret) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(secret.data(), secret.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  return "sha256:" + hexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string encodeApiKeyRecord(const ApiKeyRecord& r) {
  json j = {{"id", r.id},
            {"hash", r.hash},
            {"name", r.name},
            {"created_at", toUnixMillis(r.created_at)},
            {"scopes", r.scopes}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<ApiKeyRecord> decodeApiKeyRecord(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false, false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("api key record is not JSON");
  ApiKeyRecord r;
  auto str = [&](const char* name, std::string* out) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!str("id", &r.id) || !str("hash", &r.hash) || !str("name", &r.name)) {
    return invalidArgument("api key record needs string id, hash and name");
  }
  auto created = j.find("created_at");
  if (created == j.end() || !created->is_number_integer()) {
    return invalidArgument("api key record needs integer created_at");
  }
  r.created_at = fromUnixMillis(created->get<int64_t>());
  if (auto s = j.find("scopes"); s != j.end()) {
    if (!s->is_array()) return invalidArgument("api key record scopes must be an array");
    for (const auto& e : *s) {
      if (!e.is_string()) return invalidArgument("api key record scopes must be strings");
      r.scopes.push_back(e.get<std::string>());
    }
  }
  return r;
}

AuthOr<ApiKeyParts> parseApiKey(std::string_view key) {
  if (key.empty()) return {Reason::kMissing, "no API key"};
  const size_t expected = kPrefix.size() + 2 * kIdBytes + 1 + kSecretChars;
  if (key.size() != expected || key.substr(0, kPrefix.size()) != kPrefix ||
      key[kPrefix.size() + 2 * kIdBytes] != '_') {
    return {Reason::kMalformed, "API key is not of the form bk_<id>_<secret>"};
  }
  ApiKeyParts parts{key.substr(kPrefix.size(), 2 * kIdBytes),
                    key.substr(kPrefix.size() + 2 * kIdBytes + 1)};
  if (!isLowerHex(parts.id)) return {Reason::kMalformed, "API key id is not hex"};
  auto secret = base64urlDecode(parts.secret);
  if (!secret || secret->size() != kSecretBytes) {
    return {Reason::kMalformed, "API key secret is not 32 base64url bytes"};
  }
  return parts;
}

Result<NewApiKey> ApiKeys::create(std::string name, std::vector<std::string> scopes,
                                  TimePoint now) {
  unsigned char id[kIdBytes];
  unsigned char secret[kSecretBytes];
  if (RAND_bytes(id, sizeof id) != 1 || RAND_bytes(secret, sizeof secret) != 1) {
    return internalError("RAND_bytes failed");
  }
  NewApiKey out;
  out.record.id = hexEncode(std::string_view(reinterpret_cast<const char*>(id), sizeof id));
  std::string secret_b64 =
      base64urlEncode(std::string_view(reinterpret_cast<const char*>(secret), sizeof secret));
  OPENSSL_cleanse(secret, sizeof secret);
  out.record.hash = hashApiKeySecret(secret_b64);
  if (out.record.hash.empty()) return internalError("SHA-256 failed");
  out.record.name = std::move(name);
  out.record.created_at = now;
  out.record.scopes = std::move(scopes);
  out.key = std::string(kPrefix) + out.record.id + "_" + secret_b64;

  const std::string key = apiKeyStoreKey(out.record.id);
  auto txn = store_.txn({state::Compare::absent(key)},
                        {state::Op::put(key, encodeApiKeyRecord(out.record))});
  if (!txn) return txn.status();
  if (!txn->succeeded) return Status(Code::kAlreadyExists, "api key id collision; retry");
  forget(out.record.id);  // an earlier lookup may have cached the id as absent
  return out;
}

ApiKeys::~ApiKeys() {
  watch_.reset();  // no callback runs after this
}

Status ApiKeys::watchForChanges() {
  auto rev = store_.currentRevision();
  if (!rev) return rev.status();
  state::WatchCallbacks cb;
  cb.on_events = [this](const std::vector<state::Event>& events) {
    for (const auto& e : events) {
      std::string_view key = e.kv.key;
      if (key.starts_with(kApiKeysPrefix)) forget(key.substr(kApiKeysPrefix.size()));
    }
  };
  cb.on_error = [this](const Status&) {
    std::lock_guard lock(mu_);
    cache_on_ = false;
    cache_.clear();
    ++generation_;
  };
  // The cache starts empty and on before the watch exists: a change between the revision read
  // above and the watch's start is delivered by the watch (it starts at that revision + 1).
  {
    std::lock_guard lock(mu_);
    cache_.clear();
    ++generation_;
    cache_on_ = true;
  }
  auto w = store_.watch(std::string(kApiKeysPrefix), *rev + 1, std::move(cb));
  if (!w) {
    std::lock_guard lock(mu_);
    cache_on_ = false;
    cache_.clear();
    return w.status();
  }
  watch_ = std::move(w).value();
  return Status::ok();
}

void ApiKeys::forget(std::string_view id) {
  std::lock_guard lock(mu_);
  ++generation_;
  auto it = cache_.find(std::string(id));
  if (it != cache_.end()) cache_.erase(it);
}

size_t ApiKeys::cachedForTest() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

uint64_t ApiKeys::changesSeenForTest() const {
  std::lock_guard lock(mu_);
  return generation_;
}

// The record stored for `id` (nullopt: none), from the cache when it is on.
AuthOr<std::optional<ApiKeyRecord>> ApiKeys::lookup(std::string_view id) const {
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (cache_on_) {
      auto it = cache_.find(std::string(id));
      if (it != cache_.end()) return it->second;
    }
    generation = generation_;
  }
  auto kv = store_.get(apiKeyStoreKey(id));
  if (!kv) return {Reason::kKeysUnavailable, "API key store unavailable"};
  std::optional<ApiKeyRecord> rec;
  if (kv.value()) {
    auto decoded = decodeApiKeyRecord((*kv.value()).value);
    if (decoded) rec = std::move(decoded).value();
  }
  std::lock_guard lock(mu_);
  if (cache_on_ && generation == generation_) {
    if (cache_.size() >= kMaxCached) cache_.clear();
    cache_.emplace(std::string(id), rec);
  }
  return rec;
}

AuthOr<ApiKeyRecord> ApiKeys::verify(std::string_view key) const {
  auto parts = parseApiKey(key);
  if (!parts) {
    if (parts.reason() == Reason::kMissing) return parts.error();
    return {Reason::kInvalidKey, "invalid API key"};
  }
  auto found = lookup(parts->id);
  if (!found) return found.error();
  if (!found->has_value()) return {Reason::kInvalidKey, "invalid API key"};
  std::optional<ApiKeyRecord> rec = std::move(found).value();
  const std::string presented = hashApiKeySecret(parts->secret);
  const std::string& stored = rec->hash;
  if (presented.empty() || presented.size() != stored.size() ||
      CRYPTO_memcmp(presented.data(), stored.data(), stored.size()) != 0) {
    return {Reason::kInvalidKey, "invalid API key"};
  }
  return std::move(rec).value();
}

Status ApiKeys::revoke(std::string_view id) {
  auto r = store_.del(apiKeyStoreKey(id));
  forget(id);
  if (!r) return r.status();
  return Status::ok();
}

Result<std::vector<ApiKeyRecord>> ApiKeys::list() const {
  auto range = store_.list(std::string(kApiKeysPrefix));
  if (!range) return range.status();
  std::vector<ApiKeyRecord> out;
  for (const auto& kv : range->kvs) {
    auto rec = decodeApiKeyRecord(kv.value);
    if (rec) out.push_back(std::move(rec).value());
  }
  return out;
}

}  // namespace baton::auth
