#!/usr/bin/env python3
"""Writes a JWKS for an EC P-256 key and prints an ES256 JWT signed with it.

Usage: jwt.py KEY.pem JWKS_OUT  (stdlib + the openssl CLI only; `openssl dgst -sign` gives a
DER ECDSA-Sig-Value, converted here to the raw r||s that JWS wants).
"""
import base64, json, subprocess, sys, time


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def der_ints(der: bytes):
    # SEQUENCE { INTEGER r, INTEGER s }
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = []
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out.append(int.from_bytes(der[i + 2:i + 2 + n], "big"))
        i += 2 + n
    return out


key, jwks_out = sys.argv[1], sys.argv[2]
pub = subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-outform", "DER"],
                     capture_output=True, check=True).stdout
point = pub[-65:]
assert point[0] == 0x04
jwk = {"kty": "EC", "crv": "P-256", "kid": "bench-1", "alg": "ES256", "use": "sig",
       "x": b64u(point[1:33]), "y": b64u(point[33:65])}
with open(jwks_out, "w") as f:
    json.dump({"keys": [jwk]}, f)

now = int(time.time())
header = {"alg": "ES256", "typ": "JWT", "kid": "bench-1"}
claims = {"iss": "https://bench.example/", "aud": "bench", "sub": "bench-user",
          "iat": now, "nbf": now - 60, "exp": now + 86400}
signing_input = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
                 b64u(json.dumps(claims, separators=(",", ":")).encode()))
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                     capture_output=True, check=True).stdout
r, s = der_ints(der)
print(signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
