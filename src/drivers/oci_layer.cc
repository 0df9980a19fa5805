#include "drivers/oci_layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/unique_fd.h"
#include "drivers/exec_internal.h"
#include "drivers/oci_image.h"

namespace baton::drivers::oci {
namespace {

using exec::errnoText;

using Fd = UniqueFd;

// One pass over a layer's entries (libarchive, tar only, any compression).
class LayerReader {
 public:
  explicit LayerReader(const std::filesystem::path& layer) : a_(archive_read_new()) {
    archive_read_support_filter_all(a_);
    archive_read_support_format_tar(a_);
    if (archive_read_open_filename(a_, layer.c_str(), 1 << 16) != ARCHIVE_OK) {
      error_ = archive_error_string(a_) ? archive_error_string(a_) : "cannot open";
    }
  }
  ~LayerReader() { archive_read_free(a_); }
  LayerReader(const LayerReader&) = delete;
  LayerReader& operator=(const LayerReader&) = delete;

  const std::string& openError() const { return error_; }
  // The next entry, nullptr at the end; an error sets `status`.
  archive_entry* next(Status& status) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a_, &e);
    if (r == ARCHIVE_EOF) return nullptr;
    if (r < ARCHIVE_WARN) {
      status = invalidArgument(std::string("corrupt layer: ") + archive_error_string(a_));
      return nullptr;
    }
    return e;
  }
  archive* get() { return a_; }

 private:
  archive* a_;
  std::string error_;
};

const char* pathnameOf(archive_entry* e) {
  const char* p = archive_entry_pathname(e);
  return p ? p : archive_entry_pathname_utf8(e);
}
const char* symlinkOf(archive_entry* e) {
  const char* p = archive_entry_symlink(e);
  return p ? p : archive_entry_symlink_utf8(e);
}
const char* hardlinkOf(archive_entry* e) {
  const char* p = archive_entry_hardlink(e);
  return p ? p : archive_entry_hardlink_utf8(e);
}

std::string joined(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += (i ? "/" : "") + parts[i];
  return out.empty() ? "." : out;
}

// The directory parts[0..count) below `root`, never through a symlink; created (0755) on the
// way when `create`. nullopt (no error) when it does not exist and !create.
Result<std::optional<Fd>> openDir(int root, const std::vector<std::string>& parts, size_t count,
                                  bool create) {
  Fd cur(::fcntl(root, F_DUPFD_CLOEXEC, 3));
  for (size_t i = 0; i < count; ++i) {
    const char* name = parts[i].c_str();
    if (create && ::mkdirat(cur.get(), name, 0755) != 0 && errno != EEXIST) {
      return ioError("cannot create directory \"" + joined(parts, i + 1) +
                     "\": " + errnoText(errno));
    }
    int fd = ::openat(cur.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT && !create) return std::optional<Fd>();
      struct stat st {};
      if (::fstatat(cur.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        return invalidArgument("refusing to extract through the symlink \"" + joined(parts, i + 1) +
                               "\"");
      }
      return ioError("cannot open directory \"" + joined(parts, i + 1) + "\": " + errnoText(err));
    }
    cur = Fd(fd);
  }
  return std::optional<Fd>(std::move(cur));
}

Status removeTree(int dir, const std::string& name);

Status clearDir(int dir) {
  int copy = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) return ioError("cannot open directory: " + errnoText(errno));
  DIR* d = ::fdopendir(copy);
  if (!d) {
    ::close(copy);
    return ioError("cannot list directory: " + errnoText(errno));
  }
  std::vector<std::string> names;
  while (dirent* ent = ::readdir(d)) {
    std::string n = ent->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : names) {
    if (Status s = removeTree(dir, n); !s) return s;
  }
  return Status::ok();
}

