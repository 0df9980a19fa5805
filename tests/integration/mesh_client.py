"""A client the mesh tests run inside an instance's network namespace (`ip netns exec`), so
that the node proxy sees it as that instance (tests/integration/test_mesh.py).

  mesh_client.py HOST PORT --seconds S [--fresh N] [--keepalive] [--until-failure]

Sends GET /whoami: on one keep-alive connection (--keepalive) and/or from N threads that each
open a new connection per request (--fresh N), for S seconds or, with --until-failure, until the
first failure. Prints one JSON line: counts, and the wall-clock time of the first failure."""
import argparse
import http.client
import json
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("port", type=int)
p.add_argument("--seconds", type=float, default=5)
p.add_argument("--fresh", type=int, default=0)
p.add_argument("--keepalive", action="store_true")
p.add_argument("--until-failure", action="store_true")
p.add_argument("--interval", type=float, default=0.02)
args = p.parse_args()

lock = threading.Lock()
stats = {"ok": 0, "failed": 0, "keepalive_ok": 0, "first_failure_at": None, "errors": []}
stop = threading.Event()
end = time.monotonic() + args.seconds


def record(ok, what=""):
    with lock:
        if ok:
            stats["ok"] += 1
            return
        stats["failed"] += 1
        if stats["first_failure_at"] is None:
            stats["first_failure_at"] = time.time()
        if len(stats["errors"]) < 5:
            stats["errors"].append(what)
    if args.until_failure:
        stop.set()


def fresh():
    while not stop.is_set() and time.monotonic() < end:
        try:
            c = http.client.HTTPConnection(args.host, args.port, timeout=5)
            c.request("GET", "/whoami")
            r = c.getresponse()
            body = r.read()
            c.close()
            record(r.status == 200 and body, f"status {r.status}")
        except Exception as e:
            record(False, f"{type(e).__name__}: {e}")


def keepalive():
    c = http.client.HTTPConnection(args.host, args.port, timeout=5)
    while not stop.is_set() and time.monotonic() < end:
        try:
            c.request("GET", "/whoami")
            r = c.getresponse()
            body = r.read()
            record(r.status == 200 and body, f"status {r.status}")
            with lock:
                stats["keepalive_ok"] += 1
        except Exception as e:
            record(False, f"keep-alive {type(e).__name__}: {e}")
            return
        time.sleep(args.interval)


threads = [threading.Thread(target=fresh) for _ in range(args.fresh)]
if args.keepalive:
    threads.append(threading.Thread(target=keepalive))
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(stats), flush=True)
