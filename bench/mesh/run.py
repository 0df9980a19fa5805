#!/usr/bin/env python3
"""The mesh (issue 12, bench/mesh): requests per second and latency through two Baton node
proxies with mutual TLS, against the same two hops built with nginx (a plain-to-mTLS proxy with
proxy_ssl_certificate, then an mTLS-terminating one with ssl_verify_client on), in one run, in
front of the same backend (nginx, as a Baton service); the time from `baton deny` to the cut of
an open connection and from a scale change to the DNS answer; the proxy's idle memory.

    bench/mesh/run.py [--seconds 5] [--rounds 8] [--connections 32] [--trials 20] [--baton build/src/cli/baton]

Needs root (network namespaces), nginx, wrk, dig, openssl. Prints Markdown.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CLIENT = ROOT / "tests/integration/mesh_client.py"

BACKEND_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen {port} backlog=4096; location / {{ default_type text/plain; return 200 "hello from the backend\\n"; }} }}
}}
"""

# The peer: hop 1 (plain in, mutual TLS out with a client certificate), hop 2 (mutual TLS in,
# checked against the CA, plain out to the backend). One worker each, as Baton's proxy runs
# on one thread.
PEER_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  upstream hop2 {{ server 127.0.0.1:{hop2}; keepalive 64; }}
  upstream backend {{ server {backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{hop1};
    location / {{
      proxy_pass https://hop2;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate {d}/client.pem;
      proxy_ssl_certificate_key {d}/client.key;
      proxy_ssl_trusted_certificate {d}/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name server.mesh;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
    }}
  }}
  server {{
    listen 127.0.0.1:{hop2} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    ssl_client_certificate {d}/ca.pem;
    ssl_verify_client on;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""


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
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)


def certs(d: Path):
    """A CA and EC P-256 client and server certificates for the nginx peer."""
    def run(*a):
        sh("openssl", *a, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    for who in ("client", "server"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}.mesh")
        (d / f"{who}.ext").write_text(f"subjectAltName=DNS:{who}.mesh\n")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile", f"{who}.ext")


WRK_RE = re.compile(r"Requests/sec:\s+([\d.]+)")


def wrk(prefix, url, seconds, connections, *extra):
    """(req/s, {50, 90, 99: ms}, errors) of wrk against url."""
    out = subprocess.run([*prefix, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          *extra, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(WRK_RE.search(out).group(1))
    lat = {}
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        lat[p] = v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat, errors + (int(non2xx.group(1)) if non2xx else 0)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5, help="per wrk run")
    ap.add_argument("--rounds", type=int, default=8, help="paired Baton/nginx rounds")
    ap.add_argument("--fresh-rounds", type=int, default=4,
                    help="paired rounds with a new connection per request")
    ap.add_argument("--serve", action="store_true",
                    help="set up, print the wrk command of each path and wait (for profiling)")
    ap.add_argument("--throughput-only", action="store_true",
                    help="skip the deny, DNS and memory measures")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--baton", default=str(ROOT / "build/src/cli/baton"))
    args = ap.parse_args()
    baton = str(Path(args.baton).resolve())
    work = Path(tempfile.mkdtemp(prefix="baton-mesh-bench."))
    os.chmod(work, 0o755)
    (work / "backend" / "tmp").mkdir(parents=True)
    os.chmod(work / "backend", 0o777)
    os.chmod(work / "backend" / "tmp", 0o777)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    api, http, dns = free_port(), free_port(), free_port()
    agent_log = open(work / "agent.log", "wb")
    agent = subprocess.Popen([baton, "agent", "--dev", "--data-dir", str(work / "data"),
                              "--api", f"127.0.0.1:{api}", "--http", f"127.0.0.1:{http}",
                              "--https", f"127.0.0.1:{free_port()}", "--dns", f"127.0.0.1:{dns}"],
                             stdout=agent_log, stderr=subprocess.STDOUT, start_new_session=True)
    addr = f"http://127.0.0.1:{api}"
    env = dict(os.environ, BATON_ADDR=addr)
    procs = []

    def get(path):
        with urllib.request.urlopen(addr + path, timeout=10) as r:
            return json.loads(r.read())

    def request(method, path, body):
        req = urllib.request.Request(addr + path, data=json.dumps(body).encode(), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def healthy(svc):
        return [i for i in get(f"/v1/instances?app=bench&service={svc}")["instances"]
                if i["state"] == "healthy"]

    try:
        wait_for(lambda: get("/v1/health")["ok"], 20, "the agent")
        port = 8080  # fixed: nginx cannot read ${PORT}; each instance has its own network
        (work / "backend.conf").write_text(BACKEND_CONF.format(d=work / "backend", port=port))
        manifest = work / "app.toml"
        manifest.write_text(f"""app = "bench"
[services.client]
run = ["{PYTHON}", "-c", "import http.server,os; http.server.HTTPServer(('0.0.0.0', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler).serve_forever()"]
upstreams = ["backend"]
[services.backend]
port = {port}
run = ["{nginx}", "-c", "{work}/backend.conf", "-p", "{work}/backend", "-e", "{work}/backend/error.log", "-g", "daemon off;"]
cpu = 1.0
[services.backend.scale]
min = 1
max = 3
[services.probe]
run = ["{PYTHON}", "-c", "import http.server,os; http.server.HTTPServer(('0.0.0.0', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler).serve_forever()"]
cpu = 0.1
[services.probe.scale]
min = 1
max = 3
""")
        sh(baton, "up", str(manifest), "--wait", "--timeout", "60s", env=env)
        client = healthy("client")[0]
        backend = healthy("backend")[0]
        netns = ["ip", "netns", "exec", f"baton-{client['id']}"]
        vip = [l for l in open(f"/proc/{client['pid']}/environ", "rb").read().split(b"\0")
               if l.startswith(b"BATON_UPSTREAM_BACKEND=")][0].decode().split("=", 1)[1]
        backend_addr = f"{backend['address']}:{backend['port']}"

        # The nginx peer: the same two hops, with the same kind of certificates.
        peer = work / "peer"
        (peer / "tmp").mkdir(parents=True)
        certs(peer)
        hop1, hop2 = free_port(), free_port()
        (peer / "nginx.conf").write_text(PEER_CONF.format(d=peer, hop1=hop1, hop2=hop2,
                                                          backend=backend_addr))
        procs.append(subprocess.Popen([nginx, "-c", str(peer / "nginx.conf"), "-p", str(peer),
                                       "-e", str(peer / "error.log"), "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{hop1}/", timeout=2).status == 200,
                 20, "the nginx peer")

        # Throughput in paired rounds: the machine's own speed drifts by tens of percent over a
        # minute (other tenants of the host), so one long run of each path gives a ratio that
        # moves with it. Each round runs Baton and nginx back to back (alternating which goes
        # first) and the ratio is taken per round; the median of the rounds is the figure.
        paths = {
            "direct (no proxy)": ([], f"http://{backend_addr}/"),
            "Baton mesh (2 proxies, mTLS)": (netns, f"http://{vip}/"),
            "nginx (2 proxies, mTLS)": ([], f"http://127.0.0.1:{hop1}/"),
        }
        if args.serve:
            for name, (prefix, url) in paths.items():
                print(f"{name}: {' '.join(prefix)} wrk -t1 -c{args.connections} -d10s {url}")
            print(f"agent pid {agent.pid}; SIGINT or SIGTERM ends", flush=True)

            def end(*_):
                raise KeyboardInterrupt
            signal.signal(signal.SIGTERM, end)
            signal.signal(signal.SIGINT, end)
            try:
                signal.pause()
            except KeyboardInterrupt:
                return
        for prefix, url in paths.values():
            wrk(prefix, url, 2, args.connections)  # warm up (handshakes, pools)
        names = list(paths)
        runs = {name: [] for name in names}
        ratios = []
        for r in range(args.rounds):
            order = names[1:] if r % 2 == 0 else names[:0:-1]
            got = {}
            for name in order:
                got[name] = wrk(*paths[name], args.seconds, args.connections)
                runs[name].append(got[name])
            ratios.append(got[names[1]][0] / got[names[2]][0])
        runs[names[0]].append(wrk(*paths[names[0]], args.seconds, args.connections))
        lat1 = {name: wrk(*paths[name], max(3, args.seconds), 1)[1] for name in names}

        print(f"## The mesh: two proxies with mutual TLS (bench/mesh/run.py)\n")
        print(f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} paired rounds "
              f"(Baton and nginx back to back, alternating which goes first); one worker/thread "
              f"per proxy; backend nginx (a Baton service); 2 cores. Figures are medians over "
              f"the rounds (direct: one run).\n")
        print("| path | req/s (median) | req/s (min-max) | p50 ms | p90 ms | p99 ms | errors | "
              "1 conn p50 ms | 1 conn p90 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in names:
            rs = runs[name]
            rps = [x[0] for x in rs]
            med = lambda k: statistics.median(x[1][k] for x in rs)
            print(f"| {name} | {statistics.median(rps):,.0f} | {min(rps):,.0f}-{max(rps):,.0f} | "
                  f"{med('50'):.2f} | {med('90'):.2f} | {med('99'):.2f} | "
                  f"{sum(x[2] for x in rs)} | {lat1[name]['50']:.3f} | {lat1[name]['90']:.3f} |")
        direct = lat1[names[0]]
        print(f"\nBaton / nginx, paired per round: **{statistics.median(ratios):.2f}x** median "
              f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 1.1x). Added latency "
              f"of the two hops at one connection: p90 +{lat1[names[1]]['90'] - direct['90']:.3f} "
              f"ms (nginx +{lat1[names[2]]['90'] - direct['90']:.3f} ms; Envoy's published "
              f"sidecar figure: +2.65 ms p90 at 1k rps).\n")

        # A new connection per request (wrk reconnects after `Connection: close`): Baton makes a
        # mutual TLS connection between its proxies for each (resumed after the first), nginx's
        # hop 1 takes one from its keepalive pool.
        fresh = {name: [] for name in names[1:]}
        fresh_ratios = []
        for r in range(args.fresh_rounds):
            order = names[1:] if r % 2 == 0 else names[:0:-1]
            got = {}
            for name in order:
                got[name] = wrk(*paths[name], args.seconds, args.connections, "-H",
                                "Connection: close")
                fresh[name].append(got[name])
            fresh_ratios.append(got[names[1]][0] / got[names[2]][0])
        if args.fresh_rounds:
            print("A new connection per request (`-H 'Connection: close'`), medians:\n")
            print("| path | req/s (median) | req/s (min-max) | p50 ms | p99 ms | errors |")
            print("|---|---|---|---|---|---|")
            for name in names[1:]:
                rs = fresh[name]
                rps = [x[0] for x in rs]
                print(f"| {name} | {statistics.median(rps):,.0f} | {min(rps):,.0f}-{max(rps):,.0f} "
                      f"| {statistics.median(x[1]['50'] for x in rs):.2f} | "
                      f"{statistics.median(x[1]['99'] for x in rs):.2f} | {sum(x[2] for x in rs)} |")
            metrics = urllib.request.urlopen(f"{addr}/metrics", timeout=10).read().decode()
            resumed = re.search(r"^baton_mesh_resumed_total (\d+)", metrics, re.M)
            print(f"\nBaton / nginx: **{statistics.median(fresh_ratios):.2f}x** median (rounds: "
                  f"{', '.join(f'{x:.2f}' for x in fresh_ratios)}). Baton's caller-side TLS "
                  f"connections that resumed a session, whole run: "
                  f"{resumed.group(1) if resumed else 'n/a'}.\n")
        if args.throughput_only:
            return
        # Deny -> cut of an open keep-alive connection.
        host, vport = vip.split(":")
        cuts = []
        for _ in range(args.trials):
            request("DELETE", "/v1/intentions?source=bench/client&destination=bench/backend", {}) \
                if any(i["source"] == "bench/client" for i in get("/v1/intentions")["intentions"]) else None
            wait_for(lambda: urllib.request.urlopen(
                f"{addr}/v1/intentions/check?source=bench/client&destination=bench/backend",
                timeout=5).read().find(b'"allowed":true') >= 0, 10, "allowed again")
            time.sleep(0.2)
            c = subprocess.Popen([*netns, PYTHON, str(CLIENT), host, vport, "--keepalive",
                                  "--until-failure", "--seconds", "20", "--interval", "0.001"],
                                 stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            request("PUT", "/v1/intentions", {"source": "bench/client",
                                              "destination": "bench/backend", "action": "deny"})
            t = time.time()
            res = json.loads(c.communicate(timeout=30)[0])
            if res["first_failure_at"]:
                cuts.append((res["first_failure_at"] - t) * 1000)
        print(f"`baton deny` (its API call returned) to the open connection cut, {len(cuts)} trials: "
              f"p50 {pct(cuts, 50):.1f} ms, p99 {pct(cuts, 99):.1f} ms, max {max(cuts):.1f} ms "
              f"(goal p99 <= 100 ms).\n")

        # Scale change -> DNS answer (of `probe`, small enough for two instances to fit beside
        # the rest on 2 cores). Both sides are polled in one loop about every millisecond:
        # the catalog (/v1/instances on a keep-alive connection) and the DNS answer (a UDP query
        # from this process, not a dig per poll, which would take ~10 ms each).
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(1)
        qid = 0

        def dns_count():
            nonlocal qid
            qid = (qid + 1) & 0xFFFF
            q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
            for label in "probe.bench.service.baton".split("."):
                q += bytes([len(label)]) + label.encode()
            q += b"\0" + struct.pack(">HH", 1, 1)
            sock.sendto(q, ("127.0.0.1", dns))
            while True:
                data = sock.recv(512)
                if struct.unpack(">H", data[:2])[0] == qid:
                    return struct.unpack(">H", data[6:8])[0]

        conn = HTTPConnection("127.0.0.1", api, timeout=10)

        def api_count():
            conn.request("GET", "/v1/instances?app=bench&service=probe")
            rows = json.loads(conn.getresponse().read())["instances"]
            return len([i for i in rows if i["state"] == "healthy"])

        lags, missed = [], 0
        n = 1
        for trial in range(min(args.trials, 20)):
            n = 2 if n == 1 else 1
            sh(baton, "scale", "bench/probe", "--min", str(n), "--max", str(n), env=env)
            seen_api = seen_dns = None
            end = time.monotonic() + 60
            while time.monotonic() < end and (seen_api is None or seen_dns is None):
                if seen_api is None and api_count() == n:
                    seen_api = time.monotonic()
                if seen_dns is None and dns_count() == n:
                    seen_dns = time.monotonic()
                time.sleep(0.001)
            if seen_api and seen_dns:
                lags.append((seen_dns - seen_api) * 1000)
            else:
                missed += 1
            time.sleep(0.5)  # settled before the next change
        print(f"Scale change: the DNS answer after /v1/instances showed it, {len(lags)} changes "
              f"({missed} not seen within 60 s): p50 {pct(lags, 50):.1f} ms, p99 {pct(lags, 99):.1f} "
              f"ms, max {max(lags):.1f} ms (both polled about every 1 ms; negative: DNS first; goal "
              f"p99 <= 100 ms).\n")

        print(f"Agent RSS with the mesh on, idle after the runs: {rss_kib(agent.pid) / 1024:.1f} MiB "
              f"(the proxy is a thread of the agent; see BENCHMARKS.md for the idle delta).")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        subprocess.run([baton, "down", "bench", "--timeout", "30s"], env=env, capture_output=True)
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
