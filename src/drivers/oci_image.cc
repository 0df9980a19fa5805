#include "drivers/oci_image.h"

#include <sys/utsname.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <sstream>

namespace baton::drivers::oci {
namespace {

using nlohmann::json;

Result<json> parse(std::string_view text, std::string_view what) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) return invalidArgument(std::string(what) + " is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    return invalidArgument(std::string(what) + " is not valid JSON: " + e.what());
  }
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<Descriptor> descriptor(const json& j, std::string_view what) {
  if (!j.is_object()) return invalidArgument(std::string(what) + " is not an object");
  Descriptor d;
  d.media_type = str(j, "mediaType");
  d.digest = str(j, "digest");
  if (auto s = j.find("size"); s != j.end() && s->is_number_integer()) d.size = s->get<int64_t>();
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    d.os = str(*p, "os");
    d.architecture = str(*p, "architecture");
  }
  if (auto hex = digestHex(d.digest); !hex) {
    return invalidArgument(std::string(what) + ": " + hex.status().message());
  }
  return d;
}

std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

bool isNumber(std::string_view s) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

int64_t toNumber(std::string_view s) {
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::vector<std::string> splitFields(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    size_t colon = line.find(':', start);
    fields.push_back(line.substr(start, colon - start));
    if (colon == std::string::npos) return fields;
    start = colon + 1;
  }
}

// The fields of the first line of a passwd/group file whose field `column` is `value`.
std::optional<std::vector<std::string>> findEntry(std::string_view file, size_t column,
                                                  std::string_view value) {
  std::istringstream lines{std::string(file)};
  std::string line;
  while (std::getline(lines, line)) {
    auto fields = splitFields(line);
    if (fields.size() >= 4 && fields[column] == value) return fields;
  }
  return std::nullopt;
}

}  // namespace

Result<ImageRef> parseImageRef(std::string_view text) {
  ImageRef ref;
  ref.text = std::string(text);
  std::string_view rest;
  if (text.rfind("oci-archive:", 0) == 0) {
    ref.kind = ImageRef::Kind::kArchive;
    rest = text.substr(12);
  } else if (text.rfind("oci:", 0) == 0) {
    ref.kind = ImageRef::Kind::kLayout;
    rest = text.substr(4);
  } else {
    return invalidArgument("image \"" + std::string(text) +
                           "\": the oci driver takes oci-archive:/path/app.tar or "
                           "oci:/path/layout-dir (no registry: pull with podman or skopeo first)");
  }
  if (rest.empty() || rest[0] != '/') {
    return invalidArgument("image \"" + std::string(text) + "\": the path must be absolute");
  }
  ref.path = std::filesystem::path(rest).lexically_normal();
  return ref;
}

std::string hostArchitecture() {
  utsname u{};
  if (::uname(&u) != 0) return "amd64";
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m.rfind("armv7", 0) == 0 || m.rfind("armv6", 0) == 0) return "arm";
  if (m == "i686" || m == "i386") return "386";
  return m;  // ppc64le, s390x, riscv64 are spelled the same
}

Result<Descriptor> selectManifest(std::string_view index_json, std::string_view os,
                                  std::string_view arch) {
  auto j = parse(index_json, "index");
  if (!j) return j.status();
  auto m = j->find("manifests");
  if (m == j->end() || !m->is_array() || m->empty()) {
    return invalidArgument("index lists no manifests");
  }
  std::vector<Descriptor> all;
  for (const auto& entry : *m) {
    auto d = descriptor(entry, "index entry");
    if (!d) return d.status();
    all.push_back(std::move(d.value()));
  }
  for (const auto& d : all) {
    if (d.os == os && d.architecture == arch) return d;
  }
  // podman and skopeo write a single manifest without a platform into index.json: the
  // platform is then in the image's config (checked by the caller).
  if (all.size() == 1 && all[0].os.empty() && all[0].architecture.empty()) return all[0];
  std::string have;
  for (const auto& d : all) {
    if (!have.empty()) have += ", ";
    have += d.os.empty() ? std::string("unknown platform") : d.os + "/" + d.architecture;
  }
  return notFound("has no " + std::string(os) + "/" + std::string(arch) +
                  " manifest (it has: " + have + ")");
}

bool isIndex(std::string_view text) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) return false;
    return str(j, "mediaType") == kMediaTypeIndex || j.contains("manifests");
  } catch (const json::exception&) {
    return false;
  }
}

