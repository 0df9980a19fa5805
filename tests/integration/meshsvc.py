"""A service for the mesh tests, on 0.0.0.0:${PORT} (tests/integration/test_mesh.py).

GET /whoami            -> "<app>/<service> <instance id>"
GET /env/NAME          -> the value of the environment variable NAME
GET /call?to=URL       -> fetches URL (a fresh connection) and answers "<status> <body>", or
                          "error <what>" when the connection failed
GET /connect?to=H:P    -> "connected" or "error <what>" for a plain TCP connect
GET /api?path=P        -> GET $BATON_ADDR + P with $BATON_TOKEN: "<status> <body>"
GET /peer              -> the address this connection comes from
GET /peername          -> that address's name (a PTR lookup through the instance's resolver)
GET /halfclose?to=H:P&bytes=N -> sends N bytes to H:P, ends its side (FIN), reads until the
                          other side ends and answers with what it read, or "error <what>"

With --answer-at-end it is a plain TCP server instead: each connection is read until the
client's end (FIN), answered "got N bytes" and closed.
"""
import socketserver
import os
import signal
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ME = f"{os.environ.get('BATON_APP')}/{os.environ.get('BATON_SERVICE')} {os.environ.get('BATON_INSTANCE_ID')}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/whoami" or url.path == "/healthz":
            return self.reply(ME)
        if url.path.startswith("/env/"):
            return self.reply(os.environ.get(url.path[5:], ""))
        if url.path == "/call":
            try:
                with urllib.request.urlopen(q["to"], timeout=float(q.get("timeout", "5"))) as r:
                    return self.reply(f"{r.status} {r.read().decode()}")
            except Exception as e:  # what the caller saw, for the test to check
                return self.reply(f"error {type(e).__name__}: {e}")
        if url.path == "/api":
            req = urllib.request.Request(os.environ.get("BATON_ADDR", "http://127.0.0.1:4646") + q["path"],
                                         headers={"Authorization": "Bearer " + os.environ.get("BATON_TOKEN", "")})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return self.reply(f"{r.status} {r.read().decode()}")
            except urllib.error.HTTPError as e:
                return self.reply(f"{e.code} {e.read().decode()}")
            except Exception as e:
                return self.reply(f"error {type(e).__name__}: {e}")
        if url.path == "/peer":
            return self.reply(self.client_address[0])
        if url.path == "/peername":
            try:
                return self.reply(socket.gethostbyaddr(self.client_address[0])[0])
            except Exception as e:
                return self.reply(f"error {type(e).__name__}: {e}")
        if url.path == "/connect":
            host, port = q["to"].rsplit(":", 1)
            try:
                with socket.create_connection((host, int(port)), timeout=2):
                    return self.reply("connected")
            except Exception as e:
                return self.reply(f"error {type(e).__name__}: {e}")
        if url.path == "/halfclose":
            host, port = q["to"].rsplit(":", 1)
            try:
                with socket.create_connection((host, int(port)), timeout=10) as c:
                    c.sendall(b"r" * int(q["bytes"]))
                    c.shutdown(socket.SHUT_WR)
                    got = b""
                    while chunk := c.recv(65536):
                        got += chunk
                    return self.reply(got.decode())
            except Exception as e:
                return self.reply(f"error {type(e).__name__}: {e}")
        self.send_error(404)

    def reply(self, text):
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


class AnswerAtEnd(socketserver.BaseRequestHandler):
    def handle(self):
        total = 0
        while chunk := self.request.recv(65536):
            total += len(chunk)
        self.request.sendall(f"got {total} bytes".encode())


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if sys.argv[1:] == ["--answer-at-end"]:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        socketserver.ThreadingTCPServer(("0.0.0.0", int(os.environ["PORT"])), AnswerAtEnd).serve_forever()
    ThreadingHTTPServer.request_queue_size = 256
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
