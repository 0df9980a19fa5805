"""What backends send, relayed faithfully (issue 19, "What it must do" 3): the real agent in
front of scriptsvc.py, a raw backend that answers each path the way some real server does
(close-delimited and chunked bodies, 1xx responses, a large body, no answer, a reset in the
middle). The client side is raw sockets too (rawhttp.py), so the tests see the bytes a client
gets, not what a client library makes of them.

The agent runs with `[gateway] upstream_response_timeout = "2s"` so the slow-backend case ends
in 504 quickly.

Run: cd tests/integration && BATON_BIN=/work/main/build/src/cli/baton \
         python3 -m pytest -q -p no:cacheprovider test_relay.py
"""
import socket
import time

import pytest

from conftest import FILES, Agent, open_to_services, teardown_agent
from rawhttp import read_reply

SCRIPTSVC = FILES / "tests" / "integration" / "scriptsvc.py"
PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    work = open_to_services(tmp_path_factory.mktemp("relay"))
    (work / "data").mkdir()
    config = work / "baton.toml"
    config.write_text('[gateway]\nupstream_response_timeout = "2s"\n')
    agent = Agent(work / "data", ["--config", str(config)]).start()
    manifest = work / "relay.toml"
    manifest.write_text(f"""app = "relay"

[services.s]
run = ["{PYTHON}", "{SCRIPTSVC}", "${{PORT}}"]
health = "/healthz"

[services.s.scale]
min = 1
max = 1

[[routes]]
path = "/s"
service = "s"
strip_prefix = true
""")
    try:
        agent.cli("up", str(manifest), "--wait", "--timeout", "60s")
        yield agent
    finally:
        teardown_agent(agent, work)


def connect(agent):
    return socket.create_connection(("127.0.0.1", agent.http_port), timeout=10)


def get(path, version="1.1", extra=""):
    return f"GET /s{path} HTTP/{version}\r\nHost: relay\r\n{extra}\r\n".encode()


def final_reply(sock, timeout=10):
    """Reads responses until a final (non-1xx) one; returns (interim replies, final reply)."""
    interim, pending = [], b""
    while True:
        reply, pending = read_reply(sock, timeout, pending)
        if reply.status is None or reply.status >= 200 or reply.status == 101:
            return interim, reply
        interim.append(reply)


def dechunk(body):
    out, rest = b"", body
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out, rest
        out, rest = out + rest[:size], rest[size + 2:]


def agent_rss_kib(agent):
    for line in open(f"/proc/{agent.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_close_delimited_body_is_relayed_whole_and_then_closed(relay):
    with connect(relay) as s:
        s.sendall(get("/until-close"))
        reply, _ = read_reply(s, timeout=10)  # no length: read to the close
    assert reply.status == 200, reply
    assert reply.header("connection") == "close", reply.head
    assert reply.header("content-length") is None and reply.header("transfer-encoding") is None
    assert reply.body == b"u" * 60000, len(reply.body)


def test_http10_and_connection_close_responses_are_never_reused(relay):
    with connect(relay) as s:
        conns = []
        for path in ("/keep", "/keep", "/close", "/close", "/http10", "/http10"):
            s.sendall(get(path))
            reply, _ = read_reply(s, timeout=10)
            assert reply.status == 200, (path, reply)
            conns.append(reply.header("x-conn"))
    # The two /keep share a connection (so the test can tell), and the first /close may still
    # use it; every response that said it closes was the last on its connection, and the
    # client's own connection outlived them all.
    assert conns[0] == conns[1], conns
    assert len(set(conns[2:])) == 4, conns


def test_chunked_body_is_relayed_and_its_trailer_dropped(relay):
    with connect(relay) as s:
        s.sendall(get("/chunked"))
        reply, _ = read_reply(s, timeout=10)
        assert reply.status == 200, reply
        assert reply.header("transfer-encoding") == "chunked", reply.head
        data, trailer = dechunk(reply.body)
        assert data == b"hello, chunked world"
        assert b"X-Checksum" not in reply.raw  # trailers are never forwarded (docs/gateway.md)
        s.sendall(get("/keep"))  # the client connection is still in step
        assert read_reply(s, timeout=10)[0].status == 200


def test_100_continue_reaches_the_client_before_it_sends_the_body(relay):
    with connect(relay) as s:
        s.sendall(b"POST /s/continue HTTP/1.1\r\nHost: relay\r\nContent-Length: 11\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        first, pending = read_reply(s, timeout=10)
        assert first.status == 100, first  # before any body byte was sent
        s.sendall(b"hello world")
        interim, reply = final_reply(s)
        assert all(r.status == 100 for r in interim), interim
        assert reply.status == 200 and reply.body == b"got hello world", reply


def test_103_early_hints_are_relayed_to_http11_clients_only(relay):
    with connect(relay) as s:
        s.sendall(get("/early-hints"))
        interim, reply = final_reply(s)
    assert [r.status for r in interim] == [103], interim
    assert interim[0].header("link") == "</style.css>; rel=preload"
    assert reply.status == 200 and reply.body == b"hinted", reply
    with connect(relay) as s:
        s.sendall(get("/early-hints", "1.0"))
        first, _ = read_reply(s, timeout=10)
    assert first.status == 200 and first.body == b"hinted", first  # no 1xx to HTTP/1.0


def test_large_response_streams_with_bounded_memory(relay):
    mib = 256
    pattern = b"0123456789abcdef"
    before = agent_rss_kib(relay)
    with connect(relay) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(get(f"/large?mib={mib}"))
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, body = got.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert f"Content-Length: {mib << 20}".encode() in head, head
        # A slow reader: meanwhile the backend fills every buffer between it and us.
        time.sleep(2)
        during = agent_rss_kib(relay)
        total, misplaced = 0, 0
        while True:
            # Every byte is where the pattern says (checked on each read's first 16 bytes).
            start = total % 16
            want = (pattern[start:] + pattern)[:min(16, len(body))]
            misplaced += body[:len(want)] != want
            total += len(body)
            if total >= mib << 20:
                break
            body = s.recv(1 << 20)
            assert body, f"closed after {total} bytes"
    assert total == mib << 20
    assert misplaced == 0, "the body's bytes are not the backend's"
    grew = during - before
    assert grew < 32 * 1024, f"the agent's RSS grew by {grew} KiB while a client read slowly"


def test_slow_backend_ends_in_504(relay):
    since = len(relay.log())
    with connect(relay) as s:
        s.sendall(get("/slow"))
        reply, _ = read_reply(s, timeout=20)
    assert reply.status == 504, reply
    assert "upstream response timeout" in relay.log()[since:]


@pytest.mark.parametrize("path", ["/reset-length", "/reset-chunked"])
def test_reset_mid_response_is_a_broken_response_for_the_client(relay, path):
    with connect(relay) as s:
        s.sendall(get(path))
        reply, _ = read_reply(s, timeout=10)
    assert reply.status == 200, reply  # the head had gone out
    assert reply.note in ("closed",) or "ConnectionReset" in reply.note, reply
    assert not reply.raw.endswith(b"0\r\n\r\n")  # never a made-up end of a chunked body
    assert reply.raw.count(b"r" * 1000) == 1 and len(reply.raw) < 100000


def test_reset_before_the_response_is_a_logged_502(relay):
    since = len(relay.log())
    with connect(relay) as s:
        s.sendall(get("/reset-head"))
        reply, _ = read_reply(s, timeout=10)
    assert reply.status == 502, reply
    assert "upstream closed before answering" in relay.log()[since:]
