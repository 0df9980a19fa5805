// Service addresses of the mesh (docs/mesh.md "Addresses"): every service that some instance
// declares as an upstream gets one address from 169.254.64.0/18 (drivers/instance_net.h
// kMeshVipBase), the same on every node. Inside an instance's network that address is routed to
// its node, whose proxy listens there; BATON_UPSTREAM_<NAME> and DNS hand it out. An address
// stays with its service (also while the service is at zero, and after it is deleted: 16383
// services fit), so an instance's environment never goes stale.
//
// Store: /baton/vips/<app>/<svc> -> {"address": "169.254.64.7"} and /baton/vip-addr/<address>
// -> "app/svc", both created in one compare-and-swap transaction, so two agents never hand one
// address to two services.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "core/result.h"
#include "mesh/intentions.h"
#include "state/store.h"

namespace baton::mesh {

inline constexpr uint32_t kVipSlots = 1u << 14;  // 169.254.64.1 .. 169.254.127.255
// The last four slots are never a service's (docs/mesh.md "Addresses"):
//   169.254.127.252  the agent's API for instances granted `api = "read"` (kApiAddress)
//   169.254.127.253  the gateway: the source of its connections to instances (kGatewayAddress)
//   169.254.127.254  the mesh's DNS server (dns_server.h)
//   169.254.127.255  kept free (the top of the range)
inline constexpr uint32_t kFirstReservedSlot = kVipSlots - 4;
inline constexpr uint32_t kReservedDnsSlot = kVipSlots - 2;
inline constexpr const char* kApiAddress = "169.254.127.252";
inline constexpr const char* kGatewayAddress = "169.254.127.253";

// ---- pure ----
// The address of a slot (slot 0 is never used: it would be the network's own address).
std::string vipAddress(uint32_t slot);
// The slot of an address of the pool; nullopt outside it.
std::optional<uint32_t> vipSlot(std::string_view address);
// The slot for `service` ("app/svc"): its hash's slot when free, else the next free one.
Result<uint32_t> chooseVipSlot(std::string_view service, const std::set<uint32_t>& used);
// Records as listed: (key, value) of /baton/vips/ -> service ("app/svc") by address.
std::map<std::string, ServiceRef> parseVips(const std::vector<state::KeyValue>& kvs);

// ---- store ----
// The address of `service`, allocating one when it has none. Thread-safe (the store is).
Result<std::string> ensureVip(state::Store& store, const ServiceRef& service);

}  // namespace baton::mesh