// Removes `name` in `dir` and, for a directory, everything below it. Missing is fine.
Status removeTree(int dir, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status::ok()
                           : ioError("cannot stat \"" + name + "\": " + errnoText(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    Fd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub.get() < 0) return ioError("cannot open \"" + name + "\": " + errnoText(errno));
    if (Status s = clearDir(sub.get()); !s) return s;
    if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0) {
      return ioError("cannot remove \"" + name + "\": " + errnoText(errno));
    }
    return Status::ok();
  }
  if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
    return ioError("cannot remove \"" + name + "\": " + errnoText(errno));
  }
  return Status::ok();
}

// Ownership only sticks for root; an unprivileged unpack (tests) keeps its own.
bool chownFailed(int rc) { return rc != 0 && ::geteuid() == 0; }

class Applier {
 public:
  Applier(int root, const std::string& layer) : root_(root), layer_(layer) {}

  Status whiteout(archive_entry* e, const std::vector<std::string>& parts, const Whiteout& w);
  Status entry(archive* a, archive_entry* e, const std::vector<std::string>& parts);

 private:
  Status regular(archive* a, archive_entry* e, int dir, const std::string& leaf);
  Status fail(const std::vector<std::string>& parts, const std::string& why) const {
    return invalidArgument("layer " + layer_ + ": entry \"" + joined(parts, parts.size()) +
                           "\": " + why);
  }

  int root_;
  std::string layer_;
};

Status Applier::whiteout(archive_entry* e, const std::vector<std::string>& parts,
                         const Whiteout& w) {
  auto dir = openDir(root_, parts, parts.size() - 1, false);
  if (!dir) return fail(parts, dir.status().message());
  if (!dir->has_value()) return Status::ok();  // nothing below to hide
  int fd = (*dir)->get();
  if (w.kind == WhiteoutKind::kOpaque) return clearDir(fd);
  if (w.target == "." || w.target == ".." || w.target.find('/') != std::string::npos) {
    return fail(parts, "whiteout of \"" + w.target + "\"");
  }
  return removeTree(fd, w.target);
}

