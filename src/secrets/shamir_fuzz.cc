// libFuzzer target for unseal shares as an operator pastes them (scripts/fuzz.sh secrets): any
// text is parsed without a crash; what parses encodes back to the same share, and its error
// messages never quote the text. The seed corpus (fuzz_corpus/) holds shares of a fixed test
// key (32 bytes of 0x42), never of a real one.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "secrets/shamir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::secrets::shamir;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto share = parseShare(text);
  if (!share) {
    // A message never echoes the share: with its digits taken out (the only part that varies,
    // a version number) it is one of parseShare's fixed messages.
    static const std::set<std::string> kMessages = {
        "the share is empty",
        "this is not an unseal share (shares start with \"bs.\")",
        "share version  is not supported (this agent reads version )",
        "the share is truncated or has extra characters (expected "
        "bs.THRESHOLD.INDEX.KEYID.SHARE.CHECK)",
        "the share is mistyped: its checksum does not match",
        "the share's threshold is not a number from  to ",
        "index  is not a share (indexes start at )",
        "the share's index is not a number from  to ",
        "the share's key id is not  lower-case hex characters",
        "the share's key part is not  baseurl characters ( bytes)",  // base64url, digits out
    };
    std::string m = share.status().message();
    std::erase_if(m, [](char c) { return c >= '0' && c <= '9'; });
    if (!kMessages.count(m)) __builtin_trap();
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
