#include "secrets/secret_store.h"

#include <nlohmann/json.hpp>

#include "auth/jose.h"
#include "crypto/aead.h"
#include "model/keys.h"

namespace baton::secrets {
namespace {

using json = nlohmann::json;

constexpr std::string_view kKeyring = model::keys::kSecretsKeyring;
constexpr std::string_view kMeta = "/baton/secrets/meta/";
constexpr std::string_view kData = "/baton/secrets/data/";
constexpr std::string_view kKeyringAad = "baton secrets data key";
constexpr int kAttempts = 8;

std::string metaKey(const std::string& path) { return std::string(kMeta) + path; }
std::string dataKey(const std::string& path, int64_t v) {
  return std::string(kData) + path + "#" + std::to_string(v);
}
std::string dataAad(const std::string& path, int64_t v) {
  return "baton secret " + path + " v" + std::to_string(v);
}

}  // namespace

std::string encodeMetadata(const Metadata& m) {
  json versions = json::object();
  for (const auto& [v, info] : m.versions) {
    versions[std::to_string(v)] = {
        {"created", toUnixMillis(info.created)},
        {"deleted", info.deleted ? json(toUnixMillis(*info.deleted)) : json(nullptr)},
        {"destroyed", info.destroyed}};
  }
  return json{{"current", m.current}, {"max_versions", m.max_versions}, {"versions", versions}}
      .dump();
}

Result<Metadata> decodeMetadata(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  auto bad = [] { return Status(Code::kInternal, "malformed secret metadata"); };
  if (j.is_discarded() || !j.is_object()) return bad();
  try {
    Metadata m;
    m.current = j.at("current").get<int64_t>();
    m.max_versions = j.at("max_versions").get<int>();
    for (const auto& [k, v] : j.at("versions").items()) {
      VersionInfo info;
      info.created = fromUnixMillis(v.at("created").get<int64_t>());
      if (!v.at("deleted").is_null()) info.deleted = fromUnixMillis(v.at("deleted").get<int64_t>());
      info.destroyed = v.at("destroyed").get<bool>();
      m.versions[std::stoll(k)] = info;
    }
    return m;
  } catch (const std::exception&) {
    return bad();
  }
}

Result<std::unique_ptr<SecretStore>> SecretStore::open(state::Store& store, std::string kek,
                                                       Clock& clock) {
  // The KEK does not outlive this call in memory.
  struct Wipe {
    std::string& s;
    ~Wipe() { crypto::cleanse(s); }
  } wipe{kek};
  const std::string key(kKeyring);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto cur = store.get(key);
    if (!cur) return cur.status();
    if (cur->has_value()) {
      auto j = json::parse((*cur)->value, nullptr, false);
      std::optional<std::string> sealed;
      if (!j.is_discarded() && j.is_object() && j.contains("data_key") && j["data_key"].is_string()) {
        sealed = auth::base64urlDecode(j["data_key"].get<std::string>());
      }
      if (!sealed) return Status(Code::kInternal, "malformed secrets keyring " + key);
      auto data_key = crypto::open(kek, *sealed, kKeyringAad);
      if (!data_key && data_key.status().code() == Code::kFailedPrecondition) {
        return Status(Code::kFailedPrecondition,
                      "the secrets' data key does not open with this key-encryption key");
      }
      if (!data_key) return data_key.status();
      return std::unique_ptr<SecretStore>(new SecretStore(store, std::move(*data_key), clock));
    }
    auto fresh = crypto::randomBytes(crypto::kKeyBytes);
    if (!fresh) return fresh.status();
    auto sealed = crypto::seal(kek, *fresh, kKeyringAad);
    if (!sealed) return sealed.status();
    auto t = store.txn({state::Compare::absent(key)},
                       {state::Op::put(key, json{{"data_key", auth::base64urlEncode(*sealed)}}.dump())});
    if (!t) return t.status();
    if (t->succeeded) {
      return std::unique_ptr<SecretStore>(new SecretStore(store, std::move(*fresh), clock));
    }
  }
  return conflict("the secrets keyring keeps changing");
}

SecretStore::SecretStore(state::Store& store, std::string data_key, Clock& clock)
    : store_(store), data_key_(std::move(data_key)), clock_(clock) {}

SecretStore::~SecretStore() {
  // The data key does not outlive its owner in memory.
  std::fill(data_key_.begin(), data_key_.end(), '\0');
}

Result<std::pair<Metadata, state::Revision>> SecretStore::readMeta(const std::string& path) {
  if (Status s = checkPath(path); !s) return s;
  auto kv = store_.get(metaKey(path));
  if (!kv) return kv.status();
  if (!kv->has_value()) return std::pair<Metadata, state::Revision>{Metadata{}, 0};
  auto m = decodeMetadata((*kv)->value);
  if (!m) return m.status();
  return std::pair<Metadata, state::Revision>{std::move(*m), (*kv)->mod_revision};
}

Status SecretStore::commit(const std::string& path, state::Revision rev, const Metadata& next,
                           std::vector<state::Op> extra) {
  const std::string key = metaKey(path);
  state::Compare guard =
      rev == 0 ? state::Compare::absent(key) : state::Compare::modRevisionIs(key, rev);
  extra.push_back(state::Op::put(key, encodeMetadata(next)));
  auto t = store_.txn({guard}, extra);
  if (!t) return t.status();
  if (!t->succeeded) return conflict("the secret " + path + " changed meanwhile");
  return Status::ok();
}

