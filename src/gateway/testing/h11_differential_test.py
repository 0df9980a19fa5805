"""Differential test of the gateway's HTTP/1.1 request parser against Python's h11.

Every case is the raw bytes a client sent on one connection. h11 (a server Connection fed the
bytes, no EOF) and the gateway (http1_verdict: findHeadEnd, RequestHead::parse, checkRequest,
BodyDecoder, exactly as gateway.cc runs them) each give a verdict:

    head: accept | refuse | need      (need: the head has not ended)
    body: complete | refuse | need    (when the head was accepted)

A case is a disagreement when one side accepts what the other refuses, when one side holds a
complete message while the other still waits for bytes (they frame it differently), or when
both accept and the method, target, version, decoded body or the message's end differ. "Needs
more data" against "refuse" is undecided, not a disagreement: the refusing side may just see
the error sooner. Only the first request on the connection counts.

A disagreement is allowed only when an entry of ALLOWED explains it: a one-line reason and a
predicate that checks both which side refused (with its exact error) and the property of the
request that makes it refuse. Anything else is a finding and fails the test; every ALLOWED
entry must explain at least one case, so the table cannot keep dead entries.

Corpus: 172 hand-written cases (the request-smuggling classes: CL.TE, TE.CL, TE.TE
obfuscations, CL lists and signs, bare CR/LF, NUL, obs-fold, Host, targets, versions, chunk
sizes and extensions, trailers, Expect, Connection, limits, pipelining) and 2000 deterministic
mutations of valid seeds near the head's boundaries.

Run by CTest (gateway_h11_differential), which sets HTTP1_VERDICT to the tool's path.
"""

import base64
import collections
import dataclasses
import ipaddress
import json
import os
import random
import re
import struct
import subprocess

import h11
import pytest

MAX_HEAD = 16 * 1024  # http1::Limits{}.max_head_bytes
MAX_FIELDS = 128  # http1::Limits{}.max_fields
CASES_RANDOM = 2000


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclasses.dataclass
class Verdict:
    head: str  # accept | refuse | need
    body: str = ""  # complete | refuse | need, when head == accept
    error: str = ""
    stage: str = ""  # the gateway's: head | check | body
    method: bytes = b""
    target: bytes = b""
    version: bytes = b""
    data: bytes = b""  # the decoded body (so far)
    consumed: int = -1  # bytes of the input that made the message, when complete
    headers: list = dataclasses.field(default_factory=list)  # h11 only: (lower name, value)
    trailers: list = dataclasses.field(default_factory=list)  # h11 only

    @property
    def outcome(self):
        if self.head != "accept":
            return self.head
        return {"complete": "accept", "refuse": "refuse", "need": "need"}[self.body]


def h11_verdict(data):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    v = Verdict(head="need")
    body = bytearray()
    try:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                if v.head == "accept":
                    v.body = "need"
                v.data = bytes(body)
                return v
            if ev is h11.PAUSED:
                raise AssertionError("h11 paused inside the first message")
            if isinstance(ev, h11.Request):
                v.head = "accept"
                v.method, v.target, v.version = ev.method, ev.target, ev.http_version
                v.headers = list(ev.headers)
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                v.body = "complete"
                v.data = bytes(body)
                v.trailers = list(ev.headers)
                v.consumed = len(data) - len(conn.trailing_data[0])
                return v
    except h11.RemoteProtocolError as e:
        if v.head == "accept":
            v.body = "refuse"
        else:
            v.head = "refuse"
        v.error = str(e)
        v.data = bytes(body)
        return v


def gateway_verdicts(cases):
    tool = os.environ.get("HTTP1_VERDICT")
    if not tool:
        pytest.fail("HTTP1_VERDICT is not set: run through ctest -R gateway_h11_differential, "
                    "or point it at build/src/gateway/http1_verdict")
    stdin = b"".join(struct.pack(">I", len(c.data)) + c.data for c in cases)
    run = subprocess.run([tool], input=stdin, capture_output=True, timeout=120, check=True)
    lines = run.stdout.splitlines()
    assert len(lines) == len(cases), run.stderr.decode(errors="replace")
    out = []
    for line in lines:
        j = json.loads(line)
        raw = lambda k: j[k].encode("latin-1")  # noqa: E731 - \u00XX escapes are bytes
        if j["need_data"]:
            v = Verdict(head="need")
        elif j["stage"] in ("head", "check"):
            v = Verdict(head="refuse")
        else:
            v = Verdict(head="accept")
            v.body = "refuse" if j["stage"] == "body" else ("complete" if j["complete"] else "need")
        v.error, v.stage = j["error"], j["stage"]
        v.method, v.target = raw("method"), raw("target")
        v.version = {10: b"1.0", 11: b"1.1"}.get(j["version"], b"")
        v.data = base64.b64decode(j["body_b64"])
        if v.body == "complete":
            v.consumed = j["consumed"]
        out.append(v)
    return out


