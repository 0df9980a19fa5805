"""Crashes, agent restarts, rolling updates and bad manifests: what must not lose a request or
an instance."""
import os
import signal
import threading
import time
from pathlib import Path

from conftest import FILES, http_get, wait_for

SVC = FILES / "tests" / "integration" / "svc.py"


def write_app(path: Path, version: str, count: int = 2, extra_env: str = "", name="demo",
              schedule: str = "", max_: int = None):
    path.write_text(f"""
app = "{name}"

[services.api]
run = ["python3", "{SVC}"]
health = "/healthz"
env = {{ VERSION = "{version}"{extra_env} }}
kill_timeout = "3s"

[services.api.scale]
min = {count}
max = {count if max_ is None else max_}
{schedule}""")
    return path


def test_crashed_instance_is_restarted(agent, tmp_path):
    manifest = write_app(tmp_path / "app.toml", "v1", count=1)
    agent.cli("up", str(manifest), "--wait")
    inst = agent.healthy("demo", "api")[0]
    os.kill(inst["pid"], signal.SIGKILL)

    def restarted():
        now = agent.instances("demo", "api")
        return len(now) == 1 and now[0]["state"] == "healthy" and now[0]["pid"] != inst["pid"] \
            and now[0]["restarts"] >= 1
    after = wait_for(restarted, timeout=30, what="restart after crash")
    assert after
    assert agent.instances("demo", "api")[0]["last_exit_code"] == 128 + signal.SIGKILL


def test_instances_survive_kill_9_of_the_agent(make_agent, tmp_path):
    agent = make_agent().start()
    manifest = write_app(tmp_path / "app.toml", "v1", count=2)
    agent.cli("up", str(manifest), "--wait")
    before = {i["id"]: i["pid"] for i in agent.healthy("demo", "api")}
    assert len(before) == 2
    agent.kill9()
    for pid in before.values():  # still serving while no agent runs
        assert Path(f"/proc/{pid}").exists()

    again = make_agent()
    again.api_port, again.addr = agent.api_port, agent.addr
    again.http_port, again.https_port = agent.http_port, agent.https_port
    again.start()
    wait_for(lambda: len(again.healthy("demo", "api")) == 2, what="re-adopted instances")
    after = {i["id"]: i["pid"] for i in again.healthy("demo", "api")}
    assert after == before, "instances were restarted instead of re-adopted"
    for inst in again.healthy("demo", "api"):
        assert inst["restarts"] == 0

    # An instance that ends after the restart is still seen and its exit status known.
    victim_id, victim_pid = next(iter(after.items()))
    os.kill(victim_pid, signal.SIGKILL)
    wait_for(lambda: any(i["id"] == victim_id and i["restarts"] >= 1 and
                         i["last_exit_code"] == 128 + signal.SIGKILL
                         for i in again.instances("demo", "api")),
             what="exit status of a re-adopted instance")


class RequestLoop(threading.Thread):
    """Requests the service as a client that discovers instances through the catalog would:
    list healthy instances, pick one, GET it. Counts every failure."""

    def __init__(self, agent):
        super().__init__(daemon=True)
        self.agent, self.stop_flag = agent, threading.Event()
        self.ok, self.failures, self.versions = 0, [], set()

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            try:
                healthy = self.agent.healthy("demo", "api")
                inst = healthy[n % len(healthy)]
                status, body = http_get(f"http://{inst['address']}:{inst['port']}/", timeout=5)
                if status == 200:
                    self.ok += 1
                    self.versions.add(body.split()[0])
                else:
                    self.failures.append(f"status {status}")
            except Exception as e:
                self.failures.append(repr(e))
            time.sleep(0.01)


def test_rolling_update_loses_no_request(agent, tmp_path):
    manifest = write_app(tmp_path / "app.toml", "v1", count=2)
    agent.cli("up", str(manifest), "--wait")
    loop = RequestLoop(agent)
    loop.start()
    try:
        time.sleep(1)
        write_app(manifest, "v2", count=2)
        agent.cli("up", str(manifest), "--wait", "--timeout", "90s")
        wait_for(lambda: all(i["version"] == 2 for i in agent.instances("demo", "api"))
                 and len(agent.healthy("demo", "api")) == 2, what="all on v2")
        time.sleep(1)
    finally:
        loop.stop_flag.set()
        loop.join()
    assert loop.failures == [], loop.failures[:5]
    assert loop.ok > 50
    assert loop.versions == {"version=v1", "version=v2"}


