// `baton-supervise <task_dir>`: the exec driver's per-instance supervisor as a binary of its own,
// beside `baton`. It links only what supervising needs (no TLS, SQLite, TOML, archives), so
// each instance's supervisor costs the node a fraction of what `baton supervise` does (see
// BENCHMARKS.md "Containers"); the agent falls back to `baton supervise` when it is missing.
#include "drivers/exec_supervisor.h"

int main(int argc, char** argv) { return baton::drivers::supervisorMain(argc, argv); }
