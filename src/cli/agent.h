// `baton agent`: the hook between the CLI (cli.cc parses the flags) and the wiring of the
// agent's roles (store, controller, node, api, gateway, ...), which agent.cc owns.
#pragma once

#include <optional>
#include <string>

namespace baton::cli {

// The agent's flags (DESIGN.md §1). Each one that is set overrides the matching key of the
// config file (or of the --dev defaults).
struct AgentFlags {
  std::optional<std::string> config;    // --config baton.toml
  bool dev = false;                     // --dev: SQLite in a temp data dir, no tokens
  std::optional<std::string> data_dir;  // --data-dir D
  std::optional<std::string> api;       // --api ADDR      (api.listen)
  std::optional<std::string> http;      // --http ADDR     (gateway.http)
  std::optional<std::string> https;     // --https ADDR    (gateway.https)
  std::optional<std::string> dns;       // --dns ADDR      (dns listen)
};

// Runs the agent until SIGINT/SIGTERM; returns the process exit code (0 after a clean stop,
// 1 when it could not start). Implemented in agent.cc, linked into the `baton` executable only.
int runAgent(const AgentFlags& flags);

}  // namespace baton::cli
