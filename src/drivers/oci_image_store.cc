#include "drivers/oci_image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "drivers/exec_internal.h"
#include "drivers/oci_layer.h"

namespace baton::drivers::oci {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxJsonBlob = 4u << 20;     // index, manifest and config blobs
constexpr size_t kMaxSmallBlobs = 64u << 20;  // all the small blobs of an archive kept in memory
constexpr int kMaxIndexDepth = 4;

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += kHex[md[i] >> 4];
      out += kHex[md[i] & 0xf];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha256Hex(const std::string& data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex();
}

std::string megabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

// Where an image's blobs come from.
class Source {
 public:
  virtual ~Source() = default;
  virtual Result<std::string> index() = 0;
  // A JSON blob, digest-checked.
  virtual Result<std::string> smallBlob(const std::string& hex) = 0;
  // Files holding the given layer blobs, digest-checked (copied into `scratch` if needed).
  virtual Result<std::map<std::string, fs::path>> layers(const std::set<std::string>& hexes,
                                                         const fs::path& scratch,
                                                         std::stop_token stop) = 0;
};

Result<std::string> readLimited(const fs::path& path, size_t limit) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) return notFound(path.filename().string() + ": " + ec.message());
  if (size > limit) return invalidArgument(path.filename().string() + " is too large");
  return exec::readWholeFile(path);
}

Status checkFileDigest(const fs::path& path, const std::string& hex) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return notFound("blob sha256:" + hex + " is missing");
  Sha256 h;
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) h.update(buf, static_cast<size_t>(n));
  ::close(fd);
  if (n < 0) return ioError("cannot read blob sha256:" + hex);
  if (h.hex() != hex) return invalidArgument("blob sha256:" + hex + " does not match its digest");
  return Status::ok();
}

class LayoutSource final : public Source {
 public:
  explicit LayoutSource(fs::path dir) : dir_(std::move(dir)) {}
  Result<std::string> index() override { return readLimited(dir_ / "index.json", kMaxJsonBlob); }
  Result<std::string> smallBlob(const std::string& hex) override {
    auto text = readLimited(dir_ / "blobs" / "sha256" / hex, kMaxJsonBlob);
    if (!text) return notFound("blob sha256:" + hex + " is missing");
    if (sha256Hex(*text) != hex) {
      return invalidArgument("blob sha256:" + hex + " does not match its digest");
    }
    return text;
  }
  Result<std::map<std::string, fs::path>> layers(const std::set<std::string>& hexes,
                                                 const fs::path&, std::stop_token) override {
    std::map<std::string, fs::path> out;
    for (const auto& hex : hexes) {
      fs::path p = dir_ / "blobs" / "sha256" / hex;
      if (Status s = checkFileDigest(p, hex); !s) return s;
      out[hex] = p;
    }
    return out;
  }

 private:
  fs::path dir_;
};

// A tar of an image layout. Read twice at most: once for index.json and the small blobs (the
// JSON documents), once to copy out the layers the manifest needs.
class ArchiveSource final : public Source {
 public:
  explicit ArchiveSource(fs::path tar) : tar_(std::move(tar)) {}