Result<Manifest> parseManifest(std::string_view text) {
  auto j = parse(text, "manifest");
  if (!j) return j.status();
  Manifest m;
  auto config = j->find("config");
  if (config == j->end()) return invalidArgument("manifest has no config");
  auto c = descriptor(*config, "manifest config");
  if (!c) return c.status();
  m.config = std::move(c.value());
  auto layers = j->find("layers");
  if (layers == j->end() || !layers->is_array()) return invalidArgument("manifest has no layers");
  for (const auto& l : *layers) {
    auto d = descriptor(l, "manifest layer");
    if (!d) return d.status();
    m.layers.push_back(std::move(d.value()));
  }
  return m;
}

Result<ImageConfig> parseImageConfig(std::string_view text) {
  auto j = parse(text, "image config");
  if (!j) return j.status();
  ImageConfig c;
  c.os = str(*j, "os");
  c.architecture = str(*j, "architecture");
  auto cfg = j->find("config");
  if (cfg == j->end() || !cfg->is_object()) return c;  // an image with no defaults at all
  c.entrypoint = strings(*cfg, "Entrypoint");
  c.cmd = strings(*cfg, "Cmd");
  c.env = strings(*cfg, "Env");
  c.working_dir = str(*cfg, "WorkingDir");
  c.user = str(*cfg, "User");
  return c;
}

Result<std::string> digestHex(std::string_view digest) {
  if (digest.rfind("sha256:", 0) != 0) {
    return invalidArgument("digest \"" + std::string(digest) + "\" is not sha256:<hex>");
  }
  std::string_view hex = digest.substr(7);
  bool ok = hex.size() == 64;
  for (char c : hex) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) return invalidArgument("digest \"" + std::string(digest) + "\" is malformed");
  return std::string(hex);
}

Result<std::vector<std::string>> entryComponents(std::string_view name) {
  if (!name.empty() && name[0] == '/') {
    return invalidArgument("entry \"" + std::string(name) + "\" has an absolute path");
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(start, slash - start);
    if (part == "..") {
      return invalidArgument("entry \"" + std::string(name) + "\" leaves the root (\"..\")");
    }
    if (!part.empty() && part != ".") out.emplace_back(part);
    start = slash + 1;
  }
  return out;
}

Whiteout whiteoutOf(std::string_view leaf) {
  if (leaf == ".wh..wh..opq") return {WhiteoutKind::kOpaque, ""};
  if (leaf.rfind(".wh.", 0) == 0 && leaf.size() > 4) {
    return {WhiteoutKind::kFile, std::string(leaf.substr(4))};
  }
  return {};
}

Result<UserIds> resolveImageUser(std::string_view user, std::string_view passwd,
                                 std::string_view group) {
  std::string_view name = user;
  std::optional<std::string_view> group_name;
  if (size_t colon = user.find(':'); colon != std::string_view::npos) {
    name = user.substr(0, colon);
    group_name = user.substr(colon + 1);
  }
  UserIds ids;
  if (name.empty()) {
    return invalidArgument("user \"" + std::string(user) + "\" has no user part");
  }
  if (isNumber(name)) {
    ids.uid = toNumber(name);
    ids.gid = ids.uid;
    // A numeric user that has an entry also has its primary group.
    auto fields = findEntry(passwd, 2, name);
    if (fields && isNumber((*fields)[3])) ids.gid = toNumber((*fields)[3]);
  } else {
    auto fields = findEntry(passwd, 0, name);
    if (!fields || !isNumber((*fields)[2]) || !isNumber((*fields)[3])) {
      return notFound("user \"" + std::string(name) + "\" is not in the image's /etc/passwd");
    }
    ids.uid = toNumber((*fields)[2]);
    ids.gid = toNumber((*fields)[3]);
  }
  if (group_name) {
    if (isNumber(*group_name)) {
      ids.gid = toNumber(*group_name);
    } else {
      auto fields = findEntry(group, 0, *group_name);
      if (!fields || !isNumber((*fields)[2])) {
        return notFound("group \"" + std::string(*group_name) +
                        "\" is not in the image's /etc/group");
      }
      ids.gid = toNumber((*fields)[2]);
    }
  }
  return ids;
}

}  // namespace baton::drivers::oci
