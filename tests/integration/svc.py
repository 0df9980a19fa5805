"""A test service on ${PORT}: `/` answers with its VERSION and instance id, `/healthz` with 200.
A path ending in `/echo-headers` answers with the request's headers as a JSON object
(lowercased names; repeated headers joined with ", ") so tests can see what the gateway forwarded.
Environment switches make it misbehave on purpose:
  EXIT_AT_START=N  exit with code N at once (a broken release)
  NEVER_HEALTHY=1  listen, but answer /healthz with 500
"""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if os.environ.get("EXIT_AT_START"):
    print("exiting at start, as asked", flush=True)
    sys.exit(int(os.environ["EXIT_AT_START"]))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            code = 500 if os.environ.get("NEVER_HEALTHY") else 200
            return self.reply(code, b"unhealthy\n" if code == 500 else b"ok\n")
        if self.path.split("?", 1)[0].endswith("/echo-headers"):
            seen = {}
            for k, v in self.headers.items():
                k = k.lower()
                seen[k] = f"{seen[k]}, {v}" if k in seen else v
            return self.reply(200, json.dumps(seen).encode())
        body = f"version={os.environ.get('VERSION', '?')} " \
               f"instance={os.environ.get('BATON_INSTANCE_ID', '?')}\n".encode()
        self.reply(200, body)

    def reply(self, code, data):
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("svc: " + (fmt % args), flush=True)


ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 drops bursts
server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"svc listening on {server.server_port} pid {os.getpid()}", flush=True)
sys.stderr.write("svc: this line goes to stderr\n")
sys.stderr.flush()
server.serve_forever()
