// Container image references as Docker reads them (the distribution "reference" grammar):
// [registry[:port]/]path[:tag][@algorithm:hex]. Pure; the manifest parser checks `image` with
// it and the container drivers ask their engine for ImageRef::text().
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace baton::model {

// An image reference as Docker reads it: [registry[:port]/]path[:tag][@algo:hex]. `name` is
// everything before the tag/digest ("localhost/shop", "docker.io/library/nginx", "nginx").
struct ImageRef {
  std::string name;
  std::string tag;     // "latest" when neither tag nor digest is given
  std::string digest;  // "sha256:..." or empty
  std::string text() const;  // name:tag or name@digest (what the engine is asked for)
};
// A clear error for anything the reference grammar refuses ("image \"Nginx\": the repository
// name must be lower case").
Result<ImageRef> parseImageRef(std::string_view text);

}  // namespace baton::model
