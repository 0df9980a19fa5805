"""Least privilege and loud failure (issue 10), tried on the real agent as a local attacker, a
compromised service and a new user would: the API without a token, with a read-only token, from a
foreign Host or Origin; the modes of what the agent writes; a second agent on a used port.

Run: cd tests/integration && BATON_BIN=/work/main/build/src/cli/baton \\
         python3 -m pytest -q -p no:cacheprovider test_privilege.py
"""
import os
import socket
import stat
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from conftest import BATON, Agent, free_port, teardown_agent, wait_for

PYTHON = "/usr/bin/python3"
SECRET = "s3cr3t-password-for-the-test"


def manifest(tmp_path, name="priv", extra=""):
    m = tmp_path / f"{name}.toml"
    m.write_text(f"""app = "{name}"

[services.web]
run = ["{PYTHON}", "-m", "http.server", "${{PORT}}", "--bind", "0.0.0.0"]
env = {{ DB_PASSWORD = "{SECRET}" }}
{extra}
[services.web.scale]
min = 1
max = 1
""")
    return m


@pytest.fixture
def prod_agent(tmp_path):
    """An agent without --dev: tokens required."""
    a = Agent(tmp_path / "data", dev=False)
    a.start()
    yield a
    teardown_agent(a, tmp_path)


def raw_status(agent, method, path, token="", headers=None, body=None):
    status, _ = agent.request(method, path, body=body, token=token, headers=headers)
    return status


def test_every_api_call_but_health_needs_a_token(prod_agent, tmp_path):
    a = prod_agent
    read_token = (a.data_dir / "agent-read-token").read_text().strip()
    assert read_token and read_token != a.token
    for path in ("/v1/apps", "/v1/services", "/v1/instances", "/v1/nodes", "/metrics"):
        assert raw_status(a, "GET", path) == 401, path
        assert raw_status(a, "GET", path, token="not-a-token") == 401, path
    assert raw_status(a, "GET", "/v1/health") == 200
    body = {"manifest": manifest(tmp_path).read_text(), "filename": "priv.toml"}
    assert raw_status(a, "PUT", "/v1/apps/priv", body=body) == 401
    assert raw_status(a, "PUT", "/v1/apps/priv", token=read_token, body=body) == 403
    assert raw_status(a, "PUT", "/v1/apps/priv", token=a.token, body=body) == 200
    # A read token reads, but never the environment's values (passwords until secrets exist).
    status, app = a.request("GET", "/v1/apps/priv", token=read_token)
    assert status == 200 and app["app"] == "priv"
    assert SECRET not in str(app) and "DB_PASSWORD" in str(app)
    status, app = a.request("GET", "/v1/apps/priv", token=a.token)
    assert status == 200 and SECRET in str(app)
    assert raw_status(a, "DELETE", "/v1/apps/priv", token=read_token) == 403
    # The CLI with the token works as before.
    out = a.cli("ps", "--json").stdout
    assert "priv" in out


def test_dev_mode_refuses_foreign_hosts_and_origins(agent):
    port = agent.api_port
    assert raw_status(agent, "GET", "/v1/apps") == 200
    assert raw_status(agent, "GET", "/v1/apps", headers={"Host": f"localhost:{port}"}) == 200
    # DNS rebinding: a page on evil.example resolves its name to 127.0.0.1.
    assert raw_status(agent, "GET", "/v1/apps", headers={"Host": f"evil.example:{port}"}) == 403
    # A cross-origin request from a web page.
    assert raw_status(agent, "PUT", "/v1/apps/x", headers={"Origin": "https://evil.example"},
                      body={"manifest": "app = \"x\"\n"}) == 403
    assert raw_status(agent, "GET", "/v1/apps",
                      headers={"Origin": f"http://localhost:{port}"}) == 200


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_the_data_dir_and_what_is_in_it_are_private(prod_agent, tmp_path):
    a = prod_agent
    a.cli("up", str(manifest(tmp_path)), "--wait", "--timeout", "60s")
    data = a.data_dir
    assert mode(data) == 0o700
    for name in ("agent-token", "agent-read-token"):
        assert mode(data / name) == 0o600, name
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files), files
    assert any(p.name == "stdout.log" for p in files), files
    loose = [f"{p.relative_to(data)} {mode(p):o}" for p in files
             if mode(p) & 0o077 and p.suffix != ".sock"]
    assert not loose, f"readable by others: {loose}"
    dirs = [f"{p.relative_to(data)} {mode(p):o}" for p in data.rglob("*")
            if p.is_dir() and mode(p) & 0o077]
    assert not dirs, f"directories open to others: {dirs}"


