#include "node/secret_files.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

namespace baton::node {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTempPrefix = ".tmp-";

Status sysError(const std::string& what) {
  return ioError(what + ": " + std::strerror(errno));
}

struct Modes {
  mode_t dir;
  mode_t file;
  int64_t uid;
  int64_t gid;
};

Modes modesFor(const SecretFilesOptions& o) {
  if (::geteuid() != 0) return {0700, 0400, -1, -1};  // the services run as the agent too
  if (o.uid < 0) return {0555, 0444, -1, -1};
  return {0500, 0400, o.uid, o.gid};
}

bool isMountPoint(const fs::path& dir) {
  struct stat self {}, parent {};
  if (::lstat(dir.c_str(), &self) != 0) return false;
  if (::lstat(dir.parent_path().c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

Status setOwnerAndMode(const fs::path& p, const Modes& m) {
  if (m.uid >= 0 && ::lchown(p.c_str(), static_cast<uid_t>(m.uid), static_cast<gid_t>(m.gid)) != 0) {
    return sysError("chown " + p.string());
  }
  if (::chmod(p.c_str(), m.dir) != 0) return sysError("chmod " + p.string());
  return Status::ok();
}

Status makeDirs(const fs::path& root, const std::string& rel, const Modes& m) {
  fs::path p = root;
  for (const auto& part : fs::path(rel)) {
    p /= part;
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) return sysError("mkdir " + p.string());
    if (Status s = setOwnerAndMode(p, m); !s) return s;
  }
  return Status::ok();
}

Status writeFile(const fs::path& dir, const std::string& key, const std::string& value,
                 const Modes& m) {
  const fs::path tmp = dir / (std::string(kTempPrefix) + key);
  const fs::path final_path = dir / key;
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
  if (fd < 0) return sysError("creating " + tmp.string());
  size_t done = 0;
  Status s = Status::ok();
  while (done < value.size()) {
    ssize_t n = ::write(fd, value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      s = sysError("writing " + tmp.string());
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (s && m.uid >= 0 &&
      ::fchown(fd, static_cast<uid_t>(m.uid), static_cast<gid_t>(m.gid)) != 0) {
    s = sysError("chown " + tmp.string());
  }
  if (s && ::fchmod(fd, m.file) != 0) s = sysError("chmod " + tmp.string());
  ::close(fd);
  if (s && ::rename(tmp.c_str(), final_path.c_str()) != 0) s = sysError("renaming " + tmp.string());
  if (!s) ::unlink(tmp.c_str());
  return s;
}

// Removes what `secrets` does not name (and leftover temporary files), deepest first.
void removeStale(const fs::path& dir, const SecretValues& secrets) {
  std::set<std::string> wanted_files, wanted_dirs;
  for (const auto& [path, values] : secrets) {
    fs::path p;
    for (const auto& part : fs::path(path)) {
      p /= part;
      wanted_dirs.insert(p.string());
    }
    for (const auto& [key, _] : values) wanted_files.insert((fs::path(path) / key).string());
  }
  std::vector<fs::path> entries;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    entries.push_back(it->path());
  }
  for (auto e = entries.rbegin(); e != entries.rend(); ++e) {
    const std::string rel = e->lexically_relative(dir).string();
    const bool is_dir = fs::is_directory(fs::symlink_status(*e, ec));
    if (is_dir ? wanted_dirs.contains(rel) : wanted_files.contains(rel)) continue;
    fs::remove_all(*e, ec);
  }
}

}  // namespace

Status writeSecretFiles(const fs::path& dir, const SecretValues& secrets,
                        const SecretFilesOptions& options) {
  const Modes m = modesFor(options);
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  if (ec) return ioError("creating " + dir.parent_path().string() + ": " + ec.message());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return sysError("mkdir " + dir.string());
  if (options.tmpfs && ::geteuid() == 0 && !isMountPoint(dir)) {
    // A limit, not an allocation: the files use what they hold. nr_inodes bounds a secret with
    // very many keys.
    std::string data = "size=16m,nr_inodes=4096,mode=0700";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                data.c_str()) != 0) {
      return sysError("mounting a tmpfs on " + dir.string());
    }
  }
  // Writable by the agent while it fills the tree; the service's modes once done.
  for (const auto& [path, values] : secrets) {
    if (Status s = makeDirs(dir, path, m); !s) return s;
    for (const auto& [key, value] : values) {
      if (Status s = writeFile(dir / path, key, value, m); !s) return s;
    }
  }
  removeStale(dir, secrets);
  return setOwnerAndMode(dir, m);
}

bool sameSecretFiles(const fs::path& dir, const SecretValues& secrets) {
  size_t expected = 0;
  for (const auto& [path, values] : secrets) {
    for (const auto& [key, value] : values) {
      ++expected;
      std::ifstream in(dir / path / key, std::ios::binary);
      if (!in) return false;
      std::string have((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (have != value) return false;
    }
  }
  size_t files = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_directory()) ++files;
  }
  return !ec && files == expected;
}

Status removeSecretFiles(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return Status::ok();
  if (isMountPoint(dir) && ::umount2(dir.c_str(), MNT_DETACH) != 0) {
    return sysError("unmounting " + dir.string());
  }
  fs::remove_all(dir, ec);
  if (ec) return ioError("removing " + dir.string() + ": " + ec.message());
  return Status::ok();
}

Result<std::string> secretEnvValue(const std::string& ref, const SecretValues& secrets) {
  const size_t hash = ref.rfind('#');
  if (hash == std::string::npos) {
    return Status(Code::kInvalidArgument, "\"secret:" + ref + "\" names no key (PATH#KEY)");
  }
  const std::string path = ref.substr(0, hash), key = ref.substr(hash + 1);
  auto secret = secrets.find(path);
  if (secret == secrets.end()) {
    return Status(Code::kNotFound, "secret " + path + " is not one the service lists");
  }
  auto value = secret->second.find(key);
  if (value == secret->second.end()) {
    return Status(Code::kNotFound, "secret " + path + " has no key \"" + key + "\"");
  }
  return value->second;
}

}  // namespace baton::node
