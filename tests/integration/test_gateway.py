"""The front door and autoscaling end to end: requests through the agent's gateway, a service
at zero answering its first request, growing under load within max, a schedule window."""
import asyncio
import datetime
import shutil
import subprocess
import time
from pathlib import Path

from conftest import FILES, REPO, http_get, wait_for

SVC = FILES / "tests" / "integration" / "svc.py"


def scaled_app(path: Path, min_, max_, idle="3s", concurrency=2, schedule=""):
    path.write_text(f"""
app = "zero"

[services.api]
run = ["python3", "{SVC}"]
health = "/healthz"
env = {{ VERSION = "v1" }}

[services.api.scale]
min = {min_}
max = {max_}
concurrency = {concurrency}
idle = "{idle}"
{schedule}

[[routes]]
path = "/"
service = "api"
""")
    return path


def cold_overhead_ms(agent):
    """The gateway's last cold-request overhead (the instance entering the routing table -> the
    first parked request written upstream): printed for BENCHMARKS.md, never asserted (a time)."""
    metrics = http_get(agent.addr + "/metrics")[1]
    values = [line.split()[-1] for line in metrics.splitlines()
              if line.startswith('baton_gateway_cold_overhead_seconds{app="zero"')]
    assert len(values) == 1, metrics
    return float(values[0]) * 1000


def service_row(agent, app, svc):
    return {s["service"]: s for s in agent.cli_json("ps", app)["services"]}[svc]


def test_gateway_routes_to_the_example_app_over_http_and_https(agent, tmp_path):
    app_dir = tmp_path / "shop"
    shutil.copytree(REPO / "examples" / "shop", app_dir)
    agent.cli("up", str(app_dir / "app.toml"), "--wait")
    wait_for(lambda: "Baton mug" in http_get(agent.gateway + "/")[1], what="page via gateway")
    out = subprocess.run(["curl", "-sk", "--tlsv1.2", f"https://127.0.0.1:{agent.https_port}/"],
                         capture_output=True, text=True, timeout=20)
    assert "Baton mug" in out.stdout
    metrics = http_get(agent.addr + "/metrics")[1]
    assert 'baton_gateway_requests_total{app="shop",service="web"}' in metrics


def test_service_at_zero_answers_its_first_request_and_returns_to_zero(agent, tmp_path):
    agent.cli("up", str(scaled_app(tmp_path / "app.toml", 0, 3)))
    time.sleep(1)
    assert agent.instances("zero", "api") == []
    status, body = http_get(agent.gateway + "/first", timeout=30)
    assert status == 200 and body.startswith("version=v1")
    assert len(agent.healthy("zero", "api")) == 1
    metrics = http_get(agent.addr + "/metrics")[1]
    assert 'baton_cold_start_seconds_count{app="zero",service="api"} 1' in metrics, metrics
    print(f"cold-request overhead, one request: {cold_overhead_ms(agent):.2f} ms")
    wait_for(lambda: agent.instances("zero", "api") == [], timeout=60, what="back to zero")


