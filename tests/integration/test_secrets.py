"""Secrets (docs/secrets.md) through the CLI a user types: versions, check-and-set, delete,
undelete, destroy; the clear value is nowhere in the store's files or the agent's log; without
the write token no value is read."""
import os
import secrets as pysecrets
import subprocess

from conftest import BATON, Agent, teardown_agent


def run(agent, *args, stdin=None, token=None):
    env = dict(os.environ, BATON_ADDR=agent.addr)
    env.pop("BATON_TOKEN", None)
    if token is not None:
        env["BATON_TOKEN"] = token
    return subprocess.run([BATON, *args], capture_output=True, text=True, env=env, input=stdin,
                          timeout=30)


def test_secrets_round_trip_and_never_sit_in_clear(agent, tmp_path):
    clear = "s3cret-" + pysecrets.token_hex(12)
    r = agent.cli("secret", "put", "shop/db", f"PASSWORD={clear}", "USER=shop", "--cas", "0")
    assert "shop/db: version 1" in r.stdout, r.stdout
    r = agent.cli("secret", "put", "shop/db", "PASSWORD=again", "--cas", "0", check=False)
    assert r.returncode != 0 and "check-and-set 0" in r.stderr, r.stderr
    assert "again" not in r.stderr
    # From standard input and from a file.
    r = run(agent, "secret", "put", "shop/db", "PASSWORD=-", stdin=clear + "-2")
    assert r.returncode == 0 and "version 2" in r.stdout, r.stderr
    keyfile = tmp_path / "tls.key"
    keyfile.write_text("-----BEGIN TEST KEY-----\n" + clear + "\n")
    agent.cli("secret", "put", "shop/tls", f"KEY=@{keyfile}")

    assert agent.cli("secret", "get", "shop/db", "--field", "PASSWORD").stdout == clear + "-2\n"
    assert agent.cli("secret", "get", "shop/db", "--field", "USER", "--version", "1").stdout == "shop\n"
    assert agent.cli_json("secret", "get", "shop/tls")["data"]["KEY"] == keyfile.read_text()
    assert agent.cli("secret", "ls", "shop/").stdout.split() == ["shop/db", "shop/tls"]

    agent.cli("secret", "delete", "shop/db")
    r = agent.cli("secret", "get", "shop/db", check=False)
    assert r.returncode != 0 and "deleted" in r.stderr, r.stderr
    agent.cli("secret", "undelete", "shop/db", "--versions", "2")
    assert agent.cli("secret", "get", "shop/db", "--field", "PASSWORD").stdout == clear + "-2\n"
    agent.cli("secret", "destroy", "shop/db", "--versions", "1")
    r = agent.cli("secret", "get", "shop/db", "--version", "1", check=False)
    assert r.returncode != 0 and "destroyed" in r.stderr, r.stderr

    # The audit log: every write and every read of a value, who and what, never the value.
    entries = agent.cli_json("audit", "--limit", "50")["entries"]
    secret_ops = [(e["route"], e.get("secret")) for e in entries if "secret" in e["route"]]
    assert ("put_secret", "shop/db") in secret_ops and ("get_secret", "shop/db") in secret_ops, entries
    assert ("destroy_secret", "shop/db") in secret_ops, entries
    assert "GET" in agent.cli("audit").stdout

    # Nowhere in clear: the store's files (database and write-ahead log) and the agent's log.
    for path in agent.data_dir.rglob("*"):
        if path.is_file():
            assert clear.encode() not in path.read_bytes(), f"{clear!r} in clear in {path}"
    assert clear not in agent.log()


def test_secret_values_need_the_write_token(tmp_path):
    """agent-read-token lists paths but reads no value (docs/tokens.md)."""
    a = Agent(tmp_path / "data", dev=False)
    a.data_dir.mkdir()
    a.start()
    try:
        a.cli("secret", "put", "ops/key", "K=v1")
        read = (a.data_dir / "agent-read-token").read_text().strip()
        r = run(a, "secret", "get", "ops/key")
        assert r.returncode != 0 and "needs a valid token" in r.stderr, r.stderr
        r = run(a, "secret", "get", "ops/key", token=read)
        assert r.returncode != 0 and 'needs "read" on secrets "ops/key"' in r.stderr, r.stderr
        r = run(a, "secret", "ls", token=read)
        assert r.returncode == 0 and r.stdout.split() == ["ops/key"], r.stderr
        r = run(a, "secret", "put", "ops/key", "K=v2", token=read)
        assert r.returncode != 0, r.stdout
        r = run(a, "secret", "get", "ops/key", "--field", "K", token=a.token)
        assert r.stdout == "v1\n", r.stderr
    finally:
        teardown_agent(a, tmp_path)