def disagreement(h, o):
    """What h11 (h) and the gateway (o) disagree on, or None."""
    if h.head != o.head:
        if "need" in (h.head, o.head):
            other = o if h.head == "need" else h
            if other.outcome == "accept":
                return f"head: h11 {h.head}, gateway {o.head} (the other holds a whole message)"
            return None
        return f"head: h11 {h.head}, gateway {o.head}"
    if h.head != "accept":
        return None
    diffs = []
    for what in ("method", "target", "version"):
        if getattr(h, what) != getattr(o, what):
            diffs.append(f"{what}: h11 {getattr(h, what)!r}, gateway {getattr(o, what)!r}")
    if h.body != o.body:
        if {h.body, o.body} != {"need", "refuse"}:
            diffs.append(f"body: h11 {h.body}, gateway {o.body}")
    elif h.body == "complete":
        if h.data != o.data:
            diffs.append(f"body data: h11 {h.data[:60]!r}, gateway {o.data[:60]!r}")
        if h.consumed != o.consumed:
            diffs.append(f"message end: h11 {h.consumed}, gateway {o.consumed}")
    return "; ".join(diffs) or None


# ---------------------------------------------------------------------------------------------
# Reference readings of the raw bytes, for the ALLOWED predicates (independent of both parsers)

TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
TOKEN_RE = re.compile(TOKEN)
CTL_IN_VALUE = re.compile(rb"[\x01-\x08\x0e-\x1f\x7f]")  # what h11 lets through, RFC 9110 not
PCHAR = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
ORIGIN_FORM = re.compile(rb"(?:/" + PCHAR + rb"*)+(?:\?(?:" + PCHAR + rb"|[/?])*)?")
REG_NAME = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_LINE = re.compile(  # RFC 9112 §7.1 chunk-size [ chunk-ext ]
    rb"[0-9A-Fa-f]+(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + QUOTED +
    rb"))?)*")


def head_of(data):
    """The head up to its blank line (h11's and findHeadEnd's \\n\\r?\\n), or all of it."""
    m = re.search(rb"\n\r?\n", data)
    return data[: m.end()] if m else data


def raw_fields(data):
    """(lower name, OWS-trimmed value) of each field line of the head, as sent."""
    out = []
    for line in head_of(data).split(b"\n")[1:]:
        line = line[:-1] if line.endswith(b"\r") else line
        if b":" in line:
            name, value = line.split(b":", 1)
            out.append((name.lower(), value.strip(b" \t")))
    return out


def values(fields, name):
    return [v for n, v in fields if n == name]


def list_elements(fields, *names):
    return [e.strip(b" \t") for n, v in fields if n in names for e in v.split(b",")
            if e.strip(b" \t")]


def chunk_walk(data):
    """Reads the chunked body after the head loosely: (size lines, trailer section bytes)."""
    body = data[len(head_of(data)):]
    lines, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return lines, b""
        line = body[pos:eol]
        lines.append(line)
        m = re.match(rb"[0-9A-Fa-f]+", line)
        size = int(m.group(0), 16) if m else 0
        pos = eol + 2
        if size == 0:
            return lines, body[pos:]
        pos += size + 2


def valid_host(value):
    """RFC 3986 uri-host [ ":" port ], port = *DIGIT (RFC 9110 §7.2)."""
    if value.startswith(b"["):
        close = value.find(b"]")
        if close < 0:
            return False
        literal, rest = value[1:close], value[close + 1:]
        try:
            ipaddress.IPv6Address(literal.decode("ascii"))
        except ValueError:
            if not re.fullmatch(rb"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+", literal):
                return False
    else:
        name, _, rest = value.partition(b":")
        rest = b":" + rest if _ else b""
        if not REG_NAME.fullmatch(name):
            return False
    return rest == b"" or re.fullmatch(rb":[0-9]*", rest) is not None


def host_port(value):
    rest = value[value.find(b"]") + 1:] if value.startswith(b"[") else value
    return rest.partition(b":")[2]


def path_of(target):
    return target.split(b"?", 1)[0]


def gw(text):
    """The gateway's message for a framing refusal (checkRequest prefixes it)."""
    return "malformed request: " + text


# ---------------------------------------------------------------------------------------------
# Intentional differences. Each predicate names the refusing side's exact error and the
# property of the request behind it. (case: the bytes; h: h11's verdict; o: the gateway's.)


@dataclasses.dataclass
class Allowed:
    name: str
    reason: str
    predicate: object


def _we_refuse(o, error, stage=None):
    return o.outcome == "refuse" and o.error == error and (stage is None or o.stage == stage)


def _path_refusal(h, o):
    path = path_of(h.target)
    checks = {
        "';' in path": b";" in path,
        "encoded slash (%2F) in path": re.search(rb"%2[fF]", path) is not None,
        "backslash in path": b"\\" in path or re.search(rb"%5[cC]", path) is not None,
        "NUL (%00) in path": b"%00" in path,
        "bad request target": ORIGIN_FORM.fullmatch(h.target) is None,
    }
    return o.stage == "check" and checks.get(o.error, False)


def _chunk_lines_where(data, pred):
    lines, _ = chunk_walk(data)
    return any(pred(line) for line in lines)


def _digits(line):
    return len(re.match(rb"[0-9A-Fa-f]*", line).group(0))


