#include "spec/toml_check.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "core/units.h"

namespace baton::spec::detail {
namespace {

constexpr size_t kMaxQuoted = 64;

std::string formatDouble(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string joinKey(std::string_view path, std::string_view key) {
  std::string out(path);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

std::string indexKey(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

std::string quote(std::string_view text) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : text) {
    if (n++ == kMaxQuoted) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string describe(const toml::node& node) {
  std::string type = typeName(node);
  if (const auto* s = node.as_string()) return type + " " + quote(s->get());
  if (const auto* i = node.as_integer()) return type + " " + std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) return type + " " + formatDouble(f->get());
  if (const auto* b = node.as_boolean()) return type + (b->get() ? " true" : " false");
  if (node.is_date() || node.is_time() || node.is_date_time()) {
    std::ostringstream os;
    node.visit([&](auto&& v) {
      if constexpr (toml::is_date<decltype(v)> || toml::is_time<decltype(v)> ||
                    toml::is_date_time<decltype(v)>) {
        os << v;
      }
    });
    return type + " " + os.str();
  }
  return type;
}

void Checker::error(const toml::source_region& where, std::string key, std::string message) {
  Diagnostic d;
  d.file = file_;
  d.line = static_cast<int>(where.begin.line);
  d.column = static_cast<int>(where.begin.column);
  d.key = std::move(key);
  d.message = std::move(message);
  errors_.push_back(std::move(d));
}

void Checker::expected(const toml::node& node, std::string key, std::string_view what) {
  error(node, std::move(key), "expected " + std::string(what) + ", got " + describe(node));
}

void Checker::checkKeys(const toml::table& table, std::string_view path,
                        std::initializer_list<std::string_view> allowed) {
  for (auto&& [k, v] : table) {
    if (std::find(allowed.begin(), allowed.end(), k.str()) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) {
      if (!list.empty()) list += ", ";
      list += a;
    }
    error(k.source(), joinKey(path, k.str()),
          "unknown key " + quote(k.str()) + (path.empty() ? "" : " in " + std::string(path)) +
              "; expected one of: " + list);
  }
}

toml::source_region Checker::keySource(const toml::table& t, std::string_view key) const {
  auto it = t.find(key);
  if (it != t.end()) return it->first.source();
  return t.source();
}

std::optional<std::string> Checker::string(const toml::table& t, std::string_view path,
                                           std::string_view key, bool non_empty) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* s = n->as_string();
  if (s == nullptr || (non_empty && s->get().empty())) {
    expected(*n, joinKey(path, key), non_empty ? "a non-empty string" : "a string");
    return std::nullopt;
  }
  return s->get();
}

std::optional<int64_t> Checker::integer(const toml::table& t, std::string_view path,
                                        std::string_view key, int64_t lo, int64_t hi) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* i = n->as_integer();
  if (i == nullptr || i->get() < lo || i->get() > hi) {
    expected(*n, joinKey(path, key),
             "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return std::nullopt;
  }
  return i->get();
}

std::optional<double> Checker::number(const toml::table& t, std::string_view path,
                                      std::string_view key, double lo_exclusive, double hi,
                                      std::string_view what) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  std::optional<double> v;
  if (const auto* i = n->as_integer()) v = static_cast<double>(i->get());
  if (const auto* f = n->as_floating_point()) v = f->get();
  if (!v || !std::isfinite(*v) || *v <= lo_exclusive || *v > hi) {
    expected(*n, joinKey(path, key), what);
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Checker::boolean(const toml::table& t, std::string_view path,
                                     std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* b = n->as_boolean();
  if (b == nullptr) {
    expected(*n, joinKey(path, key), "a boolean (true or false)");
    return std::nullopt;
  }
  return b->get();
}

std::optional<Duration> Checker::duration(const toml::table& t, std::string_view path,
                                          std::string_view key, bool positive) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* s = n->as_string();
  std::optional<Duration> d;
  if (s != nullptr) d = parseDuration(s->get());
  if (!d || (positive && d->count() <= 0)) {
    expected(*n, joinKey(path, key),
             std::string(positive ? "a positive" : "a") +
                 " duration such as \"250ms\", \"10s\", \"5m\", \"2h\", \"1d\" or \"1h30m\"");
    return std::nullopt;
  }
  return d;
}

std::optional<uint64_t> Checker::bytes(const toml::table& t, std::string_view path,
                                       std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* s = n->as_string();
  std::optional<uint64_t> b;
  if (s != nullptr) b = parseBytes(s->get());
  if (!b || *b == 0) {
    expected(*n, joinKey(path, key),
             "a positive size such as \"128MiB\" or \"1GB\" (an integer with no space and one "
             "of the suffixes KiB, MiB, GiB, TiB, kB, MB, GB, TB, or none for bytes)");
    return std::nullopt;
  }
  return b;
}

std::optional<std::vector<std::string>> Checker::stringArray(const toml::table& t,
                                                             std::string_view path,
                                                             std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* a = n->as_array();
  std::string full = joinKey(path, key);
  if (a == nullptr) {
    expected(*n, full, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool good = true;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    const auto* s = e.as_string();
    if (s == nullptr || s->get().empty()) {
      expected(e, indexKey(full, i), "a non-empty string");
      good = false;
      continue;
    }
    out.push_back(s->get());
  }
  if (!good) return std::nullopt;
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> Checker::stringTable(
    const toml::table& t, std::string_view path, std::string_view key) {
  const toml::table* tbl = table(t, path, key);
  if (tbl == nullptr) return std::nullopt;
  std::string full = joinKey(path, key);
  std::vector<std::pair<std::string, std::string>> out;
  bool good = true;
  for (auto&& [k, v] : *tbl) {
    const auto* s = v.as_string();
    if (s == nullptr) {
      expected(v, joinKey(full, k.str()), "a string");
      good = false;
      continue;
    }
    out.emplace_back(std::string(k.str()), s->get());
  }
  if (!good) return std::nullopt;
  return out;
}

const toml::table* Checker::table(const toml::table& t, std::string_view path,
                                  std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return nullptr;
  const auto* tbl = n->as_table();
  if (tbl == nullptr) expected(*n, joinKey(path, key), "a table");
  return tbl;
}

const toml::array* Checker::tableArray(const toml::table& t, std::string_view path,
                                       std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return nullptr;
  const auto* a = n->as_array();
  std::string full = joinKey(path, key);
  if (a == nullptr) {
    expected(*n, full, "an array of tables ([[" + full + "]])");
    return nullptr;
  }
  bool good = true;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    if (!e.is_table()) {
      expected(e, indexKey(full, i), "a table");
      good = false;
    }
  }
  return good ? a : nullptr;
}

std::vector<Diagnostic> Checker::finish() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
  return std::move(errors_);
}

namespace {

// The state machine behind findDeepNesting. It follows TOML just enough to tell keys from values:
// a line at the top level starts with a key (or a [header]); `=` starts a value; in a value, `[`
// opens an array (its elements one level deeper), `{` an inline table (its keys add their
// segments to the table's depth), `,` in an inline table starts the next key.
class NestingScan {
 public:
  NestingScan(std::string_view text, int max_depth) : s_(text), max_(max_depth) {}

  std::optional<TextPosition> run() {
    if (s_.starts_with("\xEF\xBB\xBF")) i_ = 3;  // a UTF-8 byte order mark, as toml++ skips it
    while (i_ < s_.size()) {
      char c = s_[i_];
      std::optional<TextPosition> deep;
      if (c == '\n') {
        advance();
        if (frames_.empty()) startKey();  // an array or inline table may span lines
      } else if (c == ' ' || c == '\t' || c == '\r') {
        advance();
      } else if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') advance();
      } else if (c == '"' || c == '\'') {
        skipString();
        key_started_ = true;
      } else if (in_key_) {
        deep = keyChar(c);
      } else {
        deep = valueChar(c);
      }
      if (deep) return deep;
    }
    return std::nullopt;
  }

 private:
  struct Frame {
    char close;  // ']' or '}'
    int depth;   // ']': the depth of the array's elements; '}': the inline table's own depth
  };

  std::optional<TextPosition> keyChar(char c) {
    if (c == '[' && frames_.empty() && !key_started_) return header();
    if (c == '.') {
      // Each dotted segment is a table one level deeper.
      if (keyBase() + ++dots_ + 1 > max_) return here();
    } else if (c == '=') {
      value_depth_ = keyBase() + dots_ + 1;
      if (value_depth_ > max_) return here();
      in_key_ = false;
    } else if (c == '}') {
      close();  // `{}` or a trailing `}` after a key: toml++ judges the syntax
    } else {
      key_started_ = true;
    }
    advance();
    return std::nullopt;
  }

  std::optional<TextPosition> valueChar(char c) {
    if (c == '[') {
      if (value_depth_ + 1 > max_) return here();
      frames_.push_back({']', ++value_depth_});
    } else if (c == '{') {
      frames_.push_back({'}', value_depth_});
      startKey();
    } else if (c == ']' || c == '}') {
      close();
    } else if (c == ',' && !frames_.empty() && frames_.back().close == '}') {
      startKey();
    }
    advance();
    return std::nullopt;
  }

  // [a.b.c] is a table at depth 3; [[a.b.c]] an element of the array a.b.c, at depth 4.
  std::optional<TextPosition> header() {
    advance();
    int depth = 1;
    if (i_ < s_.size() && s_[i_] == '[') {
      advance();
      ++depth;
    }
    while (i_ < s_.size() && s_[i_] != ']' && s_[i_] != '\n') {
      char c = s_[i_];
      if (c == '"' || c == '\'') {
        skipString();
        continue;
      }
      if (c == '.' && ++depth > max_) return here();
      advance();
    }
    if (depth > max_) return here();
    header_depth_ = depth;
    key_started_ = true;  // the rest of the line is the closing brackets and a comment
    return std::nullopt;
  }

  // A closing bracket: back to the enclosing array or inline table, or to the end of a top-level
  // value. An unbalanced one is a syntax error for toml++ to report; the scan goes on.
  void close() {
    if (!frames_.empty()) frames_.pop_back();
    in_key_ = false;
    if (!frames_.empty() && frames_.back().close == ']') value_depth_ = frames_.back().depth;
  }

  void startKey() {
    in_key_ = true;
    key_started_ = false;
    dots_ = 0;
  }

  // The depth of the table the current key is in: the last [header] at the top level, else the
  // innermost inline table.
  int keyBase() const { return frames_.empty() ? header_depth_ : frames_.back().depth; }

  // "basic", 'literal', """multi-line basic""" or '''multi-line literal'''; escapes only in basic
  // strings. An unterminated single-line string ends at the end of its line.
  void skipString() {
    const char q = s_[i_];
    const bool escapes = q == '"';
    const std::string_view triple = escapes ? "\"\"\"" : "'''";
    if (s_.substr(i_, 3) == triple) {
      for (int k = 0; k < 3; ++k) advance();
      while (i_ < s_.size()) {
        if (escapes && s_[i_] == '\\') {
          advance();
          if (i_ < s_.size()) advance();  // also a line-ending backslash
        } else if (s_.substr(i_, 3) == triple) {
          for (int k = 0; k < 3; ++k) advance();
          // Up to two more quotes belong to the string: """a""""" is `a""`.
          for (int k = 0; k < 2 && i_ < s_.size() && s_[i_] == q; ++k) advance();
          return;
        } else {
          advance();
        }
      }
      return;
    }
    advance();
    while (i_ < s_.size() && s_[i_] != '\n') {
      char c = s_[i_];
      advance();
      if (c == q) return;
      if (escapes && c == '\\' && i_ < s_.size() && s_[i_] != '\n') advance();
    }
  }

  void advance() {
    auto c = static_cast<unsigned char>(s_[i_++]);
    if (c == '\n') {
      ++pos_.line;
      pos_.column = 1;
    } else if ((c & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++pos_.column;
    }
  }

  TextPosition here() const { return pos_; }

  std::string_view s_;
  const int max_;
  size_t i_ = 0;
  TextPosition pos_;
  bool in_key_ = true;         // reading a key (else a value)
  bool key_started_ = false;   // the key has begun: a `[` now is not a header
  int dots_ = 0;               // dots in the current key
  int header_depth_ = 0;       // of the last [header] (0: the root table)
  int value_depth_ = 0;        // of the value being read (in an array: of its elements)
  std::vector<Frame> frames_;  // open arrays and inline tables; at most about 2 * max_
};

}  // namespace

std::optional<TextPosition> findDeepNesting(std::string_view text, int max_depth) {
  return NestingScan(text, max_depth).run();
}

std::optional<toml::table> parseToml(std::string_view text, std::string_view filename,
                                     Checker& checker) {
  // Before toml++ sees the text: it recurses once per level of nesting, so deep input would be a
  // stack overflow in the agent, not an error for the user.
  if (std::optional<TextPosition> deep = findDeepNesting(text, kMaxTomlDepth)) {
    toml::source_position at{static_cast<toml::source_index>(deep->line),
                             static_cast<toml::source_index>(deep->column)};
    checker.error(toml::source_region{at, at, nullptr}, "",
                  "nesting deeper than " + std::to_string(kMaxTomlDepth) +
                      " levels: expected at most " + std::to_string(kMaxTomlDepth) +
                      " levels of table headers, dotted keys, arrays and inline tables together");
    return std::nullopt;
  }
  try {
    return toml::parse(text, filename);
  } catch (const toml::parse_error& e) {
    checker.error(e.source(), "", std::string(e.description()));
  } catch (const std::exception& e) {
    checker.error(toml::source_region{}, "", e.what());
  }
  return std::nullopt;
}

std::optional<std::string> readFile(const std::filesystem::path& path,
                                    std::vector<Diagnostic>& errors) {
  auto fail = [&](std::string why) {
    Diagnostic d;
    d.file = path.string();
    d.message = "cannot read the file: " + why;
    errors.push_back(std::move(d));
    return std::nullopt;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return fail("it is a directory");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return fail(std::strerror(errno));
  std::string out;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) return fail("read error");
  return out;
}

}  // namespace baton::spec::detail
