#include "crypto/aead.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

namespace baton::crypto {
namespace {

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};

std::string sslError(const std::string& what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return what + " failed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return what + ": " + buf;
}

const unsigned char* u(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* u(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

}  // namespace

Result<std::string> randomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(u(out), static_cast<int>(n)) != 1) {
    return internalError(sslError("RAND_bytes"));
  }
  return out;
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), u(out), &n, EVP_sha256(), nullptr) != 1 || n != 32) {
    // Only when OpenSSL cannot allocate: never hand back a digest that is not one.
    std::abort();
  }
  return out;
}

void cleanse(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

Result<std::string> seal(std::string_view key, std::string_view plain, std::string_view aad) {
  if (key.size() != kKeyBytes) return invalidArgument("an AES-256 key has 32 bytes");
  auto nonce = randomBytes(kNonceBytes);
  if (!nonce) return nonce.status();
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
  std::string out(plain.size(), '\0');
  std::string tag(kTagBytes, '\0');
  int n = 0, m = 0;
  bool ok = c && EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, u(key), u(*nonce)) == 1 &&
            EVP_EncryptUpdate(c.get(), nullptr, &n, u(aad), static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(c.get(), u(out), &n, u(plain), static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(c.get(), u(out) + n, &m) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag.data()) == 1;
  if (!ok) return internalError(sslError("AES-256-GCM seal"));
  return *nonce + out + tag;
}

Result<std::string> open(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != kKeyBytes) return invalidArgument("an AES-256 key has 32 bytes");
  if (sealed.size() < kNonceBytes + kTagBytes) return invalidArgument("sealed value too short");
  std::string_view nonce = sealed.substr(0, kNonceBytes);
  std::string_view body = sealed.substr(kNonceBytes, sealed.size() - kNonceBytes - kTagBytes);
  std::string tag(sealed.substr(sealed.size() - kTagBytes));
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
  std::string out(body.size(), '\0');
  int n = 0, m = 0;
  bool ok = c && EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, u(key), u(nonce)) == 1 &&
            EVP_DecryptUpdate(c.get(), nullptr, &n, u(aad), static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(c.get(), u(out), &n, u(body), static_cast<int>(body.size())) == 1 &&
            EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(c.get(), u(out) + n, &m) == 1;
  ERR_clear_error();
  if (!ok) return Status(Code::kFailedPrecondition, "the sealed value does not open with this key");
  return out;
}

Result<std::string> loadOrCreateKeyFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::string k((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (k.size() != kKeyBytes) {
      return invalidArgument(path.string() + ": expected " + std::to_string(kKeyBytes) +
                             " bytes, found " + std::to_string(k.size()));
    }
    return k;
  }
  auto k = randomBytes(kKeyBytes);
  if (!k) return k.status();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ioError("cannot create " + path.string() + ": " + std::strerror(errno));
  bool ok = ::write(fd, k->data(), k->size()) == static_cast<ssize_t>(k->size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return ioError("cannot write " + path.string());
  return k;
}

}  // namespace baton::crypto
