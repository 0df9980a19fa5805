// Manifests (app.toml, DESIGN.md §1) and the agent's config (baton.toml): TOML text in, model
// values or diagnostics out. Pure: no I/O except the *File variants, which read the file.
// Unknown keys are errors; every diagnostic names file, line, column and the dotted key, and
// says what was expected.
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
  int line = 0;      // 1-based; 0 when the whole file is concerned
  int column = 0;
  std::string key;   // dotted path: "services.web.scale.max"; empty for syntax errors
  std::string message;
  // "app.toml:12:3: services.web.port: expected an integer from 1 to 65535, got \"http\""
  std::string toString() const;
};

struct ManifestResult {
  std::optional<model::AppSpec> app;   // set only when `errors` is empty
  std::vector<Diagnostic> errors;      // all that were found, in file order
};

ManifestResult parseManifest(std::string_view text, std::string_view filename);
ManifestResult parseManifestFile(const std::filesystem::path& path);

struct AgentConfigResult {
  std::optional<AgentConfig> config;
  std::vector<Diagnostic> errors;
};

AgentConfigResult parseAgentConfig(std::string_view text, std::string_view filename);
AgentConfigResult parseAgentConfigFile(const std::filesystem::path& path);

}  // namespace baton::spec
