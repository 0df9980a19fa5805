// A worker's idle upstream connections (README.md "Load balancing"), per backend: the pooled
// ones, and a count of those that idle clients keep for their next request (HAProxy's
// `http-reuse safe` pairing). Together at most `limit` per backend, so thousands of idle
// keep-alive clients cannot pin as many connections on a backend. Private to src/gateway.
//
// A connection is handed out again only while it is younger than its expiry (the gateway's idle
// limit, or a second less than the backend's Keep-Alive timeout) and idle and clean
// (edge::Socket::idleAndClean(): the backend neither closed it nor sent bytes nobody asked for);
// the others found on the way are closed.
//
// Thread safety: one per worker, used on the worker's thread only.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "gateway/io.h"

namespace baton::gateway::detail {

class UpstreamPool {
 public:
  explicit UpstreamPool(size_t limit) : limit_(limit) {}

  // Whether one more idle connection to `backend` (kept or pooled) fits.
  bool roomFor(uint64_t backend);
  // A client keeps (or stops keeping) an idle connection to `backend`.
  void addKept(uint64_t backend);
  void removeKept(uint64_t backend);
  // Pools `s` (closes it when there is no room).
  void put(uint64_t backend, Socket s, Steady::time_point expires);
  // The newest usable pooled connection to `backend`, moved into `*out`; false when none.
  bool take(uint64_t backend, Steady::time_point now, Socket* out);
  // Closes the expired ones (the worker's 1 s sweep).
  void sweep(Steady::time_point now);
  void closeAll();

 private:
  struct Pooled {
    Socket socket;
    Steady::time_point expires;
  };
  struct Idle {
    std::vector<Pooled> pooled;
    size_t kept = 0;
  };
  std::unordered_map<uint64_t, Idle> idle_;
  size_t limit_;
};

}  // namespace baton::gateway::detail