Status Applier::regular(archive* a, archive_entry* e, int dir, const std::string& leaf) {
  Fd out(::openat(dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (out.get() < 0) return ioError("cannot create: " + errnoText(errno));
  const void* buf;
  size_t size;
  la_int64_t offset;
  while (true) {
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return invalidArgument(std::string("corrupt data: ") + archive_error_string(a));
    const char* p = static_cast<const char*>(buf);
    while (size > 0) {
      ssize_t n = ::pwrite(out.get(), p, size, offset);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ioError("cannot write: " + errnoText(errno));
      p += n;
      size -= static_cast<size_t>(n);
      offset += n;
    }
  }
  // Sparse files end in a hole that no block covers.
  if (::ftruncate(out.get(), archive_entry_size(e)) != 0) {
    return ioError("cannot size: " + errnoText(errno));
  }
  if (chownFailed(::fchown(out.get(), archive_entry_uid(e), archive_entry_gid(e)))) {
    return ioError("cannot chown: " + errnoText(errno));
  }
  ::fchmod(out.get(), archive_entry_perm(e) & 07777);
  timespec times[2] = {{archive_entry_mtime(e), 0}, {archive_entry_mtime(e), 0}};
  ::futimens(out.get(), times);
  return Status::ok();
}

Status Applier::entry(archive* a, archive_entry* e, const std::vector<std::string>& parts) {
  auto dir = openDir(root_, parts, parts.size() - 1, true);
  if (!dir) return fail(parts, dir.status().message());
  int fd = (**dir).get();
  const std::string& leaf = parts.back();
  const mode_t type = archive_entry_filetype(e);
  const char* hardlink = hardlinkOf(e);
  const bool is_dir = !hardlink && type == AE_IFDIR;

  // Make room: a directory merges with a directory; anything else replaces what was there.
  struct stat st {};
  if (::fstatat(fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      !(is_dir && S_ISDIR(st.st_mode))) {
    if (Status s = removeTree(fd, leaf); !s) return fail(parts, s.message());
  }

  if (hardlink) {
    auto target = entryComponents(hardlink);
    if (!target) return fail(parts, "hard link: " + target.status().message());
    if (target->empty()) return fail(parts, "hard link to the root");
    auto tdir = openDir(root_, *target, target->size() - 1, false);
    if (!tdir) return fail(parts, "hard link: " + tdir.status().message());
    if (!tdir->has_value() ||
        ::linkat((**tdir).get(), target->back().c_str(), fd, leaf.c_str(), 0) != 0) {
      return fail(parts, "hard link to \"" + std::string(hardlink) +
                             "\": " + errnoText(tdir->has_value() ? errno : ENOENT));
    }
    return Status::ok();
  }
  const uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
  const gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
  const mode_t perm = archive_entry_perm(e) & 07777;
  switch (type) {
    case AE_IFDIR:
      if (::mkdirat(fd, leaf.c_str(), 0755) != 0 && errno != EEXIST) {
        return fail(parts, "cannot create directory: " + errnoText(errno));
      }
      if (chownFailed(::fchownat(fd, leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW))) {
        return fail(parts, "cannot chown: " + errnoText(errno));
      }
      ::fchmodat(fd, leaf.c_str(), perm, 0);
      return Status::ok();
    case AE_IFREG:
      if (Status s = regular(a, e, fd, leaf); !s) return fail(parts, s.message());
      return Status::ok();
    case AE_IFLNK: {
      const char* target = symlinkOf(e);
      if (!target || ::symlinkat(target, fd, leaf.c_str()) != 0) {
        return fail(parts, "cannot create symlink: " + errnoText(target ? errno : EINVAL));
      }
      if (chownFailed(::fchownat(fd, leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW))) {
        return fail(parts, "cannot chown: " + errnoText(errno));
      }
      return Status::ok();
    }
    case AE_IFIFO:
      if (::mkfifoat(fd, leaf.c_str(), perm) != 0) {
        return fail(parts, "cannot create fifo: " + errnoText(errno));
      }
      if (chownFailed(::fchownat(fd, leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW))) {
        return fail(parts, "cannot chown: " + errnoText(errno));
      }
      return Status::ok();
    default:
      return Status::ok();  // devices and sockets: not in a container's read-only root
  }
}

}  // namespace

Status applyLayer(const std::filesystem::path& rootfs, const std::filesystem::path& layer,
                  const std::function<bool()>& cancelled) {
  Fd root(::open(rootfs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return ioError("cannot open " + rootfs.string() + ": " + errnoText(errno));
  Applier applier(root.get(), layer.filename().string());
  for (int pass = 0; pass < 2; ++pass) {
    LayerReader reader(layer);
    if (!reader.openError().empty()) {
      return ioError("layer " + layer.string() + ": " + reader.openError());
    }
    Status status;
    while (archive_entry* e = reader.next(status)) {
      if (cancelled && cancelled()) return unavailable("unpacking cancelled");
      const char* name = pathnameOf(e);
      if (!name)
        return invalidArgument("layer " + layer.filename().string() + ": an entry has no name");
      auto parts = entryComponents(name);
      if (!parts)
        return invalidArgument("layer " + layer.filename().string() + ": " +
                               parts.status().message());
      if (parts->empty()) continue;  // "./": the root itself keeps its mode
      Whiteout w = whiteoutOf(parts->back());
      Status s;
      if (pass == 0 && w.kind != WhiteoutKind::kNone) s = applier.whiteout(e, *parts, w);
      if (pass == 1 && w.kind == WhiteoutKind::kNone) s = applier.entry(reader.get(), e, *parts);
      if (!s) return s;
    }
    if (!status)
      return Status(status.code(), "layer " + layer.filename().string() + ": " + status.message());
  }
  return Status::ok();
}

}  // namespace baton::drivers::oci
