// ApiServer: the agent's HTTP JSON API (DESIGN.md §1) on Boost.Beast. Each connection is one
// straight-line coroutine: read a request with a deadline and bounded header/body, hand it to
// Handlers (handlers.h, pure over the store), write the response, loop on keep-alive. Streaming
// responses (events, logs -f) are written with chunked encoding as their ChunkSource produces.
//
// Thread safety: start() and stop() are called from one owning thread; port() from any.
// Ownership: the deps (store, clock, event bus) must outlive the server. The destructor stops it.
#pragma once

#include <memory>

#include "api/handlers.h"
#include "core/listen_address.h"
#include "core/result.h"

namespace baton::api {

class ApiServer {
 public:
  ApiServer(ApiDeps deps, ApiOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds options.listen and runs options.threads io threads. kInvalidArgument for a bad
  // address, kUnavailable when the port cannot be bound.
  Status start();
  // Graceful: stops accepting, closes idle connections, ends streams, lets in-flight requests
  // finish until options.shutdown_grace, then cancels whatever is left. Idempotent.
  void stop();
  // The bound port (useful with port 0); 0 before start().
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "host:port" -> (host, port) (core/listen_address.h).
using baton::parseListenAddress;

}  // namespace baton::api
