// TLS material for the gateway, on OpenSSL 3 only (no Asio): server contexts with TLS 1.2/1.3
// and modern ciphers, SNI selection among several certificates, and the self-signed dev
// certificate. Internal to the gateway module (the tests use it too).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace baton::gateway {

struct CertPaths;

struct PemPair {
  std::string cert;
  std::string key;
};

// A self-signed EC P-256 certificate (valid 1 year) whose SAN lists `dns_names` and `ips`.
Result<PemPair> generateSelfSigned(const std::vector<std::string>& dns_names,
                                   const std::vector<std::string>& ips);

// A set of server contexts: the first certificate is the default; SNI switches to the one
// whose names (SAN DNS entries, else CN; "*.x" wildcards) match. Immutable once built;
// thread-safe to use from many connections.
class TlsContexts {
 public:
  ~TlsContexts();
  static Result<std::shared_ptr<TlsContexts>> fromFiles(const std::vector<CertPaths>& certs);
  static Result<std::shared_ptr<TlsContexts>> fromPem(const std::vector<PemPair>& pems);
  // The context new connections start with (owned by this object; never null).
  SSL_CTX* defaultContext() const { return entries_.front().ctx; }
  // The context for a server name (the default when nothing matches).
  SSL_CTX* select(std::string_view server_name) const;

 private:
  struct Entry {
    SSL_CTX* ctx = nullptr;
    std::vector<std::string> names;  // lower case
  };
  TlsContexts() = default;
  static Result<std::shared_ptr<TlsContexts>> build(const std::vector<PemPair>& pems);
  std::vector<Entry> entries_;
};

// Reads the dev certificate from `dir` (cert.pem/key.pem), generating and writing it when
// missing; with an empty dir, generates one in memory.
Result<PemPair> devCertificate(const std::filesystem::path& dir);

}  // namespace baton::gateway
