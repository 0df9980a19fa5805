"""Integration harness: starts the real `baton` binary and drives it through its CLI and API,
as a user would. BATON_BIN names the binary (set by CTest); every agent gets its own data dir
and free ports, and is killed (with every instance it started) at the end of the test."""
import json
import atexit
import os
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BATON = os.environ.get("BATON_BIN", str(REPO / "build" / "src" / "cli" / "baton"))


def _open_to_others(path: Path) -> bool:
    """Whether a user with no rights of its own can reach `path` (o+x on every directory)."""
    return all(os.stat(d).st_mode & 0o001 for d in [path, *path.parents])


def _service_files() -> Path:
    """Where the scripts that tests run as services live, as seen by those services: they run
    as their own unprivileged users, so a checkout under a private directory (/root, a mkdtemp
    of CI) is out of their reach; then a copy in a world-readable temp dir stands in for it."""
    here = REPO / "tests" / "integration"
    if _open_to_others(here.resolve()):
        return REPO
    root = Path(tempfile.mkdtemp(prefix="baton-it-files-"))
    os.chmod(root, 0o755)
    shutil.copytree(here, root / "tests" / "integration",
                    ignore=shutil.ignore_patterns("__pycache__"))
    atexit.register(shutil.rmtree, root, True)
    return root


# The repo, or its stand-in, for paths that services read (e.g. `run = [python, FILES/...]`).
FILES = _service_files()


_handed_out = set()


def free_port():
    """A port for an agent's listener, below the kernel's ephemeral range (32768-60999 here).
    A port the kernel hands out for bind(0) is free only until the next outgoing connection or
    instance takes it as its own: a test under load then found its agent's gateway port taken
    ("the port is in use by another process"). Ports here are never handed out by the kernel,
    and each only once per test session."""
    low = 20000
    try:
        low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low_ephemeral = 32768
    high = max(low + 1000, low_ephemeral)
    for _ in range(1000):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def open_to_services(path: Path):
    """Services run as their own unprivileged users (docs/security.md "Instances"), and a
    service runs in its manifest's directory. pytest makes its tmp dirs 0700: open `path` (o+rx)
    and the directories above it up to /tmp (o+x) to them, as a user's project dir would be."""
    path = Path(path)
    os.chmod(path, os.stat(path).st_mode | 0o005)
    for parent in path.parents:
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o001)
    return path


@pytest.fixture(autouse=True)
def _services_reach_tmp_path(tmp_path):
    open_to_services(tmp_path)


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    """Polls `predicate` until it returns a truthy value; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the agent may be restarting; keep polling
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Agent:
    """One agent. dev=False runs it without --dev: then every API call but /v1/health needs a
    token, and the harness sends `token` (the agent's write token once it has made one)."""

    def __init__(self, data_dir: Path, extra_args=(), dev=True, prefix=()):
        self.data_dir = data_dir
        self.api_port = free_port()
        self.addr = f"http://127.0.0.1:{self.api_port}"
        self.http_port = free_port()
        self.https_port = free_port()
        self.dns_port = free_port()
        self.gateway = f"http://127.0.0.1:{self.http_port}"
        self.extra_args = list(extra_args)
        self.dev = dev
        self.prefix = list(prefix)  # runs the agent under this, e.g. ["prlimit", "--nofile=256"]
        self.http_host = "127.0.0.1"  # the gateway's HTTP address (the port is http_port)
        self.token = None
        self.proc = None
        # Beside the data dir, not in it: what is in it is the agent's own (test_privilege).
        self.log_path = data_dir.parent / f"{data_dir.name}.agent.log"

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, BATON, "agent", *(["--dev"] if self.dev else []), "--data-dir", str(self.data_dir),
             "--api", f"127.0.0.1:{self.api_port}", "--http", f"{self.http_host}:{self.http_port}",
             "--https", f"127.0.0.1:{self.https_port}", "--dns", f"127.0.0.1:{self.dns_port}",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.get("/v1/health").get("ok"), timeout=20, what="agent API")
        if not self.dev:
            self.token = (self.data_dir / "agent-token").read_text().strip()
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- API ---------------------------------------------------------------------------
    def request(self, method, path, body=None, timeout=10, token=None, headers=None):
        """token: None sends the agent's own (if any), "" sends none."""
        data = json.dumps(body).encode() if body is not None else None
        token = self.token if token is None else token
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.addr + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def instances(self, app=None, service=None, state=None):
        q = "&".join(f"{k}={v}" for k, v in
                     (("app", app), ("service", service), ("state", state)) if v)
        return self.get("/v1/instances" + (f"?{q}" if q else ""))["instances"]

    def healthy(self, app, service):
        return self.instances(app, service, "healthy")

    # --- CLI ---------------------------------------------------------------------------
    def cli(self, *args, check=True, timeout=120):
        env = dict(os.environ, BATON_ADDR=self.addr)
        if self.token:
            env["BATON_TOKEN"] = self.token
        r = subprocess.run([BATON, *args], capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"baton {' '.join(args)} exited {r.returncode}:\n"
                                 f"{r.stdout}\n{r.stderr}\n--- agent log ---\n{self.log()[-4000:]}")
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)


def kill_leftovers(data_dir: Path):
    """Kills every process whose environment or command line points into `data_dir`: the
    instances and supervisors a test left (they outlive the agent by design)."""
    mine = str(data_dir)
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(pid_dir / "cwd")
        except OSError:
            continue
        if mine in cmdline or cwd.startswith(mine):
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except OSError:
                pass


def remove_cgroups(instance_ids):
    """rmdir the (empty) cgroups of instances whose supervisors were killed without cleanup."""
    for ctl in Path("/sys/fs/cgroup").glob("*/baton"):
        for iid in instance_ids:
            try:
                (ctl / iid).rmdir()
            except OSError:
                pass


def remove_netns(instance_ids):
    """Deletes the network namespaces of instances that were killed without their agent's
    cleanup (the veth pair goes with the namespace)."""
    for iid in instance_ids:
        subprocess.run(["ip", "netns", "del", f"baton-{iid}"], capture_output=True)


def teardown_agent(a, tmp_path):
    """Takes every app down through the agent (so supervisors clean up after themselves), then
    stops the agent and kills whatever is left."""
    seen = set()
    try:
        if a.proc and a.proc.poll() is None:
            seen = {i["id"] for i in a.instances()}
            for app in a.get("/v1/apps")["apps"]:
                a.request("DELETE", f"/v1/apps/{app['app']}")
            wait_for(lambda: a.instances() == [], timeout=20, what="teardown")
    except Exception:
        pass
    a.terminate()
    kill_leftovers(tmp_path)
    remove_cgroups(seen)
    remove_netns(seen)


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path / "data")
    a.data_dir.mkdir()
    a.start()
    yield a
    teardown_agent(a, tmp_path)


@pytest.fixture
def make_agent(tmp_path):
    """For tests that restart or kill the agent: returns a factory over one data dir."""
    made = []

    def factory():
        a = Agent(tmp_path / "data")
        a.data_dir.mkdir(exist_ok=True)
        made.append(a)
        return a

    yield factory
    for a in made:
        teardown_agent(a, tmp_path)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode(errors="replace")
