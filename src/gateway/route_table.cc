#include "gateway/route_table.h"

#include <algorithm>
#include <cctype>

namespace baton::gateway {
namespace {

std::string normalizePath(std::string p) {
  if (p.empty() || p[0] != '/') p.insert(p.begin(), '/');
  // "/api/" and "/api" are the same prefix on segment boundaries, except for the root.
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

size_t RouteTable::normalizeHost(std::string_view host, char* out, size_t out_size) {
  // Strip the port: the last ':' after a closing ']' (IPv6 literal) or the only ':'.
  size_t end = host.size();
  if (!host.empty() && host[0] == '[') {
    auto close = host.find(']');
    if (close != std::string_view::npos) end = close + 1;
  } else {
    auto colon = host.find(':');
    if (colon != std::string_view::npos) end = colon;
  }
  while (end > 0 && host[end - 1] == '.') --end;  // "example.com." is "example.com"
  if (end > out_size) return 0;
  for (size_t i = 0; i < end; ++i) {
    out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(host[i])));
  }
  return end;
}

bool RouteTable::prefixMatches(std::string_view prefix, std::string_view target) {
  if (prefix == "/") return !target.empty() && target[0] == '/';
  if (target.size() < prefix.size() || target.compare(0, prefix.size(), prefix) != 0) return false;
  if (target.size() == prefix.size()) return true;
  char next = target[prefix.size()];
  return next == '/' || next == '?';
}

std::string RouteTable::rewriteTarget(const model::Route& route, std::string_view target) {
  if (!route.strip_prefix || route.path == "/") return std::string(target);
  std::string_view rest = target.substr(std::min(route.path.size(), target.size()));
  if (rest.empty() || rest[0] == '?') return "/" + std::string(rest);
  return std::string(rest);
}

RouteTable RouteTable::build(const std::vector<model::AppRecord>& apps,
                             const BackendMap& backends) {
  RouteTable t;
  std::vector<const model::AppRecord*> sorted;
  for (const auto& a : apps) sorted.push_back(&a);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](auto* x, auto* y) { return x->spec.name < y->spec.name; });
  for (const auto* app : sorted) {
    for (const auto& r : app->spec.routes) {
      RouteEntry e;
      e.app = app->spec.name;
      e.route = r;
      char buf[256];
      size_t n = normalizeHost(r.host, buf, sizeof buf);
      e.route.host.assign(buf, n);
      e.route.path = normalizePath(r.path);
      auto it = backends.find({app->spec.name, r.service});
      if (it != backends.end()) e.backends = it->second;
      t.entries_.push_back(std::move(e));
    }
  }
  for (int i = 0; i < static_cast<int>(t.entries_.size()); ++i) {
    const auto& host = t.entries_[static_cast<size_t>(i)].route.host;
    if (host.empty()) {
      t.any_host_.push_back(i);
      continue;
    }
    auto it = std::find_if(t.by_host_.begin(), t.by_host_.end(),
                           [&](const auto& p) { return p.first == host; });
    if (it == t.by_host_.end()) {
      t.by_host_.push_back({host, {}});
      it = std::prev(t.by_host_.end());
    }
    it->second.push_back(i);
  }
  auto longest_first = [&](int a, int b) {
    return t.entries_[static_cast<size_t>(a)].route.path.size() >
           t.entries_[static_cast<size_t>(b)].route.path.size();
  };
  for (auto& [h, v] : t.by_host_) std::stable_sort(v.begin(), v.end(), longest_first);
  std::stable_sort(t.any_host_.begin(), t.any_host_.end(), longest_first);
  return t;
}

int RouteTable::match(std::string_view host, std::string_view target) const {
  if (!by_host_.empty()) {
    char buf[256];
    size_t n = normalizeHost(host, buf, sizeof buf);
    std::string_view h(buf, n);
    if (n > 0) {
      for (const auto& [name, list] : by_host_) {
        if (name != h) continue;
        for (int i : list) {
          if (prefixMatches(entries_[static_cast<size_t>(i)].route.path, target)) return i;
        }
        break;
      }
    }
  }
  for (int i : any_host_) {
    if (prefixMatches(entries_[static_cast<size_t>(i)].route.path, target)) return i;
  }
  return -1;
}

}  // namespace baton::gateway