  Result<std::string> index() override {
    if (Status s = scanSmall(); !s) return s;
    auto it = small_.find("index.json");
    if (it == small_.end()) return notFound("the archive has no index.json");
    return it->second;
  }
  Result<std::string> smallBlob(const std::string& hex) override {
    if (Status s = scanSmall(); !s) return s;
    auto it = small_.find("blobs/sha256/" + hex);
    if (it == small_.end()) return notFound("blob sha256:" + hex + " is missing");
    if (sha256Hex(it->second) != hex) {
      return invalidArgument("blob sha256:" + hex + " does not match its digest");
    }
    return it->second;
  }
  Result<std::map<std::string, fs::path>> layers(const std::set<std::string>& hexes,
                                                 const fs::path& scratch,
                                                 std::stop_token stop) override {
    std::map<std::string, fs::path> out;
    Status status = forEach([&](archive* a, const std::string& name, int64_t) -> Status {
      if (name.rfind("blobs/sha256/", 0) != 0) return Status::ok();
      std::string hex = name.substr(13);
      if (!hexes.count(hex) || out.count(hex)) return Status::ok();
      if (stop.stop_requested()) return unavailable("unpacking cancelled");
      fs::path dest = scratch / hex;
      int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return ioError("cannot create " + dest.string());
      Sha256 h;
      char buf[1 << 16];
      la_ssize_t n;
      bool write_ok = true;
      while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
        h.update(buf, static_cast<size_t>(n));
        write_ok = write_ok && ::write(fd, buf, static_cast<size_t>(n)) == n;
      }
      ::close(fd);
      if (n < 0) return invalidArgument(std::string("corrupt archive: ") + archive_error_string(a));
      if (!write_ok) return ioError("cannot write " + dest.string());
      if (h.hex() != hex) {
        return invalidArgument("blob sha256:" + hex + " does not match its digest");
      }
      out[hex] = dest;
      return Status::ok();
    });
    if (!status) return status;
    for (const auto& hex : hexes) {
      if (!out.count(hex)) return notFound("layer blob sha256:" + hex + " is missing");
    }
    return out;
  }

 private:
  static std::string clean(std::string name) {
    while (name.rfind("./", 0) == 0) name.erase(0, 2);
    return name;
  }

  Status forEach(const std::function<Status(archive*, const std::string&, int64_t)>& fn) {
    archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    Status status;
    if (archive_read_open_filename(a, tar_.c_str(), 1 << 16) != ARCHIVE_OK) {
      status = invalidArgument(std::string("not a readable tar: ") + archive_error_string(a));
    }
    archive_entry* e;
    while (status) {
      int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        status = invalidArgument(std::string("corrupt archive: ") + archive_error_string(a));
        break;
      }
      if (archive_entry_filetype(e) != AE_IFREG) continue;
      const char* name = archive_entry_pathname(e);
      if (!name) continue;
      status = fn(a, clean(name), archive_entry_size(e));
    }
    archive_read_free(a);
    return status;
  }

  Status scanSmall() {
    if (scanned_) return Status::ok();
    size_t total = 0;
    Status s = forEach([&](archive* a, const std::string& name, int64_t size) -> Status {
      if (size < 0 || static_cast<size_t>(size) > kMaxJsonBlob) return Status::ok();
      if (name != "index.json" && name.rfind("blobs/sha256/", 0) != 0) return Status::ok();
      if (total + static_cast<size_t>(size) > kMaxSmallBlobs) return Status::ok();
      std::string data(static_cast<size_t>(size), '\0');
      la_ssize_t n = archive_read_data(a, data.data(), data.size());
      if (n != size) return invalidArgument("corrupt archive entry " + name);
      total += data.size();
      small_[name] = std::move(data);
      return Status::ok();
    });
    if (!s) return s;
    scanned_ = true;
    return Status::ok();
  }

  fs::path tar_;
  bool scanned_ = false;
  std::map<std::string, std::string> small_;
};

