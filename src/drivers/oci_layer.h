// Applies an OCI image layer (a tar, compressed or not) onto a root filesystem directory, the
// I/O half of oci_image.h. Used by the image store (oci_image_store.h) while unpacking.
//
// Safety: every entry is placed relative to the root by walking its parent path one component
// at a time with openat(O_NOFOLLOW) from a descriptor of the root, so nothing lands outside it:
// absolute names and ".." are refused (entryComponents), and an entry whose path runs through a
// symlink (one the layer made, or a lower layer) is refused too. Symlinks themselves are created
// as they are (they are only resolved inside the container). Device nodes are skipped (the
// container's /dev is a tmpfs that runc fills); ownership is applied when running as root.
//
// Whiteouts apply to the lower layers only, so a layer is read twice: its whiteouts first, then
// its other entries.
#pragma once

#include <filesystem>
#include <functional>

#include "core/result.h"

namespace baton::drivers::oci {

// `rootfs` must be an existing directory. `cancelled`, when set, is polled between entries; a
// cancelled apply returns kUnavailable and leaves the root half-made (the caller discards it).
// Errors name the layer entry: "entry \"../x\" leaves the root (\"..\")".
Status applyLayer(const std::filesystem::path& rootfs, const std::filesystem::path& layer,
                  const std::function<bool()>& cancelled = {});

}  // namespace baton::drivers::oci