async def burst(port, n):
    """n concurrent HTTP/1.1 requests on n connections; returns the status codes."""
    async def one(i):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 30)
            writer.write(f"GET /burst/{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 60)
            head = []
            while (h := await asyncio.wait_for(reader.readline(), 60)) not in (b"\r\n", b""):
                head.append(h.decode().lower())
            writer.close()
            code = int(line.split()[1])
            if code == 503 and not any(h.startswith("retry-after:") for h in head):
                return "503 without Retry-After"
            return code
        except Exception as e:  # counted as a failure below
            return repr(e)
    return await asyncio.gather(*(one(i) for i in range(n)))


def test_burst_of_1000_onto_a_service_at_zero(agent, tmp_path):
    agent.cli("up", str(scaled_app(tmp_path / "app.toml", 0, 3, idle="30s", concurrency=50)))
    time.sleep(1)
    codes = asyncio.run(burst(agent.http_port, 1000))
    # The hold queue holds 1,000 by default: every request is answered 200.
    assert codes.count(200) == 1000, {c: codes.count(c) for c in set(map(str, codes))}
    print(f"cold-request overhead, 1,000 parked: {cold_overhead_ms(agent):.2f} ms")


def test_grows_under_load_and_never_exceeds_max(agent, tmp_path):
    agent.cli("up", str(scaled_app(tmp_path / "app.toml", 1, 3, idle="30s", concurrency=2)),
              "--wait")
    seen = []
    load = subprocess.Popen(["wrk", "-t2", "-c32", "-d20s", agent.gateway + "/"],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 25
    while load.poll() is None and time.monotonic() < deadline:
        seen.append(len([i for i in agent.instances("zero", "api")
                         if i["state"] not in ("stopped", "failed")]))
        time.sleep(0.25)
    out = load.communicate(timeout=30)[0]
    assert max(seen) > 1, seen
    assert max(seen) <= 3, seen
    assert "Non-2xx" not in out, out


def test_schedule_window_raises_min_then_reverts(agent, tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now + datetime.timedelta(seconds=6)).strftime("%Y-%m-%d %H:%M:%S")
    end = (now + datetime.timedelta(seconds=16)).strftime("%Y-%m-%d %H:%M:%S")
    schedule = f"""
[[services.api.scale.schedule]]
name = "launch"
start = "{start}"
end = "{end}"
timezone = "UTC"
min = 2
"""
    agent.cli("up", str(scaled_app(tmp_path / "app.toml", 1, 3, idle="60s",
                                   schedule=schedule)), "--wait")
    assert service_row(agent, "zero", "api")["source"] == "manifest"
    wait_for(lambda: len(agent.healthy("zero", "api")) == 2, timeout=20, what="window opens")
    row = service_row(agent, "zero", "api")
    assert row["source"] == "schedule:launch" and row["min"] == 2
    assert "schedule:launch" in agent.cli("ps", "zero").stdout
    wait_for(lambda: len(agent.instances("zero", "api")) == 1 and
             service_row(agent, "zero", "api")["source"] == "manifest",
             timeout=30, what="window closes")


def test_burst_past_the_hold_queue_bound_gets_503_with_retry_after(make_agent, tmp_path):
    config = tmp_path / "baton.toml"
    config.write_text('[gateway]\nhold_queue = 100\nhold_timeout = "20s"\n')
    agent = make_agent()
    agent.extra_args = ["--config", str(config)]
    agent.start()
    agent.cli("up", str(scaled_app(tmp_path / "app.toml", 0, 3, idle="30s", concurrency=50)))
    time.sleep(1)
    codes = asyncio.run(burst(agent.http_port, 1000))
    counts = {c: codes.count(c) for c in set(map(str, codes))}
    assert set(counts) <= {"200", "503"}, counts
    assert codes.count(200) >= 100, counts      # the queue's worth, at least, is served
    assert codes.count(503) > 0, counts          # and the overflow is refused with Retry-After


def held_total(agent, app, svc):
    """Requests the gateway parked because the service had no instance ready (cold calls)."""
    metrics = http_get(agent.addr + "/metrics")[1]
    for line in metrics.splitlines():
        if line.startswith(f'baton_gateway_held_total{{app="{app}",service="{svc}"}}'):
            return int(float(line.split()[-1]))
    return 0


def test_a_service_called_every_20_s_is_prewarmed_and_stopped_between_calls(agent, tmp_path):
    """Issue 18: a client calls a service at min = 0 every 20 s. The first call is cold (parked
    while an instance starts); once the autoscaler has learned the period, each call finds an
    instance ready (nothing parked), and between calls there is none (20 s is well past the cost
    of going to zero and back for a start of about a second)."""
    agent.cli("up", str(scaled_app(tmp_path / "app.toml", 0, 3, idle="60s")))
    time.sleep(1)
    assert agent.instances("zero", "api") == []
    period, calls, learned = 20.0, 9, 5  # 4 periods agree after the 5th call
    t0 = time.monotonic() + 0.5
    held_before, between = [], []
    for k in range(calls):
        time.sleep(max(0.0, t0 + k * period - time.monotonic()))
        held_before.append(held_total(agent, "zero", "api"))
        status, body = http_get(agent.gateway + f"/call/{k}", timeout=30)
        assert status == 200 and body.startswith("version=v1"), (k, status, body)
        if k >= learned:
            time.sleep(period / 2)
            between.append(service_row(agent, "zero", "api")["desired"])
    held_after = held_total(agent, "zero", "api")
    cold = [b - a for a, b in zip(held_before, held_before[1:] + [held_after])]
    print(f"parked per call: {cold}; desired midway between the learned calls: {between}")
    assert cold[0] == 1, cold  # the first call found the service at zero
    assert sum(cold[learned + 1:]) == 0, f"calls after learning were parked: {cold}"
    assert between and all(d == 0 for d in between), between
    row = service_row(agent, "zero", "api")
    assert row["rhythm"] == "period 20 s", row
    assert row["next_expected"] is not None
    ps = agent.cli("ps", "zero").stdout
    assert "(period 20 s)" in ps, ps
    assert "(prewarm: period 20 s, next expected" in agent.log()
