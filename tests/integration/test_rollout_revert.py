"""Loud failure around rollouts and teardown (issue 10, "Reliability and loud failure"): `baton up`
of the previous version after a failed rollout finishes, `baton down` waits until the instances
are stopped (`--detach` does not), and `baton ps` says why a rollout failed and when the bounds
in force (an override, a schedule window) expire."""
import datetime
import time
from pathlib import Path

from conftest import FILES, http_get, wait_for
from test_lifecycle import write_app

SVC = FILES / "tests" / "integration" / "svc.py"

# Listens on ${PORT} (the default TCP health check passes) and ignores SIGTERM: it stops only
# when the node kills it after `kill_timeout`.
STUBBORN = ("import os, signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            "s.bind(('0.0.0.0', int(os.environ['PORT']))); s.listen(64); time.sleep(3600)")


def write_stubborn(path: Path, kill_timeout: str):
    path.write_text(f"""
app = "demo"

[services.api]
run = ["python3", "-c", "{STUBBORN}"]
kill_timeout = "{kill_timeout}"
""")
    return path


def service(agent, name="api"):
    return {s["service"]: s for s in agent.cli_json("ps", "demo")["services"]}[name]


def fail_a_rollout(agent, manifest, extra_env, timeout="90s"):
    """Deploys v2 with `extra_env` on top of a healthy v1; returns `baton up --wait`'s result."""
    write_app(manifest, "v2", extra_env=extra_env)
    r = agent.cli("up", str(manifest), "--wait", "--timeout", timeout, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "rollout of demo/api failed" in r.stderr, r.stderr
    assert service(agent)["rollout"] == "failed"
    return r


def assert_all_on_v1(agent, count=2):
    row = service(agent)
    assert row["rollout"] == "complete", row
    assert row["ready"] == row["desired"] == row["current"] == count, row
    instances = agent.instances("demo", "api")
    assert len(instances) == count, instances
    for inst in instances:
        assert inst["state"] == "healthy" and inst["desired_running"], inst
        status, body = http_get(f"http://{inst['address']}:{inst['port']}/")
        assert status == 200 and body.startswith("version=v1 "), body


def revert_to_v1(agent, manifest):
    write_app(manifest, "v1")
    start = time.monotonic()
    r = agent.cli("up", str(manifest), "--wait", "--timeout", "40s", check=False)
    assert r.returncode == 0, (r.stdout, r.stderr, agent.log()[-3000:])
    assert "demo: ready" in r.stdout, r.stdout
    assert time.monotonic() - start < 40
    assert_all_on_v1(agent)
    # And it stays finished: nothing is created, stopped or rolled afterwards.
    ids = {i["id"] for i in agent.instances("demo", "api")}
    time.sleep(2)
    assert {i["id"] for i in agent.instances("demo", "api")} == ids
    assert_all_on_v1(agent)


def test_up_of_the_previous_version_after_a_crashing_release_finishes(agent, tmp_path):
    manifest = write_app(tmp_path / "app.toml", "v1")
    agent.cli("up", str(manifest), "--wait")
    old = {i["id"] for i in agent.healthy("demo", "api")}
    fail_a_rollout(agent, manifest, ', EXIT_AT_START = "3"')
    assert {i["id"] for i in agent.healthy("demo", "api")} == old
    revert_to_v1(agent, manifest)


def test_up_of_the_previous_version_after_a_never_healthy_release_finishes(agent, tmp_path):
    # The release listens but never passes its health check: it fails after the 60 s deadline.
    manifest = write_app(tmp_path / "app.toml", "v1")
    agent.cli("up", str(manifest), "--wait")
    r = fail_a_rollout(agent, manifest, ', NEVER_HEALTHY = "1"', timeout="150s")
    assert "not healthy" in r.stderr, r.stderr
    revert_to_v1(agent, manifest)


def test_ps_says_why_a_rollout_failed(agent, tmp_path):
    manifest = write_app(tmp_path / "app.toml", "v1")
    agent.cli("up", str(manifest), "--wait")
    fail_a_rollout(agent, manifest, ', EXIT_AT_START = "3"')
    row = service(agent)
    assert "exited with code 3" in row["rollout_message"], row
    ps = agent.cli("ps", "demo").stdout
    assert "failed" in ps and "exited with code 3" in ps, ps
    # After going back to v1 the rollout is complete and still says what happened to v2.
    write_app(manifest, "v1")
    agent.cli("up", str(manifest), "--wait", "--timeout", "40s")
    row = service(agent)
    assert row["rollout"] == "complete", row
    assert "version 2" in row["rollout_message"], row
    assert "exited with code 3" in row["rollout_message"], row
    assert "exited with code 3" in agent.cli("ps", "demo").stdout


def test_ps_shows_when_a_schedule_window_and_an_override_expire(agent, tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=2)
    fmt = "%Y-%m-%d %H:%M:%S"
    schedule = f"""
[[services.api.scale.schedule]]
name = "launch"
start = "{start.strftime(fmt)}"
end = "{end.strftime(fmt)}"
timezone = "UTC"
min = 2
"""
    manifest = write_app(tmp_path / "app.toml", "v1", count=1, max_=3, schedule=schedule)
    agent.cli("up", str(manifest), "--wait")
    row = service(agent)
    assert row["source"] == "schedule:launch" and row["min"] == 2, row
    assert row["expires_at"] == int(end.timestamp() * 1000), row
    ps = agent.cli("ps", "demo").stdout
    assert "schedule:launch" in ps and end.strftime(fmt) + "Z" in ps, ps

    before = int(time.time() * 1000)
    agent.cli("scale", "demo/api", "--min", "1", "--for", "30m")
    row = service(agent)
    assert row["source"] == "override" and row["min"] == 1, row
    assert before + 30 * 60_000 <= row["expires_at"] <= int(time.time() * 1000) + 30 * 60_000, row
    expiry = datetime.datetime.fromtimestamp(row["expires_at"] // 1000, datetime.timezone.utc)
    assert expiry.strftime(fmt) + "Z" in agent.cli("ps", "demo").stdout

    # An override without --for never expires, whatever the calendar does next.
    agent.cli("scale", "demo/api", "--min", "1")
    row = service(agent)
    assert row["source"] == "override" and row["expires_at"] is None, row


def test_down_waits_until_the_instances_are_stopped(agent, tmp_path):
    manifest = write_stubborn(tmp_path / "app.toml", kill_timeout="4s")
    agent.cli("up", str(manifest), "--wait")
    pids = [i["pid"] for i in agent.instances("demo")]
    assert len(pids) == 1 and pids[0] > 0
    start = time.monotonic()
    r = agent.cli("down", "demo")
    took = time.monotonic() - start
    assert "demo: stopped" in r.stdout, r.stdout
    assert took >= 3.5, took  # it outlived SIGTERM until kill_timeout
    assert agent.instances("demo") == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_down_detach_returns_at_once_and_a_timeout_says_what_is_left(agent, tmp_path):
    manifest = write_stubborn(tmp_path / "app.toml", kill_timeout="8s")
    agent.cli("up", str(manifest), "--wait")
    start = time.monotonic()
    r = agent.cli("down", "demo", "--detach")
    assert time.monotonic() - start < 3
    assert "demo: deleted" in r.stdout, r.stdout
    assert len(agent.instances("demo")) == 1  # still stopping: SIGTERM is ignored for 8 s
    wait_for(lambda: agent.instances("demo") == [], timeout=30, what="instances gone")

    agent.cli("up", str(manifest), "--wait")
    r = agent.cli("down", "demo", "--timeout", "1s", check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "timed out after 1s waiting for 1 instance of demo to stop" in r.stderr, r.stderr
    wait_for(lambda: agent.instances("demo") == [], timeout=30, what="instances gone")
