#include "drivers/oci_test_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "drivers/instance_net.h"
#include "drivers/oci_image.h"

namespace baton::drivers::oci::testing {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

la_ssize_t appendToString(archive*, void* client, const void* buf, size_t n) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

void writeFile(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << data;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string gunzip(const std::string& gz) {
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_raw(a);
  archive_read_open_memory(a, gz.data(), gz.size());
  archive_entry* e;
  std::string out;
  if (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  archive_read_free(a);
  return out;
}

std::string putBlob(const fs::path& layout, const std::string& data) {
  std::string hex = sha256Hex(data);
  writeFile(layout / "blobs" / "sha256" / hex, data);
  return "sha256:" + hex;
}

}  // namespace

TarEntry file(std::string name, std::string data, int mode) {
  return {TarEntry::Type::kFile, std::move(name), std::move(data), mode};
}
TarEntry dir(std::string name, int mode) {
  return {TarEntry::Type::kDir, std::move(name), "", mode};
}
TarEntry symlink(std::string name, std::string target) {
  return {TarEntry::Type::kSymlink, std::move(name), std::move(target), 0777};
}
TarEntry hardlink(std::string name, std::string target) {
  return {TarEntry::Type::kHardlink, std::move(name), std::move(target), 0644};
}

std::string makeTar(const std::vector<TarEntry>& entries, bool gzip) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, appendToString, nullptr);
  for (const auto& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (t.type) {
      case TarEntry::Type::kFile:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
        archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
        break;
      case TarEntry::Type::kDir:
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
        break;
      case TarEntry::Type::kSymlink:
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, t.data.c_str());
        break;
      case TarEntry::Type::kHardlink:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
        archive_entry_set_hardlink(e, t.data.c_str());
        archive_entry_set_size(e, 0);
        break;
    }
    archive_write_header(a, e);
    if (t.type == TarEntry::Type::kFile && !t.data.empty()) {
      archive_write_data(a, t.data.data(), t.data.size());
    }
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

std::string writeLayout(const fs::path& layout, const std::vector<std::string>& layers,
                        const ImageOptions& o) {
  fs::create_directories(layout / "blobs" / "sha256");
  std::string arch = o.architecture.empty() ? hostArchitecture() : o.architecture;
  json layer_descs = json::array();
  json diff_ids = json::array();
  for (const auto& l : layers) {
    std::string digest = putBlob(layout, l);
    layer_descs.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                           {"digest", digest},
                           {"size", l.size()}});
    diff_ids.push_back("sha256:" + sha256Hex(gunzip(l)));
  }
  json cfg = json::object();
  if (!o.entrypoint.empty()) cfg["Entrypoint"] = o.entrypoint;
  if (!o.cmd.empty()) cfg["Cmd"] = o.cmd;
  cfg["Env"] = o.env;
  if (!o.working_dir.empty()) cfg["WorkingDir"] = o.working_dir;
  if (!o.user.empty()) cfg["User"] = o.user;
  json config = {{"architecture", arch},
                 {"os", o.os},
                 {"config", cfg},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  std::string config_text = config.dump();
  std::string config_digest = putBlob(layout, config_text);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", std::string(kMediaTypeManifest)},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", config_digest},
                     {"size", config_text.size()}}},
                   {"layers", layer_descs}};
  std::string manifest_text = manifest.dump();
  std::string manifest_digest = putBlob(layout, manifest_text);
  json entry = {{"mediaType", std::string(kMediaTypeManifest)},
                {"digest", manifest_digest},
                {"size", manifest_text.size()}};
  if (o.platform_in_index) entry["platform"] = {{"os", o.os}, {"architecture", arch}};
  json index = {{"schemaVersion", 2}, {"manifests", json::array({entry})}};
  writeFile(layout / "index.json", index.dump());
  writeFile(layout / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  return manifest_digest;
}

void writeArchive(const fs::path& layout, const fs::path& archive_path) {
  std::vector<TarEntry> entries;
  entries.push_back(file("oci-layout", readFile(layout / "oci-layout")));
  entries.push_back(file("index.json", readFile(layout / "index.json")));
  entries.push_back(dir("blobs"));
  entries.push_back(dir("blobs/sha256"));
  for (const auto& e : fs::directory_iterator(layout / "blobs" / "sha256")) {
    entries.push_back(file("blobs/sha256/" + e.path().filename().string(), readFile(e.path())));
  }
  writeFile(archive_path, makeTar(entries, false));
}

std::string busyboxPath() {
  for (const char* p : {"/bin/busybox", "/usr/bin/busybox"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

bool makeBusyboxArchive(const fs::path& archive_path, const ImageOptions& options) {
  std::string busybox = busyboxPath();
  if (busybox.empty()) return false;
  // Only a static busybox runs in an image without libc.
  std::string binary = readFile(busybox);
  if (binary.find("/lib64/ld-linux") != std::string::npos ||
      binary.find("/lib/ld-linux") != std::string::npos) {
    return false;
  }
  std::vector<TarEntry> entries = {dir("bin"), dir("etc"), file("bin/busybox", binary, 0755)};
  auto applets = runCommand({busybox, "--list"});
  if (!applets) return false;
  std::istringstream lines(*applets);
  std::string applet;
  while (std::getline(lines, applet)) {
    if (!applet.empty() && applet != "busybox")
      entries.push_back(symlink("bin/" + applet, "busybox"));
  }
  entries.push_back(file("etc/passwd",
                         "root:x:0:0:root:/root:/bin/sh\n"
                         "app:x:1000:1000:app:/:/bin/sh\n"
                         "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"));
  entries.push_back(file("etc/group", "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"));
  fs::path layout = archive_path.parent_path() / (archive_path.filename().string() + ".layout");
  writeLayout(layout, {makeTar(entries)}, options);
  writeArchive(layout, archive_path);
  fs::remove_all(layout);
  return true;
}

}  // namespace baton::drivers::oci::testing
