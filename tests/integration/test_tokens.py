"""API tokens with policies (docs/tokens.md) through the CLI a user types, on a real agent
outside --dev: a scoped token made with `baton token create` reads what its rules allow and is
refused (exit 1, the 403's reason) elsewhere; a revoked or expired token is refused with 401;
`baton audit` names the token's owner; no token text is stored or logged."""
import os
import subprocess
import time

from conftest import BATON, Agent, teardown_agent


def run(agent, *args, token=None):
    env = dict(os.environ, BATON_ADDR=agent.addr)
    env.pop("BATON_TOKEN", None)
    if token is not None:
        env["BATON_TOKEN"] = token
    return subprocess.run([BATON, *args], capture_output=True, text=True, env=env, timeout=30)


def test_scoped_tokens_revocation_expiry_and_audit(tmp_path):
    a = Agent(tmp_path / "data", dev=False)
    a.data_dir.mkdir()
    a.start()
    try:
        a.cli("secret", "put", "shop/db", "PASSWORD=shop-pw")
        a.cli("secret", "put", "billing/key", "KEY=billing-pw")

        # Made with the bootstrap token (agent-token): the token alone on stdout.
        r = a.cli("token", "create", "--owner", "alice", "--ttl", "1h",
                  "--rule", "secrets:shop/*:read,list")
        token = r.stdout.strip()
        assert token.startswith("baton_") and len(token) == 66, r.stdout
        assert "not shown again" in r.stderr, r.stderr
        accessor = token.split("_")[1]

        # Allowed: its own secret, and a listing filtered to what it may list.
        r = run(a, "secret", "get", "shop/db", "--field", "PASSWORD", token=token)
        assert r.returncode == 0 and r.stdout == "shop-pw\n", r.stderr
        r = run(a, "secret", "ls", token=token)
        assert r.returncode == 0 and r.stdout.split() == ["shop/db"], (r.stdout, r.stderr)
        # Another path, and a write: exit 1 with the reason, never the token.
        r = run(a, "secret", "get", "billing/key", token=token)
        assert r.returncode == 1, r
        assert 'needs "read" on secrets "billing/key"' in r.stderr, r.stderr
        assert "billing-pw" not in r.stdout + r.stderr
        r = run(a, "secret", "put", "shop/db", "PASSWORD=x", token=token)
        assert r.returncode == 1 and 'needs "write" on secrets "shop/db"' in r.stderr, r.stderr
        r = run(a, "ps", token=token)
        assert r.returncode == 1 and "needs" in r.stderr, r.stderr
        # It may not make tokens, let alone stronger ones.
        r = run(a, "token", "create", "--owner", "mallory", "--rule", "*:*:admin", token=token)
        assert r.returncode == 1 and 'needs "admin" on tokens' in r.stderr, r.stderr
        # A bad rule is a usage error before anything is sent.
        r = run(a, "token", "create", "--owner", "x", "--rule", "secrets:shop", token=a.token)
        assert r.returncode == 2 and "KIND:PATTERN:CAP" in r.stderr, r.stderr

        # Listed (never the secret), then revoked: refused at once with 401.
        listed = a.cli_json("token", "ls")["tokens"]
        assert [t["owner"] for t in listed] == ["alice"], listed
        assert token[23:] not in a.cli("token", "ls").stdout
        a.cli("token", "revoke", accessor)
        r = run(a, "secret", "get", "shop/db", token=token)
        assert r.returncode == 1 and "unknown or revoked token" in r.stderr, r.stderr
        status = a.request("GET", "/v1/secrets/data/shop/db", token=token)[0]
        assert status == 401, status

        # An expired token: refused with 401 once its TTL has passed.
        short = a.cli("token", "create", "--owner", "ci", "--ttl", "2s",
                      "--rule", "secrets:shop/*:read").stdout.strip()
        deadline = time.monotonic() + 10
        while True:
            r = run(a, "secret", "get", "shop/db", token=short)
            if r.returncode != 0:
                break
            assert time.monotonic() < deadline, "the 2s token still works after 10s"
            time.sleep(0.5)
        assert r.returncode == 1 and "expired" in r.stderr, r.stderr
        assert a.request("GET", "/v1/tokens/self", token=short)[0] == 401

        # The audit log names the owner of what alice did, and never a token.
        audit = a.cli_json("audit", "--limit", "100")["entries"]
        alice = f"alice (tok {accessor})"
        assert ("get_secret", "shop/db", alice) in [
            (e["route"], e.get("secret"), e["who"]) for e in audit], audit
        assert alice in a.cli("audit").stdout
        assert any(e["route"] == "revoke_token" and e["who"] == "agent-token" for e in audit)

        # No token text in the data dir or the log.
        for t in (token, short):
            assert t[23:] not in a.log()
            for path in a.data_dir.rglob("*"):
                if path.is_file():
                    assert t[23:].encode() not in path.read_bytes(), path
    finally:
        teardown_agent(a, tmp_path)
