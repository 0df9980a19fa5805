#!/usr/bin/env python3
"""Containers at zero (issue 11, bench/containers): the time from a request to a service at zero
to its first byte, for the docker driver (Podman's Docker API) and the oci driver (runc, cached
rootfs), against `podman run` of the same image and faasd's published 0.39 s; and what each
running instance costs the node beyond the container itself (PSS).

    bench/containers/run.py [--rounds 7] [--instances 5] [--baton build/src/cli/baton]

Needs root, podman, runc and busybox-static (scripts/install-deps.sh). Prints Markdown.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/baton/busybox:4"
PODMAN = ["podman", "--runtime=runc", "--cgroup-manager=cgroupfs"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def first_byte(host, port, path, timeout=60.0):
    """Seconds from connect() to the first byte of the answer to GET path (retrying connects
    that are refused: for `podman run`, nothing listens yet)."""
    t0 = time.monotonic()
    while True:
        try:
            s = socket.create_connection((host, port), timeout=timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            b = s.recv(1)
            s.close()
            if b:
                return time.monotonic() - t0
        except (ConnectionRefusedError, ConnectionResetError):
            pass
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"no answer from {host}:{port}{path}")
        time.sleep(0.002)


def pss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pids_matching(pred):
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pred(cmd):
            out.append(int(d.name))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--baton", default=str(ROOT / "build/src/cli/baton"))
    args = ap.parse_args()
    baton = str(Path(args.baton).resolve())

    subprocess.run(["bash", str(ROOT / "tests/images/busybox-image.sh"), IMAGE], check=True)
    work = Path(tempfile.mkdtemp(prefix="baton-containers-bench."))
    os.chmod(work, 0o755)
    archive = work / "busybox.tar"
    subprocess.run([*PODMAN, "save", "--format", "oci-archive", "-o", str(archive), IMAGE],
                   check=True, capture_output=True)
    sock = work / "podman.sock"
    engine = subprocess.Popen([*PODMAN, "system", "service", "--time=0", f"unix://{sock}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    wait_for(sock.exists, 30, "podman system service")
    api, http = free_port(), free_port()
    cfg = work / "baton.toml"
    cfg.write_text(f'[drivers.docker]\nsocket = "{sock}"\n')
    data = work / "data"
    log = open(work / "agent.log", "wb")
    agent = subprocess.Popen([baton, "agent", "--dev", "--data-dir", str(data), "--config", str(cfg),
                              "--api", f"127.0.0.1:{api}", "--http", f"127.0.0.1:{http}",
                              "--https", f"127.0.0.1:{free_port()}"],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    addr = f"http://127.0.0.1:{api}"
    env = dict(os.environ, BATON_ADDR=addr)

    def get(path):
        with urllib.request.urlopen(addr + path, timeout=10) as r:
            return json.loads(r.read())

    def instances(service):
        return [i for i in get(f"/v1/instances?app=bench&service={service}")["instances"]]

    try:
        wait_for(lambda: get("/v1/health").get("ok"), 20, "agent")
        httpd = '["httpd", "-f", "-p", "${PORT}", "-h", "/www"]'
        manifest = work / "app.toml"
        def deploy(min_count):
            manifest.write_text(f"""app = "bench"
