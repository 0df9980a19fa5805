#include "mesh/ca.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "core/hex.h"
#include "crypto/aead.h"
#include "model/names.h"

namespace baton::mesh {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kCaKey = "/baton/mesh/ca";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

std::string sslError(const std::string& what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return what + ": " + buf;
}

std::string bioText(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string certPem(X509* x) {
  std::unique_ptr<BIO, BioFree> b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  return bioText(b.get());
}
std::string keyPem(EVP_PKEY* k) {
  std::unique_ptr<BIO, BioFree> b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  return bioText(b.get());
}
Cert parseCert(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Cert(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}
Pkey parseKey(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Pkey(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
}




bool setSerial(X509* x) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return false;
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
  BN_free(bn);
  return ok;
}

bool addExt(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (ext == nullptr) return false;
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return true;
}

void setName(X509_NAME* name, const std::string& cn) {
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Baton mesh"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
}

}  // namespace


std::string spiffeId(std::string_view trust_domain, const ServiceRef& s) {
  return "spiffe://" + std::string(trust_domain) + "/app/" + s.app + "/svc/" + s.service;
}

std::optional<ServiceRef> parseSpiffeId(std::string_view trust_domain, std::string_view uri) {
  std::string prefix = "spiffe://" + std::string(trust_domain) + "/app/";
  if (uri.substr(0, prefix.size()) != prefix) return std::nullopt;
  uri.remove_prefix(prefix.size());
  auto mid = uri.find("/svc/");
  if (mid == std::string_view::npos) return std::nullopt;
  std::string_view app = uri.substr(0, mid), svc = uri.substr(mid + 5);
  if (!model::isValidName(app) || !model::isValidName(svc)) return std::nullopt;
  return ServiceRef{std::string(app), std::string(svc)};
}

struct MeshCa::Impl {
  std::mutex mu;
  Pkey key;
  Cert cert;
  Clock& clock;
  explicit Impl(Clock& c) : clock(c) {}
};

MeshCa::MeshCa(std::unique_ptr<Impl> impl, std::string root_pem, std::string trust_domain)
    : impl_(std::move(impl)), root_pem_(std::move(root_pem)), trust_domain_(std::move(trust_domain)) {}
MeshCa::~MeshCa() = default;

Result<std::unique_ptr<MeshCa>> MeshCa::loadOrCreate(state::Store& store, const fs::path& kek_file,
                                                     std::string trust_domain, Clock& clock) {
  auto kek = crypto::loadOrCreateKeyFile(kek_file);
  if (!kek) return kek.status();
  const std::string key(kCaKey);
  const std::string aad = "baton mesh ca key";
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto cur = store.get(key);
    if (!cur) return cur.status();
    if (cur->has_value()) {
      auto j = nlohmann::json::parse((*cur)->value, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("cert") || !j.contains("key_sealed")) {
        return Status(Code::kInternal, "malformed mesh CA record " + key);
      }
      auto sealed = hexDecode(j.value("key_sealed", ""));
      if (!sealed) return Status(Code::kInternal, "malformed mesh CA record " + key);
      auto pem = crypto::open(*kek, *sealed, aad);
      if (!pem && pem.status().code() == Code::kFailedPrecondition) {
        return Status(Code::kFailedPrecondition,
                      "the mesh CA's key does not open with this agent's key-encryption key (was "
                      "the data dir's mesh-ca.kek replaced?)");
      }
      if (!pem) return pem.status();
      auto impl = std::make_unique<Impl>(clock);
      impl->key = parseKey(*pem);
      impl->cert = parseCert(j["cert"].get<std::string>());
      if (!impl->key || !impl->cert) return Status(Code::kInternal, "unreadable mesh CA in " + key);
      return std::unique_ptr<MeshCa>(
          new MeshCa(std::move(impl), j["cert"].get<std::string>(), std::move(trust_domain)));
    }
    // A new root, valid 10 years; its key never leaves this process unsealed.
    Pkey k(EVP_EC_gen("P-256"));
    Cert x(X509_new());
    if (!k || !x || !setSerial(x.get())) return internalError(sslError("making the mesh CA"));
    X509_set_version(x.get(), 2);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x.get(), k.get());
    setName(X509_get_subject_name(x.get()), "Baton mesh root " + trust_domain);
    X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
    bool ok = addExt(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
              addExt(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
              addExt(x.get(), x.get(), NID_subject_key_identifier, "hash") &&
              addExt(x.get(), x.get(), NID_name_constraints,
                     "critical,permitted;URI:" + trust_domain);
    if (!ok || X509_sign(x.get(), k.get(), EVP_sha256()) == 0) {
      return internalError(sslError("signing the mesh CA"));
    }
    auto sealed = crypto::seal(*kek, keyPem(k.get()), aad);
    if (!sealed) return sealed.status();
    nlohmann::json rec = {{"cert", certPem(x.get())},
                          {"key_sealed", hexEncode(*sealed)},
                          {"trust_domain", trust_domain},
                          {"created_at", toUnixMillis(clock.now())}};
    auto t = store.txn({state::Compare::absent(key)}, {state::Op::put(key, rec.dump())});
    if (!t) return t.status();
    // Lost a race: read what the winner wrote.
  }
  return Status(Code::kConflict, "the mesh CA record keeps changing");
}

Result<LeafCertificate> MeshCa::issue(const ServiceRef& service, Duration ttl) {
  Pkey k(EVP_EC_gen("P-256"));
  Cert x(X509_new());
  if (!k || !x || !setSerial(x.get())) return internalError(sslError("making a mesh leaf"));
  const TimePoint now = impl_->clock.now();
  LeafCertificate out;
  out.not_before = now - Duration(60'000);
  out.not_after = now + ttl;
  X509_set_version(x.get(), 2);
  ASN1_TIME_set(X509_getm_notBefore(x.get()), std::chrono::system_clock::to_time_t(
                                                  std::chrono::time_point_cast<std::chrono::seconds>(
                                                      out.not_before)));
  ASN1_TIME_set(X509_getm_notAfter(x.get()),
                std::chrono::system_clock::to_time_t(
                    std::chrono::time_point_cast<std::chrono::seconds>(out.not_after)));
  X509_set_pubkey(x.get(), k.get());
  setName(X509_get_subject_name(x.get()), service.str());
  const std::string uri = spiffeId(trust_domain_, service);
  {
    std::lock_guard lock(impl_->mu);
    X509_set_issuer_name(x.get(), X509_get_subject_name(impl_->cert.get()));
    bool ok = addExt(x.get(), impl_->cert.get(), NID_subject_alt_name, "URI:" + uri) &&
              addExt(x.get(), impl_->cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
              addExt(x.get(), impl_->cert.get(), NID_key_usage,
                     "critical,digitalSignature,keyAgreement") &&
              addExt(x.get(), impl_->cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
              addExt(x.get(), impl_->cert.get(), NID_authority_key_identifier, "keyid:always");
    if (!ok || X509_sign(x.get(), impl_->key.get(), EVP_sha256()) == 0) {
      return internalError(sslError("signing a mesh leaf for " + service.str()));
    }
  }
  out.cert_pem = certPem(x.get());
  out.key_pem = keyPem(k.get());
  return out;
}

}  // namespace baton::mesh
