// What the agent's DNS answers (docs/mesh.md "Names"), as a pure function of the mesh's view.
//
//   <svc>.<app>.service.baton   A: the healthy instances' addresses (asked from the host), or the
//                               service's mesh address (asked by an isolated instance that may
//                               call it); SRV: the same, with ports, targets <hex ip>.addr.baton
//   <svc>.service.baton         the same, in the asking instance's own app (instances only)
//   <8 hex>.addr.baton          A: that address (the targets of SRV answers)
//   <d.c.b.a>.in-addr.arpa      PTR for an address of 169.254.64.0/18, the sources of
//                               connections to instances: "<svc>.<app>.service.baton", or
//                               "gateway.baton" (an instance learns a service's name only when
//                               one of the two may call the other); other addresses: REFUSED
//
// A name an instance may not call (mesh/intentions.h, the proxy's own decision) does not exist
// for it: NXDOMAIN, as for unknown names. Names outside "baton" are REFUSED (no recursion).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dns/dns_message.h"
#include "mesh/mesh_view.h"

namespace baton::dns {

inline constexpr uint32_t kTtlSeconds = 2;

// `caller`: the service of the isolated instance that asked (null: asked from the host).
Answer resolve(const mesh::MeshView& view, const Query& q,
               const std::optional<mesh::ServiceRef>& caller);

// One message in, at most one out: what the server sends back over either transport.
enum class Outcome { kAnswered, kNxDomain, kRefused, kMalformed };
struct Reply {
  std::string bytes;  // empty: send nothing (the message was not a query)
  Outcome outcome = Outcome::kMalformed;
  bool truncated = false;  // TC set: not every answer fit in `max_bytes`
};
// `from`: the address the message came from; an isolated instance is known by it
// (view.callers), anyone else is the host. `max_bytes`: kMaxUdpAnswer over UDP, kMaxTcpAnswer
// over TCP. Unreadable queries get FORMERR (NOTIMP for another opcode with no one question).
Reply reply(const mesh::MeshView& view, std::string_view msg, const std::string& from,
            size_t max_bytes);

}  // namespace baton::dns
