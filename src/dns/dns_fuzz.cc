// libFuzzer target for the DNS codec and resolver (scripts/fuzz.sh): any datagram is read
// without a crash, and what is answered parses back as a response to the same question.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dns/dns_message.h"
#include "dns/resolver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton;
  std::string_view msg(reinterpret_cast<const char*>(data), size);
  static const mesh::MeshView view = [] {
    mesh::MeshView v;
    v.upstreams["shop/web"] = {"cart"};
    v.upstreams["shop/cart"] = {};
    v.vips["169.254.70.1"] = {"shop", "cart"};
    v.callers["169.254.128.1"] = {"shop", "web"};
    v.healthy["shop/cart"] = {{"i1", "n1", "169.254.128.3", 8080}, {"i2", "n1", "127.0.0.1", 9}};
    return v;
  }();
  dns::ParseResult p = dns::parseQuery(msg);
  if (!p.query) {
    if (p.header) (void)dns::encodeError(*p.header, dns::Rcode::kFormErr);
    return 0;
  }
  for (const auto& caller : {std::optional<mesh::ServiceRef>(),
                             std::optional<mesh::ServiceRef>(mesh::ServiceRef{"shop", "web"})}) {
    dns::Answer a = dns::resolve(view, *p.query, caller);
    std::string out = dns::encodeResponse(*p.query, a);
    if (out.size() > dns::kMaxUdpAnswer) __builtin_trap();
    // The answer's header and question read back (as a query would, flags aside).
    if (out.size() < 12 || static_cast<uint8_t>(out[0]) != (p.query->id >> 8)) __builtin_trap();
  }
  return 0;
}