Result<PreparedImage> resolveAndUnpack(Source& source, const ImageRef& ref,
                                       const fs::path& cache_dir, const std::string& os,
                                       const std::string& arch, std::stop_token stop,
                                       const std::function<void(std::string)>& progress) {
  auto index = source.index();
  if (!index) return index.status();
  std::string doc = *index;
  Descriptor chosen;
  for (int depth = 0;; ++depth) {
    if (depth == kMaxIndexDepth) return invalidArgument("indexes nested too deep");
    auto d = selectManifest(doc, os, arch);
    if (!d) return d.status();
    auto hex = digestHex(d->digest);
    if (!hex) return hex.status();
    auto blob = source.smallBlob(*hex);
    if (!blob) return blob.status();
    doc = *blob;
    chosen = *d;
    if (!isIndex(doc)) break;
  }
  auto manifest = parseManifest(doc);
  if (!manifest) return manifest.status();
  auto config_hex = digestHex(manifest->config.digest);
  if (!config_hex) return config_hex.status();
  auto config_text = source.smallBlob(*config_hex);
  if (!config_text) return config_text.status();
  auto config = parseImageConfig(*config_text);
  if (!config) return config.status();
  if ((!config->os.empty() && config->os != os) ||
      (!config->architecture.empty() && config->architecture != arch)) {
    return notFound("has no " + os + "/" + arch + " manifest (it is " + config->os + "/" +
                    config->architecture + ")");
  }

  PreparedImage image;
  image.manifest_digest = chosen.digest;
  image.config = std::move(config.value());
  fs::path final_dir = cache_dir / *digestHex(chosen.digest);
  image.rootfs = final_dir / "rootfs";
  std::error_code ec;
  if (fs::is_directory(image.rootfs, ec)) return image;  // unpacked before

  // Unpack into tmp-<random>/, rename when complete.
  std::random_device rd;
  fs::path tmp = cache_dir / ("tmp-" + std::to_string(rd()) + std::to_string(rd()));
  fs::path scratch = cache_dir / (tmp.filename().string() + "-blobs");
  auto cleanup = [&] {
    fs::remove_all(tmp, ec);
    fs::remove_all(scratch, ec);
  };
  fs::create_directories(tmp / "rootfs", ec);
  fs::create_directories(scratch, ec);
  if (ec) return ioError("cannot create " + tmp.string() + ": " + ec.message());
  ::chmod((tmp / "rootfs").c_str(), 0755);

  std::set<std::string> hexes;
  int64_t total = 0;
  for (const auto& l : manifest->layers) {
    hexes.insert(*digestHex(l.digest));
    total += l.size;
  }
  if (progress) progress("unpacking image " + ref.text + ": reading " + megabytes(total));
  auto files = source.layers(hexes, scratch, stop);
  if (!files) {
    cleanup();
    return files.status();
  }
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    const Descriptor& l = manifest->layers[i];
    if (progress) {
      progress("unpacking image " + ref.text + ": layer " + std::to_string(i + 1) + " of " +
               std::to_string(manifest->layers.size()) + " (" + megabytes(l.size) + ")");
    }
    Status s = applyLayer(tmp / "rootfs", files->at(*digestHex(l.digest)),
                          [&] { return stop.stop_requested(); });
    if (!s) {
      cleanup();
      return s;
    }
  }
  fs::remove_all(scratch, ec);
  // Mountpoints runc needs; made now because the root is read-only (and shared) later. runc
  // gives a tmpfs the mode of its mountpoint, so a /tmp the image lacks is made 1777.
  for (const char* dir : {"proc", "dev", "sys", "tmp"}) {
    fs::path p = tmp / "rootfs" / dir;
    if (fs::exists(fs::symlink_status(p, ec))) continue;
    fs::create_directory(p, ec);
    ::chmod(p.c_str(), std::string(dir) == "tmp" ? 01777 : 0755);
  }
  if (Status s = exec::writeFileAtomic(tmp / "config.json", *config_text); !s) {
    cleanup();
    return s;
  }
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    // Another unpacking of the same digest (through another reference) won the race.
    cleanup();
    if (!fs::is_directory(image.rootfs, ec)) {
      return ioError("cannot move the unpacked image to " + final_dir.string());
    }
  }
  return image;
}

