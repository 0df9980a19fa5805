// The per-instance supervisor of the exec driver (like Nomad's executor or containerd's shim).
// The agent runs it as `baton supervise [--ready-fd=N] <task_dir>`; tests run it through the
// `baton_test_supervisor` binary. See README.md for the design.
//
// supervisorMain reads <task_dir>/config.json, creates the task's cgroup, forks the service
// (own session, cgroup joined, env exactly as configured, cwd, stdin /dev/null, stdout/stderr
// piped into rotating log files), writes state.json, reports "ok" or "error: <message>" on the
// ready fd, waits for the service, writes exit.json, kills whatever the service left behind,
// removes the cgroup and returns. Arguments: argv[0] is ignored, a leading "supervise" is
// skipped, "--ready-fd=N" names the fd to report on, and the remaining argument is the task dir.
#pragma once

namespace baton::drivers {

// Returns the process exit code: 0 when the service ran (whatever its own exit status), 1 when
// it could not be started, 2 on usage errors.
int supervisorMain(int argc, char** argv);

}  // namespace baton::drivers
