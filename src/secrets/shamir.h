// Shamir's secret sharing of the secrets' key-encryption key (docs/secrets.md "Unsealing"), on
// Debian's libgfshare (GF(2^8); no field arithmetic here), and the text form of one share that
// an operator pastes into `baton operator unseal`.
//
// A share as text (version 1), six parts joined by '.':
//
//   bs1.<threshold>.<index>.<key id>.<share>.<check>
//   bs1.3.2.9c1e07aa.<43 base64url characters>.5f20c3b1
//
//   threshold  how many shares make the key, 2-16, decimal
//   index      this share's x-coordinate, 1-16, decimal
//   key id     8 lower-case hex characters: the first 4 bytes of SHA-256("baton unseal key id" NUL
//              KEK); every share of one init has it, so a share of another init is refused by
//              name before anything is combined, and the combined key is checked against it
//   share      the 32 share bytes, base64url without padding
//   check      8 lower-case hex characters: the first 4 bytes of SHA-256("baton unseal share
//              check" NUL <everything before the last '.'>), so a mistyped share is refused
//
// Parsing is strict (surrounding white space aside) and its errors never quote the text: a
// share is a secret. Pure apart from the random source (OpenSSL's, also for libgfshare's
// coefficients) and thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace baton::secrets::shamir {

inline constexpr int kMinThreshold = 2;  // a threshold of 1 would make every share the key
inline constexpr int kMaxShares = 16;
inline constexpr size_t kKeyBytes = 32;
inline constexpr std::string_view kSharePrefix = "bs1.";

// One share. Its bytes are wiped when it is destroyed.
struct Share {
  int index = 0;          // 1..kMaxShares
  int threshold = 0;      // kMinThreshold..kMaxShares
  std::string key_id;     // 8 lower-case hex characters
  std::string bytes;      // kKeyBytes

  Share() = default;
  Share(const Share&) = default;
  Share(Share&&) = default;
  Share& operator=(const Share&) = default;
  Share& operator=(Share&&) = default;
  ~Share();
};

// The key id of `kek` (see above).
std::string keyId(std::string_view kek);

// `shares` shares of `kek` (kKeyBytes), any `threshold` of which make it again;
// kMinThreshold <= threshold <= shares <= kMaxShares, else kInvalidArgument.
Result<std::vector<Share>> split(std::string_view kek, int shares, int threshold);

// The key from exactly `threshold` shares of one split: distinct indexes, one key id, one
// threshold (else kInvalidArgument naming the share). The result is checked against the key id
// (kFailedPrecondition: the shares do not make the key they claim).
Result<std::string> combine(const std::vector<Share>& shares);

std::string encodeShare(const Share& share);
// kInvalidArgument with a message that says what is wrong ("the share is mistyped: its
// checksum does not match", "share version 2 is not supported", ...), never the text.
Result<Share> parseShare(std::string_view text);

}  // namespace baton::secrets::shamir