std::string fingerprintOf(const ImageRef& ref) {
  fs::path p = ref.kind == ImageRef::Kind::kArchive ? ref.path : ref.path / "index.json";
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

Result<PreparedImage> unpackImage(const ImageRef& ref, const fs::path& cache_dir,
                                  const std::string& os, const std::string& arch,
                                  std::stop_token stop,
                                  const std::function<void(std::string)>& progress) {
  std::error_code ec;
  std::unique_ptr<Source> source;
  if (ref.kind == ImageRef::Kind::kArchive) {
    if (!fs::exists(ref.path, ec)) return notFound("image " + ref.text + ": no such file");
    if (!fs::is_regular_file(ref.path, ec)) {
      return invalidArgument("image " + ref.text + ": not a file");
    }
    source = std::make_unique<ArchiveSource>(ref.path);
  } else {
    if (!fs::exists(ref.path, ec)) return notFound("image " + ref.text + ": no such directory");
    if (!fs::exists(ref.path / "index.json", ec)) {
      return invalidArgument("image " + ref.text + ": not an OCI image layout (no index.json)");
    }
    source = std::make_unique<LayoutSource>(ref.path);
  }
  fs::create_directories(cache_dir, ec);
  if (ec) return ioError("cannot create " + cache_dir.string() + ": " + ec.message());
  auto image = resolveAndUnpack(*source, ref, cache_dir, os, arch, stop, progress);
  if (!image)
    return Status(image.status().code(), "image " + ref.text + ": " + image.status().message());
  return image;
}

ImageStore::ImageStore(fs::path cache_dir, std::string os, std::string arch)
    : cache_dir_(std::move(cache_dir)), os_(std::move(os)), arch_(std::move(arch)) {
  std::error_code ec;
  fs::create_directories(cache_dir_, ec);
  // Only runc (root) goes through here: the container sees its rootfs as "/".
  ::chmod(cache_dir_.c_str(), 0700);
  for (const auto& entry : fs::directory_iterator(cache_dir_, ec)) {
    if (entry.path().filename().string().rfind("tmp-", 0) == 0) fs::remove_all(entry.path(), ec);
  }
}

ImageStore::~ImageStore() {
  std::map<std::string, std::shared_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs.swap(jobs_);
    for (auto& [name, job] : jobs) job->thread.request_stop();
  }
  jobs.clear();  // joins
}

std::shared_ptr<ImageStore::Job> ImageStore::jobFor(const ImageRef& ref) {
  std::string fingerprint = fingerprintOf(ref);
  auto it = jobs_.find(ref.text);
  if (it != jobs_.end()) {
    Job& job = *it->second;
    if (!job.done || !job.result || job.fingerprint == fingerprint) return it->second;
    // Done, and the source changed since: fall through and unpack it again.
  }
  auto job = std::make_shared<Job>();
  job->fingerprint = fingerprint;
  job->progress = "unpacking image " + ref.text;
  Job* raw = job.get();
  raw->thread = std::jthread([this, raw, ref](std::stop_token stop) {
    auto result = unpackImage(ref, cache_dir_, os_, arch_, stop, [&](std::string line) {
      std::lock_guard<std::mutex> lock(mu_);
      raw->progress = std::move(line);
    });
    std::lock_guard<std::mutex> lock(mu_);
    raw->result = std::move(result);
    raw->done = true;
    cv_.notify_all();
  });
  jobs_[ref.text] = job;
  return job;
}

Result<Preparation> ImageStore::prepare(const std::string& image) {
  auto ref = parseImageRef(image);
  if (!ref) return ref.status();
  std::unique_lock<std::mutex> lock(mu_);
  std::shared_ptr<Job> job = jobFor(*ref);
  if (!job->done) return Preparation{.ready = false, .progress = job->progress};
  if (!job->result) {
    Status error = job->result.status();
    jobs_.erase(ref->text);  // reported once; the next call tries again
    lock.unlock();
    return error;
  }
  return Preparation{};
}

Result<PreparedImage> ImageStore::get(const std::string& image) {
  auto ref = parseImageRef(image);
  if (!ref) return ref.status();
  std::unique_lock<std::mutex> lock(mu_);
  std::shared_ptr<Job> job = jobFor(*ref);
  cv_.wait(lock, [&] { return job->done; });
  Result<PreparedImage> result = job->result;
  if (!result) {
    auto it = jobs_.find(ref->text);
    if (it != jobs_.end() && it->second == job) jobs_.erase(it);
  }
  return result;
}

}  // namespace baton::drivers::oci