Result<int64_t> SecretStore::put(const std::string& path, const SecretData& data,
                                 std::optional<int64_t> cas) {
  if (Status s = checkPath(path); !s) return s;
  if (data.empty()) return invalidArgument("a secret has at least one key");
  size_t bytes = 0;
  for (const auto& [k, v] : data) {
    if (Status s = checkKey(k); !s) return s;
    bytes += k.size() + v.size();
  }
  if (bytes > kMaxValueBytes) return invalidArgument("a secret holds at most 512 KiB");
  const std::string plain = json(data).dump();
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto cur = readMeta(path);
    if (!cur) return cur.status();
    auto plan = planPut(cur->first, cas, clock_.now());
    if (!plan) return plan.status();
    auto sealed = crypto::seal(data_key_, plain, dataAad(path, plan->version));
    if (!sealed) return sealed.status();
    std::vector<state::Op> ops = {
        state::Op::put(dataKey(path, plan->version), auth::base64urlEncode(*sealed))};
    for (int64_t v : plan->drop) ops.push_back(state::Op::del(dataKey(path, v)));
    Status s = commit(path, cur->second, plan->next, std::move(ops));
    if (s) return plan->version;
    if (s.code() != Code::kConflict) return s;
  }
  return conflict("the secret " + path + " keeps changing; try again");
}

Result<SecretVersion> SecretStore::get(const std::string& path, int64_t version) {
  auto cur = readMeta(path);
  if (!cur) return cur.status();
  auto v = readable(cur->first, version);
  if (!v) return Status(Code::kNotFound, path + ": " + v.status().message());
  auto kv = store_.get(dataKey(path, *v));
  if (!kv) return kv.status();
  if (!kv->has_value()) return notFound(path + ": version " + std::to_string(*v) + " has no data");
  auto sealed = auth::base64urlDecode((*kv)->value);
  if (!sealed) return Status(Code::kInternal, "malformed sealed secret " + path);
  auto plain = crypto::open(data_key_, *sealed, dataAad(path, *v));
  if (!plain) return Status(Code::kInternal, path + ": version " + std::to_string(*v) +
                                                 " does not open (" + plain.status().message() + ")");
  auto j = json::parse(*plain, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status(Code::kInternal, "malformed secret " + path);
  SecretVersion out;
  out.version = *v;
  out.created = cur->first.versions.at(*v).created;
  for (const auto& [k, val] : j.items()) {
    if (!val.is_string()) return Status(Code::kInternal, "malformed secret " + path);
    out.data[k] = val.get<std::string>();
  }
  return out;
}

Result<Metadata> SecretStore::metadata(const std::string& path) {
  auto cur = readMeta(path);
  if (!cur) return cur.status();
  if (cur->second == 0) return notFound("no such secret: " + path);
  return cur->first;
}

Status SecretStore::change(
    const std::string& path, const std::function<Result<Metadata>(const Metadata&)>& plan,
    std::function<std::vector<state::Op>(const Metadata&, const Metadata&)> ops) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto cur = readMeta(path);
    if (!cur) return cur.status();
    if (cur->second == 0) return notFound("no such secret: " + path);
    auto next = plan(cur->first);
    if (!next) return next.status();
    Status s = commit(path, cur->second, *next, ops ? ops(cur->first, *next) : std::vector<state::Op>{});
    if (s || s.code() != Code::kConflict) return s;
  }
  return conflict("the secret " + path + " keeps changing; try again");
}

Status SecretStore::softDelete(const std::string& path, const std::set<int64_t>& versions) {
  return change(path, [&](const Metadata& m) { return planDelete(m, versions, clock_.now()); });
}

Status SecretStore::undelete(const std::string& path, const std::set<int64_t>& versions) {
  return change(path, [&](const Metadata& m) { return planUndelete(m, versions); });
}

Status SecretStore::destroy(const std::string& path, const std::set<int64_t>& versions) {
  return change(path, [&](const Metadata& m) { return planDestroy(m, versions); },
                [&](const Metadata& before, const Metadata& after) {
                  std::vector<state::Op> ops;
                  for (const auto& [v, info] : after.versions) {
                    if (info.destroyed && !before.versions.at(v).destroyed) {
                      ops.push_back(state::Op::del(dataKey(path, v)));
                    }
                  }
                  return ops;
                });
}

Status SecretStore::setMaxVersions(const std::string& path, int max_versions) {
  return change(
      path,
      [&](const Metadata& m) -> Result<Metadata> {
        auto p = planMaxVersions(m, max_versions);
        if (!p) return p.status();
        return p->next;
      },
      [&](const Metadata& before, const Metadata& after) {
        std::vector<state::Op> ops;
        for (const auto& [v, _] : before.versions) {
          if (!after.versions.count(v)) ops.push_back(state::Op::del(dataKey(path, v)));
        }
        return ops;
      });
}

Status SecretStore::purge(const std::string& path) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto cur = readMeta(path);
    if (!cur) return cur.status();
    if (cur->second == 0) return notFound("no such secret: " + path);
    std::vector<state::Op> ops;
    for (const auto& [v, _] : cur->first.versions) ops.push_back(state::Op::del(dataKey(path, v)));
    ops.push_back(state::Op::del(metaKey(path)));
    auto t = store_.txn({state::Compare::modRevisionIs(metaKey(path), cur->second)}, ops);
    if (!t) return t.status();
    if (t->succeeded) return Status::ok();
  }
  return conflict("the secret " + path + " keeps changing; try again");
}

Result<std::vector<std::string>> SecretStore::list(const std::string& prefix) {
  auto r = store_.list(std::string(kMeta) + prefix);
  if (!r) return r.status();
  std::vector<std::string> out;
  for (const auto& kv : r->kvs) out.push_back(kv.key.substr(kMeta.size()));
  return out;
}

}  // namespace baton::secrets
