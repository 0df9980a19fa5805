"""Interoperability with the real servers people put behind a gateway (issue 19).

Each backend runs as a Baton service (exec driver, `run = [...]`, one instance) and is reached
through the agent's gateway on a path prefix (`/node/`, `/nginx/`, ... with `strip_prefix`):

  node      Node's `http` server, `server.keepAliveTimeout = 1000`     (interop/node_server.js)
  nginx     nginx as a backend: `keepalive_requests 5; keepalive_timeout 1s;` (config written here)
  gunicorn  a tiny WSGI app, gthread worker, gunicorn's default keep-alive of 2 s (interop/wsgi_app.py)
  uvicorn   a tiny ASGI app, `--timeout-keep-alive 1`                   (interop/asgi_app.py)
  pyhttp    `python3 -m http.server` (HTTP/1.0: one request per connection) on a temp dir

The same backends are also put behind nginx (`keepalive 32; proxy_http_version 1.1;
proxy_set_header Connection "";`) and HAProxy (`http-reuse safe`, its default; or
INTEROP_HAPROXY_REUSE=always), started by this module,
as the reference: the same traffic goes through all three proxies in the same run, and the
references' failures are printed next to the gateway's, never asserted.

  test_idle_gaps[B]   requests with idle gaps of 0.9 .. 2.1 s (around the backends' keep-alive
                      timeouts), on fresh client connections and on one kept-alive client
                      connection: every answer 200. All backends and proxies run in parallel
                      (the time is spent sleeping).
  test_wrk_load[B]    wrk -t1 -c20 --timeout 10s for INTEROP_WRK_SECONDS (default 10; the
                      issue's figure is 30) through the gateway, then nginx, then HAProxy: 0
                      non-2xx, 0 read, write and timeout errors through the gateway.
  test_burst_at_zero  300 concurrent requests, each on its own connection, at a
                      `python3 -m http.server` service with `min = 0` at zero: 300 answered 200
                      within 30 s. The client waits up to 65 s, longer than the gateway's hold
                      plus upstream response timeouts, so every failure is the gateway's own
                      answer with its logged reason. INTEROP_BURST_REFERENCE=1 also sends the
                      same burst at the warm pyhttp backend through each proxy (printed only).

On a failure the agent log's gateway warnings (every 502/504 with its reason, and responses
broken off after their head) are printed; with -s a comparison table ends the module.
INTEROP_KEEP=1 keeps the work dir (configs, agent log) for a look afterwards.
Packages: nginx, haproxy, wrk, nodejs, python3-gunicorn, python3-uvicorn (scripts/install-deps.sh);
when one is missing and this runs as root it is installed from Debian, else its backend is
skipped with the reason.

Run: BATON_BIN=build/src/cli/baton /usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
         tests/integration/test_interop.py
"""
import collections
import concurrent.futures
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import FILES, Agent, free_port, teardown_agent, wait_for

# The backends run as the agent's services, as their own users: from conftest.FILES.
HERE = FILES / "tests" / "integration" / "interop"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
WRK_SECONDS = int(os.environ.get("INTEROP_WRK_SECONDS", "10"))
WRK_CONNS = 20
# Idle gaps around the backends' keep-alive timeouts (node, nginx, uvicorn: 1 s; gunicorn: 2 s).
GAPS = [0.9, 1.0, 1.1, 1.5, 2.0, 2.1]
FRESH_GAPS = GAPS * 2                                  # 12 requests, each on a new connection
KEEPALIVE_GAPS = [0.9, 1.0, 1.1, 1.5, 2.0, 2.1, 1.0, 2.0]   # 8 requests on one connection
BURST = 300
# Longer than the gateway's hold (30 s) plus its upstream response timeout (30 s): every request
# gets the gateway's own answer, so a failure comes with its logged reason.
BURST_CLIENT_TIMEOUT = 65.0
BURST_REFERENCE = os.environ.get("INTEROP_BURST_REFERENCE") == "1"
BACKENDS = ["node", "nginx", "gunicorn", "uvicorn", "pyhttp"]
PROXIES = ["baton", "nginx", "haproxy"]          # baton = the gateway under test
# HAProxy's `http-reuse` for the reference: "safe" (its default: a client connection's first
# request never goes on a reused server connection) or "always" (any request may; HAProxy then
# answers 502 when the server closed it, having no L7 retry unless `retry-on` is set).
HAPROXY_REUSE = os.environ.get("INTEROP_HAPROXY_REUSE", "safe")


