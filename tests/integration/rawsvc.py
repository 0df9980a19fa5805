"""A raw TCP test backend for test_frontdoor.py (python3 stdlib only: socket + threads).

Usage: python3 rawsvc.py PORT   (or PORT from the environment)

It records EXACTLY the bytes it receives on every connection, appended as JSON lines to the
file named by $RAW_LOG:
  {"pid": P, "conn": N, "kind": "data", "data_b64": "..."}   every chunk recv() returned
  {"pid": P, "conn": N, "kind": "req", "head_b64": "...", "body_b64": "..."}
                                                              every request it parsed
  {"pid": P, "conn": N, "kind": "open"} / {"kind": "close"}   connection start and end
(pid, conn) names a connection. The "data" records are the ground truth; the "req" records are
this script's own minimal parse of them (head up to the blank line, then a Content-Length or
chunked body), there to make the tests' assertions short.

Each connection serves ONE request and is closed after the response (`Connection: close`),
unless the request carries `X-Keep: 1` or is for /extra*: so a request the gateway should not
have forwarded cannot leave a response behind on a pooled upstream connection that then answers
another test's request. Bytes that arrive within 0.2 s after that response are still recorded.

Every request gets a 200 whose body is the request line and header lines it received, except:
  /healthz  200 "ok"
  /extra    `Content-Length: 5` + `hello`, immediately followed, in the same write, by a second
            whole response `HTTP/1.1 200 OK ... STOLEN` that nobody asked for
  /extra-late  the same, but the unasked-for response comes 0.2 s after `hello` (a second write
            onto what looks like an idle keep-alive connection)
  /fold     a response with an obs-folded header line (`X-A: 1` + `  continued`)
Unparseable input gets a 400 and the connection is closed. It never crashes on bad input.
"""
import base64
import json
import os
import signal
import socket
import sys
import threading
import time

MAX_HEAD = 256 * 1024
MAX_BODY = 16 * 1024 * 1024

_log_lock = threading.Lock()
_conn_lock = threading.Lock()
_next_conn = [0]
_log_path = os.environ.get("RAW_LOG")


def record(**fields):
    if not _log_path:
        return
    fields["pid"] = os.getpid()
    line = (json.dumps(fields) + "\n").encode()
    with _log_lock:
        try:
            fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:  # never die because of the log
            sys.stderr.write(f"rawsvc: cannot write {_log_path}: {e}\n")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class BadRequest(Exception):
    pass


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock, conn_id):
        self.sock = sock
        self.id = conn_id
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        record(conn=self.id, kind="data", data_b64=b64(data))
        self.buf += data

    def read_head(self):
        """Up to and including the first blank line (CRLFCRLF, or LFLF for bare-LF input)."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            j = self.buf.find(b"\n\n")
            ends = [(i, 4)] if i >= 0 else []
            if j >= 0:
                ends.append((j, 2))
            if ends:
                pos, n = min(ends)
                head, self.buf = self.buf[:pos + n], self.buf[pos + n:]
                return head
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("head too large")
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("line too long")
            self.fill()

    def read_chunked(self):
        body = b""
        while True:
            line = self.read_line().strip()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest(f"bad chunk size {size_text!r}")
            if size < 0 or len(body) + size > MAX_BODY:
                raise BadRequest("bad chunk size")
            if size == 0:
                while self.read_line().strip():  # trailer fields, then the blank line
                    pass
                return body
            body += self.read_exact(size)
            self.read_line()  # the CRLF after the chunk data


def parse_head(head: bytes):
    text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    request_line = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obs-fold: continuation of the previous field
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise BadRequest(f"bad request line {request_line!r}")
    return parts, headers


def respond(sock, status, body, close=False):
    reason = {200: b"OK", 400: b"Bad Request"}.get(status, b"X")
    sock.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                 % (status, reason, len(body), b"Connection: close\r\n" if close else b"")
                 + body)


def serve(sock, conn_id):
    c = Conn(sock, conn_id)
    record(conn=conn_id, kind="open")
    try:
        while True:
            try:
                head = c.read_head()
            except Closed:
                return
            (method, target, version), headers = parse_head(head)
            lower = [(n.lower(), v) for n, v in headers]
            te = [v for n, v in lower if n == "transfer-encoding"]
            cl = [v for n, v in lower if n == "content-length"]
            body = b""
            if te and "chunked" in te[-1].lower():
                body = c.read_chunked()
            elif cl:
                try:
                    n = int(cl[0].split(",")[0].strip())
                except ValueError:
                    raise BadRequest(f"bad content-length {cl[0]!r}")
                if n < 0 or n > MAX_BODY:
                    raise BadRequest("bad content-length")
                body = c.read_exact(n)
            record(conn=conn_id, kind="req", head_b64=b64(head), body_b64=b64(body))

            path = target.split("?", 1)[0]
            conn_tokens = ",".join(v for n, v in lower if n == "connection").lower()
            # One request per connection unless asked (`X-Keep: 1`) or /extra: a request the
            # gateway should not have forwarded must not leave anything behind on a pooled
            # upstream connection for the next test's request.
            keep = (any(n == "x-keep" for n, _ in lower) and "close" not in conn_tokens
                    and version == "HTTP/1.1")
            if path == "/healthz":
                respond(sock, 200, b"ok\n", close=not keep)
            elif path == "/extra" or path.endswith("/extra"):
                keep = True
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                             b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN")
            elif path == "/extra-late" or path.endswith("/extra-late"):
                keep = True
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                time.sleep(0.2)  # the gateway has seen a clean, complete response by now
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN")
            elif path == "/fold" or path.endswith("/fold"):
                sock.sendall(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\n"
                             b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
                return
            else:
                echo = head.rstrip(b"\r\n") + b"\r\n"
                respond(sock, 200, echo, close=not keep)
            if not keep:
                # Whatever else the gateway already sent is in the "data" records; give it a
                # moment to arrive, so a smuggled request right behind this one is recorded.
                sock.settimeout(0.2)
                try:
                    while True:
                        c.fill()
                except (OSError, Closed):
                    pass
                return
    except BadRequest as e:
        record(conn=conn_id, kind="bad", why=str(e))
        try:
            respond(sock, 400, f"bad request: {e}\n".encode())
        except OSError:
            pass
    except (Closed, OSError):
        pass
    except Exception as e:  # anything else: note it, close this connection, keep serving
        record(conn=conn_id, kind="error", why=repr(e))
    finally:
        record(conn=conn_id, kind="close")
        try:
            sock.close()
        except OSError:
            pass


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(1024)
    print(f"rawsvc listening on {port} pid {os.getpid()} log {_log_path}", flush=True)
    while True:
        try:
            sock, _ = lsock.accept()
        except OSError:
            continue
        sock.settimeout(120)
        with _conn_lock:
            _next_conn[0] += 1
            conn_id = _next_conn[0]
        try:
            threading.Thread(target=serve, args=(sock, conn_id), daemon=True).start()
        except RuntimeError:  # no thread to be had: drop this connection, keep accepting
            sock.close()


if __name__ == "__main__":
    main()
