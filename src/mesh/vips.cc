#include "mesh/vips.h"

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "core/ipv4.h"

namespace baton::mesh {
namespace {

constexpr uint32_t kBase = 0xA9FE4000;  // 169.254.64.0 (drivers::kMeshVipBase)
constexpr std::string_view kVips = "/baton/vips/";
constexpr std::string_view kVipAddrs = "/baton/vip-addr/";
constexpr int kAttempts = 16;

std::string vipKey(const ServiceRef& s) { return std::string(kVips) + s.app + "/" + s.service; }

}  // namespace

std::string vipAddress(uint32_t slot) { return formatIpv4(kBase + slot); }

std::optional<uint32_t> vipSlot(std::string_view address) {
  auto ip = parseIpv4(address);
  if (!ip || *ip <= kBase || *ip >= kBase + kVipSlots) return std::nullopt;
  return *ip - kBase;
}

Result<uint32_t> chooseVipSlot(std::string_view service, const std::set<uint32_t>& used) {
  // Slots 1 .. kFirstReservedSlot - 1.
  constexpr uint32_t kUsable = kFirstReservedSlot - 1;
  const uint32_t start = static_cast<uint32_t>(fnv1a64(service) % kUsable) + 1;
  for (uint32_t i = 0; i < kUsable; ++i) {
    uint32_t slot = (start - 1 + i) % kUsable + 1;
    if (!used.count(slot)) return slot;
  }
  return unavailable("no mesh address left in 169.254.64.0/18 for " + std::string(service));
}

std::map<std::string, ServiceRef> parseVips(const std::vector<state::KeyValue>& kvs) {
  std::map<std::string, ServiceRef> out;
  for (const auto& kv : kvs) {
    std::string_view rest = std::string_view(kv.key).substr(
        std::min(kv.key.size(), kVips.size()));
    auto ref = parseServiceRef(rest);
    auto j = nlohmann::json::parse(kv.value, nullptr, false);
    if (!ref || j.is_discarded() || !j.is_object() || !j.contains("address") ||
        !j["address"].is_string()) {
      continue;
    }
    std::string addr = j["address"].get<std::string>();
    if (vipSlot(addr)) out[addr] = *ref;
  }
  return out;
}

Result<std::string> ensureVip(state::Store& store, const ServiceRef& service) {
  const std::string key = vipKey(service);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto cur = store.get(key);
    if (!cur) return cur.status();
    if (cur->has_value()) {
      auto j = nlohmann::json::parse((*cur)->value, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("address") &&
          j["address"].is_string() && vipSlot(j["address"].get<std::string>())) {
        return j["address"].get<std::string>();
      }
      return Status(Code::kInternal, "malformed mesh address record " + key);
    }
    auto taken = store.list(std::string(kVipAddrs));
    if (!taken) return taken.status();
    std::set<uint32_t> used;
    for (const auto& kv : taken->kvs) {
      if (auto s = vipSlot(std::string_view(kv.key).substr(kVipAddrs.size()))) used.insert(*s);
    }
    auto slot = chooseVipSlot(service.str(), used);
    if (!slot) return slot.status();
    const std::string addr = vipAddress(*slot);
    const std::string addr_key = std::string(kVipAddrs) + addr;
    auto t = store.txn({state::Compare::absent(key), state::Compare::absent(addr_key)},
                       {state::Op::put(key, nlohmann::json{{"address", addr}}.dump()),
                        state::Op::put(addr_key, service.str())});
    if (!t) return t.status();
    if (t->succeeded) return addr;
  }
  return Status(Code::kConflict, "allocating a mesh address for " + service.str() +
                                     " kept conflicting; try again");
}

}  // namespace baton::mesh
