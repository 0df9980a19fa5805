#include "scheduler/scheduler.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <unordered_map>

#include "core/units.h"

namespace baton::scheduler {
namespace {

constexpr double kCpuEpsilon = 1e-9;

// splitmix64: tiny, fast and fully specified, so plans do not depend on the standard library.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

std::string formatCpu(double cpu) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", cpu);
  return buf;
}

struct Shape {
  double cpu;
  uint64_t memory;
  int driver;  // -1 = any, -2 = offered by no node
};

// The working copy of the cluster, updated as instances are placed.
class Placer {
 public:
  Placer(const ClusterSnapshot& cluster, std::span<const PlacementRequest> requests, uint64_t seed,
         const PlaceOptions& options)
      : cluster_(cluster), requests_(requests) {
    const size_t n = cluster.nodes.size();
    free_cpu_.resize(n);
    free_mem_.resize(n);
    driver_mask_.resize(n);
    perm_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const NodeState& node = cluster.nodes[i];
      free_cpu_[i] = node.cpu_capacity - node.used_cpu;
      free_mem_[i] =
          node.memory_capacity > node.used_memory ? node.memory_capacity - node.used_memory : 0;
      uint64_t mask = 0;
      if (node.drivers.empty()) {
        mask = ~0ull;
      } else {
        for (const auto& d : node.drivers) mask |= 1ull << internDriver(d);
      }
      driver_mask_[i] = node.eligible ? mask : 0;
      perm_[i] = static_cast<uint32_t>(i);
    }
    SplitMix64 rng{seed};
    for (size_t i = n; i > 1; --i) std::swap(perm_[i - 1], perm_[rng.below(i)]);

    if (options.candidate_limit > 0) {
      limit_ = options.candidate_limit;
    } else {
      limit_ = std::clamp<size_t>(n <= 1 ? 1 : std::bit_width(n - 1), 2, 16);
    }

    // Intern the requested services and seed their per-node counts.
    service_ids_.reserve(requests.size());
    std::unordered_map<std::string, uint32_t> by_key;
    for (const auto& r : requests) {
      auto [it, inserted] =
          by_key.emplace(serviceKey(r.app, r.service), static_cast<uint32_t>(by_key.size()));
      service_ids_.push_back(it->second);
    }
    for (size_t i = 0; i < n; ++i) {
      for (const auto& [key, count] : cluster.nodes[i].service_counts) {
        auto it = by_key.find(key);
        if (it != by_key.end() && count > 0) counts_[countKey(it->second, i)] = count;
      }
    }
  }

  Plan run() {
    Plan plan;
    for (size_t r = 0; r < requests_.size(); ++r) {
      const PlacementRequest& req = requests_[r];
      if (req.count <= 0) continue;
      Shape shape{req.cpu, req.memory, driverOf(req.driver)};
      for (int k = 0; k < req.count; ++k) {
        int64_t node = knownInfeasible(shape) ? -1 : pick(shape, service_ids_[r]);
        if (node < 0) {
          infeasible_.push_back(shape);
          plan.failures.push_back({r, req.count - k, reason(shape, req)});
          break;
        }
        commit(static_cast<size_t>(node), shape, service_ids_[r]);
        plan.placements.push_back({r, cluster_.nodes[static_cast<size_t>(node)].id});
      }
    }
    return plan;
  }

 private:
  static uint64_t countKey(uint32_t service, size_t node) {
    return (static_cast<uint64_t>(service) << 32) | static_cast<uint64_t>(node);
  }

  int internDriver(const std::string& name) {
    auto [it, inserted] = drivers_.emplace(name, static_cast<int>(drivers_.size()));
    return std::min(it->second, 63);  // more than 64 driver names share the last bit
  }

  int driverOf(const std::string& name) const {
    if (name.empty()) return -1;
    auto it = drivers_.find(name);
    return it == drivers_.end() ? -2 : std::min(it->second, 63);
  }

  bool offersDriver(size_t i, int driver) const {
    if (driver_mask_[i] == 0) return false;  // ineligible
    if (driver == -1) return true;
    if (driver == -2) return driver_mask_[i] == ~0ull;  // only "any driver" nodes
    return (driver_mask_[i] >> driver) & 1;
  }

  bool feasible(size_t i, const Shape& s) const {
    return offersDriver(i, s.driver) && free_cpu_[i] + kCpuEpsilon >= s.cpu &&
           free_mem_[i] >= s.memory;
  }

  // A shape at least as large as one that already failed fails too: usage only grows.
  bool knownInfeasible(const Shape& s) const {
    for (const Shape& f : infeasible_) {
      if (f.driver == s.driver && s.cpu + kCpuEpsilon >= f.cpu && s.memory >= f.memory) {
        return true;
      }
    }
    return false;
  }

