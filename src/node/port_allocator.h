// Picks free TCP ports on 127.0.0.1 for instances without a fixed port: binds
// port 0, reads the port back, closes. Ports handed out recently (and those the
// caller says are live) are not handed out again, since an instance may not
// have bound its port yet.
//
// Thread safety: allocate() is synchronized.
#pragma once

#include <deque>
#include <mutex>
#include <set>

#include "core/result.h"

namespace baton::node {

class PortAllocator {
 public:
  // `in_use`: ports of live instances on this node.
  Result<int> allocate(const std::set<int> &in_use);

 private:
  static constexpr size_t kRemember = 256;
  std::mutex mu_;
  std::deque<int> recent_;
};

}  // namespace baton::node
