// RouteTable: the gateway's routing decision as a pure value (no I/O, no Asio). Built from the
// apps' [[routes]] and the healthy backends of each service; immutable once built, so it can be
// shared between threads as std::shared_ptr<const RouteTable> and swapped atomically.
//
// Matching (match()):
//  - The Host is compared case-insensitively with any ":port" removed ("[::1]:80" -> "[::1]").
//  - Routes whose host equals the request's host are tried first; only when none of them
//    matches the path are the any-host routes (host = "") tried. (A host selects its routes the
//    way an nginx server block does.)
//  - Among candidates the longest path prefix wins; a prefix matches on segment boundaries only:
//    "/api" matches "/api", "/api/", "/api/x" and "/api?q" but not "/apix". "/" matches all.
//  - Ties (same host and prefix) go to the first app by name, then route order.
// rewriteTarget() applies strip_prefix: "/api/x?q" -> "/x?q", "/api" -> "/", "/api?q" -> "/?q".
//
// Thread safety: a built table is immutable; every const method may be called concurrently.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/app.h"
#include "model/records.h"

namespace baton::gateway {

struct Backend {
  std::string address;  // IP or host name, as the node reported it
  int port = 0;
  std::string instance;  // instance id (for logs)
  bool operator==(const Backend&) const = default;
};

struct RouteEntry {
  std::string app;
  model::Route route;             // route.host lower-cased, route.path normalized
  std::vector<Backend> backends;  // healthy backends of (app, route.service); may be empty
};

// (app, service) -> healthy backends.
using BackendMap = std::map<std::pair<std::string, std::string>, std::vector<Backend>>;

class RouteTable {
 public:
  RouteTable() = default;
  // Routes of every app (apps sorted by name for deterministic ties), with the backends of
  // each route's service (empty when the service has none).
  static RouteTable build(const std::vector<model::AppRecord>& apps, const BackendMap& backends);
  // Index of the matching entry, or -1. Does not allocate.
  int match(std::string_view host, std::string_view target) const;
  const RouteEntry& entry(int index) const { return entries_[static_cast<size_t>(index)]; }
  const std::vector<RouteEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

  // The target the upstream receives: `target` itself, or with the route's prefix stripped.
  static std::string rewriteTarget(const model::Route& route, std::string_view target);
  // True when `target` (path + optional query) starts with `prefix` on a segment boundary.
  static bool prefixMatches(std::string_view prefix, std::string_view target);
  // "Example.COM:8080" -> "example.com" (written into `out`, at most out_size bytes; returns the
  // length, or 0 when it does not fit).
  static size_t normalizeHost(std::string_view host, char* out, size_t out_size);

 private:
  std::vector<RouteEntry> entries_;
  // host (lower case) -> entry indices sorted by prefix length, longest first.
  std::vector<std::pair<std::string, std::vector<int>>> by_host_;
  std::vector<int> any_host_;
};

}  // namespace baton::gateway