  double loadAfter(size_t i, const Shape& s) const {
    const NodeState& node = cluster_.nodes[i];
    auto frac = [](double cap, double free, double need) {
      if (cap <= 0) return need > 0 ? 1.0 : 0.0;
      return (cap - free + need) / cap;
    };
    return std::max(frac(node.cpu_capacity, free_cpu_[i], s.cpu),
                    frac(static_cast<double>(node.memory_capacity),
                         static_cast<double>(free_mem_[i]), static_cast<double>(s.memory)));
  }

  int countOn(uint32_t service, size_t node) const {
    auto it = counts_.find(countKey(service, node));
    return it == counts_.end() ? 0 : it->second;
  }

  // The best of up to `limit_` feasible nodes from the cursor; -1 when no node is feasible.
  int64_t pick(const Shape& s, uint32_t service) {
    const size_t n = perm_.size();
    int64_t best = -1;
    int best_count = 0;
    double best_load = 0;
    size_t found = 0;
    size_t pos = cursor_;
    for (size_t scanned = 0; scanned < n && found < limit_; ++scanned) {
      size_t i = perm_[pos];
      pos = pos + 1 == n ? 0 : pos + 1;
      if (!feasible(i, s)) continue;
      ++found;
      int count = countOn(service, i);
      double load = loadAfter(i, s);
      if (best < 0 || count < best_count || (count == best_count && load < best_load)) {
        best = static_cast<int64_t>(i);
        best_count = count;
        best_load = load;
      }
    }
    cursor_ = pos;
    return best;
  }

  void commit(size_t i, const Shape& s, uint32_t service) {
    free_cpu_[i] -= s.cpu;
    free_mem_[i] -= s.memory;
    ++counts_[countKey(service, i)];
  }

  std::string reason(const Shape& s, const PlacementRequest& req) const {
    int64_t cpu_node = -1, mem_node = -1;
    size_t cpu_ok = 0, mem_ok = 0;
    for (size_t i = 0; i < perm_.size(); ++i) {
      if (!offersDriver(i, s.driver)) continue;
      if (cpu_node < 0 || free_cpu_[i] > free_cpu_[static_cast<size_t>(cpu_node)]) {
        cpu_node = static_cast<int64_t>(i);
      }
      if (mem_node < 0 || free_mem_[i] > free_mem_[static_cast<size_t>(mem_node)]) {
        mem_node = static_cast<int64_t>(i);
      }
      if (free_cpu_[i] + kCpuEpsilon >= s.cpu) ++cpu_ok;
      if (free_mem_[i] >= s.memory) ++mem_ok;
    }
    if (cpu_node < 0) {
      if (cluster_.nodes.empty()) return "no nodes are registered";
      if (req.driver.empty()) return "no node is eligible for placement";
      return "no eligible node offers driver \"" + req.driver + "\"";
    }
    const auto ci = static_cast<size_t>(cpu_node);
    const auto mi = static_cast<size_t>(mem_node);
    if (cpu_ok == 0) {
      return "no node has " + formatCpu(s.cpu) +
             " cpu free; largest free: " + formatCpu(std::max(0.0, free_cpu_[ci])) + " on " +
             cluster_.nodes[ci].id;
    }
    if (mem_ok == 0) {
      return "no node has " + formatBytes(s.memory) +
             " memory free; largest free: " + formatBytes(free_mem_[mi]) + " on " +
             cluster_.nodes[mi].id;
    }
    return "no node has both " + formatCpu(s.cpu) + " cpu and " + formatBytes(s.memory) +
           " memory free (" + std::to_string(cpu_ok) + " have the cpu, " + std::to_string(mem_ok) +
           " the memory)";
  }

  const ClusterSnapshot& cluster_;
  std::span<const PlacementRequest> requests_;
  std::vector<double> free_cpu_;
  std::vector<uint64_t> free_mem_;
  std::vector<uint64_t> driver_mask_;  // 0 = ineligible
  std::vector<uint32_t> perm_;
  std::vector<uint32_t> service_ids_;  // per request
  std::unordered_map<std::string, int> drivers_;
  std::unordered_map<uint64_t, int> counts_;  // countKey -> instances
  std::vector<Shape> infeasible_;
  size_t limit_ = 2;
  size_t cursor_ = 0;
};

}  // namespace

std::string serviceKey(std::string_view app, std::string_view service) {
  std::string key;
  key.reserve(app.size() + service.size() + 1);
  key.append(app).append("/").append(service);
  return key;
}

Plan place(const ClusterSnapshot& cluster, std::span<const PlacementRequest> requests,
           uint64_t seed, const PlaceOptions& options) {
  if (cluster.nodes.empty()) {
    Plan plan;
    for (size_t r = 0; r < requests.size(); ++r) {
      if (requests[r].count > 0)
        plan.failures.push_back({r, requests[r].count, "no nodes are registered"});
    }
    return plan;
  }
  return Placer(cluster, requests, seed, options).run();
}

}  // namespace baton::scheduler
