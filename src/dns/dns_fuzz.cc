// libFuzzer target for the DNS codec, the resolver and the TCP framing (scripts/fuzz.sh): the
// input is read both as one UDP datagram and as the bytes of a TCP connection. Nothing crashes,
// a UDP answer fits in 512 bytes, every answer is a response to the same id, and a framed answer
// reads back through the framing as itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dns/dns_message.h"
#include "dns/resolver.h"
#include "dns/tcp_framing.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

uint16_t id(std::string_view m) {
  return static_cast<uint16_t>((static_cast<uint8_t>(m[0]) << 8) | static_cast<uint8_t>(m[1]));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  static const mesh::MeshView view = [] {
    mesh::MeshView v;
    v.upstreams["shop/web"] = {"cart"};
    v.upstreams["shop/cart"] = {};
    v.vips["169.254.70.1"] = {"shop", "cart"};
    v.callers["169.254.128.1"] = {"shop", "web"};
    auto& eps = v.healthy["shop/cart"];
    eps = {{"i1", "n1", "169.254.128.3", 8080}, {"i2", "n1", "127.0.0.1", 9}};
    for (int i = 0; i < 40; ++i) {  // enough for an SRV answer beyond 512 bytes
      eps.push_back({"x" + std::to_string(i), "n1", "10.0.0." + std::to_string(i), 8000 + i});
    }
    return v;
  }();

  // One datagram, from the host and from an instance.
  for (const char* from : {"127.0.0.1", "169.254.128.1"}) {
    dns::Reply r = dns::reply(view, input, from, dns::kMaxUdpAnswer);
    check(r.bytes.size() <= dns::kMaxUdpAnswer);
    if (r.bytes.empty()) continue;
    check(r.bytes.size() >= 12 && size >= 2 && id(r.bytes) == id(input));
    check(r.truncated == dns::isTruncated(r.bytes));
    dns::ParseResult back = dns::parseQuery(r.bytes);  // a response: never taken for a query
    check(!back.query && back.header && back.header->is_response);
  }

  // A TCP connection's bytes: frame after frame until one is incomplete or refused.
  std::string_view stream = input;
  while (true) {
    dns::Frame f = dns::nextFrame(stream);
    if (f.status != dns::FrameStatus::kMessage) {
      check(f.message.empty() && f.consumed == 0);
      break;
    }
    check(f.consumed == 2 + f.message.size() && f.consumed <= stream.size());
    check(!f.message.empty() && f.message.size() <= dns::kMaxQueryBytes);
    dns::Reply r = dns::reply(view, f.message, "169.254.128.1", dns::kMaxTcpAnswer);
    if (!r.bytes.empty()) {
      check(!r.truncated);  // nothing this view answers comes near 65535 bytes
      std::string framed = dns::frameMessage(r.bytes);
      dns::Frame again = dns::nextFrame(framed, dns::kMaxTcpAnswer);
      check(again.status == dns::FrameStatus::kMessage && again.message == r.bytes &&
            again.consumed == framed.size());
    }
    stream.remove_prefix(f.consumed);
  }
  return 0;
}
