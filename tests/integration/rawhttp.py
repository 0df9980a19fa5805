"""Raw HTTP/1.1 over sockets for the integration tests: one response read exactly as it came
(Content-Length, chunked or until close), so that a test sees what a client sees, not what a
forgiving client library makes of it."""
import socket
import time

READ_TIMEOUT = 3.0  # a reply the gateway owes us comes at once; waiting past this is a failure


class Reply:
    """One response read off a socket: status None if none came (timeout or close)."""

    def __init__(self, raw=b"", status=None, head=b"", body=b"", note=""):
        self.raw, self.status, self.head, self.body, self.note = raw, status, head, body, note

    def header(self, name):
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower().encode():
                return v.strip().decode("latin-1")
        return None

    def __repr__(self):
        return f"Reply(status={self.status}, note={self.note!r}, raw={self.raw[:300]!r})"


def read_reply(sock, timeout=READ_TIMEOUT, pending=b""):
    """Reads one response (Content-Length, chunked or until close; none for 1xx, 204, 304).
    Returns (Reply, leftover). A response whose body breaks off keeps its status and head, with
    what came of the body and a note ("closed", "timeout", the error)."""
    deadline = time.monotonic() + timeout
    buf = pending

    def more():
        nonlocal buf
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise EOFError()
        buf += data

    reply = None
    try:
        while b"\r\n\r\n" not in buf:
            more()
        head, buf = buf.split(b"\r\n\r\n", 1)
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        reply = Reply(status=status, head=head)
        cl = reply.header("content-length")
        te = (reply.header("transfer-encoding") or "").lower()
        if status is not None and (100 <= status < 200 or status in (204, 304)):
            leftover = buf  # no body (RFC 9112 section 6.3)
        elif cl is not None and cl.isdigit():
            while len(buf) < int(cl):
                more()
            reply.body, leftover = buf[:int(cl)], buf[int(cl):]
        elif "chunked" in te:
            while b"0\r\n\r\n" not in buf:
                more()
            end = buf.index(b"0\r\n\r\n") + 5
            reply.body, leftover = buf[:end], buf[end:]
        else:
            try:
                while True:
                    more()
            except (EOFError, socket.timeout, OSError):
                pass
            reply.body, leftover = buf, b""
        reply.raw = head + b"\r\n\r\n" + reply.body
        return reply, leftover
    except socket.timeout:
        note = "timeout"
    except EOFError:
        note = "closed"
    except OSError as e:
        note = repr(e)
    if reply is not None:  # the head came, the body broke off: what came of it
        reply.body, reply.note = buf, note
        reply.raw = reply.head + b"\r\n\r\n" + buf
        return reply, b""
    first = buf.split(b"\r\n", 1)[0].split(b" ")
    status = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
    return Reply(raw=buf, status=status, head=buf, note=note), b""


def exchange(port, raw: bytes, timeout=READ_TIMEOUT):
    """One request on a fresh connection; returns the first reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except OSError as e:  # the gateway may close before reading everything
            r, _ = read_reply(s, timeout)
            r.note = r.note or f"send failed: {e!r}"
            return r
        return read_reply(s, timeout)[0]


