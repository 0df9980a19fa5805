"""A scripted raw backend for test_relay.py (python3 stdlib only): each path answers in one of the
ways real servers do, byte for byte, so the tests can see what the gateway makes of it.

Usage: python3 scriptsvc.py PORT

Every response carries `X-Conn: N`, the number of the connection it went out on (counted from 1
per process), so a test can tell whether two requests shared an upstream connection.

  /healthz            200 "ok" (kept alive)
  /keep               200 with Content-Length, kept alive
  /close              200 with Content-Length and `Connection: close`, then closes
  /http10             an HTTP/1.0 response without keep-alive, Content-Length, then closes
  /until-close        HTTP/1.1 200 with neither Content-Length nor chunked: the body runs to
                      the close (3 writes of 20,000 bytes of `u`)
  /chunked            chunked: "hello, " and "chunked " and "world" (one with a chunk extension),
                      then a trailer field `X-Checksum: 42`
  /continue           reads the head; when it has `Expect: 100-continue` sends
                      `100 Continue`, then reads the Content-Length body and echoes it
  /early-hints        `103 Early Hints` with a Link field, then 200 "hinted"
  /large?mib=N        200 with Content-Length N MiB of the bytes `0123456789abcdef`, as fast as
                      the socket takes them
  /slow               reads the request, never answers (keeps the connection open 120 s)
  /reset-length       head with Content-Length: 100000, 1,000 bytes of `r`, then a TCP reset
  /reset-chunked      chunked: one chunk of 1,000 `r`, then a TCP reset
  /reset-head         a TCP reset as soon as the request was read (no response at all)
anything else         404
"""
import os
import socket
import struct
import sys
import threading
import time

_conn_lock = threading.Lock()
_next_conn = [0]


def read_request(conn, buf):
    """Returns (head text, leftover bytes) or (None, b"") at the close."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def respond(conn, n, head, rest):
    """Answers one request; returns (keep the connection, leftover bytes)."""
    line = head.split("\r\n", 1)[0].split(" ")
    target = line[1] if len(line) > 1 else "/"
    path, _, query = target.partition("?")
    tag = f"X-Conn: {n}\r\n"

    def whole(status, body, extra=""):
        conn.sendall(f"HTTP/1.1 {status}\r\n{tag}{extra}Content-Length: {len(body)}\r\n\r\n"
                     .encode() + body)

    if path in ("/healthz", "/keep"):
        whole("200 OK", b"ok" if path == "/healthz" else b"kept")
        return True, rest
    if path == "/close":
        whole("200 OK", b"closing", "Connection: close\r\n")
        return False, b""
    if path == "/http10":
        conn.sendall(f"HTTP/1.0 200 OK\r\n{tag}Content-Length: 6\r\n\r\nten ok".encode())
        return False, b""
    if path == "/until-close":
        conn.sendall(f"HTTP/1.1 200 OK\r\n{tag}Content-Type: text/plain\r\n\r\n".encode())
        for _ in range(3):
            conn.sendall(b"u" * 20000)
            time.sleep(0.05)
        return False, b""
    if path == "/chunked":
        conn.sendall(f"HTTP/1.1 200 OK\r\n{tag}Transfer-Encoding: chunked\r\n"
                     "Trailer: X-Checksum\r\n\r\n".encode())
        conn.sendall(b"7\r\nhello, \r\n")
        time.sleep(0.05)
        conn.sendall(b"8;name=value\r\nchunked \r\n5\r\nworld\r\n")
        conn.sendall(b"0\r\nX-Checksum: 42\r\n\r\n")
        return True, b""
    if path == "/continue":
        length = int(header(head, "content-length") or "0")
        if (header(head, "expect") or "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = rest
        while len(body) < length:
            data = conn.recv(65536)
            if not data:
                return False, b""
            body += data
        whole("200 OK", b"got " + body[:length])
        return True, body[length:]
    if path == "/early-hints":
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        time.sleep(0.05)
        whole("200 OK", b"hinted")
        return True, rest
    if path == "/large":
        mib = int(query.partition("mib=")[2] or "1")
        conn.sendall(f"HTTP/1.1 200 OK\r\n{tag}Content-Length: {mib << 20}\r\n\r\n".encode())
        block = b"0123456789abcdef" * 4096  # 64 KiB
        for _ in range(mib * 16):
            conn.sendall(block)
        return True, rest
    if path == "/slow":
        time.sleep(120)
        return False, b""
    if path == "/reset-length":
        conn.sendall(f"HTTP/1.1 200 OK\r\n{tag}Content-Length: 100000\r\n\r\n".encode()
                     + b"r" * 1000)
        time.sleep(0.1)
        reset(conn)
        return False, None
    if path == "/reset-chunked":
        conn.sendall(f"HTTP/1.1 200 OK\r\n{tag}Transfer-Encoding: chunked\r\n\r\n".encode()
                     + b"3e8\r\n" + b"r" * 1000 + b"\r\n")
        time.sleep(0.1)
        reset(conn)
        return False, None
    if path == "/reset-head":
        reset(conn)
        return False, None
    whole("404 Not Found", b"no such script")
    return True, rest


def serve(conn):
    with _conn_lock:
        _next_conn[0] += 1
        n = _next_conn[0]
    buf = b""
    try:
        while True:
            head, buf = read_request(conn, buf)
            if head is None:
                break
            keep, buf = respond(conn, n, head, buf)
            if buf is None:
                return  # reset: the socket is gone
            if not keep:
                break
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
