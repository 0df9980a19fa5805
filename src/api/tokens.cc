#include "api/tokens.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "auth/api_keys.h"
#include "auth/jose.h"
#include "core/hex.h"
#include "crypto/aead.h"

namespace baton::api {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "baton_";
constexpr size_t kAccessorBytes = 8;
constexpr size_t kSecretBytes = 32;
constexpr size_t kSecretChars = 43;  // base64url of 32 bytes, unpadded


json ruleJson(const acl::Rule& r) {
  return {{"kind", acl::kindName(r.kind)},
          {"pattern", r.pattern},
          {"capabilities", acl::capabilityNames(r.caps)}};
}

}  // namespace

bool isStoreToken(std::string_view text) { return text.starts_with(kPrefix); }

bool isAccessor(std::string_view text) {
  return text.size() == 2 * kAccessorBytes && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string encodeTokenRecord(const TokenRecord& r) {
  json rules = json::array();
  for (const auto& rule : r.rules) rules.push_back(ruleJson(rule));
  json j = {{"accessor", r.accessor},
            {"hash", r.hash},
            {"owner", r.owner},
            {"rules", rules},
            {"created_at", toUnixMillis(r.created_at)},
            {"expires_at", r.expires_at ? json(toUnixMillis(*r.expires_at)) : json(nullptr)},
            {"created_by", r.created_by}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<TokenRecord> decodeTokenRecord(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false, false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("token record is not JSON");
  TokenRecord r;
  auto str = [&](const char* name, std::string* out) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!str("accessor", &r.accessor) || !str("hash", &r.hash) || !str("owner", &r.owner)) {
    return invalidArgument("token record needs string accessor, hash and owner");
  }
  (void)str("created_by", &r.created_by);
  auto created = j.find("created_at");
  if (created == j.end() || !created->is_number_integer()) {
    return invalidArgument("token record needs integer created_at");
  }
  r.created_at = fromUnixMillis(created->get<int64_t>());
  if (auto e = j.find("expires_at"); e != j.end() && !e->is_null()) {
    if (!e->is_number_integer()) return invalidArgument("token record expires_at is not a time");
    r.expires_at = fromUnixMillis(e->get<int64_t>());
  }
  auto rules = j.find("rules");
  if (rules == j.end() || !rules->is_array()) return invalidArgument("token record needs rules");
  for (const auto& e : *rules) {
    if (!e.is_object() || !e.contains("kind") || !e["kind"].is_string() || !e.contains("pattern") ||
        !e["pattern"].is_string() || !e.contains("capabilities") || !e["capabilities"].is_array()) {
      return invalidArgument("token record has a malformed rule");
    }
    std::vector<std::string> caps;
    for (const auto& c : e["capabilities"]) {
      if (!c.is_string()) return invalidArgument("token record has a malformed capability");
      caps.push_back(c.get<std::string>());
    }
    auto rule = acl::makeRule(e["kind"].get<std::string>(), e["pattern"].get<std::string>(), caps);
    if (!rule) return rule.status();
    r.rules.push_back(std::move(rule).value());
  }
  return r;
}

Result<NewToken> TokenStore::create(std::string owner, std::vector<acl::Rule> rules, TimePoint now,
                                    std::optional<TimePoint> expires_at, std::string created_by) {
  auto accessor = crypto::randomBytes(kAccessorBytes);
  if (!accessor) return accessor.status();
  auto secret = crypto::randomBytes(kSecretBytes);
  if (!secret) return secret.status();
  NewToken out;
  out.record.accessor = hexEncode(*accessor);
  out.record.hash = auth::hashApiKeySecret(*secret);
  if (out.record.hash.empty()) return internalError("SHA-256 failed");
  out.record.owner = std::move(owner);
  out.record.rules = std::move(rules);
  out.record.created_at = now;
  out.record.expires_at = expires_at;
  out.record.created_by = std::move(created_by);
  out.token = std::string(kPrefix) + out.record.accessor + "_" + auth::base64urlEncode(*secret);
  OPENSSL_cleanse(secret->data(), secret->size());

  const std::string key = tokenStoreKey(out.record.accessor);
  auto txn = store_.txn({state::Compare::absent(key)},
                        {state::Op::put(key, encodeTokenRecord(out.record))});
  if (!txn) return txn.status();
  if (!txn->succeeded) return Status(Code::kAlreadyExists, "token accessor collision; retry");
  return out;
}

Verified TokenStore::verify(std::string_view token, TimePoint now) const {
  Verified v;
  const size_t expected = kPrefix.size() + 2 * kAccessorBytes + 1 + kSecretChars;
  if (token.size() != expected || !token.starts_with(kPrefix) ||
      token[kPrefix.size() + 2 * kAccessorBytes] != '_') {
    return v;
  }
  const std::string_view accessor = token.substr(kPrefix.size(), 2 * kAccessorBytes);
  if (!isAccessor(accessor)) return v;
  auto secret = auth::base64urlDecode(token.substr(kPrefix.size() + 2 * kAccessorBytes + 1));
  if (!secret || secret->size() != kSecretBytes) return v;
  const std::string hash = auth::hashApiKeySecret(*secret);
  OPENSSL_cleanse(secret->data(), secret->size());

  auto kv = store_.get(tokenStoreKey(accessor));
  if (!kv) {
    v.result = Verified::Result::kUnavailable;
    return v;
  }
  if (!kv->has_value()) return v;
  auto rec = decodeTokenRecord((*kv)->value);
  if (!rec) return v;  // a malformed record opens nothing
  if (hash.empty() || rec->hash.size() != hash.size() ||
      CRYPTO_memcmp(rec->hash.data(), hash.data(), hash.size()) != 0) {
    return v;
  }
  v.record = std::move(rec).value();
  v.result = v.record.expires_at && *v.record.expires_at <= now ? Verified::Result::kExpired
                                                                : Verified::Result::kOk;
  return v;
}

Result<bool> TokenStore::revoke(std::string_view accessor) {
  const std::string key = tokenStoreKey(accessor);
  auto t = store_.txn(
      {state::Compare{key, state::Compare::Target::kVersion, state::Compare::Op::kGreater, 0, {}}},
      {state::Op::del(key)});
  if (!t) return t.status();
  return t->succeeded;
}

Result<std::vector<TokenRecord>> TokenStore::list() const {
  auto all = store_.list(std::string(kTokensPrefix));
  if (!all) return all.status();
  std::vector<TokenRecord> out;
  for (const auto& kv : all->kvs) {
    if (auto r = decodeTokenRecord(kv.value)) out.push_back(std::move(r).value());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.accessor < b.accessor;
  });
  return out;
}

}  // namespace baton::api
