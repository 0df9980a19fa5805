#include "gateway/upstream_pool.h"

namespace baton::gateway::detail {

bool UpstreamPool::roomFor(uint64_t backend) {
  const Idle& i = idle_[backend];
  return i.pooled.size() + i.kept < limit_;
}

void UpstreamPool::addKept(uint64_t backend) { ++idle_[backend].kept; }

void UpstreamPool::removeKept(uint64_t backend) {
  auto it = idle_.find(backend);
  if (it != idle_.end() && it->second.kept > 0) --it->second.kept;
}

void UpstreamPool::put(uint64_t backend, Socket s, Steady::time_point expires) {
  if (!roomFor(backend)) {
    s.close();
    return;
  }
  idle_[backend].pooled.push_back({std::move(s), expires});
}

bool UpstreamPool::take(uint64_t backend, Steady::time_point now, Socket* out) {
  auto it = idle_.find(backend);
  if (it == idle_.end()) return false;
  auto& pooled = it->second.pooled;
  while (!pooled.empty()) {  // newest first (LIFO): the likeliest to be alive and warm
    Pooled p = std::move(pooled.back());
    pooled.pop_back();
    if (now < p.expires && p.socket.idleAndClean()) {
      *out = std::move(p.socket);
      return true;
    }
    p.socket.close();
  }
  return false;
}

void UpstreamPool::sweep(Steady::time_point now) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& v = it->second.pooled;
    std::erase_if(v, [&](Pooled& p) {
      if (now < p.expires) return false;
      p.socket.close();
      return true;
    });
    it = v.empty() && it->second.kept == 0 ? idle_.erase(it) : std::next(it);
  }
}

void UpstreamPool::closeAll() {
  for (auto& [id, i] : idle_) {
    for (auto& p : i.pooled) p.socket.close();
  }
  idle_.clear();
}

}  // namespace baton::gateway::detail
