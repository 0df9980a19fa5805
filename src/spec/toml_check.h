// Internal to the spec module: a checker that walks a toml++ tree, reads typed values and
// collects diagnostics with file, line, column and dotted key. Not a public header: it pulls in
// toml++. Single-threaded; one Checker per parse.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "spec/manifest.h"

namespace baton::spec::detail {

// "services.web" + "port" -> "services.web.port"; "" + "app" -> "app".
std::string joinKey(std::string_view path, std::string_view key);
// "services.web.env" + 2 -> "services.web.env[2]".
std::string indexKey(std::string_view path, size_t index);
// A short, quoted, escaped rendering of user text for messages (truncated when long).
std::string quote(std::string_view text);
// The TOML type of a node: "string", "integer", "float", "boolean", "array", "table", ...
std::string typeName(const toml::node& node);
// The type and, for scalars, the value: `string "http"`, `integer 0`, `table`.
std::string describe(const toml::node& node);

class Checker {
 public:
  explicit Checker(std::string_view file) : file_(file) {}

  void error(const toml::source_region& where, std::string key, std::string message);
  void error(const toml::node& node, std::string key, std::string message) {
    error(node.source(), std::move(key), std::move(message));
  }
  // "expected <what>, got <describe(node)>".
  void expected(const toml::node& node, std::string key, std::string_view what);

  // Reports every key of `table` that is not in `allowed` as unknown, at the key's position.
  void checkKeys(const toml::table& table, std::string_view path,
                 std::initializer_list<std::string_view> allowed);

  // Typed getters. Absent key: nullopt, nothing reported. Present with the wrong type or an
  // invalid value: nullopt and a diagnostic that says what was expected.
  std::optional<std::string> string(const toml::table& t, std::string_view path,
                                    std::string_view key, bool non_empty = true);
  std::optional<int64_t> integer(const toml::table& t, std::string_view path, std::string_view key,
                                 int64_t lo, int64_t hi);
  std::optional<double> number(const toml::table& t, std::string_view path, std::string_view key,
                               double lo_exclusive, double hi, std::string_view what);
  std::optional<bool> boolean(const toml::table& t, std::string_view path, std::string_view key);
  std::optional<Duration> duration(const toml::table& t, std::string_view path,
                                   std::string_view key, bool positive);
  std::optional<uint64_t> bytes(const toml::table& t, std::string_view path, std::string_view key);
  // An array whose elements are all non-empty strings (each element checked separately).
  std::optional<std::vector<std::string>> stringArray(const toml::table& t, std::string_view path,
                                                      std::string_view key);
  // A table whose values are all strings.
  std::optional<std::vector<std::pair<std::string, std::string>>> stringTable(const toml::table& t,
                                                                              std::string_view path,
                                                                              std::string_view key);
  const toml::table* table(const toml::table& t, std::string_view path, std::string_view key);
  // An array of tables ([[key]] or key = [{...}, ...]).
  const toml::array* tableArray(const toml::table& t, std::string_view path, std::string_view key);

  // Where a key of `t` is written (its key token); the table's own position if absent.
  toml::source_region keySource(const toml::table& t, std::string_view key) const;

  bool ok() const { return errors_.empty(); }
  size_t count() const { return errors_.size(); }
  // The diagnostics sorted by line then column (stable for equal positions).
  std::vector<Diagnostic> finish();

 private:
  std::string file_;
  std::vector<Diagnostic> errors_;
};

// The deepest nesting parseToml lets toml++ see: table header segments, dotted key segments,
// arrays and inline tables, added up along the path to a value ([services.web.scale] is 3,
// `claims = { scope = "x" }` under [[routes]] is 4). Manifests and configs need fewer than 10;
// toml++ recurses once per level, so a dotted key of 100,000 segments overflowed the stack.
inline constexpr int kMaxTomlDepth = 32;

struct TextPosition {
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in code points as toml++ counts them
};

// Scans raw TOML text for the first place where nesting goes deeper than `max_depth`, without
// building anything: strings, literal strings, multi-line strings and comments are skipped, so
// their brackets and dots do not count. nullopt when the nesting stays within the bound. Syntax
// errors are left to toml++; the scan resynchronizes on unbalanced brackets and goes on, so a
// deep part after one is still found. One pass, memory bounded by `max_depth`.
std::optional<TextPosition> findDeepNesting(std::string_view text, int max_depth);

// Runs toml::parse, after refusing nesting deeper than kMaxTomlDepth (findDeepNesting); on
// either error, reports it through `checker` and returns nullopt.
std::optional<toml::table> parseToml(std::string_view text, std::string_view filename,
                                     Checker& checker);

// Reads a whole file; nullopt and a line-0 diagnostic in `errors` when it cannot be read.
std::optional<std::string> readFile(const std::filesystem::path& path,
                                    std::vector<Diagnostic>& errors);

}  // namespace baton::spec::detail
