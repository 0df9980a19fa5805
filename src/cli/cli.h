// The `baton` command line (DESIGN.md §1): parses the arguments with CLI11 and runs one
// subcommand against the agent's HTTP API (http_client.h). Exit codes: 0 ok, 1 failed
// (including an unreachable agent), 2 usage.
//
// Data flow: argv -> CLI11 -> a command function -> HttpClient -> JSON -> a table (or the API's
// JSON verbatim with --json) on `out`; errors on `err`.
#pragma once

#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "cli/agent.h"
#include "core/clock.h"
#include "core/result.h"

namespace baton::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

struct CliContext {
  std::ostream& out;
  std::ostream& err;
  std::string addr = "http://127.0.0.1:4646";        // BATON_ADDR
  std::string token = {};                            // BATON_TOKEN
  std::function<int(const AgentFlags&)> agent = {};  // `baton agent`; empty: not available
  std::function<void(Duration)> sleep = {};  // `up --wait` and `down` polling; empty: real sleep
  // Standard input (`secret put KEY=-`, `operator unseal`); null: std::cin, whose terminal echo
  // is turned off while an unseal share is typed.
  std::istream* in = nullptr;
};

int runCli(int argc, char** argv, CliContext& ctx);

// Helpers, exposed for tests. Tables take the API's JSON text.
Result<std::pair<std::string, std::string>> parseAppService(std::string_view text);  // "a/s"
std::string formatServicesTable(std::string_view services_json);
std::string formatInstancesTable(std::string_view instances_json);
// One line per node whose instances are not isolated (empty when all are).
std::string isolationNote(std::string_view nodes_json);
std::string formatNodesTable(std::string_view nodes_json);
// One line of GET /v1/events (NDJSON) for humans.
std::string formatEventLine(std::string_view line);

// Whether every service in a /v1/services answer is settled: ready == desired == current,
// desired within bounds, no rollout pending or in progress. `why` names the first that is not;
// a failed rollout sets `failed`.
bool servicesSettled(std::string_view services_json, std::string* why, bool* failed);

}  // namespace baton::cli
