"""Identity at the front door, end to end through the real agent's gateway (issue 3 item 5).

Keys are generated at test time with the `openssl` CLI (RSA-2048, EC P-256, Ed25519); the
JWKS file is built from their public parts and tokens are signed with `openssl dgst` /
`openssl pkeyutl` (python3 stdlib + openssl only). The agent runs with an `[[identity]]`
provider "corp" from a config file; the app has a JWT route, an API-key route and a public
route, all backed by svc.py, whose `/echo-headers` paths show what the gateway forwarded."""
import base64
import hashlib
import hmac
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import FILES, wait_for

SVC = FILES / "tests" / "integration" / "svc.py"
ISSUER = "https://id.test.example/"
AUDIENCE = "shop"


# --- keys, JWKS and tokens ------------------------------------------------------------------
def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, (args, r.stderr.decode(errors="replace"))
    return r.stdout


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def der_len(buf, i):
    """Reads a DER length at buf[i]; returns (length, index after it)."""
    n = buf[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(buf[i + 1:i + 1 + k], "big"), i + 1 + k


def ecdsa_der_to_raw(der: bytes, size: int = 32) -> bytes:
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, each `size` bytes."""
    assert der[0] == 0x30
    _, i = der_len(der, 1)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n, i = der_len(der, i + 1)
        out += der[i:i + n].lstrip(b"\0").rjust(size, b"\0")
        i += n
    return out


class Keys:
    """Three signing keys made with openssl, and the JWKS of their public halves."""

    def __init__(self, d: Path):
        self.dir = d
        self.rsa = d / "rsa.pem"
        self.ec = d / "ec.pem"
        self.ed = d / "ed.pem"
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(self.rsa))
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", str(self.ec))
        openssl("genpkey", "-algorithm", "ED25519", "-out", str(self.ed))
        self.rsa_public_pem = openssl("pkey", "-in", str(self.rsa), "-pubout")

        modulus = openssl("rsa", "-in", str(self.rsa), "-noout", "-modulus").decode()
        n = bytes.fromhex(modulus.strip().split("=", 1)[1])
        text = openssl("rsa", "-in", str(self.rsa), "-noout", "-text").decode()
        e = int(re.search(r"publicExponent: (\d+)", text).group(1))
        ec_spki = openssl("pkey", "-in", str(self.ec), "-pubout", "-outform", "DER")
        point = ec_spki[-65:]  # uncompressed point 04 || x || y ends the SubjectPublicKeyInfo
        assert point[0] == 4
        ed_spki = openssl("pkey", "-in", str(self.ed), "-pubout", "-outform", "DER")
        assert len(ed_spki) == 44
        self.jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
             "n": b64u(n), "e": b64u(e.to_bytes((e.bit_length() + 7) // 8, "big"))},
            {"kty": "EC", "kid": "ec1", "use": "sig", "crv": "P-256",
             "x": b64u(point[1:33]), "y": b64u(point[33:65])},
            {"kty": "OKP", "kid": "ed1", "use": "sig", "crv": "Ed25519", "x": b64u(ed_spki[-32:])},
        ]}
        self.jwks_path = d / "jwks.json"
        self.jwks_path.write_text(json.dumps(self.jwks))

    def sign(self, alg, signing_input: bytes) -> bytes:
        if alg == "RS256":
            return openssl("dgst", "-sha256", "-sign", str(self.rsa), data=signing_input)
        if alg == "ES256":
            der = openssl("dgst", "-sha256", "-sign", str(self.ec), data=signing_input)
            return ecdsa_der_to_raw(der)
        if alg == "EdDSA":
            msg = self.dir / "msg.bin"
            msg.write_bytes(signing_input)
            return openssl("pkeyutl", "-sign", "-inkey", str(self.ed), "-rawin", "-in", str(msg))
        if alg == "HS256":  # the classic confusion: HMAC keyed with the RSA *public* key
            return hmac.new(self.rsa_public_pem, signing_input, hashlib.sha256).digest()
        if alg == "none":
            return b""
        raise ValueError(alg)

    def token(self, alg="RS256", kid=None, sign_alg=None, **overrides):
        """A compact JWS. `kid` defaults to the key of `alg`; `sign_alg` signs with another
        algorithm's key than the header says. Claim overrides of None remove the claim."""
        kid = kid if kid is not None else {"RS256": "rsa1", "ES256": "ec1", "EdDSA": "ed1",
                                           "HS256": "rsa1", "none": "rsa1"}[alg]
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now - 5,
                  "exp": now + 600, "scope": "shop:read shop:write"}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        header = {"alg": alg, "typ": "JWT", "kid": kid}
        head = b64u(json.dumps(header, separators=(",", ":")).encode())
        body = b64u(json.dumps(claims, separators=(",", ":")).encode())
        sig = self.sign(sign_alg or alg, f"{head}.{body}".encode())
        return f"{head}.{body}.{b64u(sig)}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return Keys(tmp_path_factory.mktemp("keys"))


