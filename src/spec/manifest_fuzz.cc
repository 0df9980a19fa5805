// libFuzzer target: arbitrary bytes through both parsers. Must never crash, hang or leak; a
// result is either a value or at least one diagnostic, never both.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "spec/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  baton::spec::ManifestResult m = baton::spec::parseManifest(text, "app.toml");
  if (m.app.has_value() == !m.errors.empty()) std::abort();
  for (const auto& d : m.errors) {
    if (d.message.empty()) std::abort();
    (void)d.toString();
  }
  baton::spec::AgentConfigResult c = baton::spec::parseAgentConfig(text, "baton.toml");
  if (c.config.has_value() == !c.errors.empty()) std::abort();
  for (const auto& d : c.errors) {
    if (d.message.empty()) std::abort();
    (void)d.toString();
  }
  return 0;
}
