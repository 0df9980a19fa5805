// `baton_test_supervisor [--ready-fd=N] <task_dir>`: the exec driver's supervisor, for tests
// (the agent runs the same code as `baton supervise`).
#include "drivers/exec_supervisor.h"

int main(int argc, char** argv) { return baton::drivers::supervisorMain(argc, argv); }