# --- tools -----------------------------------------------------------------------------------
def _which(name):
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def _py_has(module):
    return subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True).returncode == 0


# backend or tool -> (Debian package, how to tell it is there)
NEEDS = {
    "node": ("nodejs", lambda: _which("node")),
    "nginx": ("nginx", lambda: _which("nginx")),
    "haproxy": ("haproxy", lambda: _which("haproxy")),
    "wrk": ("wrk", lambda: _which("wrk")),
    "gunicorn": ("python3-gunicorn", lambda: _py_has("gunicorn")),
    "uvicorn": ("python3-uvicorn", lambda: _py_has("uvicorn")),
    "pyhttp": ("python3", lambda: _py_has("http.server")),
}


def ensure_tools():
    """Returns {name: None if usable, else why not}. Installs what is missing from Debian when
    running as root (scripts/install-deps.sh lists the same packages)."""
    missing = [n for n, (_, there) in NEEDS.items() if not there()]
    note = ""
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        pkgs = sorted({NEEDS[n][0] for n in missing})
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        note = f" (apt-get install {' '.join(pkgs)}: exit {r.returncode}: {r.stderr[-300:]})"
    elif missing:
        note = " (not root: not installing)"
    return {n: None if there() else f"{NEEDS[n][0]} is not installed{note}"
            for n, (_, there) in NEEDS.items()}


# --- backends as Baton services --------------------------------------------------------------
NGINX_BACKEND_CONF = """# nginx as a backend (issue 19): closes a kept-alive connection after 5 requests or 1 s idle.
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 5;
  keepalive_timeout 1s;
  client_body_temp_path {d}/tmp;
  proxy_temp_path {d}/tmp;
  fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp;
  scgi_temp_path {d}/tmp;
  server {{
    listen {port} backlog=1024;
    location / {{
      default_type text/plain;
      return 200 "hello from nginx\\n";
    }}
  }}
}}
"""


def backend_run(name, work: Path, port):
    """The `run` argv of backend `name` (as TOML) and the marker its body carries."""
    if name == "node":
        return [_which("node"), str(HERE / "node_server.js")], "hello from node"
    if name == "nginx":
        d = work / "nginx-backend"
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o777)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_BACKEND_CONF.format(d=d, port=port))
        return [_which("nginx"), "-c", str(conf), "-p", str(d), "-e", str(d / "error.log"),
                "-g", "daemon off;"], "hello from nginx"
    if name == "gunicorn":
        return [PYTHON, "-m", "gunicorn", "--bind", "0.0.0.0:${PORT}", "--workers", "1",
                "--worker-class", "gthread", "--threads", "4", "--chdir", str(HERE),
                "wsgi_app:app"], "hello from gunicorn"
    if name == "uvicorn":
        return [PYTHON, "-m", "uvicorn", "--host", "0.0.0.0", "--port", "${PORT}",
                "--timeout-keep-alive", "1", "--no-access-log", "--app-dir", str(HERE),
                "asgi_app:app"], "hello from uvicorn"
    if name == "pyhttp":
        d = work / "pyhttp-root"
        d.mkdir(exist_ok=True)
        (d / "index.html").write_text("hello from python http.server\n")
        os.chmod(d, 0o755)
        return [PYTHON, "-m", "http.server", "${PORT}", "--bind", "0.0.0.0",
                "--directory", str(d)], "hello from python http.server"
    raise ValueError(name)


def toml_list(argv):
    return "[" + ", ".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
                           for a in argv) + "]"


def backend_manifest(name, argv, port, path: Path):
    path.write_text(f"""app = "{name}"

[services.web]
run = {toml_list(argv)}
port = {port}
cpu = 1.0          # `cpu` is a cgroup quota: the 0.1 default would throttle the backend
memory = "256MiB"

[services.web.scale]
min = 1
max = 1

[[routes]]
path = "/{name}"
service = "web"
strip_prefix = true
""")
    return path


