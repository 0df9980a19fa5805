// Sealed or unsealed: who holds the secrets' key-encryption key (KEK) and so the SecretStore
// (docs/secrets.md "Unsealing"). Two kinds, as the agent's `[secrets] seal` says:
//
//  - "file": the KEK is the node's key file (<data_dir>/secrets.kek); unsealed from the start.
//  - "shares": the KEK is made by `init` (POST /v1/operator/init), split into Shamir shares
//    (shamir.h) that are answered once and kept nowhere; the KEK is never written. An agent
//    starts sealed: `unseal` takes one share at a time and, at the threshold, combines them,
//    checks the key against the key id and by opening the keyring, and holds the SecretStore.
//
// The seal's configuration (threshold, number of shares, key id; never the KEK or a share) is
// in the store at model::keys::kSecretsSeal, so every agent of a cluster knows how many shares it
// needs; each agent is unsealed on its own, as Vault's nodes are.
//
// Thread-safe: every method takes the one mutex. Once unsealed a Seal stays unsealed (there is
// no `operator seal` yet), so the pointer store() returns stays valid as long as the Seal.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "secrets/secret_store.h"
#include "secrets/shamir.h"
#include "state/store.h"

namespace baton::secrets {

// What is stored at kSecretsSeal.
struct SealConfig {
  int shares = 0;
  int threshold = 0;
  std::string key_id;
};
std::string encodeSealConfig(const SealConfig& c);
Result<SealConfig> decodeSealConfig(std::string_view json);

struct SealStatus {
  std::string mode;          // "file" or "shares"
  bool initialized = false;  // shares: init has been done (always true for "file")
  bool sealed = false;       // no SecretStore yet
  int threshold = 0;         // shares: how many make the key
  int shares = 0;            // shares: how many were made
  int progress = 0;          // shares: how many were given towards the next unseal
  std::string key_id;        // shares: the id every share of this key carries
  // "2 more unseal shares are needed (baton operator unseal)", "the secrets are not initialised
  // (baton operator init)", or "" when unsealed.
  std::string message() const;
};

class Seal {
 public:
  // "file": opens the SecretStore at once with `kek`.
  static Result<std::unique_ptr<Seal>> withKey(state::Store& store, std::string kek, Clock& clock);
  // "shares": reads the configuration; sealed (and uninitialised when there is none).
  static Result<std::unique_ptr<Seal>> withShares(state::Store& store, Clock& clock);
  ~Seal();

  // The store while unsealed, else null.
  SecretStore* store();
  SealStatus status();

  // Shares mode, once per store: a fresh random KEK, split into `shares` with `threshold`;
  // the encoded shares, to be given to the operators and kept nowhere. Leaves this Seal
  // unsealed. kFailedPrecondition in file mode; kAlreadyExists when initialised already (or the
  // store holds secrets sealed under another key); kInvalidArgument for bad numbers.
  Result<std::vector<std::string>> init(int shares, int threshold);

  // Shares mode: one share towards the threshold. A share that does not parse, belongs to
  // another key (its key id), says another threshold, or was given already is kInvalidArgument
  // and leaves the progress as it was. At the threshold the shares are combined and the key is
  // checked (its key id, then the keyring); a key that fails is kFailedPrecondition, the shares
  // given are forgotten and nothing is written. Unsealed already: the status, unchanged.
  Result<SealStatus> unseal(std::string_view share_text);

 private:
  Seal(state::Store& store, Clock& clock, std::string mode);
  SealStatus statusLocked() const;
  void forgetShares();

  state::Store& kv_;
  Clock& clock_;
  const std::string mode_;
  std::mutex mu_;
  std::optional<SealConfig> config_;
  std::vector<shamir::Share> given_;
  std::unique_ptr<SecretStore> store_;
};

}  // namespace baton::secrets
