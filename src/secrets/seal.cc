#include "secrets/seal.h"

#include <nlohmann/json.hpp>

#include "crypto/aead.h"
#include "model/keys.h"

namespace baton::secrets {
namespace {

using json = nlohmann::json;

std::string plural(int n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string encodeSealConfig(const SealConfig& c) {
  return json{{"type", "shares"}, {"shares", c.shares}, {"threshold", c.threshold},
              {"key_id", c.key_id}}
      .dump();
}

Result<SealConfig> decodeSealConfig(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  auto bad = [] { return Status(Code::kInternal, "malformed seal configuration " +
                                                     std::string(model::keys::kSecretsSeal)); };
  if (j.is_discarded() || !j.is_object()) return bad();
  try {
    SealConfig c;
    if (j.at("type").get<std::string>() != "shares") return bad();
    c.shares = j.at("shares").get<int>();
    c.threshold = j.at("threshold").get<int>();
    c.key_id = j.at("key_id").get<std::string>();
    if (c.threshold < shamir::kMinThreshold || c.threshold > c.shares ||
        c.shares > shamir::kMaxShares || c.key_id.size() != 8) {
      return bad();
    }
    return c;
  } catch (const std::exception&) {
    return bad();
  }
}

std::string SealStatus::message() const {
  if (!sealed) return "";
  if (!initialized) return "the secrets are not initialised (baton operator init)";
  const int left = threshold - progress;
  return "the secrets are sealed: " + plural(left, "more unseal share is", "more unseal shares are") +
         " needed (baton operator unseal)";
}

Seal::Seal(state::Store& store, Clock& clock, std::string mode)
    : kv_(store), clock_(clock), mode_(std::move(mode)) {}

Seal::~Seal() { forgetShares(); }

Result<std::unique_ptr<Seal>> Seal::withKey(state::Store& store, std::string kek, Clock& clock) {
  // A store initialised with shares keeps its keyring under their key: a key file must neither
  // fail to open it with a puzzling message nor make a keyring of its own.
  auto cfg = store.get(std::string(model::keys::kSecretsSeal));
  if (!cfg) return cfg.status();
  if (cfg->has_value()) {
    crypto::cleanse(kek);
    auto c = decodeSealConfig((*cfg)->value);
    return Status(Code::kFailedPrecondition,
                  "the secrets were initialised with unseal shares" +
                      (c ? " (key id " + c->key_id + ")" : std::string()) +
                      ": set [secrets] seal = \"shares\" and unseal with them");
  }
  auto opened = SecretStore::open(store, std::move(kek), clock);
  if (!opened) return opened.status();
  std::unique_ptr<Seal> s(new Seal(store, clock, "file"));
  s->store_ = std::move(*opened);
  return s;
}

Result<std::unique_ptr<Seal>> Seal::withShares(state::Store& store, Clock& clock) {
  std::unique_ptr<Seal> s(new Seal(store, clock, "shares"));
  auto kv = store.get(std::string(model::keys::kSecretsSeal));
  if (!kv) return kv.status();
  if (kv->has_value()) {
    auto c = decodeSealConfig((*kv)->value);
    if (!c) return c.status();
    s->config_ = std::move(*c);
  }
  return s;
}

SecretStore* Seal::store() {
  std::lock_guard lock(mu_);
  return store_.get();
}

SealStatus Seal::status() {
  std::lock_guard lock(mu_);
  return statusLocked();
}

SealStatus Seal::statusLocked() const {
  SealStatus st;
  st.mode = mode_;
  st.sealed = store_ == nullptr;
  st.initialized = mode_ == "file" || config_.has_value();
  if (config_) {
    st.threshold = config_->threshold;
    st.shares = config_->shares;
    st.key_id = config_->key_id;
    st.progress = static_cast<int>(given_.size());
  }
  return st;
}

void Seal::forgetShares() {
  for (auto& s : given_) crypto::cleanse(s.bytes);
  given_.clear();
}

Result<std::vector<std::string>> Seal::init(int shares, int threshold) {
  std::lock_guard lock(mu_);
  if (mode_ != "shares") {
    return Status(Code::kFailedPrecondition,
                  "this agent's secrets are sealed by its key file ([secrets] seal = \"file\"); "
                  "init is for seal = \"shares\"");
  }
  if (config_) {
    return Status(Code::kAlreadyExists, "the secrets are initialised already (key id " +
                                            config_->key_id + "); unseal with its shares");
  }
  auto kek = crypto::randomBytes(crypto::kKeyBytes);
  if (!kek) return kek.status();
  auto parts = shamir::split(*kek, shares, threshold);
  if (!parts) {
    crypto::cleanse(*kek);
    return parts.status();
  }
  SealConfig c{.shares = shares, .threshold = threshold, .key_id = shamir::keyId(*kek)};
  // Once per store: neither a seal nor a keyring (secrets sealed by a key file) may be there.
  const std::string seal_key(model::keys::kSecretsSeal), keyring(model::keys::kSecretsKeyring);
  auto t = kv_.txn({state::Compare::absent(seal_key), state::Compare::absent(keyring)},
                   {state::Op::put(seal_key, encodeSealConfig(c))});
  if (!t || !t->succeeded) {
    crypto::cleanse(*kek);
    if (!t) return t.status();
    auto cur = kv_.get(seal_key);
    if (cur && cur->has_value()) {
      if (auto other = decodeSealConfig((*cur)->value)) config_ = *other;
      return Status(Code::kAlreadyExists, "the secrets are initialised already");
    }
    return Status(Code::kAlreadyExists,
                  "the store holds secrets sealed under another key (a key file: [secrets] seal = "
                  "\"file\"); they cannot be re-sealed with shares");
  }
  config_ = c;
  auto opened = SecretStore::open(kv_, std::move(*kek), clock_);
  if (!opened) return opened.status();
  store_ = std::move(*opened);
  std::vector<std::string> out;
  for (const auto& p : *parts) out.push_back(shamir::encodeShare(p));
  return out;
}

Result<SealStatus> Seal::unseal(std::string_view share_text) {
  std::lock_guard lock(mu_);
  if (mode_ != "shares") {
    return Status(Code::kInvalidArgument,
                  "this agent's secrets are sealed by its key file ([secrets] seal = \"file\"), "
                  "not by shares: there is nothing to unseal");
  }
  if (!config_) {
    // Another agent of the cluster may have initialised the store since this one started.
    auto kv = kv_.get(std::string(model::keys::kSecretsSeal));
    if (!kv) return kv.status();
    if (kv->has_value()) {
      auto c = decodeSealConfig((*kv)->value);
      if (!c) return c.status();
      config_ = std::move(*c);
    }
  }
  if (!config_) {
    return Status(Code::kFailedPrecondition,
                  "the secrets are not initialised (baton operator init)");
  }
  if (store_) return statusLocked();
  auto share = shamir::parseShare(share_text);
  if (!share) return share.status();
  const std::string name = "share " + std::to_string(share->index);
  if (share->key_id != config_->key_id) {
    return invalidArgument(name + " belongs to another key (key id " + share->key_id +
                           "; this store's is " + config_->key_id + ")");
  }
  if (share->threshold != config_->threshold || share->index > config_->shares) {
    return invalidArgument(name + " does not fit this key (" + std::to_string(config_->threshold) +
                           " of " + std::to_string(config_->shares) + " shares)");
  }
  for (const auto& g : given_) {
    if (g.index == share->index) return invalidArgument(name + " was given already");
  }
  given_.push_back(std::move(*share));
  if (static_cast<int>(given_.size()) < config_->threshold) return statusLocked();

  auto kek = shamir::combine(given_);
  forgetShares();
  if (!kek) {
    return Status(kek.status().code() == Code::kInvalidArgument ? Code::kFailedPrecondition
                                                                : kek.status().code(),
                  kek.status().message() + "; the shares given were forgotten: start again");
  }
  // The key id matched; the keyring is the proof. SecretStore::open writes only when there is
  // no keyring yet (an init that stopped before making it), and then with this checked key.
  auto opened = SecretStore::open(kv_, std::move(*kek), clock_);
  if (!opened) {
    return Status(opened.status().code(),
                  opened.status().message() + "; the shares given were forgotten: start again");
  }
  store_ = std::move(*opened);
  return statusLocked();
}

}  // namespace baton::secrets
