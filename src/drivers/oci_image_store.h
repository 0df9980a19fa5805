// The oci driver's image cache: unpacks an image (oci_image.h) once per manifest digest into a
// root filesystem that every instance of it shares read-only.
//
// Cache layout (<cache_dir>/):
//   <manifest hex>/rootfs        the unpacked layers (plus empty /proc /dev /sys /tmp mountpoints)
//   <manifest hex>/config.json   the image's config blob
//   tmp-*                        an unpacking under way (renamed to <manifest hex> when complete;
//                                left-overs of a crash are removed when the store is created)
// A complete entry is never modified again, so readers need no lock.
//
// Unpacking is slow, so prepare() runs it on a thread of its own (one per image reference) and
// reports progress until it is done; get() waits for it (or starts it) and returns the result.
// The source's identity (size, mtime, inode of the archive or of the layout's index.json) is
// remembered: when it changes, the next prepare()/get() unpacks again (a new digest).
//
// Every blob is checked against its sha256 digest; indexes and manifests are followed to the
// node's platform (oci_image.h).
//
// Thread safety: all methods may be called from any thread. The destructor cancels unpackings
// under way and waits for their threads.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "core/result.h"
#include "drivers/driver.h"
#include "drivers/oci_image.h"

namespace baton::drivers::oci {

struct PreparedImage {
  std::string manifest_digest;   // "sha256:..."
  std::filesystem::path rootfs;  // shared; never written to after unpacking
  ImageConfig config;
};

// The slow step alone (what the store's threads run): resolves `ref` to its manifest for
// os/arch and unpacks it under `cache_dir` unless that digest is there already. `progress`
// (may be empty) is told what happens: "unpacking image X: layer 2 of 3 (1.2 MB)". Errors start
// with the image: "image oci-archive:/x.tar: no such file".
Result<PreparedImage> unpackImage(const ImageRef& ref, const std::filesystem::path& cache_dir,
                                  const std::string& os, const std::string& arch,
                                  std::stop_token stop = {},
                                  const std::function<void(std::string)>& progress = {});

class ImageStore {
 public:
  explicit ImageStore(std::filesystem::path cache_dir, std::string os = "linux",
                      std::string arch = hostArchitecture());
  ~ImageStore();
  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  // Never blocks: ready, or not yet with a progress line. A failed unpacking is reported once
  // (then forgotten: the next call tries again).
  Result<Preparation> prepare(const std::string& image);
  // The unpacked image, unpacking it now (and waiting) when needed.
  Result<PreparedImage> get(const std::string& image);

 private:
  struct Job {
    std::string fingerprint;
    bool done = false;  // guarded by mu_, as are result and progress
    Result<PreparedImage> result = Status(Code::kUnavailable, "unpacking");
    std::string progress;
    std::jthread thread;  // last: joined before the fields above go away
  };
  // The job for `image`, started when there is none or its source changed. mu_ held.
  std::shared_ptr<Job> jobFor(const ImageRef& ref);

  std::filesystem::path cache_dir_;
  std::string os_;
  std::string arch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // by image reference text
};

}  // namespace baton::drivers::oci
