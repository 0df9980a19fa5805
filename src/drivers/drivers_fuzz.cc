// libFuzzer target: everything the container drivers read from outside, chosen by the first
// byte: image references (the manifest's, Docker's and OCI's grammars), the Docker Engine's
// answers (inspect, container list, stats, the multiplexed log stream, pull progress, log
// cursors, RFC 3339 times) and an OCI image's documents (index, manifest, config, digests,
// layer entry names). Must never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "drivers/docker_protocol.h"
#include "drivers/oci_image.h"
#include "model/image_ref.h"

using namespace baton;
using namespace baton::drivers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t which = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which % 12) {
    case 0: {
      auto r = model::parseImageRef(text);
      if (r && (r->name.empty() || (r->tag.empty() && r->digest.empty()))) std::abort();
      if (r && !model::parseImageRef(r->text())) std::abort();  // what it prints, it reads
      break;
    }
    case 1:
      (void)docker::parseInspect(text);
      break;
    case 2:
      (void)docker::parseContainerList(text);
      break;
    case 3:
      (void)docker::parseStats(text);
      break;
    case 4: {
      // The log stream, in two chunks split where the second byte says, with timestamps.
      size_t cut = text.empty() ? 0 : static_cast<uint8_t>(text[0]) % (text.size() + 1);
      size_t written = 0;
      docker::LogDemuxer d({}, (which & 0x80) != 0,
                           [&](int stream, std::string_view p) {
                             if (stream != 1 && stream != 2) std::abort();
                             written += p.size();
                           },
                           4096);
      if (d.feed(text.substr(0, cut))) (void)d.feed(text.substr(cut));
      if (written > text.size()) std::abort();
      break;
    }
    case 5: {
      docker::PullProgress p;
      p.feed(text);
      p.finish();
      (void)p.summary();
      break;
    }
    case 6: {
      auto c = docker::decodeCursor(text);
      if (c.nanos < 0 || c.count < 0) std::abort();
      (void)docker::parseRfc3339(text);
      break;
    }
    case 7:
      (void)oci::parseImageRef(text);
      break;
    case 8:
      (void)oci::selectManifest(text, "linux", "amd64");
      (void)oci::isIndex(text);
      break;
    case 9:
      (void)oci::parseManifest(text);
      break;
    case 10:
      (void)oci::parseImageConfig(text);
      (void)oci::digestHex(text);
      break;
    case 11: {
      auto parts = oci::entryComponents(text);
      if (parts) {
        for (const std::string& p : *parts) {
          if (p.empty() || p == "." || p == ".." || p.find('/') != std::string::npos) std::abort();
        }
      }
      break;
    }
  }
  return 0;
}
