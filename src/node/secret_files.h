// An instance's secrets as files (docs/secrets.md "Delivery"): <dir>/<PATH>/<KEY>, one file per
// key of each secret its service lists, in a tmpfs of the instance's own when the agent may
// mount one (root), so that no value is ever written to a disk. Readable by the service's user
// alone: files 0400 and directories 0500 owned by it. When that user is not known on the node
// (a container's image user), files are 0444 and directories 0555, and the caller keeps `dir`
// under a directory only the agent can enter (the container sees it through its bind mount).
//
// Also the pure part: the value of an `env` entry "secret:PATH#KEY".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "core/result.h"

namespace baton::node {

// By secret path: its keys and values (one version).
using SecretValues = std::map<std::string, std::map<std::string, std::string>>;

struct SecretFilesOptions {
  int64_t uid = -1;    // the files' owner; -1: unknown (0444/0555), or the agent when not root
  int64_t gid = -1;
  bool tmpfs = false;  // mount a tmpfs on `dir` first (needs CAP_SYS_ADMIN)
};

// Makes `dir` hold exactly `secrets` (creating it, and its tmpfs, when it does not exist yet):
// each file is replaced atomically (a reader sees the old value or the new, never a mix), and
// files of keys or secrets no longer there are removed. Safe to call again with new values.
Status writeSecretFiles(const std::filesystem::path& dir, const SecretValues& secrets,
                        const SecretFilesOptions& options);

// Whether `dir` holds exactly `secrets` (no file missing, extra or different).
bool sameSecretFiles(const std::filesystem::path& dir, const SecretValues& secrets);

// Unmounts `dir` if it is a mount point and removes it. Idempotent.
Status removeSecretFiles(const std::filesystem::path& dir);

// The value an `env` entry "secret:PATH#KEY" stands for, or an error naming the path and key
// (never a value). `ref` is the text after "secret:".
Result<std::string> secretEnvValue(const std::string& ref, const SecretValues& secrets);

}  // namespace baton::node
