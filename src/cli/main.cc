// The `baton` binary: every subcommand of the CLI, the agent, and the hidden
// `baton supervise <task_dir>` that the exec driver runs as each instance's supervisor.
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cli/agent.h"
#include "cli/cli.h"

#if __has_include("drivers/exec_supervisor.h")
#include "drivers/exec_supervisor.h"
#else
namespace baton::drivers {
int supervisorMain(int argc, char** argv);
}  // namespace baton::drivers
#endif

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "supervise") == 0) {
    return baton::drivers::supervisorMain(argc, argv);
  }
  baton::cli::CliContext ctx{std::cout, std::cerr};
  if (const char* addr = std::getenv("BATON_ADDR"); addr && *addr) ctx.addr = addr;
  if (const char* token = std::getenv("BATON_TOKEN"); token && *token) ctx.token = token;
  ctx.agent = baton::cli::runAgent;
  return baton::cli::runCli(argc, argv, ctx);
}