def test_files_are_private_from_their_creation(tmp_path):
    """The mode is right from the first byte, not fixed afterwards: created under a umask that
    leaves everything readable, the store and the tokens are still 0600."""
    data = tmp_path / "data"
    a = Agent(data, dev=False)
    old = os.umask(0)
    try:
        a.start()
    finally:
        os.umask(old)
    try:
        for name in ("baton.db", "agent-token", "agent-read-token"):
            assert mode(data / name) == 0o600, name
        assert mode(data) == 0o700
    finally:
        teardown_agent(a, tmp_path)


def test_a_second_agent_on_a_used_gateway_port_stops_with_a_clear_error(agent, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    r = subprocess.run([BATON, "agent", "--dev", "--data-dir", str(other),
                        "--api", f"127.0.0.1:{free_port()}",
                        "--http", f"127.0.0.1:{agent.http_port}",
                        "--https", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"127.0.0.1:{agent.http_port}" in r.stderr and "in use" in r.stderr, r.stderr
    # The first agent still answers every request.
    for _ in range(5):
        with urllib.request.urlopen(f"{agent.addr}/v1/health", timeout=5) as resp:
            assert resp.status == 200
    wait_for(lambda: agent.proc.poll() is None, timeout=1, what="the first agent alive")


# --- instances -------------------------------------------------------------------------------
def proc_status(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def pids_max_of(pid):
    for line in open(f"/proc/{pid}/cgroup"):
        _, controllers, path = line.strip().split(":", 2)
        if "pids" in controllers.split(","):
            mount = "/sys/fs/cgroup/pids" if controllers else "/sys/fs/cgroup"
            return open(f"{mount}{path}/pids.max").read().strip()
    return None


def one_instance(agent, app):
    inst = wait_for(lambda: agent.healthy(app, "web"), timeout=30, what=f"{app} healthy")
    return inst[0]


def test_services_run_as_their_own_unprivileged_user(agent, tmp_path):
    agent.cli("up", str(manifest(tmp_path, "one")), "--wait", "--timeout", "60s")
    agent.cli("up", str(manifest(tmp_path, "two", extra="pids = 100\n")), "--wait",
              "--timeout", "60s")
    one, two = one_instance(agent, "one"), one_instance(agent, "two")
    s1, s2 = proc_status(one["pid"]), proc_status(two["pid"])
    uid1, uid2 = int(s1["Uid"].split()[0]), int(s2["Uid"].split()[0])
    assert uid1 != 0 and uid2 != 0, (s1["Uid"], s2["Uid"])
    assert uid1 != uid2  # services cannot signal or trace each other
    assert s1["Uid"].split() == [str(uid1)] * 4 and s1["Gid"].split()[0] == str(uid1)
    assert s1["NoNewPrivs"] == "1" and s2["NoNewPrivs"] == "1"
    assert s1["Groups"] == ""
    assert pids_max_of(one["pid"]) == "2048"  # the default
    assert pids_max_of(two["pid"]) == "100"   # the manifest's `pids`
    # It cannot raise its own limits: the cgroup's files are root's.
    r = subprocess.run(["setpriv", f"--reuid={uid1}", f"--regid={uid1}", "--clear-groups",
                        "sh", "-c", f"echo max > /sys/fs/cgroup/pids$(cut -d: -f3 "
                        f"/proc/{one['pid']}/cgroup | head -1)/pids.max"],
                       capture_output=True, text=True)
    assert r.returncode != 0


def test_a_fork_bomb_is_contained(agent, tmp_path):
    bomb = tmp_path / "bomb.py"
    bomb.write_text("""import os, sys, time, http.server, threading
port = int(sys.argv[1])
threading.Thread(target=http.server.HTTPServer(("0.0.0.0", port),
                 http.server.SimpleHTTPRequestHandler).serve_forever, daemon=True).start()
children = 0
while children < 10000:
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    except OSError as e:
        print(f"fork failed after {children} children: {e}", flush=True)
        break
time.sleep(60)
""")
    m = tmp_path / "bomb.toml"
    m.write_text(f"""app = "bomb"

[services.web]
run = ["{PYTHON}", "{bomb}", "${{PORT}}"]
pids = 40
""")
    agent.cli("up", str(m), "--wait", "--timeout", "60s")
    inst = one_instance(agent, "bomb")
    logs = wait_for(lambda: (lambda out: out if "fork failed" in out else None)(
        agent.cli("logs", "bomb/web").stdout), timeout=30, what="the bomb to hit its limit")
    children = int(logs.split("fork failed after ")[1].split()[0])
    assert children < 40, logs
    # The agent still answers, and other services still start.
    assert agent.get("/v1/health")["ok"]
    agent.cli("up", str(manifest(tmp_path, "after")), "--wait", "--timeout", "60s")
    assert inst["pid"] > 0


def test_root_only_when_the_agent_allows_it(agent, tmp_path):
    m = manifest(tmp_path, "rooted", extra='user = "root"\n')
    agent.cli("up", str(m))
    msg = wait_for(lambda: next((i.get("message") for i in agent.instances("rooted")
                                 if "allow_root" in (i.get("message") or "")), None),
                   timeout=30, what="the start error")
    assert "root" in msg


# --- connections -----------------------------------------------------------------------------
def gateway_get(port, sock=None, timeout=3.0):
    """GET /nothing on `sock` (or a new connection); the status, or None if none came."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    try:
        s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(4096)
        return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None
    except (socket.timeout, OSError):
        return None
    finally:
        if sock is None:
            s.close()


def test_connections_past_the_limit_wait_and_never_starve_the_agent(tmp_path):
    """With 256 file descriptors the gateway takes at most (256 - 64) / 2 = 96 connections; 300
    idle clients do not stop the API, the store or a deploy, and a connection past the limit
    waits for a slot instead of being dropped."""
    a = Agent(tmp_path / "data", prefix=["prlimit", "--nofile=256:256", "--"])
    a.start()
    clients = []
    try:
        assert "at most 96 client connections" in a.log()
        for _ in range(300):
            clients.append(socket.create_connection(("127.0.0.1", a.http_port), timeout=5))
        # The API and the store still work, and a deploy starts its instance.
        assert a.get("/v1/health")["ok"]
        a.cli("up", str(manifest(tmp_path, "busy")), "--wait", "--timeout", "60s")
        # The first clients are served; one past the limit waits.
        assert gateway_get(a.http_port, clients[0]) == 404
        late = clients[-1]
        assert gateway_get(a.http_port, late, timeout=1.0) is None
        for c in clients[:250]:
            c.close()
        assert gateway_get(a.http_port, late, timeout=10.0) == 404  # served once slots freed
        metrics = urllib.request.urlopen(f"{a.addr}/metrics", timeout=5).read().decode()
        assert "baton_gateway_connection_limit_waits_total 0" not in metrics
    finally:
        for c in clients:
            c.close()
        teardown_agent(a, tmp_path)


def test_cpu_is_a_weight_and_throttling_shows_in_ps(agent, tmp_path):
    """`cpu` alone is a cgroup weight, never a quota: a busy service is not throttled. With
    `cpu_limit` it is, and `baton ps --instances` says so."""
    busy = tmp_path / "busy.py"
    busy.write_text("""import http.server, sys, threading
threading.Thread(target=http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])),
                 http.server.SimpleHTTPRequestHandler).serve_forever, daemon=True).start()