[services.docker]
image = "{IMAGE}"
run = {httpd}
[services.docker.scale]
min = {min_count}
max = {max(min_count, 1)}
idle = "1s"
[services.oci]
driver = "oci"
image = "oci-archive:{archive}"
run = {httpd}
[services.oci.scale]
min = {min_count}
max = {max(min_count, 1)}
idle = "1s"
[services.exec]
run = ["/bin/busybox", "httpd", "-f", "-p", "${{PORT}}", "-h", "{work / 'www'}"]
[services.exec.scale]
min = {min_count}
max = {max(min_count, 1)}
idle = "1s"
[[routes]]
path = "/docker/"
service = "docker"
strip_prefix = true
[[routes]]
path = "/oci/"
service = "oci"
strip_prefix = true
[[routes]]
path = "/exec/"
service = "exec"
strip_prefix = true
""")
            subprocess.run([baton, "up", str(manifest)], env=env, check=True, capture_output=True)
        (work / "www").mkdir()
        (work / "www/index.html").write_text("hello\n")
        os.chmod(work / "www", 0o755)
        deploy(0)

        cold = {}
        for service in ("exec", "oci", "docker"):
            # One untimed start: pulls/unpacks the image (the oci rootfs is then cached).
            first_byte("127.0.0.1", http, f"/{service}/")
            times = []
            for _ in range(args.rounds):
                wait_for(lambda: instances(service) == [], 60, f"{service} at zero")
                time.sleep(0.5)
                times.append(first_byte("127.0.0.1", http, f"/{service}/"))
            cold[service] = times

        podman_times = []
        for _ in range(args.rounds):
            port = free_port()
            t0 = time.monotonic()
            run = subprocess.Popen([*PODMAN, "run", "-d", "--rm", *ULIMITS, "-p", f"127.0.0.1:{port}:8080",
                                    IMAGE, "httpd", "-f", "-p", "8080", "-h", "/www"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            first_byte("127.0.0.1", port, "/")
            podman_times.append(time.monotonic() - t0)
            cid = run.communicate()[0].strip()
            subprocess.run([*PODMAN, "rm", "-f", cid], capture_output=True)

        # What running instances cost beyond the containers: N of each.
        wait_for(lambda: all(instances(s) == [] for s in ("exec", "oci", "docker")), 60, "zero")
        agent_before = rss_kib(agent.pid)
        conmon_before = set(pids_matching(lambda c: c.startswith("/usr/bin/conmon")))
        n = args.instances
        deploy(n)
        wait_for(lambda: all(len([i for i in instances(s) if i["state"] == "healthy"]) == n
                             for s in ("oci", "docker")), 120, "instances healthy")
        time.sleep(2)
        agent_after = rss_kib(agent.pid)
        d = str(data)
        sup_oci = pids_matching(lambda c: "supervise " in c and f"{d}/oci/" in c)
        runc_run = pids_matching(lambda c: c.split(" ")[0].endswith("runc") and " run " in c
                                 and f"{d}/oci" in c)
        conmon = [p for p in pids_matching(lambda c: c.startswith("/usr/bin/conmon"))
                  if p not in conmon_before]
        oci_kib = (sum(map(pss_kib, sup_oci)) + sum(map(pss_kib, runc_run))) / n
        sup_kib = sum(map(pss_kib, sup_oci)) / n
        runc_kib = sum(map(pss_kib, runc_run)) / n
        conmon_kib = sum(map(pss_kib, conmon)) / max(1, len(conmon))
        docker_agent_kib = (agent_after - agent_before) / n  # a follower thread per container

        med = {k: statistics.median(v) for k, v in cold.items()}
        pm = statistics.median(podman_times)
        print(f"### Containers at zero: `{' '.join(sys.argv)}`\n")
        print(f"Medians of {args.rounds} cold starts each (request at zero -> first byte, through the "
              f"gateway; the image already on the node, the oci rootfs cached):\n")
        print("| path | median | min | max | vs `podman run` | vs faasd 0.39 s |")
        print("|---|---|---|---|---|---|")
        for label, v in (("Baton exec (busybox httpd, a process)", cold["exec"]),
                         ("Baton oci (runc)", cold["oci"]), ("Baton docker (Podman API)", cold["docker"]),
                         ("`podman run -d` + first byte", podman_times)):
            m = statistics.median(v)
            print(f"| {label} | {m*1000:.0f} ms | {min(v)*1000:.0f} ms | {max(v)*1000:.0f} ms | "
                  f"{m/pm:.2f}x | {m/0.39:.2f}x |")
        print(f"\nPer running instance, beyond the container's own processes (PSS, {n} of each):\n")
        print("| driver | what | PSS per instance |")
        print("|---|---|---|")
        print(f"| oci | the supervisor (`baton-supervise`) | {sup_kib/1024:.2f} MiB |")
        print(f"| oci | `runc` once the container runs (none: `runc run --detach`) | {runc_kib/1024:.2f} MiB |")
        print(f"| oci | total | {oci_kib/1024:.2f} MiB |")
        print(f"| docker + oci | the agent's RSS growth per docker instance (a log follower each; oci's in the same agent) | {docker_agent_kib/1024:.2f} MiB |")
        print(f"| docker | Podman's `conmon` (the engine's, for comparison) | {conmon_kib/1024:.2f} MiB |")
    finally:
        try:
            deploy(0)
        except Exception:
            pass
        try:
            subprocess.run([baton, "down", "bench"], env=env, capture_output=True, timeout=120)
        except Exception:
            pass
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