def test_failing_release_keeps_the_old_instances(agent, tmp_path):
    manifest = write_app(tmp_path / "app.toml", "v1", count=2)
    agent.cli("up", str(manifest), "--wait")
    old = {i["id"] for i in agent.healthy("demo", "api")}
    write_app(manifest, "v2", count=2, extra_env=', EXIT_AT_START = "3"')
    agent.cli("up", str(manifest))
    wait_for(lambda: {s["service"]: s for s in agent.cli_json("ps", "demo")["services"]}
             ["api"]["rollout"] == "failed", timeout=90, what="rollout marked failed")
    assert {i["id"] for i in agent.healthy("demo", "api")} == old
    for inst in agent.healthy("demo", "api"):
        assert http_get(f"http://{inst['address']}:{inst['port']}/")[1].startswith("version=v1")


def test_bad_manifests_are_rejected_and_change_nothing(agent, tmp_path):
    manifest = write_app(tmp_path / "app.toml", "v1", count=1)
    agent.cli("up", str(manifest), "--wait")
    before = agent.instances("demo")

    bad = tmp_path / "bad.toml"
    cases = {
        # text, line, key
        'app = "demo"\n[services.api]\nrun = ["x"]\nport = "http"\n': (4, "services.api.port"),
        'app = "demo"\n[services.api]\nrun = ["x"]\ncolour = "red"\n': (4, "services.api.colour"),
        'app = "demo"\n[services.api]\nrun = ["x"]\nmemory = "128 MB"\n': (4, "services.api.memory"),
        'app = "demo"\n[services.api]\nrun = ["x"]\n[services.api.scale]\nmin = 5\nmax = 2\n':
            (5, "services.api.scale"),
        'app = "demo"\n[services.api]\nrun = ["x"\n': (3, ""),
        # Accepted and then never run (issue 10): refused at `baton up`.
        'app = "demo"\n[services.api]\nwasm = "h.wasm"\n': (3, "services.api.wasm"),
        'app = "demo"\n[services.api]\nimage = "Nginx:1.25"\n': (3, "services.api.image"),
        'app = "demo"\n[services.api]\nrun = ["x"]\nsecrets = ["demo/../db"]\n':
            (4, "services.api.secrets[0]"),
        'app = "demo"\n[services.api]\nrun = ["x"]\nenv = { DB = "secret:demo/db#pw" }\n':
            (4, "services.api.env.DB"),
        'app = "demo"\n[services.api]\nrun = ["x", "${NOPE}"]\n': (3, "services.api.run[1]"),
        'app = "demo"\n[services.api]\nrun = ["x"]\nport = 8000\n'
        '[services.web]\nrun = ["y"]\nport = 8000\n': (7, "services.web.port"),
    }
    for text, (line, key) in cases.items():
        bad.write_text(text)
        r = agent.cli("up", str(bad), check=False)
        assert r.returncode == 1, text
        assert f"bad.toml:{line}:" in r.stderr, (text, r.stderr)
        assert key in r.stderr, (text, r.stderr)

    # The API refuses them too (a client that skips the CLI's own check).
    status, body = agent.request("PUT", "/v1/apps/demo",
                                 {"manifest": list(cases)[0], "filename": "bad.toml"})
    assert status == 400 and body["errors"][0]["line"] == 4
    assert body["errors"][0]["key"] == "services.api.port"
    # A dotted key of 100,000 segments overflowed the agent's stack in toml++: now a 400.
    deep = 'app = "demo"\n' + "a." * 100_000 + "a = 1\n"
    status, body = agent.request("PUT", "/v1/apps/demo", {"manifest": deep, "filename": "deep.toml"})
    assert status == 400, (status, body)
    assert body["errors"][0]["line"] == 2, body
    assert "nesting deeper than 32 levels" in body["errors"][0]["message"], body
    time.sleep(1)
    assert agent.instances("demo") == before
