// The mesh's certificate authority (DESIGN.md §2 "Mesh"; docs/mesh.md "Identity"). A root EC
// P-256 key and self-signed certificate are made on the first start and kept in the store
// (/baton/mesh/ca), the private key sealed with AES-256-GCM under a key-encryption key that
// never enters the store (a 32-byte file in the agent's data dir, 0600, until the secrets issue
// brings unsealing), so the store alone does not reveal it. Each service identity gets a
// short-lived leaf (default 24 h) whose only name is its SPIFFE id,
// spiffe://<trust domain>/app/<app>/svc/<svc>, usable as client and server certificate.
//
// Thread safety: issue() and the accessors may be called from any thread.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "mesh/intentions.h"
#include "state/store.h"

namespace baton::mesh {

// spiffe://<trust_domain>/app/<app>/svc/<svc>
std::string spiffeId(std::string_view trust_domain, const ServiceRef& service);
// The service a SPIFFE id names, if it is one of `trust_domain`'s service ids.
std::optional<ServiceRef> parseSpiffeId(std::string_view trust_domain, std::string_view uri);

struct LeafCertificate {
  std::string cert_pem;
  std::string key_pem;  // never logged
  TimePoint not_before{};
  TimePoint not_after{};
};

class MeshCa {
 public:
  // Reads the root from the store, or makes it (compare-and-swap: when two agents race, both
  // end up with the one written first). `kek_file` is read, or created with fresh random bytes.
  static Result<std::unique_ptr<MeshCa>> loadOrCreate(state::Store& store,
                                                      const std::filesystem::path& kek_file,
                                                      std::string trust_domain, Clock& clock);
  ~MeshCa();

  // A fresh key and certificate for `service`, valid from a minute ago for `ttl`.
  Result<LeafCertificate> issue(const ServiceRef& service, Duration ttl);
  const std::string& rootPem() const { return root_pem_; }
  const std::string& trustDomain() const { return trust_domain_; }

 private:
  struct Impl;
  MeshCa(std::unique_ptr<Impl> impl, std::string root_pem, std::string trust_domain);
  std::unique_ptr<Impl> impl_;
  std::string root_pem_;
  std::string trust_domain_;
};

}  // namespace baton::mesh
