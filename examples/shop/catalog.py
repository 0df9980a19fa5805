"""The shop's catalog service: a JSON list of items on ${PORT}. Standard library only."""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEMS = [
    {"sku": "mug", "name": "Baton mug", "price_cents": 1200},
    {"sku": "tee", "name": "Baton T-shirt", "price_cents": 2500},
    {"sku": "pin", "name": "Baton pin", "price_cents": 300},
]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"ok": True})
        elif self.path == "/items":
            self.reply(200, {"catalog": os.environ.get("CATALOG_NAME", "catalog"),
                             "instance": os.environ.get("BATON_INSTANCE_ID", ""),
                             "items": ITEMS})
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("catalog: " + (fmt % args) + "\n")
        sys.stdout.flush()


def main():
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops bursts
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"catalog listening on {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
