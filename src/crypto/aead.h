// Authenticated encryption and node keys on OpenSSL (no hand-rolled crypto): AES-256-GCM for
// what the agent keeps sealed (the mesh CA's key, secrets' data key and values), and the 32-byte
// key files of a node's data dir. Pure functions apart from the file and the random source.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/result.h"

namespace baton::crypto {

inline constexpr size_t kKeyBytes = 32;  // AES-256
inline constexpr size_t kNonceBytes = 12, kTagBytes = 16;

// `n` bytes from OpenSSL's CSPRNG.
Result<std::string> randomBytes(size_t n);

// The SHA-256 digest of `data` (32 raw bytes).
std::string sha256(std::string_view data);

// Overwrites `secret`'s bytes (OPENSSL_cleanse, which the optimizer may not drop) and empties it:
// for keys and unseal shares once they are no longer needed.
void cleanse(std::string& secret);

// AES-256-GCM under `key` (kKeyBytes): nonce | ciphertext | tag, with a fresh random nonce.
// `aad` binds the sealed value to its purpose (a value sealed for one purpose does not open for
// another).
Result<std::string> seal(std::string_view key, std::string_view plain, std::string_view aad);
// The plain text; kFailedPrecondition when the key or `aad` is not the one it was sealed with or
// the value was altered, kInvalidArgument when it is too short to be a sealed value.
Result<std::string> open(std::string_view key, std::string_view sealed, std::string_view aad);

// The kKeyBytes random bytes in `path` (a key of this node, never in the store), made with mode
// 0600 when the file does not exist. A file of another size is an error, never replaced.
Result<std::string> loadOrCreateKeyFile(const std::filesystem::path& path);

}  // namespace baton::crypto