# --- the agent and the app ------------------------------------------------------------------
def write_config(path: Path, jwks: Path):
    path.write_text(f"""
[[identity]]
name = "corp"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks = "{jwks}"
algorithms = ["RS256", "ES256", "EdDSA"]
forward = {{ sub = "X-User" }}
""")
    return path


def write_app(path: Path):
    path.write_text(f"""
app = "authz"

[services.web]
run = ["python3", "{SVC}"]
health = "/healthz"

[services.web.scale]
min = 1
max = 1

[[routes]]
path = "/private"
service = "web"
auth = "corp"
claims = {{ scope = "shop:read" }}

[[routes]]
path = "/keyed"
service = "web"
auth = "api-key"

[[routes]]
path = "/"
service = "web"
auth = "public"
""")
    return path


def fetch(url, headers=None, timeout=10):
    """GET through the gateway: (status, lowercased headers, body text); errors are values."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def front_door(make_agent, keys, tmp_path):
    """An agent with the "corp" provider and the app deployed and routed."""
    a = make_agent()
    a.extra_args = ["--config", str(write_config(tmp_path / "baton.toml", keys.jwks_path))]
    a.start()
    a.cli("up", str(write_app(tmp_path / "app.toml")), "--wait")
    wait_for(lambda: fetch(a.gateway + "/")[0] == 200, what="public route via gateway")
    return a


# --- the checks -----------------------------------------------------------------------------
def test_jwt_attack_matrix_is_refused_and_valid_tokens_are_forwarded(front_door, keys):
    url = front_door.gateway + "/private/echo-headers"

    status, headers, _ = fetch(url)
    assert status == 401
    assert headers.get("www-authenticate", "").startswith("Bearer"), headers

    now = int(time.time())
    valid = keys.token("RS256")
    head, body, sig = valid.split(".")
    tampered_body = b64u(json.dumps({**json.loads(b64u_decode(body)), "sub": "mallory"},
                                    separators=(",", ":")).encode())
    raw_sig = bytearray(b64u_decode(sig))
    raw_sig[len(raw_sig) // 2] ^= 0x01
    # Each attack is refused, and for its own reason (the fixed error_description per reason).
    alg_refused, bad_sig, mismatch = ("algorithm not allowed", "invalid signature",
                                      "key cannot verify this algorithm")
    attacks = {
        "alg none": (keys.token("none"), alg_refused),
        "alg none, no signature part":
            (".".join(keys.token("none").split(".")[:2]) + ".", alg_refused),
        "HS256 signed with the RSA public key": (keys.token("HS256"), alg_refused),
        "unknown kid": (keys.token("RS256", kid="not-in-the-jwks"), "unknown signing key"),
        "expired": (keys.token("RS256", iat=now - 7200, nbf=now - 7200, exp=now - 3600),
                    "token expired"),
        "not yet valid": (keys.token("RS256", nbf=now + 3600, iat=now), "token not yet valid"),
        "wrong iss": (keys.token("RS256", iss="https://evil.example/"), "wrong issuer"),
        "wrong aud": (keys.token("RS256", aud="another-app"), "wrong audience"),
        "no exp": (keys.token("RS256", exp=None), "malformed token"),
        "tampered payload": (f"{head}.{tampered_body}.{sig}", bad_sig),
        "tampered signature": (f"{head}.{body}.{b64u(bytes(raw_sig))}", bad_sig),
        # Wrong algorithm for the key: the header says ES256 (signed with the EC key) but names
        # the RSA key, RS256 on the EC key, EdDSA on the RSA key.
        "ES256 header on the RSA key": (keys.token("ES256", kid="rsa1"), mismatch),
        "RS256 header on the EC key": (keys.token("RS256", kid="ec1"), mismatch),
        "EdDSA header on the RSA key": (keys.token("EdDSA", kid="rsa1"), mismatch),
        "not a JWT": ("garbage", "malformed token"),
    }
    wrong = {}
    for name, (token, why) in attacks.items():
        status, headers, text = fetch(url, bearer(token))
        www = headers.get("www-authenticate", "")
        if (status != 401 or not www.startswith('Bearer realm="corp"') or
                f'error_description="{why}"' not in www or "x-user" in text):
            wrong[name] = (status, www, text[:200])
    assert not wrong, wrong

    for alg, scope in (("RS256", "shop:read shop:write"), ("ES256", ["shop:read"]),
                       ("EdDSA", "shop:read")):
        sub = f"user-{alg.lower()}"
        # A forged X-User sent alongside a valid token is replaced by the verified claim.
        status, _, text = fetch(url, {**bearer(keys.token(alg, sub=sub, scope=scope)),
                                      "X-User": "forged"})
        assert status == 200, (alg, status, text)
        seen = json.loads(text)
        assert seen.get("x-user") == sub, (alg, seen)

    status, headers, text = fetch(url, bearer(keys.token("ES256", scope="shop:write")))
    assert status == 403, (status, text)
    assert 'error="insufficient_scope"' in headers.get("www-authenticate", ""), headers
    status, headers, _ = fetch(url, bearer(keys.token("EdDSA", scope=None)))
    assert status == 403, status


def test_forged_identity_headers_are_stripped_on_the_public_route(front_door):
    status, _, text = fetch(front_door.gateway + "/echo-headers",
                            {"X-User": "admin", "X-Baton-Api-Key-Id": "0123456789abcdef",
                             "X-Other": "kept"})
    assert status == 200, (status, text)
    seen = json.loads(text)
    assert "x-user" not in seen, seen
    assert "x-baton-api-key-id" not in seen, seen
    assert seen.get("x-other") == "kept", seen


def test_api_keys_created_with_the_cli_open_api_key_routes_until_revoked(front_door):
    url = front_door.gateway + "/keyed/echo-headers"
    status, headers, _ = fetch(url)
    assert status == 401
    assert headers.get("www-authenticate", "").startswith("Bearer"), headers
    bogus = "bk_0123456789abcdef_" + "A" * 43
    assert fetch(url, bearer(bogus))[0] == 401

    r = front_door.cli("apikey", "create", "integration")
    key = r.stdout.strip()
    assert re.fullmatch(r"bk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", key), r.stdout
    key_id = key[3:19]
    listed = front_door.cli_json("apikey", "ls")["apikeys"]
    assert [k["id"] for k in listed] == [key_id]
    assert key not in json.dumps(listed) and key[20:] not in json.dumps(listed)

    status, _, text = fetch(url, {**bearer(key), "X-Baton-Api-Key-Id": "forged"})
    assert status == 200, (status, text)
    assert json.loads(text).get("x-baton-api-key-id") == key_id
    # The key opens only api-key routes: a JWT route still refuses it.
    assert fetch(front_door.gateway + "/private/echo-headers", bearer(key))[0] == 401
    # A wrong secret for a real id is refused.
    assert fetch(url, bearer(key[:-1] + ("A" if key[-1] != "A" else "B")))[0] == 401

    # --json shows the key once.
    other = front_door.cli_json("apikey", "create", "second")
    assert other["key"].startswith("bk_" + other["id"] + "_")
    assert fetch(url, bearer(other["key"]))[0] == 200

    front_door.cli("apikey", "rm", key_id)
    status, headers, _ = fetch(url, bearer(key))
    assert status == 401
    assert headers.get("www-authenticate", "").startswith("Bearer"), headers
    assert fetch(url, bearer(other["key"]))[0] == 200
    assert front_door.cli("apikey", "rm", key_id, check=False).returncode == 1
    assert front_door.cli("apikey", "rm", "nope", check=False).returncode == 2
