#include "secrets/shamir.h"

extern "C" {
#include <libgfshare.h>
}
#include <openssl/rand.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <set>

#include "auth/jose.h"
#include "core/hex.h"
#include "crypto/aead.h"

namespace baton::secrets::shamir {
namespace {

constexpr std::string_view kKeyIdDomain{"baton unseal key id\0", 20};
constexpr std::string_view kCheckDomain{"baton unseal share check\0", 25};
constexpr size_t kShareChars = 43;  // base64url of 32 bytes, no padding
constexpr size_t kHexChars = 8;

// libgfshare draws its polynomial coefficients through this hook, and scrubs a context with it
// when it is freed (Debian's build starts with a null hook: every use of a context needs it set).
// A failure of OpenSSL's generator is noted for the caller, which then refuses the split: shares
// made with predictable coefficients would give the key away.
thread_local bool rand_failed = false;
void fillRandom(unsigned char* buffer, unsigned int count) {
  if (count > 0 && RAND_bytes(buffer, static_cast<int>(count)) != 1) rand_failed = true;
}
void useOpenSslRandom() {
  static std::once_flag once;
  std::call_once(once, [] { gfshare_fill_rand = fillRandom; });
}

struct CtxFree {
  void operator()(gfshare_ctx* c) const { gfshare_ctx_free(c); }
};
using Ctx = std::unique_ptr<gfshare_ctx, CtxFree>;

unsigned char* u(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }


std::string checksum(std::string_view body) {
  std::string in(kCheckDomain);
  in.append(body);
  return hexEncode(crypto::sha256(in).substr(0, kHexChars / 2));
}

bool isLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// 1-2 decimal digits without a leading zero, in [lo, hi].
std::optional<int> smallNumber(std::string_view s, int lo, int hi) {
  if (s.empty() || s.size() > 2 || (s.size() == 2 && s[0] == '0')) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

Share::~Share() { crypto::cleanse(bytes); }

std::string keyId(std::string_view kek) {
  std::string in(kKeyIdDomain);
  in.append(kek);
  std::string id = hexEncode(crypto::sha256(in).substr(0, kHexChars / 2));
  crypto::cleanse(in);
  return id;
}

Result<std::vector<Share>> split(std::string_view kek, int shares, int threshold) {
  if (kek.size() != kKeyBytes) return invalidArgument("the key to split has 32 bytes");
  if (shares < kMinThreshold || shares > kMaxShares) {
    return invalidArgument("the number of shares is from 2 to 16");
  }
  if (threshold < kMinThreshold || threshold > shares) {
    return invalidArgument("the threshold is from 2 to the number of shares (" +
                           std::to_string(shares) + ")");
  }
  useOpenSslRandom();
  std::vector<unsigned char> xs(static_cast<size_t>(shares));
  for (int i = 0; i < shares; ++i) xs[static_cast<size_t>(i)] = static_cast<unsigned char>(i + 1);
  Ctx ctx(gfshare_ctx_init_enc(xs.data(), static_cast<unsigned int>(shares),
                               static_cast<unsigned char>(threshold), kKeyBytes));
  if (!ctx) return internalError("libgfshare cannot split the key");
  std::string secret(kek);
  rand_failed = false;
  gfshare_ctx_enc_setsecret(ctx.get(), u(secret));
  crypto::cleanse(secret);
  const bool failed = rand_failed;
  const std::string id = keyId(kek);
  std::vector<Share> out;
  if (!failed) {
    for (int i = 0; i < shares; ++i) {
      Share s;
      s.index = i + 1;
      s.threshold = threshold;
      s.key_id = id;
      s.bytes.assign(kKeyBytes, '\0');
      gfshare_ctx_enc_getshare(ctx.get(), static_cast<unsigned char>(i), u(s.bytes));
      out.push_back(std::move(s));
    }
  }
  // The context holds the key among its coefficients: overwrite them before it is freed.
  std::string zero(kKeyBytes, '\0');
  gfshare_ctx_enc_setsecret(ctx.get(), u(zero));
  if (failed || rand_failed) {
    rand_failed = false;
    return internalError("OpenSSL's random generator failed; no shares were made");
  }
  return out;
}

Result<std::string> combine(const std::vector<Share>& shares) {
  if (shares.empty()) return invalidArgument("no shares to combine");
  const Share& first = shares.front();
  std::set<int> seen;
  for (const Share& s : shares) {
    const std::string name = "share " + std::to_string(s.index);
    if (s.index < 1 || s.index > kMaxShares) return invalidArgument("a share's index is from 1 to 16");
    if (s.bytes.size() != kKeyBytes) return invalidArgument(name + " does not have 32 bytes");
    if (s.key_id != first.key_id) return invalidArgument(name + " belongs to another key");
    if (s.threshold != first.threshold) {
      return invalidArgument(name + " has threshold " + std::to_string(s.threshold) +
                             ", the others " + std::to_string(first.threshold));
    }
    if (!seen.insert(s.index).second) return invalidArgument(name + " was given twice");
  }
  if (static_cast<int>(shares.size()) != first.threshold) {
    return invalidArgument("the key needs " + std::to_string(first.threshold) + " shares, got " +
                           std::to_string(shares.size()));
  }
  useOpenSslRandom();
  std::vector<unsigned char> xs;
  for (const Share& s : shares) xs.push_back(static_cast<unsigned char>(s.index));
  Ctx ctx(gfshare_ctx_init_dec(xs.data(), static_cast<unsigned int>(xs.size()), kKeyBytes));
  if (!ctx) return internalError("libgfshare cannot combine the shares");
  for (size_t i = 0; i < shares.size(); ++i) {
    std::string b = shares[i].bytes;
    gfshare_ctx_dec_giveshare(ctx.get(), static_cast<unsigned char>(i), u(b));
    crypto::cleanse(b);
  }
  std::string key(kKeyBytes, '\0');
  gfshare_ctx_dec_extract(ctx.get(), u(key));
  // The context holds copies of the shares: overwrite them before it is freed.
  std::string zero(kKeyBytes, '\0');
  for (size_t i = 0; i < shares.size(); ++i) {
    gfshare_ctx_dec_giveshare(ctx.get(), static_cast<unsigned char>(i), u(zero));
  }
  if (keyId(key) != first.key_id) {
    crypto::cleanse(key);
    return Status(Code::kFailedPrecondition,
                  "the shares do not make the key they belong to (key id " + first.key_id + ")");
  }
  return key;
}

std::string encodeShare(const Share& share) {
  std::string body = std::string(kSharePrefix) + std::to_string(share.threshold) + "." +
                     std::to_string(share.index) + "." + share.key_id + "." +
                     auth::base64urlEncode(share.bytes);
  std::string sum = checksum(body);
  body += "." + sum;
  return body;
}

Result<Share> parseShare(std::string_view text) {
  while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  if (text.empty()) return invalidArgument("the share is empty");
  if (!text.starts_with("bs")) {
    return invalidArgument("this is not an unseal share (shares start with \"bs1.\")");
  }
  // The version: what follows "bs" up to the first '.'.
  size_t dot = text.find('.');
  std::string_view version = text.substr(2, dot == std::string_view::npos ? dot : dot - 2);
  if (version != "1") {
    if (!version.empty() && version.size() <= 3 &&
        std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return invalidArgument("share version " + std::string(version) +
                             " is not supported (this agent reads version 1)");
    }
    return invalidArgument("this is not an unseal share (shares start with \"bs1.\")");
  }
  std::vector<std::string_view> parts;
  for (std::string_view rest = text;;) {
    size_t d = rest.find('.');
    parts.push_back(rest.substr(0, d));
    if (d == std::string_view::npos) break;
    rest.remove_prefix(d + 1);
  }
  const bool shaped = parts.size() == 6 && parts[5].size() == kHexChars && isLowerHex(parts[5]);
  if (!shaped) {
    return invalidArgument("the share is truncated or has extra characters (expected "
                           "bs1.THRESHOLD.INDEX.KEYID.SHARE.CHECK)");
  }
  std::string_view body = text.substr(0, text.size() - kHexChars - 1);
  if (checksum(body) != parts[5]) {
    return invalidArgument("the share is mistyped: its checksum does not match");
  }
  Share s;
  auto threshold = smallNumber(parts[1], kMinThreshold, kMaxShares);
  if (!threshold) return invalidArgument("the share's threshold is not a number from 2 to 16");
  if (parts[2] == "0") return invalidArgument("index 0 is not a share (indexes start at 1)");
  auto index = smallNumber(parts[2], 1, kMaxShares);
  if (!index) return invalidArgument("the share's index is not a number from 1 to 16");
  if (parts[3].size() != kHexChars || !isLowerHex(parts[3])) {
    return invalidArgument("the share's key id is not 8 lower-case hex characters");
  }
  std::optional<std::string> bytes;
  if (parts[4].size() == kShareChars) bytes = auth::base64urlDecode(parts[4]);
  if (!bytes || bytes->size() != kKeyBytes) {
    if (bytes) crypto::cleanse(*bytes);
    return invalidArgument("the share's key part is not 43 base64url characters (32 bytes)");
  }
  s.threshold = *threshold;
  s.index = *index;
  s.key_id = std::string(parts[3]);
  s.bytes = std::move(*bytes);
  return s;
}

}  // namespace baton::secrets::shamir
