"""The agent as a process: graceful shutdown, the event stream, following logs, no agent."""
import json
import os
import signal
import subprocess
import threading
import time

from conftest import BATON, free_port, http_get, wait_for
from test_lifecycle import write_app


def test_sigterm_stops_the_agent_cleanly_and_instances_keep_serving(make_agent, tmp_path):
    agent = make_agent().start()
    manifest = write_app(tmp_path / "app.toml", "v1", count=1)
    agent.cli("up", str(manifest), "--wait")
    inst = agent.healthy("demo", "api")[0]
    assert agent.terminate() == 0
    assert "agent stopped" in agent.log()
    status, body = http_get(f"http://{inst['address']}:{inst['port']}/")
    assert status == 200 and body.startswith("version=v1")


def test_event_stream_reports_changes_and_decisions(agent, tmp_path):
    events, ready = [], threading.Event()

    def read():
        proc = subprocess.Popen([BATON, "events", "--json"], stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, BATON_ADDR=agent.addr))
        ready.set()
        for line in proc.stdout:
            events.append(json.loads(line))
            if any(e.get("type") == "event" and "scaled" in e.get("message", "")
                   for e in events) and \
                    any(e.get("kind") == "status" and
                        (e.get("object") or {}).get("state") == "healthy" for e in events):
                break
        proc.kill()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    ready.wait()
    wait_for(lambda: events and events[0]["type"] == "hello", what="hello line")
    agent.cli("up", str(write_app(tmp_path / "app.toml", "v1", count=1)), "--wait")
    t.join(timeout=30)
    kinds = {e.get("kind") for e in events}
    assert {"app", "instance", "status"} <= kinds, kinds
    assert any(e.get("type") == "event" and "demo/api" in e.get("message", "") for e in events)


def test_logs_follow_streams_new_lines(agent, tmp_path):
    agent.cli("up", str(write_app(tmp_path / "app.toml", "v1", count=1)), "--wait")
    inst = agent.healthy("demo", "api")[0]
    proc = subprocess.Popen([BATON, "logs", "demo/api", "-f"], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, BATON_ADDR=agent.addr))
    try:
        seen = []

        def reader():
            for line in proc.stdout:
                seen.append(line)

        threading.Thread(target=reader, daemon=True).start()
        wait_for(lambda: any("svc listening" in l for l in seen), what="existing lines")
        http_get(f"http://{inst['address']}:{inst['port']}/followed-path")
        wait_for(lambda: any("/followed-path" in l for l in seen), what="a new line")
        assert all(l.startswith(inst["id"] + " | ") for l in seen)
    finally:
        proc.kill()
    err = agent.cli("logs", "demo/api", "--stderr").stdout
    assert "this line goes to stderr" in err


def test_cli_without_an_agent_fails_with_a_clear_message(tmp_path):
    env = dict(os.environ, BATON_ADDR=f"http://127.0.0.1:{free_port()}")
    r = subprocess.run([BATON, "ps"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 1
    assert "cannot reach the agent" in r.stderr


def test_calls_need_a_token_outside_dev_mode(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    config = tmp_path / "baton.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nlisten = "127.0.0.1:{port}"\n')
    proc = subprocess.Popen([BATON, "agent", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        env = dict(os.environ, BATON_ADDR=f"http://127.0.0.1:{port}")
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/v1/health")[0] == 200,
                 what="agent up")
        # Reads need a token too (test_privilege.py has the API's side of it).
        denied = subprocess.run([BATON, "nodes"], env=env, capture_output=True, text=True)
        assert denied.returncode == 1 and "token" in denied.stderr
        manifest = write_app(tmp_path / "app.toml", "v1", count=1)
        denied = subprocess.run([BATON, "up", str(manifest)], env=env, capture_output=True,
                                text=True)
        assert denied.returncode == 1 and "token" in denied.stderr
        token = (data / "agent-token").read_text().strip()
        assert oct((data / "agent-token").stat().st_mode & 0o777) == "0o600"
        env["BATON_TOKEN"] = token
        ok = subprocess.run([BATON, "up", str(manifest)], env=env, capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        subprocess.run([BATON, "down", "demo"], env=env)
        wait_for(lambda: json.loads(subprocess.run(
            [BATON, "ps", "-i", "--json"], env=env, capture_output=True, text=True).stdout)
            ["instances"] == [], what="down")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def vm_hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_logs_stream_from_disk_in_bounded_memory(agent, tmp_path):
    """Three instances with 9 MiB of stdout each: `baton logs` sends all 27 MiB, and the agent's
    peak memory does not grow by anything like it (it used to read every file whole)."""
    writer = tmp_path / "chatty.py"
    writer.write_text("""import http.server, os, sys
line = ("x" * 99 + "\\n").encode()
for i in range(9 * 1024 * 1024 // len(line)):
    os.write(1, b"%08d " % i + line[9:])
print("done writing", flush=True)
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
""")
    m = tmp_path / "chatty.toml"
    m.write_text(f"""app = "chatty"

[services.api]
run = ["/usr/bin/python3", "{writer}", "${{PORT}}"]

[services.api.scale]
min = 3
max = 3
""")
    agent.cli("up", str(m), "--wait", "--timeout", "60s")
    wait_for(lambda: agent.cli("logs", "chatty/api", "--tail", "1").stdout.count("done writing") == 3,
             timeout=60, what="three instances done writing")
    before = vm_hwm_kib(agent.proc.pid)
    out = subprocess.run([BATON, "logs", "chatty/api"], capture_output=True,
                         env=dict(os.environ, BATON_ADDR=agent.addr), timeout=120).stdout
    grew = vm_hwm_kib(agent.proc.pid) - before
    assert out.count(b"done writing") == 3
    assert len(out) > 27 * 1024 * 1024, len(out)
    assert grew < 8 * 1024, f"the agent's peak RSS grew by {grew} KiB sending 27 MiB of logs"
    # --tail reads from the end.
    tail = agent.cli("logs", "chatty/api", "--tail", "2").stdout.splitlines()
    assert len(tail) == 6 and sum("done writing" in line for line in tail) == 3, tail


def test_logs_of_gone_instances_are_removed_after_the_retention(make_agent, tmp_path):
    cfg = tmp_path / "baton.toml"
    cfg.write_text('[node]\nlog_retention = "2s"\n')
    a = make_agent()
    a.extra_args = ["--config", str(cfg)]
    a.start()
    m = write_app(tmp_path / "app.toml", "v1", count=1)
    a.cli("up", str(m), "--wait", "--timeout", "60s")
    inst = a.instances("demo")[0]["id"]
    logs = a.data_dir / "logs" / "demo"
    assert any(p.name == inst for p in logs.rglob("*")), list(logs.rglob("*"))
    time.sleep(3)
    assert any(p.name == inst for p in logs.rglob("*"))  # kept while the instance runs
    a.cli("down", "demo")
    wait_for(lambda: not logs.exists(), timeout=20, what="the logs of the gone instance removed")


def test_metrics_drop_the_series_of_deleted_services(agent, tmp_path):
    m = write_app(tmp_path / "app.toml", "v1", count=1)
    agent.cli("up", str(m), "--wait", "--timeout", "60s")

    def metrics():
        return http_get(f"{agent.addr}/metrics")[1]

    wait_for(lambda: 'baton_cold_start_seconds_count{app="demo",service="api"}' in metrics(),
             what="the service's cold-start series")
    agent.cli("down", "demo")
    wait_for(lambda: 'app="demo"' not in metrics(), what="demo's series gone from /metrics")
