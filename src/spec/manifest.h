// Manifests (app.toml, DESIGN.md §1) and the agent's config (baton.toml): TOML text in, model
// values or diagnostics out. Pure: no I/O except the *File variants, which read the file.
// Unknown keys are errors; every diagnostic names file, line, column and the dotted key, and
// says what was expected. Thread-safe (no shared state besides the tz database, which date's
// library loads once). Key reference and defaults: src/spec/README.md. The cron and date-time
// syntax of schedule entries is exposed in spec/calendar.h.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/app.h"
#include "spec/agent_config.h"

namespace baton::spec {

struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when the whole file is concerned
  int column = 0;
  std::string key;  // dotted path: "services.web.scale.max"; empty for syntax errors
  std::string message;
  // "app.toml:12:8: services.web.port: expected an integer from 1 to 65535, got string \"http\""
  // Line 0 (the whole file): "app.toml: cannot read the file: ...". Empty key: no "key: ".
  std::string toString() const;
};

struct ManifestResult {
  std::optional<model::AppSpec> app;  // set only when `errors` is empty
  std::vector<Diagnostic> errors;     // all that were found, sorted by line then column
};

struct ManifestOptions {
  // The names of the identity providers the agent has (its config's [[identity]] entries). When
  // set, a route whose `auth` names any other provider is an error at its `auth` key. Unset (the
  // CLI, which does not know the agent's config): provider names are checked for their form only.
  std::optional<std::vector<std::string>> identity_providers;
};

// Besides the form of every key, refuses what would be accepted and then not run (issue 10): a
// service for a driver other than exec, `secrets`, two services fixing the same `port`, a
// `${NAME}` in `run` that is not in the instance's environment, and (with
// `options.identity_providers`) an unknown provider in a route's `auth`. Nesting deeper than
// 32 levels is refused before the TOML is parsed.
ManifestResult parseManifest(std::string_view text, std::string_view filename,
                             const ManifestOptions& options = {});
ManifestResult parseManifestFile(const std::filesystem::path& path,
                                 const ManifestOptions& options = {});

struct AgentConfigResult {
  std::optional<AgentConfig> config;
  std::vector<Diagnostic> errors;
};

AgentConfigResult parseAgentConfig(std::string_view text, std::string_view filename);
AgentConfigResult parseAgentConfigFile(const std::filesystem::path& path);

}  // namespace baton::spec
