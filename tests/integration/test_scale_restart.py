"""An agent restart (even a kill -9) must not scale an autoscaled service down to its `min`: the
autoscaler picks up the count the service runs at, and a fresh agent, with no load history, does
not scale down before one stable window of its own observations (docs/autoscaling.md)."""
import time
from pathlib import Path

from conftest import FILES, wait_for

SVC = FILES / "tests" / "integration" / "svc.py"

# How long `baton scale --min 3` holds. The agent is killed while it holds and restarted once it
# has expired, so the restarted agent sees the manifest's bounds (1..5) and no override.
OVERRIDE_SECONDS = 25
# How long the restarted agent must keep 3 instances: well within the 60 s stable window.
KEEP_SECONDS = 10


def write_app(path: Path):
    path.write_text(f"""
app = "demo"

[services.api]
run = ["python3", "{SVC}"]
health = "/healthz"
env = {{ VERSION = "v1" }}
kill_timeout = "3s"

[services.api.scale]
min = 1
max = 5
concurrency = 10
""")
    return path


def running(agent):
    """Instances the agent wants running (a scale-down clears `desired_running` at once)."""
    return [i for i in agent.instances("demo", "api") if i["desired_running"]]


def test_restart_after_kill_9_keeps_the_autoscaled_count(make_agent, tmp_path):
    agent = make_agent().start()
    agent.cli("up", str(write_app(tmp_path / "app.toml")), "--wait")
    assert len(agent.healthy("demo", "api")) == 1

    # Bring the service to 3 with an override that runs out while no agent runs: the restarted
    # agent then sees bounds 1..5 and a service running 3 instances, with no load at all.
    agent.cli("scale", "demo/api", "--min", "3", "--for", f"{OVERRIDE_SECONDS}s")
    expires = time.monotonic() + OVERRIDE_SECONDS
    wait_for(lambda: len(agent.healthy("demo", "api")) == 3, timeout=OVERRIDE_SECONDS - 5,
             what="3 healthy instances under the override")
    before = {i["id"] for i in agent.healthy("demo", "api")}
    agent.kill9()
    assert time.monotonic() < expires - 1, "the override ran out before the agent was killed"
    time.sleep(max(0.0, expires - time.monotonic()) + 1.0)

    again = make_agent()
    again.api_port, again.addr = agent.api_port, agent.addr
    again.http_port, again.https_port = agent.http_port, agent.https_port
    again.start()
    row = {s["service"]: s for s in again.cli_json("ps", "demo")["services"]}["api"]
    assert (row["min"], row["max"], row["source"]) == (1, 5, "manifest"), row

    # The controller's first passes run at once: a drop to min would show within a second or
    # two. Watch for KEEP_SECONDS that all 3 stay, and that they are the same 3.
    deadline = time.monotonic() + KEEP_SECONDS
    seen = []
    while time.monotonic() < deadline:
        ids = {i["id"] for i in running(again)}
        seen.append(len(ids))
        assert ids == before, (f"after the restart the service went from {sorted(before)} to "
                               f"{sorted(ids)} (counts seen: {seen})\n--- agent log ---\n"
                               f"{again.log()[-3000:]}")
        time.sleep(0.2)
    row = {s["service"]: s for s in again.cli_json("ps", "demo")["services"]}["api"]
    assert row["desired"] == 3, row
