// The secrets store's versioning, as Vault's KV v2 (docs/secrets.md): pure decisions over a
// secret's metadata, no store and no crypto. Each write makes a new version; a check-and-set
// (cas) makes it conditional (cas 0: only if the secret does not exist); past max_versions the
// oldest versions go; a version can be soft-deleted (undeleted later) or destroyed (its data is
// gone for good).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace baton::secrets {

inline constexpr int kDefaultMaxVersions = 10;
inline constexpr int kMaxMaxVersions = 100;
inline constexpr size_t kMaxPathBytes = 200;
inline constexpr size_t kMaxValueBytes = 512 * 1024;  // all keys of one version together

struct VersionInfo {
  TimePoint created{};
  std::optional<TimePoint> deleted;  // soft-deleted: the data is kept, reads say "deleted"
  bool destroyed = false;            // the data is gone
  bool operator==(const VersionInfo&) const = default;
};

struct Metadata {
  int64_t current = 0;  // the latest version; 0: never written
  int max_versions = kDefaultMaxVersions;
  std::map<int64_t, VersionInfo> versions;  // the versions kept (at most max_versions)
  bool operator==(const Metadata&) const = default;
};

// "shop/db": 1-10 segments of [A-Za-z0-9_.-] ("." and ".." are not segments), at most 200
// bytes. The error says what is wrong.
Status checkPath(std::string_view path);
// A key of a secret becomes a file name and may become an environment variable:
// [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes.
Status checkKey(std::string_view key);

struct PutPlan {
  Metadata next;
  int64_t version = 0;                // the version written
  std::set<int64_t> drop;             // versions past max_versions whose data goes
};
// A new version of a secret with metadata `cur`. `cas`: nullopt: unconditional; 0: only if the
// secret has no version; N: only if the current version is N (else kConflict, which says the
// current version).
Result<PutPlan> planPut(const Metadata& cur, std::optional<int64_t> cas, TimePoint now);

// Which version a read means: 0 = the current one. kNotFound when there is none, when it was
// destroyed or pruned, or is soft-deleted (the message says which).
Result<int64_t> readable(const Metadata& m, int64_t version);
// The version a read of the current one gets; 0 when there is none.
int64_t liveVersion(const Metadata& m);

// Soft delete / undelete / destroy of `versions` (empty: the current one). Unknown versions are
// kNotFound; deleting a deleted version or undeleting a live one changes nothing.
Result<Metadata> planDelete(const Metadata& cur, std::set<int64_t> versions, TimePoint now);
Result<Metadata> planUndelete(const Metadata& cur, std::set<int64_t> versions);
Result<Metadata> planDestroy(const Metadata& cur, std::set<int64_t> versions);
// A new max_versions (1..kMaxMaxVersions); versions past it are dropped as by a write.
Result<PutPlan> planMaxVersions(const Metadata& cur, int max_versions);

}  // namespace baton::secrets
