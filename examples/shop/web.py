"""The shop's web front end on ${PORT}. It calls the catalog, its declared upstream, at the address
the mesh gives it (BATON_UPSTREAM_CATALOG_URL) and renders its items. Standard library only."""
import json
import os
import signal
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def catalog_url():
    # The node's mesh proxy listens there, picks a healthy catalog instance (waking one when
    # the catalog is at zero) and carries the call over mutual TLS.
    url = os.environ.get("BATON_UPSTREAM_CATALOG_URL")
    if url:
        return url
    # A node without isolation (not root: docs/mesh.md) has no mesh: ask the agent's catalog.
    base, app = os.environ["BATON_ADDR"], os.environ.get("BATON_APP", "shop")
    with urllib.request.urlopen(
            f"{base}/v1/instances?app={app}&service=catalog&state=healthy", timeout=2) as r:
        instances = json.load(r)["instances"]
    if not instances:
        raise RuntimeError("no healthy catalog instance")
    return f"http://{instances[0]['address'] or '127.0.0.1'}:{instances[0]['port']}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, "text/plain", b"ok\n")
        if self.path != "/":
            return self.reply(404, "text/plain", b"not found\n")
        try:
            with urllib.request.urlopen(catalog_url() + "/items", timeout=2) as r:
                catalog = json.load(r)
        except Exception as e:  # the page says what went wrong instead of a bare 500
            return self.reply(502, "text/plain", f"catalog unavailable: {e}\n".encode())
        lines = [f"{os.environ.get('GREETING', 'Hello')} to {catalog['catalog']}!", ""]
        for item in catalog["items"]:
            lines.append(f"  {item['name']:<16} {item['price_cents'] / 100:>7.2f}")
        lines += ["", f"(served by web {os.environ.get('BATON_INSTANCE_ID', '?')}, "
                      f"catalog {catalog['instance']})", ""]
        self.reply(200, "text/plain; charset=utf-8", "\n".join(lines).encode())

    def reply(self, code, ctype, data):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("web: " + (fmt % args) + "\n")
        sys.stdout.flush()


def main():
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops bursts
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"web listening on {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