# --- the reference proxies -------------------------------------------------------------------
NGINX_PROXY_CONF = """# nginx as the reference reverse proxy: pooled keep-alive upstream connections.
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp;
  proxy_temp_path {d}/tmp;
  fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp;
  scgi_temp_path {d}/tmp;
{upstreams}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{locations}
  }}
}}
"""

HAPROXY_CONF = """# HAProxy as the reference reverse proxy: keep-alive on both sides, idle server connections
# reused (http-reuse {reuse}).
global
  nbthread 2
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  http-reuse {reuse}
  timeout connect 2s
  timeout client 60s
  timeout server 30s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:{port}
{rules}
{backends}
"""


def start_references(work: Path, ports):
    """nginx and HAProxy in front of every backend (`ports`: backend -> port). Returns
    ({"nginx": port, "haproxy": port}, [Popen], {"nginx": log path, "haproxy": log path})."""
    procs, addrs, logs = [], {}, {}
    d = work / "ref-nginx"
    (d / "tmp").mkdir(parents=True)
    addrs["nginx"] = free_port()
    conf = d / "nginx.conf"
    conf.write_text(NGINX_PROXY_CONF.format(
        d=d, port=addrs["nginx"],
        upstreams="\n".join(f"  upstream up_{b} {{ server 127.0.0.1:{p}; keepalive 32; }}"
                            for b, p in ports.items()),
        locations="\n".join(
            f"    location /{b}/ {{ proxy_pass http://up_{b}/; proxy_http_version 1.1; "
            f'proxy_set_header Connection ""; }}' for b in ports)))
    logs["nginx"] = d / "error.log"
    procs.append(subprocess.Popen(
        [_which("nginx"), "-c", str(conf), "-p", str(d), "-e", str(logs["nginx"]),
         "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True))

    addrs["haproxy"] = free_port()
    cfg = work / "haproxy.cfg"
    cfg.write_text(HAPROXY_CONF.format(
        port=addrs["haproxy"], reuse=HAPROXY_REUSE,
        rules="\n".join(f"  use_backend be_{b} if {{ path_beg /{b}/ }}" for b in ports),
        backends="\n".join(f"backend be_{b}\n  http-request replace-path ^/{b}(/.*) \\1\n"
                           f"  server s1 127.0.0.1:{p}" for b, p in ports.items())))
    logs["haproxy"] = work / "haproxy.log"
    procs.append(subprocess.Popen([_which("haproxy"), "-db", "-f", str(cfg)],
                                  stdout=open(logs["haproxy"], "wb"),
                                  stderr=subprocess.STDOUT, start_new_session=True))
    return addrs, procs, logs


# --- HTTP clients ----------------------------------------------------------------------------
def get_once(port, path, timeout=10):
    """One GET on a new connection: (status, body) or raises."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def gap_sequence(port, path, marker):
    """The idle-gaps traffic against one proxy+backend: FRESH_GAPS requests each on a new client
    connection, then KEEPALIVE_GAPS requests on one kept-alive client connection. Returns one
    record per request: (mode, gap, ok, what)."""
    out = []

    def record(mode, gap, status, body, err):
        ok = err is None and status == 200 and marker in body
        what = err if err else f"{status} {body[:80]!r}"
        out.append((mode, gap, ok, what))

    for gap in FRESH_GAPS:
        time.sleep(gap)
        try:
            status, body = get_once(port, path)
            record("fresh", gap, status, body, None)
        except Exception as e:
            record("fresh", gap, None, "", repr(e))

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for gap in KEEPALIVE_GAPS:
        time.sleep(gap)
        reused = conn.sock is not None
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode(errors="replace")
            record("keepalive", gap, r.status, body, None)
        except Exception as e:
            record("keepalive", gap, None, "",
                   f"{e!r} (on a {'reused' if reused else 'new'} client connection)")
            conn.close()
    conn.close()
    return out


def run_wrk(url, seconds=WRK_SECONDS, conns=WRK_CONNS):
    # --timeout 10s: a request is a failure when it is not answered, not when a SYN the
    # backend's full listen backlog dropped was sent again (1 s, 3 s) and wrk's default 2 s
    # passed meanwhile (nginx and HAProxy wait for such a backend as the gateway does).
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", url],
                         capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout + out.stderr
    res = {"requests": 0, "rps": 0.0, "non2xx": 0, "connect": 0, "read": 0, "write": 0,
           "timeout": 0, "raw": text}
    if m := re.search(r"(\d+) requests in", text):
        res["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        res["rps"] = float(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        res["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      text):
        res.update(connect=int(m.group(1)), read=int(m.group(2)), write=int(m.group(3)),
                   timeout=int(m.group(4)))
    return res


# --- the agent log ---------------------------------------------------------------------------
def gateway_errors(agent, app=None, since=0):
    """The agent log's gateway warnings (after byte offset `since`) for one app: every 502 and
    504 with its reason, and responses broken off or malformed after their head was relayed."""
    text = agent.log_path.read_bytes()[since:].decode(errors="replace")
    return [line for line in text.splitlines()
            if "gateway: " in line and " backend " in line
            and (app is None or f"-> {app}/" in line)]


def reasons(lines):
    """Counts the reasons (`STATUS reason`, or the reason alone for a warning without a status)
    of gateway log lines."""
    c = collections.Counter()
    for line in lines:
        m = re.search(r"gateway: (?:(\d{3}) )?\S+ \S+ -> \S+ backend \S+: (.*)$", line)
        c[(f"{m.group(1)} " if m.group(1) else "") + m.group(2) if m else line] += 1
    return dict(c)


def log_size(agent):
    return agent.log_path.stat().st_size if agent.log_path.exists() else 0


# --- the module's agent, backends and references ---------------------------------------------
class Interop:
    def __init__(self, agent, work, tools):
        self.agent, self.work, self.tools = agent, work, tools
        self.ports, self.markers, self.broken = {}, {}, {}
        self.refs, self.ref_logs = {}, {}
        self.gaps = None          # filled once by the gap_results fixture
        self.wrk = {}             # backend -> proxy -> wrk result
        self.burst = None

    def port_of(self, proxy):
        return self.agent.http_port if proxy == "baton" else self.refs[proxy]

    def usable(self, backend):
        if self.tools.get(backend):
            pytest.skip(self.tools[backend])
        if backend in self.broken:
            pytest.fail(f"backend {backend} did not come up: {self.broken[backend]}")


@pytest.fixture(scope="module")
def interop():
    tools = ensure_tools()
    for t in ("wrk", "nginx", "haproxy"):
        if tools[t]:
            pytest.skip(f"the interop harness needs {t}: {tools[t]}")
    # Instances may run as another user: everything they read or write is in a world-readable
    # work dir outside pytest's private tmp tree.
    work = Path(tempfile.mkdtemp(prefix="baton-interop-"))
    os.chmod(work, 0o755)
    cfg = work / "baton.toml"
    # Room to place five backends with cpu = 1.0 each on this node.
    # HTTP interop, not isolation: the reference proxies reach the same backends on loopback.
    cfg.write_text("[node]\ncpu = 16\nnetwork = \"host\"\n")
    agent = Agent(work / "data", ["--config", str(cfg)])
    agent.data_dir.mkdir()
    procs = []
    try:
        agent.start()
        it = Interop(agent, work, tools)
        for b in BACKENDS:
            if tools[b]:
                continue
            port = free_port()
            argv, marker = backend_run(b, work, port)
            manifest = backend_manifest(b, argv, port, work / f"{b}.toml")
            r = agent.cli("up", str(manifest), "--wait", check=False, timeout=120)
            if r.returncode != 0:
                it.broken[b] = f"baton up exited {r.returncode}: {r.stdout}{r.stderr}"
                continue
            try:
                wait_for(lambda: marker in get_once(agent.http_port, f"/{b}/")[1], timeout=20,
                         what=f"{b} through the gateway")
            except AssertionError as e:
                it.broken[b] = f"{e}\n--- agent log ---\n{agent.log()[-3000:]}"
                continue
            it.ports[b], it.markers[b] = port, marker
        it.refs, procs, it.ref_logs = start_references(work, it.ports)
        for proxy in ("nginx", "haproxy"):
            for b in it.ports:
                wait_for(lambda: it.markers[b] in get_once(it.refs[proxy], f"/{b}/")[1],
                         timeout=20, what=f"{b} through the reference {proxy}")
        yield it
        print_summary(it)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        teardown_agent(agent, work)
        if os.environ.get("INTEROP_KEEP"):
            print(f"interop work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def gap_results(interop):
    """Runs the idle-gaps traffic for every backend through every proxy at once (it is mostly
    sleeping), and keeps the gateway's 502/504 log lines per backend."""
    if interop.gaps is None:
        since = log_size(interop.agent)
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(len(interop.ports) * len(PROXIES) or 1) as ex:
            for b in interop.ports:
                for proxy in PROXIES:
                    jobs[(b, proxy)] = ex.submit(gap_sequence, interop.port_of(proxy), f"/{b}/",
                                                 interop.markers[b])
        interop.gaps = {k: f.result() for k, f in jobs.items()}
        interop.gap_log = {b: gateway_errors(interop.agent, b, since) for b in interop.ports}
    return interop


def failures(records):
    return [r for r in records if not r[2]]


# --- 1. idle gaps around the backends' keep-alive timeouts -----------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_gaps(gap_results, backend):
    it = gap_results
    it.usable(backend)
    lines = []
    for proxy in PROXIES:
        recs = it.gaps[(backend, proxy)]
        bad = failures(recs)
        lines.append(f"  {proxy:8} {len(recs) - len(bad):3}/{len(recs)} answered 200"
                     + "".join(f"\n      FAILED {m} after {g:.1f}s idle: {w}"
                               for m, g, _, w in bad))
    print(f"\nidle gaps, backend {backend}:\n" + "\n".join(lines))
    bad = failures(it.gaps[(backend, "baton")])
    log = it.gap_log[backend]
    assert not bad, (
        f"{len(bad)} of {len(it.gaps[(backend, 'baton')])} requests through the gateway to "
        f"{backend} failed:\n" + "\n".join(f"  {m} after {g:.1f}s idle: {w}" for m, g, _, w in bad)
        + f"\ngateway 502/504 reasons: {reasons(log)}\nagent log:\n" + "\n".join(log[-30:]))


# --- 2. wrk through the gateway, and through nginx and HAProxy for reference -----------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_wrk_load(interop, backend):
    it = interop
    it.usable(backend)
    res = {}
    for proxy in PROXIES:
        since = log_size(it.agent)
        res[proxy] = run_wrk(f"http://127.0.0.1:{it.port_of(proxy)}/{backend}/")
        if proxy == "baton":
            res[proxy]["log"] = gateway_errors(it.agent, backend, since)
        time.sleep(0.5)
    it.wrk[backend] = res
    print(f"\nwrk -t1 -c{WRK_CONNS} -d{WRK_SECONDS}s, backend {backend}:\n" + wrk_table({backend: res}))
    g = res["baton"]
    assert g["requests"] > 0, g["raw"]
    assert (g["non2xx"], g["read"], g["write"], g["timeout"]) == (0, 0, 0, 0), (
        f"through the gateway to {backend}: {g['non2xx']} non-2xx, {g['read']} read and "
        f"{g['write']} write errors (connect {g['connect']}, timeout {g['timeout']}) in "
        f"{g['requests']} requests\ngateway 502/504 reasons: {reasons(g['log'])}\n"
        + "agent log:\n" + "\n".join(g["log"][-20:]) + "\n--- wrk ---\n" + g["raw"])


def wrk_table(results):
    rows = [f"  {'backend':9}{'proxy':9}{'requests':>9}{'req/s':>9}{'non2xx':>8}{'connect':>8}"
            f"{'read':>6}{'write':>6}{'timeout':>8}"]
    for b, res in results.items():
        for proxy in PROXIES:
            r = res.get(proxy)
            if r:
                rows.append(f"  {b:9}{proxy:9}{r['requests']:>9}{r['rps']:>9.0f}{r['non2xx']:>8}"
                            f"{r['connect']:>8}{r['read']:>6}{r['write']:>6}{r['timeout']:>8}")
    return "\n".join(rows)


# --- 3. a burst at a service at zero ---------------------------------------------------------
def burst(port, path, n, timeout=BURST_CLIENT_TIMEOUT):
    """n concurrent GETs, each on its own connection, released together. Returns one
    (outcome, seconds) per request: outcome is the status code or the exception's repr."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass
        t0 = time.monotonic()
        try:
            status, _ = get_once(port, f"{path}?i={i}", timeout=timeout)
            results[i] = (status, time.monotonic() - t0)
        except Exception as e:
            results[i] = (repr(e)[:120], time.monotonic() - t0)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 90)
    return [r or ("no result", 0.0) for r in results]


def burst_summary(results):
    counts = collections.Counter(str(o) for o, _ in results)
    late = sum(1 for o, t in results if o == 200 and t > 30)
    slowest = max((t for _, t in results), default=0)
    by = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return f"{by} (slowest {slowest:.1f}s; 200s after more than 30s: {late})"


def test_burst_at_zero(interop):
    it = interop
    if it.tools["pyhttp"]:
        pytest.skip(it.tools["pyhttp"])
    d = it.work / "burst-root"
    d.mkdir()
    (d / "index.html").write_text("hello from the burst\n")
    os.chmod(d, 0o755)
    manifest = it.work / "burst.toml"
    manifest.write_text(f"""app = "burst"

[services.web]
run = {toml_list([PYTHON, "-m", "http.server", "${PORT}", "--bind", "0.0.0.0",
                  "--directory", str(d)])}
cpu = 1.0
memory = "256MiB"

[services.web.scale]
min = 0

[[routes]]
path = "/burst"
service = "web"
strip_prefix = true
""")
    it.agent.cli("up", str(manifest))
    time.sleep(1)
    assert it.agent.instances("burst", "web") == [], "the service is not at zero"
    since = log_size(it.agent)
    t0 = time.monotonic()
    results = burst(it.agent.http_port, "/burst/", BURST)
    took = time.monotonic() - t0
    ok = sum(1 for o, t in results if o == 200 and t <= 30)
    log = gateway_errors(it.agent, "burst", since)
    it.burst = {"baton (cold)": (burst_summary(results), reasons(log))}
    print(f"\nburst of {BURST} at zero: {burst_summary(results)} in {took:.1f}s; "
          f"gateway 502/504: {reasons(log)}")
    if BURST_REFERENCE and "pyhttp" in it.ports:
        # For comparison only: the same burst at the (warm) pyhttp backend, through each proxy.
        for proxy in PROXIES:
            time.sleep(2)
            since_ref = log_size(it.agent)
            ref = burst(it.port_of(proxy), "/pyhttp/", BURST)
            it.burst[f"{proxy} (warm pyhttp)"] = (
                burst_summary(ref),
                reasons(gateway_errors(it.agent, "pyhttp", since_ref)) if proxy == "baton" else "")
            print(f"reference burst of {BURST} at warm pyhttp via {proxy}: {burst_summary(ref)}")
    assert ok == BURST, (
        f"{ok} of {BURST} answered 200 within 30 s: {burst_summary(results)}\n"
        f"gateway 502/504 reasons: {reasons(log)}\nagent log:\n" + "\n".join(log[-30:]))


# --- the comparison table at the end of the module (shown with -s) ---------------------------
def print_summary(it):
    out = ["", f"=== interop summary (issue 19; haproxy: http-reuse {HAPROXY_REUSE}) ==="]
    for b in BACKENDS:
        if it.tools.get(b) or b in it.broken:
            out.append(f"  {b}: not run ({it.tools.get(b) or 'did not come up'})")
    if it.gaps:
        out.append("idle gaps (requests answered 200 / sent):")
        out.append(f"  {'backend':9}" + "".join(f"{p:>10}" for p in PROXIES) + "   gateway 502/504")
        for b in it.ports:
            cells = []
            for p in PROXIES:
                recs = it.gaps[(b, p)]
                cells.append(f"{len(recs) - len(failures(recs))}/{len(recs)}")
            out.append(f"  {b:9}" + "".join(f"{c:>10}" for c in cells)
                       + f"   {reasons(it.gap_log[b]) or ''}")
    if it.wrk:
        out.append(f"wrk -t1 -c{WRK_CONNS} -d{WRK_SECONDS}s:")
        out.append(wrk_table(it.wrk))
        for b, res in it.wrk.items():
            if res["baton"].get("log"):
                out.append(f"  gateway 502/504 under wrk, {b}: {reasons(res['baton']['log'])}")
    for what, (summary, why) in (it.burst or {}).items():
        out.append(f"burst of {BURST} via {what}: {summary}" + (f"; gateway: {why}" if why else ""))
    print("\n".join(out))
