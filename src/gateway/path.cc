#include "gateway/path.h"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <new>

namespace baton::gateway {
namespace {

// "a//b///c" -> "a/b/c", in place.
void mergeSlashes(std::string* s) {
  size_t w = 0;
  for (size_t r = 0; r < s->size(); ++r) {
    if ((*s)[r] == '/' && w > 0 && (*s)[w - 1] == '/') continue;
    (*s)[w++] = (*s)[r];
  }
  s->resize(w);
}

// Boost.URL 1.81 keeps ".." segments that climb above the root ("/../a"); RFC 3986 §5.2.4
// drops them.
void dropLeadingDotDot(std::string* path) {
  size_t skip = 0;
  for (;;) {
    std::string_view rest = std::string_view(*path).substr(skip);
    if (rest == "/..") {
      skip += 3;
      break;
    }
    if (rest.substr(0, 4) != "/../") break;
    skip += 3;
  }
  if (skip > 0) path->erase(0, skip);
  if (path->empty()) *path = "/";
}

// The characters no path may carry, raw or (for separators) encoded.
PathError refusedIn(std::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '\\') return PathError::kBackslash;
    if (c == ';') return PathError::kSemicolon;
    if (c == '%' && i + 2 < path.size()) {
      char h = path[i + 1], l = static_cast<char>(path[i + 2] | 0x20);
      if (h == '2' && l == 'f') return PathError::kEncodedSlash;
      if (h == '5' && l == 'c') return PathError::kBackslash;
      if (h == '0' && l == '0') return PathError::kNul;
    }
  }
  return PathError::kNone;
}

// RFC 3986 pchar without pct-encoded: unreserved / sub-delims / ":" / "@".
bool plainPchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
    case '(': case ')': case '*': case '+': case ',': case ';': case '=': case ':': case '@':
      return true;
    default:
      return false;
  }
}

// The common case: a target already in normal form (no percent-encoding, no dot segment, no
// empty segment, only plain characters) needs no rewriting.
bool alreadyNormal(std::string_view target) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '/') {
      if (i + 1 < path.size() && (path[i + 1] == '/' || path[i + 1] == '.')) return false;
    } else if (!plainPchar(c)) {
      return false;
    }
  }
  if (q == std::string_view::npos) return true;
  for (char c : target.substr(q + 1)) {
    if (!plainPchar(c) && c != '/' && c != '?') return false;
  }
  return true;
}

}  // namespace

const char* pathErrorText(PathError e) {
  switch (e) {
    case PathError::kNone: return "ok";
    case PathError::kSyntax: return "bad request target";
    case PathError::kEncodedSlash: return "encoded slash (%2F) in path";
    case PathError::kBackslash: return "backslash in path";
    case PathError::kSemicolon: return "';' in path";
    case PathError::kNul: return "NUL (%00) in path";
  }
  return "bad path";
}

PathError normalizeTarget(std::string_view target, std::string* out) {
  if (target.empty() || target.front() != '/') return PathError::kSyntax;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (PathError e = refusedIn(path); e != PathError::kNone) return e;
  if (alreadyNormal(target)) {
    out->assign(target.data(), target.size());
    return PathError::kNone;
  }
  std::string merged(path);
  mergeSlashes(&merged);
  if (q != std::string_view::npos) merged.append(target.substr(q));
  try {
    auto parsed = boost::urls::parse_origin_form(merged);
    if (!parsed) return PathError::kSyntax;
    boost::urls::url u(*parsed);
    u.normalize_path();
    std::string_view p = u.encoded_path();
    out->assign(p.data(), p.size());
    dropLeadingDotDot(out);
    mergeSlashes(out);
    if (out->empty() || out->front() != '/') return PathError::kSyntax;
    // Boost.URL 1.81 decodes every character a path may hold unencoded, sub-delimiters too
    // ("%3B" becomes ";", found by gateway_fuzz): the result is checked like the input.
    if (PathError e = refusedIn(*out); e != PathError::kNone) return e;
    if (u.has_query()) {
      *out += '?';
      std::string_view query = u.encoded_query();
      out->append(query.data(), query.size());
    }
  } catch (const std::bad_alloc&) {
    return PathError::kSyntax;
  } catch (const std::exception&) {  // Boost.URL reports misuse by exceptions; never expected
    return PathError::kSyntax;
  }
  return PathError::kNone;
}

}  // namespace baton::gateway
