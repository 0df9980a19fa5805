#include "model/image_ref.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace baton::model {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool isWord(char c) { return isAlnum(c) || c == '_'; }

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | -+
bool validPathComponent(std::string_view s) {
  if (s.empty() || !isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (isLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !isLowerAlnum(s[j])) ++j;
    std::string_view sep = s.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              std::all_of(sep.begin(), sep.end(), [](char c) { return c == '-'; });
    if (!ok) return false;
    i = j;
  }
  return true;
}

// domain := component ('.' component)* [':' port], component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
bool validDomain(std::string_view s) {
  size_t colon = s.find(':');
  std::string_view host = s.substr(0, colon);
  if (colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
  }
  if (host.empty()) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view part = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty() || !isAlnum(part.front()) || !isAlnum(part.back())) return false;
    for (char c : part) {
      if (!isAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

}  // namespace

std::string ImageRef::text() const { return digest.empty() ? name + ":" + tag : name + "@" + digest; }

Result<ImageRef> parseImageRef(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return invalidArgument("image \"" + std::string(text) + "\": " + why);
  };
  if (text.empty()) return invalidArgument("image: empty reference");
  if (text.size() > 512) return bad("longer than 512 characters");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      return bad("contains a space or a control or non-ASCII character");
    }
  }
  ImageRef ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    size_t colon = digest.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad("a digest is algorithm:hex");
    std::string_view algo = digest.substr(0, colon), hex = digest.substr(colon + 1);
    if (!std::isalpha(static_cast<unsigned char>(algo.front())) ||
        !std::all_of(algo.begin(), algo.end(),
                     [](char c) { return isAlnum(c) || c == '+' || c == '.' || c == '_' || c == '-'; })) {
      return bad("invalid digest algorithm");
    }
    if (hex.size() < 32 || !std::all_of(hex.begin(), hex.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0;
        })) {
      return bad("a digest's hex part has at least 32 hexadecimal digits");
    }
    ref.digest = std::string(digest);
  }
  // A tag follows the last ':' after the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (tag.empty() || tag.size() > 128 || !isWord(tag.front()) ||
        !std::all_of(tag.begin(), tag.end(), [](char c) { return isWord(c) || c == '.' || c == '-'; })) {
      return bad("a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'");
    }
    ref.tag = std::string(tag);
  }
  if (rest.empty()) return bad("missing the repository name");
  if (rest.size() > 255) return bad("the repository name is longer than 255 characters");
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t s = rest.find('/', start);
    parts.push_back(rest.substr(start, s == std::string_view::npos ? std::string_view::npos : s - start));
    if (s == std::string_view::npos) break;
    start = s + 1;
  }
  size_t first_path = 0;
  if (parts.size() > 1) {
    std::string_view first = parts[0];
    bool is_domain = first.find('.') != std::string_view::npos ||
                     first.find(':') != std::string_view::npos || first == "localhost" ||
                     std::any_of(first.begin(), first.end(), [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
    if (is_domain) {
      if (!validDomain(first)) return bad("invalid registry host \"" + std::string(first) + "\"");
      first_path = 1;
    }
  }
  for (size_t i = first_path; i < parts.size(); ++i) {
    if (!validPathComponent(parts[i])) {
      bool upper = std::any_of(parts[i].begin(), parts[i].end(),
                               [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
      return bad(upper ? "the repository name must be lower case"
                       : "invalid repository name component \"" + std::string(parts[i]) +
                             "\" (expected [a-z0-9] separated by '.', '_', '__' or '-')");
    }
  }
  ref.name = std::string(rest);
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace baton::model
