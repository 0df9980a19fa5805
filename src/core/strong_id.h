// Strong id types (STYLE.md; Redpanda named_type): an AppName cannot be passed where an
// InstanceId is expected.
#pragma once

#include <compare>
#include <functional>
#include <ostream>
#include <string>
#include <utility>

namespace baton {

template <typename Tag>
class StrongId {
 public:
  StrongId() = default;
  explicit StrongId(std::string v) : v_(std::move(v)) {}
  const std::string& str() const { return v_; }
  bool empty() const { return v_.empty(); }
  auto operator<=>(const StrongId&) const = default;
  friend std::ostream& operator<<(std::ostream& os, const StrongId& id) { return os << id.v_; }

 private:
  std::string v_;
};

using AppName = StrongId<struct AppNameTag>;
using ServiceName = StrongId<struct ServiceNameTag>;
using InstanceId = StrongId<struct InstanceIdTag>;
using NodeId = StrongId<struct NodeIdTag>;

}  // namespace baton

template <typename Tag>
struct std::hash<baton::StrongId<Tag>> {
  size_t operator()(const baton::StrongId<Tag>& id) const noexcept {
    return std::hash<std::string>{}(id.str());
  }
};
