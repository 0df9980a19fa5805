// An instance's own network (DESIGN.md §2 Node: "in its own network namespace where the host
// allows"): a network namespace per instance, joined to the host by one point-to-point veth
// pair. There is no bridge and no default route: the host reaches the instance at its address;
// the instance reaches the host end of its pair (on-link) and the mesh's service addresses
// (kMeshVipBase/kMeshVipPrefix, routed via the host end, where the node's proxy answers), and
// nothing else: it has no route to other instances, to the host's other addresses or beyond,
// whatever the host's forwarding settings. Every driver that gives a task a network of its own
// uses this module.
//
// Addresses: the pool 169.254.128.0/17 (link-local, never routed) is cut into /31 pairs, one per
// instance: slot i is 169.254.128.0 + 2i; the even address is the host end, the odd one the
// instance end (RFC 3021 point-to-point /31). The host-end interface is `bt<10 hex>` (a hash of
// the netns name: 12 chars, under IFNAMSIZ); inside the namespace the instance end is `eth0`.
//
// Pure part (names, slots, addresses, parsing `ip` output) below; the I/O part is
// InstanceNetworks, which drives the `ip` command (iproute2) through a CommandRunner (argv, never
// a shell) so tests can fake it.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/ipv4.h"
#include "core/result.h"

namespace baton::drivers {

// ---- pure ----------------------------------------------------------------------------------

inline constexpr uint32_t kInstanceNetBase = 0xA9FE8000;  // 169.254.128.0
inline constexpr int kInstanceNetPrefix = 17;
inline constexpr uint32_t kInstanceNetSlots = 1u << (32 - kInstanceNetPrefix - 1);  // 32768
// The mesh's per-service addresses (mesh/vips.h): 169.254.64.0/18, local on the host.
inline constexpr uint32_t kMeshVipBase = 0xA9FE4000;  // 169.254.64.0
inline constexpr int kMeshVipPrefix = 18;
// Never handed out: the pair holding the cloud metadata address 169.254.169.254, which the
// host may need to reach.
inline constexpr uint32_t kMetadataAddress = 0xA9FEA9FE;

// One instance's link, as created (or found again after a restart).
struct InstanceLink {
  std::string netns;        // `ip netns` name, e.g. "baton-web-1"
  std::string host_ifname;  // "bt" + 10 hex digits
  uint32_t slot = 0;        // index of the /31 in the pool
  std::string host_ip;      // even address, e.g. "169.254.128.6"
  std::string instance_ip;  // odd address, e.g. "169.254.128.7"
  std::string netnsPath() const { return "/var/run/netns/" + netns; }
};

// Dotted quads (core/ipv4.h).
using baton::formatIpv4;
using baton::parseIpv4;

// The host-end interface name for a netns: "bt" + the first 10 hex digits of its FNV-1a hash.
std::string hostInterfaceName(std::string_view netns);
// Host and instance addresses of a slot.
uint32_t hostAddress(uint32_t slot);
uint32_t instanceAddress(uint32_t slot);
// The slot an address of the pool belongs to; nullopt outside the pool.
std::optional<uint32_t> slotOf(uint32_t ip);
// A free slot for `netns`: its hash's slot when free, else the next free one (wrapping), so a
// name keeps its address across restarts as long as nothing collides. kUnavailable when full.
// The slot of kMetadataAddress is never chosen.
Result<uint32_t> allocateSlot(std::string_view netns, const std::set<uint32_t>& used);
// The link fields for a netns in a slot.
InstanceLink linkFor(std::string netns, uint32_t slot);

// From `ip -o -4 addr show` output: interface name -> the pool slot of each `bt*` interface with
// a pool address.
std::vector<std::pair<std::string, uint32_t>> parsePoolAddresses(std::string_view ip_output);
// From `ip netns list` output ("name" or "name (id: 3)" per line): the names.
std::vector<std::string> parseNetnsList(std::string_view ip_output);

// ---- I/O -----------------------------------------------------------------------------------

// rp_filter = 1 on the host's interface `ifname` (strict reverse-path filtering: packets that
// come in on it must have a source address routed back through it). A missing interface is
// fine (a test's fake runner makes none).
Status strictReversePath(const std::string& ifname);

// Runs argv (argv[0] is looked up in PATH; no shell) and returns its stdout, or an error with
// its exit status and stderr. The default runs a real process (posix_spawn, so it is safe in a
// multi-threaded agent) and kills it after `timeout`.
using CommandRunner = std::function<Result<std::string>(const std::vector<std::string>& argv)>;
Result<std::string> runCommand(const std::vector<std::string>& argv,
                               Duration timeout = Duration(30'000));

// Creates, finds and deletes instance networks. Thread-safe (one mutex around allocation and
// creation). Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root) for the real runner.
class InstanceNetworks {
 public:
  explicit InstanceNetworks(CommandRunner run = [](const std::vector<std::string>& argv) {
    return runCommand(argv);
  });

  // The namespace `netns` with its veth pair, addresses, `lo` up and the mesh's route via the
  // host end. Idempotent: an existing, complete link for `netns` is returned as is (an agent
  // restart); a partial one (a crash half-way) is removed and made again.
  Result<InstanceLink> create(const std::string& netns);
  // The same link for a namespace that someone else made: the network namespace of process
  // `pid` (a container that its engine started with no network) is named `netns` (`ip netns
  // attach`), then gets the veth pair, addresses and routes that create() gives. Idempotent for
  // the same process: when `netns` is already `pid`'s namespace with a complete link, that link
  // is returned; a `netns` of another process (a container that ended) or a half-made one is
  // removed first. The caller makes sure `pid` is not in the host's network namespace.
  Result<InstanceLink> attach(const std::string& netns, int pid);
  // Deletes the veth pair and the namespace. Missing parts are fine.
  Status remove(const std::string& netns);
  // The link of `netns`: nullopt when there is no such namespace; slot and addresses empty when
  // the namespace has no complete link.
  Result<std::optional<InstanceLink>> find(const std::string& netns);
  // Every namespace whose name starts with `prefix`, with its link when it has one (slot and
  // addresses empty otherwise), for recovery and garbage collection.
  Result<std::vector<InstanceLink>> list(const std::string& prefix);

 private:
  Result<std::optional<InstanceLink>> findLocked(const std::string& netns);
  // Allocates a slot and runs `first_step` (an `ip` command that makes `netns` exist, without
  // "ip"), then the veth pair, the addresses and the routes; undoes everything on failure.
  Result<InstanceLink> buildLocked(const std::string& netns, const std::string& first_step);
  Result<std::set<uint32_t>> usedSlots();
  Status removeLocked(const std::string& netns);
  // Runs `prefix... -batch FILE` with `lines` as FILE (one ip command each, without "ip").
  Result<std::string> runBatch(const std::vector<std::string>& prefix,
                               const std::vector<std::string>& lines);

  CommandRunner run_;
  std::mutex mu_;
};

}  // namespace baton::drivers
