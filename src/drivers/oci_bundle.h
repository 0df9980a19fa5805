// The oci driver's runtime bundle: what runc runs for one instance, as the OCI runtime-spec
// config.json (runtime-spec 1.0), decided from the TaskConfig and the image. The decisions are
// pure functions (process args, env, user, the config document); the two helpers that look into
// an unpacked root filesystem (program lookup, the image's passwd) read files only.
//
// What every instance gets (DESIGN.md §2 Node, docs/security.md "Instances"):
//   - a read-only root (the shared image cache) with a tmpfs on /tmp; proc, a /dev tmpfs,
//     devpts, shm, mqueue, sysfs read-only; the kernel paths runc masks by default masked;
//   - no capabilities at all, noNewPrivileges, an unprivileged user (never root: see
//     chooseUser), RLIMIT_NOFILE soft = hard;
//   - pid, ipc, uts and mount namespaces, and the network namespace made for it
//     (instance_net.h);
//   - cgroup limits: memory (swap = the same: no swap beyond it), cpu shares (1024 per core),
//     a CFS quota when cpu_limit is set, pids.max.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "drivers/driver.h"
#include "drivers/oci_image.h"

namespace baton::drivers::oci {

inline constexpr int64_t kNobody = 65534;
inline constexpr uint64_t kDefaultNofile = 1024;

struct BundleSpec {
  std::string hostname;
  std::filesystem::path rootfs;
  std::vector<std::string> args;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd = "/";
  int64_t uid = kNobody;
  int64_t gid = kNobody;
  std::vector<uint32_t> additional_gids;
  std::string netns_path;    // the instance's network namespace; "" = a new, empty one
  std::string resolv_conf;   // a file bind-mounted read-only at /etc/resolv.conf; "" = none
  std::string secrets_dir;   // bind-mounted read-only at kContainerSecretsDir; "" = none
  std::string cgroups_path;  // "/baton-oci/<instance id>"
  uint64_t memory_bytes = 0;
  double cpu_cores = 0;
  double cpu_limit_cores = 0;
  int64_t pids_max = 0;
  uint64_t nofile = kDefaultNofile;
};

// config.json for runc.
std::string runtimeConfig(const BundleSpec& spec);

// The image env ("NAME=value" list) with the task's env over it.
std::map<std::string, std::string> mergeEnv(const std::vector<std::string>& image_env,
                                            const std::map<std::string, std::string>& task_env);
std::vector<std::string> envList(const std::map<std::string, std::string>& env);

// spec.run with ${VAR} expanded from `env` (exec::expandArgv) when set; else the image's
// Entrypoint + Cmd as they are. Empty is kInvalidArgument.
Result<std::vector<std::string>> processArgs(const model::ServiceSpec& spec,
                                             const ImageConfig& image,
                                             const std::map<std::string, std::string>& env);

struct ProcessUser {
  int64_t uid = kNobody;
  int64_t gid = kNobody;
  std::vector<uint32_t> additional_gids;
};
// Who the process runs as: the node's choice (TaskConfig.uid/gid, e.g. the service's dynamic
// UID) when set; else spec.user, else the image's User, resolved in the image's passwd/group.
Result<ProcessUser> chooseUser(const TaskConfig& config, const ImageConfig& image,
                               std::string_view passwd, std::string_view group);

// `path` (absolute, inside the container) resolved in `rootfs` the way the container would see
// it: symlinks are followed inside the rootfs only (an absolute target restarts at the rootfs, a
// ".." stops there). Returns the host path; kNotFound when a component is missing.
Result<std::filesystem::path> resolveInRootfs(const std::filesystem::path& rootfs,
                                              const std::string& path);
// Where the container's execvp would find `program` (PATH from `env`, relative to `cwd`): the
// container path, or kNotFound: `"nosuch": no such file or directory`.
Result<std::string> findProgram(const std::filesystem::path& rootfs, const std::string& program,
                                const std::map<std::string, std::string>& env,
                                const std::string& cwd);
// A file of the image (e.g. /etc/passwd) as text, "" when it is missing or large.
std::string readImageFile(const std::filesystem::path& rootfs, const std::string& path);

}  // namespace baton::drivers::oci
