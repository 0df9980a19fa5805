"""A test service on ${PORT} that shows what it was given of its secrets (test_secrets.py):
  /healthz               200
  /env/NAME              the value of environment variable NAME (404 if unset)
  /file/REL              the content of $BATON_SECRETS_DIR/REL
  /read?path=ABS         the content of ABS, or 403 with the error (another service's file)
  /stat/REL              "mode uid" of $BATON_SECRETS_DIR/REL, and "me=UID"
  /hups                  how many SIGHUPs it got
"""
import os
import signal
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HUPS = 0


def on_hup(signum, frame):
    global HUPS
    HUPS += 1


signal.signal(signal.SIGHUP, on_hup)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        secrets_dir = os.environ.get("BATON_SECRETS_DIR", "")
        if path == "/healthz":
            return self.reply(200, "ok\n")
        if path == "/hups":
            return self.reply(200, str(HUPS))
        if path.startswith("/env/"):
            value = os.environ.get(path[len("/env/"):])
            return self.reply(404, "unset") if value is None else self.reply(200, value)
        if path.startswith("/file/"):
            return self.read(os.path.join(secrets_dir, path[len("/file/"):]))
        if path == "/read":
            return self.read(urllib.parse.parse_qs(url.query)["path"][0])
        if path.startswith("/stat/"):
            try:
                st = os.stat(os.path.join(secrets_dir, path[len("/stat/"):]))
            except OSError as e:
                return self.reply(403, f"{type(e).__name__}: {e.strerror}")
            return self.reply(200, f"{oct(st.st_mode & 0o7777)} {st.st_uid} me={os.getuid()}")
        self.reply(404, "no such page")

    def read(self, file):
        try:
            with open(file) as f:
                return self.reply(200, f.read())
        except OSError as e:
            return self.reply(403, f"{type(e).__name__}: {e.strerror}")

    def reply(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
