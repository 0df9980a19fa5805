// Placeholder: the lead engineer replaces this with the agent's wiring (store, controller,
// node, api, gateway; started in order, stopped in reverse).
#include "cli/agent.h"

#include <iostream>

namespace baton::cli {

int runAgent(const AgentFlags& flags) {
  std::cerr << "baton agent: not implemented\n";
  return 1;
}

}  // namespace baton::cli