ALLOWED = [
    Allowed("origin-form only",
            "the gateway is no proxy: a target not starting with '/' (absolute-, authority-, "
            "asterisk-form or junk) is 400, so the target never disagrees with Host",
            lambda d, h, o: _we_refuse(o, gw("bad request target"))
            and not h.target.startswith(b"/")),
    Allowed("HTTP/1.0 and 1.1 only",
            "other versions are answered 505; h11 takes any HTTP/x.y",
            lambda d, h, o: _we_refuse(o, gw("unsupported HTTP version"))
            and h.version not in (b"1.0", b"1.1")),
    Allowed("no CONNECT",
            "the gateway does not tunnel",
            lambda d, h, o: _we_refuse(o, "CONNECT is not supported") and h.method == b"CONNECT"),
    Allowed("path normalization refusals",
            "';', %2F, backslash/%5C, %00 and targets that are not RFC 3986 origin-form are "
            "refused so no backend reads the path differently from the route (path.h)",
            lambda d, h, o: _path_refusal(h, o)),
    Allowed("no Transfer-Encoding on HTTP/1.0",
            "RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing",
            lambda d, h, o: _we_refuse(o, gw("unsupported Transfer-Encoding"))
            and h.version == b"1.0" and values(h.headers, b"transfer-encoding")),
    Allowed("Content-Length with Transfer-Encoding",
            "RFC 9112 §6.1 lets a server reject it; the classic CL.TE/TE.CL smuggling shape",
            lambda d, h, o: _we_refuse(o, gw("both Content-Length and Transfer-Encoding"))
            and values(h.headers, b"content-length") and values(h.headers, b"transfer-encoding")),
    Allowed("Content-Length list or repeated",
            "RFC 9110 §8.6 lets a recipient reject repeated values instead of merging them; "
            "h11 merges identical ones",
            lambda d, h, o: _we_refuse(o, gw("bad Content-Length"))
            and (len(values(raw_fields(d), b"content-length")) > 1
                 or any(b"," in v for v in values(raw_fields(d), b"content-length")))),
    Allowed("Content-Length of 20+ digits",
            "1*DIGIT with at most 19 digits keeps the length in uint64 (RFC 9110 §8.6: prevent "
            "overflow)",
            lambda d, h, o: _we_refuse(o, gw("bad Content-Length"))
            and any(len(v) > 19 for v in values(raw_fields(d), b"content-length"))),
    Allowed("Host must be RFC 3986",
            "Host is routed on; a value that is not uri-host[:port] is 400 (RFC 9112 §3.2); h11 "
            "takes any value",
            lambda d, h, o: _we_refuse(o, gw("bad Host"))
            and any(not valid_host(v) for v in values(h.headers, b"host"))),
    Allowed("Host port of 6+ digits",
            "no TCP port has more than 5 digits",
            lambda d, h, o: _we_refuse(o, gw("bad Host"))
            and any(len(host_port(v)) > 5 for v in values(h.headers, b"host"))),
    Allowed("Authorization at most once",
            "two credentials could be read differently by the gateway and a backend",
            lambda d, h, o: _we_refuse(o, gw("more than one Authorization"))
            and len(values(h.headers, b"authorization")) > 1),
    Allowed("Connection may not name framing or Host",
            "a proxy would drop the named framing header and relay the body as a request",
            lambda d, h, o: _we_refuse(o, gw("Connection names a framing header or Host"))
            and any(e.lower() in (b"content-length", b"transfer-encoding", b"host")
                    for e in list_elements(h.headers, b"connection", b"proxy-connection"))),
    Allowed("Connection elements are tokens",
            "RFC 9110 §7.6.1 connection-option = token; h11 does not parse Connection",
            lambda d, h, o: _we_refuse(o, gw("malformed message"))
            and any(not TOKEN_RE.fullmatch(e)
                    for e in list_elements(h.headers, b"connection", b"proxy-connection"))),
    Allowed("no bare LF line ends",
            "RFC 9112 §2.2: recognizing a lone LF is a MAY; h11 does, the gateway refuses",
            lambda d, h, o: (_we_refuse(o, gw("malformed message"), "head")
                             and re.search(rb"(?<!\r)\n", head_of(d)) is not None)
            or (_we_refuse(o, "malformed chunked body", "body")
                and re.search(rb"(?<!\r)\n", chunk_walk(d)[1]) is not None)),
    Allowed("no obs-fold",
            "RFC 9112 §5.2: a server MUST reject obs-fold or replace it; h11 unfolds",
            lambda d, h, o: (_we_refuse(o, gw("folded header line (obs-fold)"), "head")
                             and re.search(rb"\n[ \t]", head_of(d)) is not None)
            or (_we_refuse(o, "folded header line (obs-fold)", "body")
                and re.search(rb"\n[ \t]", chunk_walk(d)[1]) is not None)),
    Allowed("no control characters in field values",
            "RFC 9110 §5.5 field-vchar has no CTLs; h11 allows all but NUL, CR, LF, VT, FF",
            lambda d, h, o: (_we_refuse(o, gw("malformed message"), "head")
                             and any(CTL_IN_VALUE.search(v) for _, v in h.headers))
            or (_we_refuse(o, "malformed chunked body", "body")
                and any(CTL_IN_VALUE.search(v) for _, v in h.trailers))),
    Allowed("at most 128 fields",
            "a bound on the work per head (431); h11 bounds bytes only",
            lambda d, h, o: _we_refuse(o, gw("too many header fields"))
            and len(h.headers) > MAX_FIELDS),
    Allowed("head of at most 16 KiB",
            "h11 bounds only a head it is still waiting for; the gateway bounds every head (431)",
            lambda d, h, o: _we_refuse(o, gw("header too large"))
            and len(head_of(d)) > MAX_HEAD),
    Allowed("chunk-size of at most 16 hex digits",
            "bounds the size to 64 bits without arithmetic on more digits (http1.h), leading "
            "zeros included; h11 takes 20",
            lambda d, h, o: _we_refuse(o, "malformed chunked body", "body")
            and _chunk_lines_where(d, lambda line: _digits(line) > 16)),
    Allowed("chunk extensions without CTLs",
            "RFC 9112 §7.1.1 chunk-ext has no CTL or lone CR; h11 skips the extension unread",
            lambda d, h, o: _we_refuse(o, "malformed chunked body", "body")
            and _chunk_lines_where(
                d, lambda line: re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", line[_digits(line):]))),
    Allowed("chunk extensions exactly as the RFC's grammar",
            "RFC 9112 §7.1.1: ';' is followed by a token name, '=' by a token or quoted-string; "
            "h11 skips the extension unread (an empty or broken one is relayed as is elsewhere)",
            lambda d, h, o: _we_refuse(o, "malformed chunked body", "body")
            and _chunk_lines_where(
                d, lambda line: CHUNK_LINE.fullmatch(line.rstrip(b" \t")) is None)),
    Allowed("chunk extensions of at most 4 KiB",
            "a bound on unread bytes per chunk; h11 has none",
            lambda d, h, o: _we_refuse(o, "malformed chunked body", "body")
            and _chunk_lines_where(d, lambda line: len(line) - _digits(line) > 4096)),
    Allowed("trailer section of at most 16 KiB",
            "a bound on the trailer bytes the gateway reads and drops; h11 bounds only what it "
            "is still waiting for",
            lambda d, h, o: _we_refuse(o, "trailer section too large", "body")
            and len(chunk_walk(d)[1]) > 16 * 1024),
    # Where h11 is the stricter one.
    Allowed("empty lines before the request line (h11 stricter)",
            "RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) before it; "
            "h11 refuses",
            lambda d, h, o: h.outcome == "refuse" and h.error == "no request line received"
            and d.startswith(b"\r\n") and o.head == "accept"),
    Allowed("BWS before a chunk extension (h11 stricter)",
            "RFC 9112 §7.1.1 chunk-ext = *( BWS \";\" BWS ext-name ... ); h11 refuses the BWS",
            lambda d, h, o: h.body == "refuse" and h.error.startswith("illegal chunk header")
            and o.body in ("complete", "need")
            and _chunk_lines_where(d, lambda line: re.match(rb"[0-9A-Fa-f]+[ \t]+;", line)
                                   and CHUNK_LINE.fullmatch(line.rstrip(b" \t")))),
    Allowed("trailer fields are not headers (h11 stricter)",
            "h11 applies header-section framing rules to trailer fields; the gateway never "
            "forwards trailer fields, so their Content-Length / Transfer-Encoding mean nothing",
            lambda d, h, o: h.body == "refuse" and o.body in ("complete", "need")
            and h.error in ("Only Transfer-Encoding: chunked is supported", "bad Content-Length",
                            "conflicting Content-Length headers",
                            "multiple Transfer-Encoding headers")
            and re.search(rb"(?im)^(content-length|transfer-encoding)[ \t]*:",
                          chunk_walk(d)[1]) is not None),
]


# ---------------------------------------------------------------------------------------------
# Corpus


@dataclasses.dataclass
class Case:
    name: str
    data: bytes


def req(*fields, body=b"", line=b"POST / HTTP/1.1"):
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def chunked(body, *fields, line=b"POST / HTTP/1.1"):
    return req(b"Host: a", *fields, b"Transfer-Encoding: chunked", body=body, line=line)


def padded_head(size, fields=()):
    """A GET whose head is exactly `size` bytes, padded with one long field."""
    base = req(b"Host: a", *fields, b"X-Pad: ", line=b"GET / HTTP/1.1")
    return req(b"Host: a", *fields, b"X-Pad: " + b"p" * (size - len(base)), line=b"GET / HTTP/1.1")


HAND = [
    # Baselines.
    ("get", req(b"Host: a", line=b"GET /a/b?c=d HTTP/1.1")),
    ("post length", req(b"Host: a", b"Content-Length: 5", body=b"hello")),
    ("post chunked", chunked(b"5\r\nhello\r\n0\r\n\r\n")),
    ("post chunked, two chunks, trailer", chunked(b"2\r\nhe\r\n3\r\nllo\r\n0\r\nX-T: 1\r\n\r\n")),
    ("length 0", req(b"Host: a", b"Content-Length: 0")),
    ("length 005", req(b"Host: a", b"Content-Length: 005", body=b"hello")),
    ("body incomplete", req(b"Host: a", b"Content-Length: 10", body=b"hello")),
    ("http/1.0 no host", req(line=b"GET / HTTP/1.0")),
    ("http/1.0 length", req(b"Content-Length: 2", body=b"hi", line=b"POST / HTTP/1.0")),
    ("lower-case method", req(b"Host: a", line=b"get / HTTP/1.1")),
    ("method with token chars", req(b"Host: a", line=b"M-1.x! / HTTP/1.1")),
    # CL.TE, TE.CL.
    ("CL.TE", req(b"Host: a", b"Content-Length: 6", b"Transfer-Encoding: chunked",
                  body=b"0\r\n\r\nG")),
    ("TE.CL", req(b"Host: a", b"Transfer-Encoding: chunked", b"Content-Length: 3",
                  body=b"8\r\nSMUGGLED\r\n0\r\n\r\n")),
    ("CL 0 with TE", req(b"Host: a", b"Content-Length: 0", b"Transfer-Encoding: chunked",
                         body=b"0\r\n\r\n")),
    # TE.TE obfuscations.
    ("TE xchunked", chunked(b"0\r\n\r\n").replace(b": chunked", b": xchunked")),
    ("TE leading space", req(b"Host: a", b"Transfer-Encoding:  chunked", body=b"0\r\n\r\n")),
    ("TE trailing space", req(b"Host: a", b"Transfer-Encoding: chunked ", body=b"0\r\n\r\n")),
    ("TE tab", req(b"Host: a", b"Transfer-Encoding:\tchunked", body=b"0\r\n\r\n")),
    ("TE space before colon", req(b"Host: a", b"Transfer-Encoding : chunked",
                                  body=b"0\r\n\r\n")),
    ("TE after bare LF", req(b"Host: a", b"X: X\nTransfer-Encoding: chunked", body=b"0\r\n\r\n")),
    ("TE folded into X", req(b"Host: a", b"X: X\r\n Transfer-Encoding: chunked",
                             body=b"0\r\n\r\n")),
    ("TE value folded", req(b"Host: a", b"Transfer-Encoding:\r\n chunked", body=b"0\r\n\r\n")),
    ("TE twice", chunked(b"0\r\n\r\n", b"Transfer-Encoding: chunked")),
    ("TE chunked, chunked", req(b"Host: a", b"Transfer-Encoding: chunked, chunked",
                                body=b"0\r\n\r\n")),
    ("TE identity, chunked", req(b"Host: a", b"Transfer-Encoding: identity, chunked",
                                 body=b"0\r\n\r\n")),
    ("TE gzip, chunked", req(b"Host: a", b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n")),
    ("TE chunked, identity", req(b"Host: a", b"Transfer-Encoding: chunked, identity",
                                 body=b"0\r\n\r\n")),
    ("TE upper case", req(b"Host: a", b"Transfer-Encoding: CHUNKED", body=b"0\r\n\r\n")),
    ("TE vertical tab", req(b"Host: a", b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n")),
    ("TE NUL", req(b"Host: a", b"Transfer-Encoding: chunked\x00", body=b"0\r\n\r\n")),
    ("TE with underscore", req(b"Host: a", b"Transfer_Encoding: chunked", body=b"0\r\n\r\n")),
    ("TE quoted", req(b"Host: a", b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n")),
    ("TE on HTTP/1.0", chunked(b"0\r\n\r\n", line=b"POST / HTTP/1.0")),
    ("TE and CL on HTTP/1.0", req(b"Transfer-Encoding: chunked", b"Content-Length: 5",
                                  body=b"0\r\n\r\n", line=b"POST / HTTP/1.0")),
    # Content-Length forms.
    ("CL list equal", req(b"Host: a", b"Content-Length: 5, 5", body=b"hello")),
    ("CL list differ", req(b"Host: a", b"Content-Length: 5, 6", body=b"hello!")),
    ("CL twice equal", req(b"Host: a", b"Content-Length: 5", b"Content-Length: 5", body=b"hello")),
    ("CL twice differ", req(b"Host: a", b"Content-Length: 5", b"Content-Length: 6",
                            body=b"hello!")),
    ("CL plus", req(b"Host: a", b"Content-Length: +5", body=b"hello")),
    ("CL minus", req(b"Host: a", b"Content-Length: -1", body=b"hello")),
    ("CL hex", req(b"Host: a", b"Content-Length: 0x5", body=b"hello")),
    ("CL inner space", req(b"Host: a", b"Content-Length: 5 5", body=b"hello")),
    ("CL decimal point", req(b"Host: a", b"Content-Length: 5.0", body=b"hello")),
    ("CL empty", req(b"Host: a", b"Content-Length:", body=b"hello")),
    ("CL padded", req(b"Host: a", b"Content-Length: \t5 \t", body=b"hello")),
    ("CL 19 digits", req(b"Host: a", b"Content-Length: 1234567890123456789", body=b"ab")),
    ("CL 20 digits", req(b"Host: a", b"Content-Length: 99999999999999999999", body=b"ab")),
    ("CL 2^64", req(b"Host: a", b"Content-Length: 18446744073709551616", body=b"ab")),
    # Line ends, NUL, folding, colons.
    ("bare LF everywhere", b"GET / HTTP/1.1\nHost: a\n\n"),
    ("bare LF after request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
    ("bare CR after request line", b"GET / HTTP/1.1\rHost: a\r\n\r\n"),
    ("bare CR in value", req(b"Host: a", b"X: a\rb", line=b"GET / HTTP/1.1")),
    ("bare CR before CRLF", req(b"Host: a\r", line=b"GET / HTTP/1.1")),
    ("NUL in value", req(b"Host: a", b"X: a\x00b", line=b"GET / HTTP/1.1")),
    ("NUL in name", req(b"Host: a", b"X\x00: b", line=b"GET / HTTP/1.1")),
    ("NUL in target", req(b"Host: a", line=b"GET /\x00 HTTP/1.1")),
    ("obs-fold", req(b"Host: a", b"X: a", b" b", line=b"GET / HTTP/1.1")),
    ("obs-fold tab", req(b"Host: a", b"X: a", b"\tb", line=b"GET / HTTP/1.1")),
    ("fold before first field", b"GET / HTTP/1.1\r\n X: a\r\nHost: a\r\n\r\n"),
    ("space before colon", req(b"Host : a", line=b"GET / HTTP/1.1")),
    ("empty field name", req(b"Host: a", b": b", line=b"GET / HTTP/1.1")),
    ("non-token field name", req(b"Host: a", b"X(a): b", line=b"GET / HTTP/1.1")),
    ("DEL and ctl in value", req(b"Host: a", b"X: a\x7f\x01b", line=b"GET / HTTP/1.1")),
    ("obs-text in value", req(b"Host: a", b"X: caf\xe9 \xff", line=b"GET / HTTP/1.1")),
    ("tab in request line", req(b"Host: a", line=b"GET\t/ HTTP/1.1")),
    ("two spaces in request line", req(b"Host: a", line=b"GET  / HTTP/1.1")),
    ("trailing space in request line", req(b"Host: a", line=b"GET / HTTP/1.1 ")),
    # Host.
    ("missing Host", req(line=b"GET / HTTP/1.1")),
    ("duplicate Host", req(b"Host: a", b"host: b", line=b"GET / HTTP/1.1")),
    ("duplicate Host on 1.0", req(b"Host: a", b"Host: a", line=b"GET / HTTP/1.0")),
    ("empty Host", req(b"Host:", line=b"GET / HTTP/1.1")),
    ("Host with space", req(b"Host: a b", line=b"GET / HTTP/1.1")),
    ("Host with slash", req(b"Host: a/b", line=b"GET / HTTP/1.1")),
    ("Host with userinfo", req(b"Host: u@a", line=b"GET / HTTP/1.1")),
    ("Host IPv6", req(b"Host: [::1]:8080", line=b"GET / HTTP/1.1")),
    ("Host bad port", req(b"Host: a:b", line=b"GET / HTTP/1.1")),
    ("Host long port", req(b"Host: a:123456", line=b"GET / HTTP/1.1")),
    ("Host empty port", req(b"Host: a:", line=b"GET / HTTP/1.1")),
    ("Host IPv6 unclosed", req(b"Host: [::1", line=b"GET / HTTP/1.1")),
    ("Host IPv6 junk after", req(b"Host: [::1]x", line=b"GET / HTTP/1.1")),
    ("Host IPvFuture", req(b"Host: [v1.a]", line=b"GET / HTTP/1.1")),
    ("Host pct-encoded", req(b"Host: a%2Eb", line=b"GET / HTTP/1.1")),
    # Targets and versions.
    ("absolute-form", req(b"Host: a", line=b"GET http://a/ HTTP/1.1")),
    ("asterisk-form", req(b"Host: a", line=b"OPTIONS * HTTP/1.1")),
    ("CONNECT authority-form", req(b"Host: a:443", line=b"CONNECT a:443 HTTP/1.1")),
    ("CONNECT origin-form", req(b"Host: a", line=b"CONNECT / HTTP/1.1")),
    ("path ;", req(b"Host: a", line=b"GET /a;b HTTP/1.1")),
    ("path %2F", req(b"Host: a", line=b"GET /a%2fb HTTP/1.1")),
    ("path backslash", req(b"Host: a", line=b"GET /a\\b HTTP/1.1")),
    ("path %5C", req(b"Host: a", line=b"GET /a%5Cb HTTP/1.1")),
    ("path %00", req(b"Host: a", line=b"GET /a%00 HTTP/1.1")),
    ("path bad percent", req(b"Host: a", line=b"GET /a%zz HTTP/1.1")),
    ("path lone percent", req(b"Host: a", line=b"GET /a% HTTP/1.1")),
    ("path fragment", req(b"Host: a", line=b"GET /a#f HTTP/1.1")),
    ("path non-ASCII", req(b"Host: a", line=b"GET /caf\xc3\xa9 HTTP/1.1")),
    ("path dot segments", req(b"Host: a", line=b"GET /%2e%2e/a/./b//c HTTP/1.1")),
    ("query with %2F and ;", req(b"Host: a", line=b"GET /a?x=%2F;y HTTP/1.1")),
    ("path with pipe", req(b"Host: a", line=b"GET /a|b HTTP/1.1")),
    ("HTTP/2.0", req(b"Host: a", line=b"GET / HTTP/2.0")),
    ("HTTP/0.9", req(b"Host: a", line=b"GET / HTTP/0.9")),
    ("HTTP/1.2", req(b"Host: a", line=b"GET / HTTP/1.2")),
    ("HTTP/1.10", req(b"Host: a", line=b"GET / HTTP/1.10")),
    ("lower-case http", req(b"Host: a", line=b"GET / http/1.1")),
    # Chunk sizes and extensions.
    ("chunk ext", chunked(b"5;name=value\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext quoted", chunked(b'5;n="v;\\"x"\r\nhello\r\n0\r\n\r\n')),
    ("chunk ext BWS", chunked(b"5 ;n=v\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext tab BWS", chunked(b"5\t;n\r\nhello\r\n0\r\n\r\n")),
    ("chunk size trailing space", chunked(b"5 \r\nhello\r\n0\r\n\r\n")),
    ("chunk size junk after space", chunked(b"5 x\r\nhello\r\n0\r\n\r\n")),
    ("chunk size two numbers", chunked(b"1 0\r\nh\r\n0\r\n\r\n")),
    ("chunk ext empty", chunked(b"5;\r\nhello\r\n0\r\n\r\n")),
    ("chunk hex mixed case", chunked(b"a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n")),
    ("last chunk 00 with ext", chunked(b"5\r\nhello\r\n00;e=1\r\n\r\n")),
    ("chunk ext trailing OWS", chunked(b"5;a=b \t\r\nhello\r\n0\r\n\r\n")),
    ("chunk leading zeros", chunked(b"0005\r\nhello\r\n0000\r\n\r\n")),
    ("chunk 17 digits with zeros", chunked(b"00000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk 16 f", chunked(b"ffffffffffffffff\r\nhello\r\n")),
    ("chunk overflow", chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    ("chunk 0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n")),
    ("chunk empty size", chunked(b"\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext bare CR", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext bare LF", chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext ctl", chunked(b"5;a\x01\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext NUL", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n")),
    ("chunk ext 5000 bytes", chunked(b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n")),
    ("chunk size bare LF", chunked(b"5\nhello\r\n0\r\n\r\n")),
    ("chunk data no CRLF", chunked(b"5\r\nhelloXX0\r\n\r\n")),
    ("chunk data LF only", chunked(b"5\r\nhello\n0\r\n\r\n")),
    ("chunk data too short", chunked(b"5\r\nhell\r\n0\r\n\r\n")),
    ("chunk data too long", chunked(b"3\r\nhello\r\n0\r\n\r\n")),
    ("last chunk missing CRLF", chunked(b"5\r\nhello\r\n0\r\n")),
    # Trailers.
    ("trailer", chunked(b"0\r\nX-T: 1\r\nY: 2\r\n\r\n")),
    ("trailer obs-fold", chunked(b"0\r\nX-T: 1\r\n 2\r\n\r\n")),
    ("trailer Content-Length", chunked(b"0\r\nContent-Length: 5\r\n\r\n")),
    ("trailer Transfer-Encoding", chunked(b"0\r\nTransfer-Encoding: gzip\r\n\r\n")),
    ("trailer bare LF", chunked(b"0\r\nX-T: 1\n\r\n")),
    ("trailer bare LF end", chunked(b"0\r\n\n")),
    ("trailer space before colon", chunked(b"0\r\nX-T : 1\r\n\r\n")),
    ("trailer ctl", chunked(b"0\r\nX-T: a\x01b\r\n\r\n")),
    ("trailer no colon", chunked(b"0\r\nX-T\r\n\r\n")),
    # Expect and Connection.
    ("expect 100-continue", req(b"Host: a", b"Expect: 100-continue", b"Content-Length: 2",
                                body=b"hi")),
    ("expect other case", req(b"Host: a", b"Expect: 100-Continue", b"Content-Length: 2",
                              body=b"hi")),
    ("expect unknown", req(b"Host: a", b"Expect: fly", b"Content-Length: 2", body=b"hi")),
    ("connection close", req(b"Host: a", b"Connection: close", line=b"GET / HTTP/1.1")),
    ("connection list", req(b"Host: a", b"Connection: keep-alive, Upgrade, X-Foo", b"X-Foo: 1",
                            b"Upgrade: websocket", line=b"GET / HTTP/1.1")),
    ("connection content-length", req(b"Host: a", b"Content-Length: 5",
                                      b"Connection: Content-Length", body=b"hello")),
    ("connection transfer-encoding", chunked(b"0\r\n\r\n", b"Connection: transfer-encoding")),
    ("connection host", req(b"Host: a", b"Connection: close, host", line=b"GET / HTTP/1.1")),
    ("proxy-connection content-length", req(b"Host: a", b"Proxy-Connection: content-length",
                                            line=b"GET / HTTP/1.1")),
    ("connection non-token", req(b"Host: a", b"Connection: a b", line=b"GET / HTTP/1.1")),
    ("connection empty elements", req(b"Host: a", b"Connection: ,, close ,",
                                      line=b"GET / HTTP/1.1")),
    ("duplicate Authorization", req(b"Host: a", b"Authorization: a", b"authorization: b",
                                    line=b"GET / HTTP/1.1")),
    # Limits.
    ("head 16384 bytes", padded_head(MAX_HEAD)),
    ("head 16385 bytes", padded_head(MAX_HEAD + 1)),
    ("head 20000 bytes", padded_head(20000)),
    ("target of 16000 bytes", req(b"Host: a", line=b"GET /" + b"t" * 16000 + b" HTTP/1.1")),
    ("unfinished head 16385 bytes", padded_head(MAX_HEAD + 3)[:MAX_HEAD + 1]),
    ("unfinished head 1000 bytes", padded_head(2000)[:1000]),
    ("128 fields", req(b"Host: a", *[b"X%d: v" % i for i in range(127)], line=b"GET / HTTP/1.1")),
    ("129 fields", req(b"Host: a", *[b"X%d: v" % i for i in range(128)], line=b"GET / HTTP/1.1")),
    ("trailer 17000 bytes", chunked(b"0\r\nX: " + b"t" * 17000 + b"\r\n\r\n")),
    # Pipelining: only the first request counts.
    ("pipelined GETs", req(b"Host: a", line=b"GET /1 HTTP/1.1") * 2),
    ("pipelined after length", req(b"Host: a", b"Content-Length: 2", body=b"hi")
     + req(b"Host: a", line=b"GET /2 HTTP/1.1")),
    ("pipelined after chunked", chunked(b"0\r\n\r\n") + b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("pipelined garbage", req(b"Host: a", line=b"GET / HTTP/1.1") + b"\x00\x01garbage"),
    # Before the request line.
    ("leading CRLF", b"\r\n" + req(b"Host: a", line=b"GET / HTTP/1.1")),
    ("leading CRLF twice", b"\r\n\r\n" + req(b"Host: a", line=b"GET / HTTP/1.1")),
    ("leading LF", b"\n" + req(b"Host: a", line=b"GET / HTTP/1.1")),
    ("leading space", b" " + req(b"Host: a", line=b"GET / HTTP/1.1")),
    ("upgrade websocket", req(b"Host: a", b"Connection: Upgrade", b"Upgrade: websocket",
                              line=b"GET /ws HTTP/1.1")),
]

SEEDS = [
    b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
    b"POST /submit HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 11\r\n\r\nhello world",
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
    b"Connection: keep-alive\r\nAuthorization: Bearer t\r\n\r\nabc",
    b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
]
INSERTS = [b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\n ", b"\x00", b":", b",", b";", b"0", b"9",
           b"a", b"\x7f", b"\x80", b"\xff", b"\x0b", b"%", b"/", b"-", b'"', b"\\", b"\x01"]


def mutate(rng, data):
    for _ in range(rng.randint(1, 3)):
        marks = [i for i, c in enumerate(data) if c in b"\r\n: ;,/?"] or [0]
        pos = max(0, min(len(data), rng.choice(marks) + rng.randint(-2, 2)))
        op = rng.choice(["insert", "insert", "delete", "replace", "dupline", "swapcase"])
        if op == "insert":
            data = data[:pos] + rng.choice(INSERTS) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + 1:]
        elif op == "replace":
            data = data[:pos] + rng.choice(INSERTS) + data[pos + 1:]
        elif op == "dupline":
            starts = [0] + [i + 2 for i in range(len(data) - 1) if data[i:i + 2] == b"\r\n"]
            start = rng.choice(starts)
            end = data.find(b"\r\n", start)
            if end > start:
                data = data[:end + 2] + data[start:end + 2] + data[end + 2:]
        else:
            span = rng.randint(1, 12)
            data = data[:pos] + data[pos:pos + span].swapcase() + data[pos + span:]
    return data


def corpus():
    cases = [Case(name, data) for name, data in HAND]
    rng = random.Random(1234)
    for i in range(CASES_RANDOM):
        seed = rng.randrange(len(SEEDS))
        cases.append(Case(f"mutation {i} of seed {seed}", mutate(rng, SEEDS[seed])))
    return cases


# ---------------------------------------------------------------------------------------------
# Tests


def test_verdict_tool_reports_exact_bytes():
    weird = bytes(range(0x80, 0x100)) + b'"\\\x01'
    cases = [Case("bytes", b"GET /" + weird + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
             Case("ok", b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n\x00\xff\n")]
    bad, ok = gateway_verdicts(cases)
    assert bad.head == "refuse" and bad.target == b"/" + weird
    assert ok.outcome == "accept" and ok.data == b"\x00\xff\n" and ok.consumed == len(cases[1].data)


def test_h11_differential(capsys):
    cases = corpus()
    ours = gateway_verdicts(cases)
    counts = collections.Counter()
    used = collections.Counter()
    findings = []
    for case, o in zip(cases, ours):
        h = h11_verdict(case.data)
        why = disagreement(h, o)
        if why is None:
            if h.outcome == o.outcome == "refuse":
                counts["refuse"] += 1
            elif h.head == o.head == "accept" and h.outcome == o.outcome:
                counts["accept"] += 1
            else:
                counts["undecided"] += 1
            continue
        entry = next((a for a in ALLOWED if a.predicate(case.data, h, o)), None)
        if entry is not None:
            counts["allowed"] += 1
            used[entry.name] += 1
            continue
        counts["finding"] += 1
        findings.append(f"{case.name}: {why}\n    bytes: {case.data[:300]!r}\n"
                        f"    h11: {h.outcome} {h.error!r}; gateway: {o.outcome} {o.error!r}")
    summary = (f"differential: {len(cases)} cases, {counts['accept']} both accept, "
               f"{counts['refuse']} both refuse, {counts['undecided']} undecided (one side "
               f"needs more data), {counts['allowed']} allowed differences, "
               f"{counts['finding']} findings")
    with capsys.disabled():
        print("\n" + summary)
        for a in ALLOWED:
            print(f"  allowed {used[a.name]:4d}  {a.name}")
    unused = [a.name for a in ALLOWED if used[a.name] == 0]
    assert not findings, summary + "\n" + "\n".join(findings)
    assert not unused, f"ALLOWED entries that explain no case (remove them): {unused}"
