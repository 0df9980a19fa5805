#include "gateway/tls.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "gateway/gateway.h"

namespace baton::gateway {
namespace {

constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string sslError(const std::string& what) {
  unsigned long e = ERR_get_error();
  char buf[256] = {0};
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return what + (e != 0 ? std::string(": ") + buf : std::string());
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError("cannot read \"" + path + "\"");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::vector<std::string> certNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS) {
        const auto* s = n->d.dNSName;
        names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                          static_cast<size_t>(ASN1_STRING_length(s)))));
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256] = {0};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      names.push_back(lower(cn));
    }
  }
  return names;
}

bool nameMatches(const std::string& pattern, std::string_view name) {
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    auto dot = name.find('.');
    return dot != std::string_view::npos && name.substr(dot) == std::string_view(pattern).substr(1);
  }
  return pattern == name;
}

int sniCallback(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* self = static_cast<const TlsContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* ctx = self->select(name);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

int alpnCallback(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                 unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

Result<SSL_CTX*> makeContext(const PemPair& pem, std::vector<std::string>* names) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return internalError(sslError("SSL_CTX_new"));
  auto fail = [&](const std::string& what) -> Result<SSL_CTX*> {
    std::string m = sslError(what);
    SSL_CTX_free(ctx);
    return invalidArgument(m);
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 |
                               SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1) return fail("cipher list");
  SSL_CTX_set_alpn_select_cb(ctx, alpnCallback, nullptr);

  std::unique_ptr<BIO, BioFree> cbio(
      BIO_new_mem_buf(pem.cert.data(), static_cast<int>(pem.cert.size())));
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
  if (!leaf) return fail("certificate is not PEM");
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) return fail("certificate rejected");
  while (X509* extra = PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      return fail("chain certificate rejected");
    }
  }
  ERR_clear_error();  // the end of the chain reads as an error
  std::unique_ptr<BIO, BioFree> kbio(
      BIO_new_mem_buf(pem.key.data(), static_cast<int>(pem.key.size())));
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!key) return fail("private key is not PEM");
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return fail("private key rejected");
  if (SSL_CTX_check_private_key(ctx) != 1) return fail("private key does not match certificate");
  *names = certNames(leaf.get());
  return ctx;
}

}  // namespace

TlsContexts::~TlsContexts() {
  for (auto& e : entries_) SSL_CTX_free(e.ctx);
}

SSL_CTX* TlsContexts::select(std::string_view server_name) const {
  std::string n(server_name);
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& e : entries_) {
    for (const auto& p : e.names) {
      if (nameMatches(p, n)) return e.ctx;
    }
  }
  return entries_.front().ctx;
}

Result<std::shared_ptr<TlsContexts>> TlsContexts::build(const std::vector<PemPair>& pems) {
  if (pems.empty()) return invalidArgument("no TLS certificate");
  std::shared_ptr<TlsContexts> self(new TlsContexts());
  for (const auto& p : pems) {
    Entry e;
    auto ctx = makeContext(p, &e.names);
    if (!ctx) return ctx.status();
    e.ctx = *ctx;
    self->entries_.push_back(std::move(e));
  }
  if (self->entries_.size() > 1) {
    for (auto& e : self->entries_) {
      SSL_CTX_set_tlsext_servername_callback(e.ctx, sniCallback);
      SSL_CTX_set_tlsext_servername_arg(e.ctx, self.get());
    }
  }
  return self;
}

Result<std::shared_ptr<TlsContexts>> TlsContexts::fromPem(const std::vector<PemPair>& pems) {
  return build(pems);
}

Result<std::shared_ptr<TlsContexts>> TlsContexts::fromFiles(const std::vector<CertPaths>& certs) {
  std::vector<PemPair> pems;
  for (const auto& c : certs) {
    auto cert = readFile(c.cert);
    if (!cert) return cert.status();
    auto key = readFile(c.key);
    if (!key) return key.status();
    pems.push_back({std::move(*cert), std::move(*key)});
  }
  auto r = build(pems);
  if (!r) return invalidArgument(r.status().message() + " (" + certs.front().cert + ")");
  return r;
}

Result<PemPair> generateSelfSigned(const std::vector<std::string>& dns_names,
                                   const std::vector<std::string>& ips) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
  if (!key) return internalError(sslError("EC key generation"));
  std::unique_ptr<X509, X509Free> x(X509_new());
  X509_set_version(x.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return internalError(sslError("RAND_bytes"));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 365L * 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  std::string cn = dns_names.empty() ? "baton" : dns_names.front();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Baton dev"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  std::string san;
  for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& i : ips) san += (san.empty() ? "" : ",") + std::string("IP:") + i;
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
  auto add_ext = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr) return false;
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
    return true;
  };
  if (!san.empty() && !add_ext(NID_subject_alt_name, san)) {
    return invalidArgument(sslError("subjectAltName " + san));
  }
  add_ext(NID_basic_constraints, "critical,CA:FALSE");
  add_ext(NID_key_usage, "critical,digitalSignature");
  add_ext(NID_ext_key_usage, "serverAuth");
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) return internalError(sslError("X509_sign"));

  PemPair out;
  std::unique_ptr<BIO, BioFree> cb(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(cb.get(), x.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(cb.get(), &data);
  out.cert.assign(data, static_cast<size_t>(n));
  std::unique_ptr<BIO, BioFree> kb(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  n = BIO_get_mem_data(kb.get(), &data);
  out.key.assign(data, static_cast<size_t>(n));
  return out;
}

Result<PemPair> devCertificate(const std::filesystem::path& dir) {
  if (dir.empty()) return generateSelfSigned({"localhost"}, {"127.0.0.1", "::1"});
  auto cert_path = dir / "gateway-dev-cert.pem";
  auto key_path = dir / "gateway-dev-key.pem";
  std::error_code ec;
  if (std::filesystem::exists(cert_path, ec) && std::filesystem::exists(key_path, ec)) {
    auto c = readFile(cert_path.string());
    auto k = readFile(key_path.string());
    if (c && k) return PemPair{std::move(*c), std::move(*k)};
  }
  auto pem = generateSelfSigned({"localhost"}, {"127.0.0.1", "::1"});
  if (!pem) return pem;
  std::filesystem::create_directories(dir, ec);
  {
    std::ofstream c(cert_path, std::ios::binary | std::ios::trunc);
    c << pem->cert;
  }
  {
    std::ofstream k(key_path, std::ios::binary | std::ios::trunc);
    k << pem->key;
  }
  std::filesystem::permissions(
      key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
  if (!std::filesystem::exists(key_path, ec)) {
    return ioError("cannot write the dev certificate to " + dir.string());
  }
  return pem;
}

}  // namespace baton::gateway
