#include "secrets/kv.h"

#include <string>

namespace baton::secrets {
namespace {

bool pathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// Drops the oldest versions until at most m.max_versions are kept.
std::set<int64_t> prune(Metadata& m) {
  std::set<int64_t> drop;
  while (m.versions.size() > static_cast<size_t>(m.max_versions)) {
    drop.insert(m.versions.begin()->first);
    m.versions.erase(m.versions.begin());
  }
  return drop;
}

Result<std::set<int64_t>> targets(const Metadata& m, std::set<int64_t> versions) {
  if (versions.empty()) {
    if (m.current == 0 || !m.versions.count(m.current)) return notFound("the secret has no version");
    versions.insert(m.current);
  }
  for (int64_t v : versions) {
    if (!m.versions.count(v)) return notFound("no version " + std::to_string(v) + " is kept");
  }
  return versions;
}

}  // namespace

Status checkPath(std::string_view path) {
  if (path.empty()) return invalidArgument("a secret path is not empty (e.g. \"shop/db\")");
  if (path.size() > kMaxPathBytes) return invalidArgument("a secret path has at most 200 bytes");
  int segments = 0;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(start, slash - start);
    if (seg.empty() || seg == "." || seg == "..") {
      return invalidArgument("a secret path is segments of [A-Za-z0-9_.-] joined by '/', without "
                             "empty, \".\" or \"..\" segments");
    }
    for (char c : seg) {
      if (!pathChar(c)) {
        return invalidArgument("a secret path is segments of [A-Za-z0-9_.-] joined by '/'");
      }
    }
    if (++segments > 10) return invalidArgument("a secret path has at most 10 segments");
    start = slash + 1;
  }
  return Status::ok();
}

Status checkKey(std::string_view key) {
  bool ok = !key.empty() && key.size() <= 128 && !(key[0] >= '0' && key[0] <= '9');
  for (char c : key) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_');
  }
  if (!ok) return invalidArgument("a secret's key is [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes");
  return Status::ok();
}

Result<PutPlan> planPut(const Metadata& cur, std::optional<int64_t> cas, TimePoint now) {
  if (cas && *cas != cur.current) {
    if (*cas == 0) return conflict("check-and-set 0: the secret exists (version " +
                                   std::to_string(cur.current) + ")");
    return conflict("check-and-set " + std::to_string(*cas) + ": the current version is " +
                    std::to_string(cur.current));
  }
  PutPlan p;
  p.next = cur;
  p.version = cur.current + 1;
  p.next.current = p.version;
  p.next.versions[p.version] = VersionInfo{now, std::nullopt, false};
  p.drop = prune(p.next);
  return p;
}

Result<int64_t> readable(const Metadata& m, int64_t version) {
  const int64_t v = version == 0 ? m.current : version;
  if (v == 0) return notFound("no such secret");
  auto it = m.versions.find(v);
  if (it == m.versions.end()) return notFound("version " + std::to_string(v) + " is not kept");
  if (it->second.destroyed) return notFound("version " + std::to_string(v) + " was destroyed");
  if (it->second.deleted) {
    return notFound("version " + std::to_string(v) + " is deleted (undelete brings it back)");
  }
  return v;
}

Result<Metadata> planDelete(const Metadata& cur, std::set<int64_t> versions, TimePoint now) {
  auto t = targets(cur, std::move(versions));
  if (!t) return t.status();
  Metadata m = cur;
  for (int64_t v : *t) {
    auto& info = m.versions[v];
    if (!info.deleted && !info.destroyed) info.deleted = now;
  }
  return m;
}

Result<Metadata> planUndelete(const Metadata& cur, std::set<int64_t> versions) {
  auto t = targets(cur, std::move(versions));
  if (!t) return t.status();
  Metadata m = cur;
  for (int64_t v : *t) {
    auto& info = m.versions[v];
    if (!info.destroyed) info.deleted.reset();
  }
  return m;
}

Result<Metadata> planDestroy(const Metadata& cur, std::set<int64_t> versions) {
  auto t = targets(cur, std::move(versions));
  if (!t) return t.status();
  Metadata m = cur;
  for (int64_t v : *t) m.versions[v].destroyed = true;
  return m;
}

Result<PutPlan> planMaxVersions(const Metadata& cur, int max_versions) {
  if (max_versions < 1 || max_versions > kMaxMaxVersions) {
    return invalidArgument("max versions is 1 to " + std::to_string(kMaxMaxVersions));
  }
  PutPlan p;
  p.next = cur;
  p.next.max_versions = max_versions;
  p.version = cur.current;
  p.drop = prune(p.next);
  return p;
}

int64_t liveVersion(const Metadata& m) {
  auto v = readable(m, 0);
  return v ? *v : 0;
}

}  // namespace baton::secrets
