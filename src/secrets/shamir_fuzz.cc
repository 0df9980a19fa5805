// libFuzzer target for unseal shares as an operator pastes them (scripts/fuzz.sh secrets): any
// text is parsed without a crash; what parses encodes back to the same share, and its error
// messages never quote the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "secrets/shamir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::secrets::shamir;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto share = parseShare(text);
  if (!share) {
    // A message never echoes the share: no run of 12 input characters appears in it.
    const std::string& m = share.status().message();
    if (m.empty()) __builtin_trap();
    if (size >= 12) {
      for (size_t i = 0; i + 12 <= size; i += 12) {
        std::string_view piece = text.substr(i, 12);
        if (piece.find_first_not_of("abcdefghijklmnopqrstuvwxyz ") != std::string_view::npos &&
            m.find(piece) != std::string::npos) {
          __builtin_trap();
        }
      }
    }
    return 0;
  }
  if (share->index < 1 || share->index > kMaxShares || share->threshold < kMinThreshold ||
      share->threshold > kMaxShares || share->bytes.size() != kKeyBytes || share->key_id.size() != 8) {
    __builtin_trap();
  }
  auto again = parseShare(encodeShare(*share));
  if (!again || again->bytes != share->bytes || again->index != share->index ||
      again->threshold != share->threshold || again->key_id != share->key_id) {
    __builtin_trap();
  }
  // Combining a lone share (or two copies) is refused, never a crash.
  (void)combine({*share});
  (void)combine({*share, *share});
  return 0;
}