while True:
    pass
""")
    for name, extra in (("weighted", "cpu = 0.1\n"), ("capped", "cpu = 0.1\ncpu_limit = 0.05\n")):
        m = tmp_path / f"{name}.toml"
        m.write_text(f"""app = "{name}"

[services.web]
run = ["{PYTHON}", "{busy}", "${{PORT}}"]
{extra}""")
        agent.cli("up", str(m), "--wait", "--timeout", "60s")
    wait_for(lambda: "cpu throttled" in agent.cli("ps", "capped", "--instances").stdout,
             timeout=30, what="the capped service shown as throttled")
    [capped] = agent.instances("capped")
    assert capped["cpu_throttled"] is True
    [weighted] = agent.instances("weighted")
    assert weighted["cpu_throttled"] is False
    assert "cpu throttled" not in agent.cli("ps", "weighted", "--instances").stdout
    agent.cli("down", "capped")
    agent.cli("down", "weighted")


def test_ps_keeps_the_last_failure_of_a_restarted_instance(agent, tmp_path):
    marker = Path(tempfile.mkdtemp(prefix="baton-crash-once-"))
    os.chmod(marker, 0o777)
    script = tmp_path / "crash_once.py"
    script.write_text(f"""import http.server, os, sys
flag = "{marker}/crashed"
if not os.path.exists(flag):
    open(flag, "w").close()
    sys.exit(3)
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])),
                       http.server.SimpleHTTPRequestHandler).serve_forever()
""")
    m = tmp_path / "crashy.toml"
    m.write_text(f"""app = "crashy"

[services.web]
run = ["{PYTHON}", "{script}", "${{PORT}}"]
""")
    agent.cli("up", str(m))
    [inst] = wait_for(lambda: agent.healthy("crashy", "web"), timeout=30, what="healthy after a crash")
    assert inst["restarts"] >= 1 and inst["last_failure"] == "exited with code 3", inst
    assert "last failure: exited with code 3" in agent.cli("ps", "crashy", "--instances").stdout
