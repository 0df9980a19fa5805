// OCI images for the oci driver, the pure part: image references, the JSON documents of an
// image (index, manifest, config; image-spec v1), layer entry names and whiteouts, and the
// image's users. Nothing here touches the filesystem; oci_layer.h applies layers and
// oci_image_store.h unpacks and caches images.
//
// An image is named by where its bytes are on the node:
//   oci-archive:/path/app.tar   a tar of an OCI image layout (`podman save --format oci-archive`)
//   oci:/path/dir               an OCI image layout directory (oci-layout, index.json, blobs/)
// The image used is the index's manifest for the node's platform (linux/amd64 on x86-64), found
// through nested indexes; an index with a single manifest without a platform is taken as is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace baton::drivers::oci {

struct ImageRef {
  enum class Kind { kArchive, kLayout };
  Kind kind = Kind::kArchive;
  std::filesystem::path path;  // absolute
  std::string text;            // as written, for messages: "oci-archive:/x.tar"
};
// kInvalidArgument for anything else (a registry name, a relative path, an empty path).
Result<ImageRef> parseImageRef(std::string_view text);

// The node's platform in OCI terms: "amd64" for x86_64, "arm64" for aarch64, ...
std::string hostArchitecture();

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<64 hex>"
  int64_t size = 0;
  std::string os;  // platform, when given (indexes)
  std::string architecture;
};

inline constexpr std::string_view kMediaTypeIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeManifest = "application/vnd.oci.image.manifest.v1+json";

// The manifest (or nested index) of `index_json` for os/arch. Errors name what is missing:
// "has no linux/amd64 manifest (it has: linux/arm64)".
Result<Descriptor> selectManifest(std::string_view index_json, std::string_view os,
                                  std::string_view arch);

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;  // bottom first
};
Result<Manifest> parseManifest(std::string_view json);
// Whether a manifest's JSON is in fact an index (by mediaType or a "manifests" member).
bool isIndex(std::string_view json);

// What the driver uses of the image's config blob.
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "NAME=value"
  std::string working_dir;
  std::string user;  // "", "name", "uid", "name:group", "uid:gid"
  std::string os;    // the platform the image was built for (may be empty)
  std::string architecture;
};
Result<ImageConfig> parseImageConfig(std::string_view json);

// "sha256:<64 lower-case hex>" -> the hex. Other algorithms and malformed digests are errors
// (a digest becomes a file name: it must never hold a '/').
Result<std::string> digestHex(std::string_view digest);

// A layer entry's name as path components below the root: "./usr//bin/" -> {usr, bin}; "." or
// "./" -> {} (the root itself). Absolute names and any ".." component are kInvalidArgument:
// such an entry would land outside the root.
Result<std::vector<std::string>> entryComponents(std::string_view name);

// Whiteouts (image-spec layer.md): ".wh.<name>" deletes <name> of the lower layers in its
// directory; ".wh..wh..opq" deletes everything the lower layers put in its directory.
enum class WhiteoutKind { kNone, kFile, kOpaque };
struct Whiteout {
  WhiteoutKind kind = WhiteoutKind::kNone;
  std::string target;  // kFile: the name to delete
};
Whiteout whiteoutOf(std::string_view leaf);

struct UserIds {
  int64_t uid = 0;
  int64_t gid = 0;
};
// Resolves an image's `user` ("name", "uid", "name:group", "uid:gid", ...) against the image's
// /etc/passwd and /etc/group text. A numeric uid without a passwd entry has gid = uid unless a
// group is given. An unknown name is kNotFound naming it.
Result<UserIds> resolveImageUser(std::string_view user, std::string_view passwd,
                                 std::string_view group);

}  // namespace baton::drivers::oci
