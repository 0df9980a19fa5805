#include "mesh/app_tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/hex.h"
#include "crypto/aead.h"
#include "model/names.h"

namespace baton::mesh {
namespace {

constexpr std::string_view kPrefix = "app.";
constexpr std::string_view kContext = "baton instance api read\n";

}  // namespace

Result<AppTokens> AppTokens::loadOrCreate(const std::filesystem::path& key_file) {
  auto key = crypto::loadOrCreateKeyFile(key_file);
  if (!key) return key.status();
  return AppTokens(std::move(*key));
}

std::string AppTokens::mac(std::string_view app) const {
  const std::string msg = std::string(kContext) + std::string(app);
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t n = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_.data(), key_.size(),
                reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, sizeof out,
                &n) == nullptr) {
    return {};  // never matches: check() refuses an empty MAC
  }
  return hexEncode(std::string_view(reinterpret_cast<const char*>(out), n));
}

std::string AppTokens::issue(std::string_view app) const {
  return std::string(kPrefix) + std::string(app) + "." + mac(app);
}

std::optional<std::string> AppTokens::check(std::string_view token) const {
  if (!token.starts_with(kPrefix)) return std::nullopt;
  token.remove_prefix(kPrefix.size());
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view app = token.substr(0, dot), given = token.substr(dot + 1);
  if (!model::isValidName(app)) return std::nullopt;
  const std::string want = mac(app);
  if (want.empty() || given.size() != want.size() ||
      CRYPTO_memcmp(given.data(), want.data(), want.size()) != 0) {
    return std::nullopt;
  }
  return std::string(app);
}

}  // namespace baton::mesh
