// Test images for the oci driver's tests (test-only code): layers as tar bytes, OCI image
// layouts and oci-archives written the way `podman save --format oci-archive` lays them out,
// and a busybox image made from the host's static busybox (Debian's busybox-static).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace baton::drivers::oci::testing {

struct TarEntry {
  enum class Type { kFile, kDir, kSymlink, kHardlink };
  Type type = Type::kFile;
  std::string name;
  std::string data;  // file content, or the link target
  int mode = 0644;
};
TarEntry file(std::string name, std::string data, int mode = 0644);
TarEntry dir(std::string name, int mode = 0755);
TarEntry symlink(std::string name, std::string target);
TarEntry hardlink(std::string name, std::string target);

// A tar (pax) of `entries`, gzip-compressed when `gzip`.
std::string makeTar(const std::vector<TarEntry>& entries, bool gzip = true);
std::string sha256Hex(const std::string& data);

struct ImageOptions {
  std::vector<std::string> entrypoint = {};
  std::vector<std::string> cmd = {"sh"};
  std::vector<std::string> env = {"PATH=/bin", "FROM_IMAGE=yes"};
  std::string working_dir = "";
  std::string user = "";
  std::string os = "linux";
  std::string architecture = "";   // default: the host's
  bool platform_in_index = false;  // index.json entry with a platform (else none, as podman)
};

// Writes an OCI image layout at `dir` (layers are tar+gzip bytes, bottom first). Returns the
// manifest digest ("sha256:...").
std::string writeLayout(const std::filesystem::path& dir, const std::vector<std::string>& layers,
                        const ImageOptions& options = {});
// Tars the layout at `layout` into `archive` (an oci-archive).
void writeArchive(const std::filesystem::path& layout, const std::filesystem::path& archive);

// The host's static busybox, or "" when it is not installed.
std::string busyboxPath();
// An oci-archive at `archive` with /bin/busybox and a symlink per applet, /etc/passwd (root,
// nobody, app=1000), /etc/group, Cmd ["sh"]. Returns false when there is no static busybox.
bool makeBusyboxArchive(const std::filesystem::path& archive, const ImageOptions& options = {});

}  // namespace baton::drivers::oci::testing
