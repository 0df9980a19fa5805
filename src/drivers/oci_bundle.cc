#include "drivers/oci_bundle.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "drivers/driver.h"
#include "drivers/exec_internal.h"

namespace baton::drivers::oci {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kMaxSymlinks = 40;
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

json mount(const char* destination, const char* type, const char* source,
           std::vector<std::string> options) {
  return {{"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

// The non-empty parts of `text` between `sep`s.
std::vector<std::string> split(const std::string& text, char sep = '/') {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t slash = text.find(sep, start);
    if (slash == std::string::npos) slash = text.size();
    if (slash > start) out.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

}  // namespace

std::string runtimeConfig(const BundleSpec& s) {
  json caps = {{"bounding", json::array()},
               {"effective", json::array()},
               {"inheritable", json::array()},
               {"permitted", json::array()},
               {"ambient", json::array()}};
  json user = {{"uid", s.uid}, {"gid", s.gid}};
  if (!s.additional_gids.empty()) user["additionalGids"] = s.additional_gids;
  json process = {
      {"terminal", false},
      {"user", user},
      {"args", s.args},
      {"env", s.env},
      {"cwd", s.cwd.empty() ? "/" : s.cwd},
      {"capabilities", caps},
      {"rlimits",
       json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", s.nofile}, {"soft", s.nofile}}})},
      {"noNewPrivileges", true},
  };
  json mounts = json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      // The root is read-only; /tmp is the service's scratch space. tmpfs pages are charged to
      // the writer's memory cgroup, so the memory limit bounds it.
      mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}),
  });
  if (!s.resolv_conf.empty()) {
    mounts.push_back(mount("/etc/resolv.conf", "bind", s.resolv_conf.c_str(),
                           {"rbind", "ro", "nosuid", "nodev"}));
  }
  if (!s.secrets_dir.empty()) {
    mounts.push_back(mount(std::string(kContainerSecretsDir).c_str(), "bind", s.secrets_dir.c_str(),
                           {"rbind", "ro", "nosuid", "nodev", "noexec"}));
  }

  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (s.memory_bytes > 0) {
    resources["memory"] = {{"limit", s.memory_bytes}, {"swap", s.memory_bytes}};
  }
  json cpu = json::object();
  if (s.cpu_cores > 0) cpu["shares"] = std::max<int64_t>(2, std::llround(s.cpu_cores * 1024));
  if (s.cpu_limit_cores > 0) {
    cpu["period"] = 100000;
    cpu["quota"] = std::max<int64_t>(1000, std::llround(s.cpu_limit_cores * 100000));
  }
  if (!cpu.empty()) resources["cpu"] = cpu;
  if (s.pids_max > 0) resources["pids"] = {{"limit", s.pids_max}};

  json network = {{"type", "network"}};
  if (!s.netns_path.empty()) network["path"] = s.netns_path;
  json linux_ = {
      {"resources", resources},
      {"namespaces", json::array({{{"type", "pid"}},
                                  network,
                                  {{"type", "ipc"}},
                                  {{"type", "uts"}},
                                  {{"type", "mount"}}})},
      // As `runc spec` masks and protects them.
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  if (!s.cgroups_path.empty()) linux_["cgroupsPath"] = s.cgroups_path;

  json config = {
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", s.rootfs.string()}, {"readonly", true}}},
      {"hostname", s.hostname},
      {"mounts", mounts},
      {"linux", linux_},
  };
  return config.dump(2) + "\n";
}

std::map<std::string, std::string> mergeEnv(const std::vector<std::string>& image_env,
                                            const std::map<std::string, std::string>& task_env) {
  std::map<std::string, std::string> out;
  for (const auto& kv : image_env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : task_env) out[k] = v;
  return out;
}

std::vector<std::string> envList(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Result<std::vector<std::string>> processArgs(const model::ServiceSpec& spec,
                                             const ImageConfig& image,
                                             const std::map<std::string, std::string>& env) {
  if (!spec.run.empty()) return exec::expandArgv(spec.run, env);
  std::vector<std::string> args = image.entrypoint;
  args.insert(args.end(), image.cmd.begin(), image.cmd.end());
  if (args.empty()) {
    return invalidArgument("service \"" + spec.name + "\": no run, and image " + spec.image +
                           " has neither Entrypoint nor Cmd");
  }
  return args;
}

Result<ProcessUser> chooseUser(const TaskConfig& config, const ImageConfig& image,
                               std::string_view passwd, std::string_view group) {
  ProcessUser out;
  if (config.uid >= 0) {
    out.uid = config.uid;
    out.gid = config.gid >= 0 ? config.gid : config.uid;
    out.additional_gids = config.groups;
    return out;
  }
  std::string name = !config.spec.user.empty() ? config.spec.user : image.user;
  // No user chosen by the node and none (or root) in the image: the service runs as nobody
  // (65534:65534) rather than as root; the container has no capabilities either way, but a
  // root-owned process could still write what root owns in the image.
  if (name.empty()) return out;
  auto ids = resolveImageUser(name, passwd, group);
  if (!ids) return ids.status();
  if (ids->uid == 0) return out;
  out.uid = ids->uid;
  out.gid = ids->gid;
  return out;
}

Result<fs::path> resolveInRootfs(const fs::path& rootfs, const std::string& path) {
  std::vector<std::string> todo = split(path);
  std::reverse(todo.begin(), todo.end());
  std::vector<std::string> done;
  int links = 0;
  auto hostPath = [&](const std::vector<std::string>& parts) {
    fs::path p = rootfs;
    for (const auto& part : parts) p /= part;
    return p;
  };
  while (!todo.empty()) {
    std::string part = std::move(todo.back());
    todo.pop_back();
    if (part == ".") continue;
    if (part == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(part);
    fs::path host = hostPath(done);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return notFound("\"" + path + "\" does not exist");
    if (!S_ISLNK(st.st_mode)) continue;
    if (++links > kMaxSymlinks) return notFound("\"" + path + "\": too many symlinks");
    std::error_code ec;
    fs::path target = fs::read_symlink(host, ec);
    if (ec) return notFound("\"" + path + "\": " + ec.message());
    done.pop_back();
    std::string t = target.string();
    if (!t.empty() && t[0] == '/') done.clear();
    std::vector<std::string> more = split(t);
    for (auto it = more.rbegin(); it != more.rend(); ++it) todo.push_back(*it);
  }
  return hostPath(done);
}

Result<std::string> findProgram(const fs::path& rootfs, const std::string& program,
                                const std::map<std::string, std::string>& env,
                                const std::string& cwd) {
  auto executable = [&](const std::string& container_path) {
    auto host = resolveInRootfs(rootfs, container_path);
    if (!host) return false;
    struct stat st {};
    return ::stat(host->c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
  };
  auto inCwd = [&](const std::string& p) {
    return p.empty() || p[0] != '/' ? (cwd.empty() ? "/" : cwd) + "/" + p : p;
  };
  if (program.find('/') != std::string::npos) {
    if (executable(inCwd(program))) return program;
  } else if (!program.empty()) {
    auto it = env.find("PATH");
    std::string path = it == env.end() ? kDefaultPath : it->second;
    for (const auto& dir : split(path, ':')) {
      std::string candidate = inCwd(dir) + "/" + program;
      if (executable(candidate)) return candidate;
    }
  }
  return notFound("\"" + program + "\": no such file or directory");
}

std::string readImageFile(const fs::path& rootfs, const std::string& path) {
  auto host = resolveInRootfs(rootfs, path);
  if (!host) return "";
  std::error_code ec;
  if (!fs::is_regular_file(*host, ec) || fs::file_size(*host, ec) > (4u << 20)) return "";
  auto text = exec::readWholeFile(*host);
  return text ? *text : "";
}

}  // namespace baton::drivers::oci
