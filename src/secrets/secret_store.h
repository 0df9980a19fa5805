// Secrets in the store, sealed (docs/secrets.md): each version's keys and values are one JSON
// object sealed with AES-256-GCM under the secrets' data key, bound to its path and version (a
// sealed value moved to another path or version does not open). The data key is itself sealed
// under a key-encryption key that is not in the store (for now the node's key file, later
// unseal shares), so the store file alone reveals no value.
//
// Store layout:
//   /baton/secrets/keyring            {"data_key": base64url(sealed data key)}
//   /baton/secrets/meta/<path>        the Metadata (kv.h) as JSON
//   /baton/secrets/data/<path>#<v>    base64url(sealed {"KEY": "value", ...})
// Every change is one transaction guarded by the metadata's revision, so two writers never
// make the same version.
//
// Thread-safe (the store is; this class keeps only the data key).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "secrets/kv.h"
#include "state/store.h"

namespace baton::secrets {

using SecretData = std::map<std::string, std::string>;

// Where each secret's Metadata is, by path (readers that follow versions watch this prefix).
inline constexpr std::string_view kMetaPrefix = "/baton/secrets/meta/";

struct SecretVersion {
  int64_t version = 0;
  SecretData data;
  TimePoint created{};
};

class SecretStore {
 public:
  // Opens the data key with `kek` (32 bytes), making and storing one on first use. A KEK that
  // does not open the stored data key is kFailedPrecondition.
  static Result<std::unique_ptr<SecretStore>> open(state::Store& store, std::string kek,
                                                   Clock& clock);
  ~SecretStore();

  // A new version; `cas` as in kv.h planPut. Returns the version written.
  Result<int64_t> put(const std::string& path, const SecretData& data,
                      std::optional<int64_t> cas = std::nullopt);
  // Version `version` (0: the current one).
  Result<SecretVersion> get(const std::string& path, int64_t version = 0);
  Result<Metadata> metadata(const std::string& path);
  Status softDelete(const std::string& path, const std::set<int64_t>& versions = {});
  Status undelete(const std::string& path, const std::set<int64_t>& versions);
  Status destroy(const std::string& path, const std::set<int64_t>& versions);
  Status setMaxVersions(const std::string& path, int max_versions);
  // Every version and the metadata.
  Status purge(const std::string& path);
  // The paths under `prefix` ("" for all), sorted.
  Result<std::vector<std::string>> list(const std::string& prefix);

 private:
  SecretStore(state::Store& store, std::string data_key, Clock& clock);
  Result<std::pair<Metadata, state::Revision>> readMeta(const std::string& path);
  // Writes `next` over the metadata read at `rev` (0: absent) with `extra` ops; kConflict when
  // the metadata changed meanwhile.
  Status commit(const std::string& path, state::Revision rev, const Metadata& next,
                std::vector<state::Op> extra);
  Status change(const std::string& path,
                const std::function<Result<Metadata>(const Metadata&)>& plan,
                std::function<std::vector<state::Op>(const Metadata&, const Metadata&)> ops = {});

  state::Store& store_;
  std::string data_key_;
  Clock& clock_;
};

// Metadata <-> JSON (exposed for tests).
std::string encodeMetadata(const Metadata& m);
Result<Metadata> decodeMetadata(std::string_view json);

}  // namespace baton::secrets
