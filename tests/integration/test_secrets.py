"""Secrets (docs/secrets.md) through the CLI a user types: versions, check-and-set, delete,
undelete, destroy; the clear value is nowhere in the store's files or the agent's log; without
the write token no value is read."""
import json
import os
import secrets as pysecrets
import subprocess
import urllib.error

from conftest import BATON, FILES, Agent, http_get, teardown_agent, wait_for


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

    agent.cli("secret", "rm", "shop/db")  # DESIGN.md's name; delete is the same
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


def secrets_app(path):
    svc = f'run = ["python3", "{FILES}/tests/integration/secretsvc.py"]\nhealth = "/healthz"\n'
    path.write_text(f"""app = "shop"
[services.web]
{svc}secrets = ["shop/db"]
env = {{ DB_PASSWORD = "secret:shop/db#PASSWORD" }}
[services.worker]
{svc}secrets = ["shop/db"]
on_secret_change = "SIGHUP"
[services.other]
{svc}""")
    return path


def one_healthy(agent, service):
    ready = agent.healthy("shop", service)
    return ready[0] if len(ready) == 1 else None


def fetch(inst, path):
    try:
        return http_get(f"http://{inst['address']}:{inst['port']}{path}")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def test_instances_get_their_secrets_and_a_new_version_rolls_or_signals(agent, tmp_path):
    clear1 = "first-" + pysecrets.token_hex(12)
    clear2 = "second-" + pysecrets.token_hex(12)
    agent.cli("secret", "put", "shop/db", f"PASSWORD={clear1}", "USER=shop")
    agent.cli("up", str(secrets_app(tmp_path / "app.toml")), "--wait", "--timeout", "60s")
    web, worker, other = (one_healthy(agent, s) for s in ("web", "worker", "other"))
    assert web and worker and other

    # Files under $BATON_SECRETS_DIR/PATH/KEY, 0400 and the service's own; the env entry.
    assert fetch(web, "/file/shop/db/PASSWORD") == (200, clear1)
    assert fetch(web, "/file/shop/db/USER") == (200, "shop")
    assert fetch(web, "/env/DB_PASSWORD") == (200, clear1)
    status, stat = fetch(web, "/stat/shop/db/PASSWORD")
    mode, owner, me = stat.split()
    assert status == 200 and mode == "0o400" and me == f"me={owner}", stat
    # Another service (another user) cannot read them, nor list where they are.
    status, where = fetch(web, "/env/BATON_SECRETS_DIR")
    assert status == 200 and where
    status, body = fetch(other, "/read?path=" + where + "/shop/db/PASSWORD")
    assert status == 403 and "Permission" in body, body
    assert fetch(other, "/env/BATON_SECRETS_DIR")[0] == 404
    if os.geteuid() == 0:
        mounts = open("/proc/mounts").read()
        assert f" {where} tmpfs " in mounts, "each instance's secrets are in a tmpfs of its own"

    # Not in what the API shows, nor in any process's arguments.
    assert clear1 not in agent.cli("ps", "--json").stdout
    assert clear1 not in json.dumps(agent.get("/v1/instances"))
    assert clear1 not in json.dumps(agent.get("/v1/apps/shop"))
    assert clear1 not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout

    # A new version: web (roll) is replaced by an instance with the new value; worker (SIGHUP)
    # keeps its instance, whose files change before it gets the signal.
    agent.cli("secret", "put", "shop/db", f"PASSWORD={clear2}", "USER=shop")
    wait_for(lambda: (w := one_healthy(agent, "web")) and w["id"] != web["id"] and
             fetch(w, "/env/DB_PASSWORD") == (200, clear2), timeout=60, what="web rolled")
    wait_for(lambda: fetch(worker, "/hups") == (200, "1"), timeout=20, what="worker signalled")
    assert fetch(worker, "/file/shop/db/PASSWORD") == (200, clear2)
    assert one_healthy(agent, "worker")["id"] == worker["id"], "signalled, not replaced"
    wait_for(lambda: not os.path.exists(where), timeout=30, what="the old web's files removed")

    # Every hand-over is in the audit log; no value is in the store's files or the agent's log.
    entries = agent.cli_json("audit", "--limit", "200")["entries"]
    handed = [e for e in entries if e["route"] == "secret-to-instance"]
    assert any(e["secret"] == "shop/db" and e["who"].startswith("node ") for e in handed), entries
    for path in agent.data_dir.glob("store*"):
        for clear in (clear1, clear2):
            assert clear.encode() not in path.read_bytes(), f"{clear!r} in clear in {path}"
    for clear in (clear1, clear2):
        assert clear not in agent.log()


def write_shares_config(path):
    path.write_text('[secrets]\nseal = "shares"\n')
    return path


def combine_with_libgfshare(shares):
    """The KEK from `threshold` share texts, with the same C library the agent uses (through
    ctypes), so the test can look for the key itself in the agent's files."""
    import base64
    import ctypes
    lib = ctypes.CDLL("libgfshare.so.2")
    # Debian's build starts with a null random hook, which gfshare_ctx_free calls to scrub; the
    # test's context holds nothing worth more than random() (the agent uses OpenSSL's).
    ctypes.c_void_p.in_dll(lib, "gfshare_fill_rand").value = ctypes.c_void_p.in_dll(
        lib, "gfshare_bad_idea_but_fill_rand_using_random").value
    lib.gfshare_ctx_init_dec.restype = ctypes.c_void_p
    lib.gfshare_ctx_init_dec.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    lib.gfshare_ctx_dec_giveshare.argtypes = [ctypes.c_void_p, ctypes.c_ubyte, ctypes.c_char_p]
    lib.gfshare_ctx_dec_extract.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.gfshare_ctx_free.argtypes = [ctypes.c_void_p]
    parts = [s.split(".") for s in shares]
    xs = bytes(int(p[2]) for p in parts)
    ctx = lib.gfshare_ctx_init_dec(xs, len(parts), 32)
    for i, p in enumerate(parts):
        lib.gfshare_ctx_dec_giveshare(ctx, i, base64.urlsafe_b64decode(p[4] + "="))
    out = ctypes.create_string_buffer(32)
    lib.gfshare_ctx_dec_extract(ctx, out)
    lib.gfshare_ctx_free(ctx)
    return out.raw


def test_unseal_with_shares_after_a_restart(tmp_path):
    import base64
    import hashlib
    # Shares of another init, to be refused by name.
    other = Agent(tmp_path / "other", ["--config", str(write_shares_config(tmp_path / "o.toml"))],
                  dev=False)
    other.data_dir.mkdir()
    other.start()
    try:
        foreign = other.cli("operator", "init", "--shares", "3", "--threshold", "2").stdout.split()
    finally:
        teardown_agent(other, tmp_path)

    a = Agent(tmp_path / "data", ["--config", str(write_shares_config(tmp_path / "baton.toml"))],
              dev=False)
    a.data_dir.mkdir()
    a.start()
    try:
        st = a.cli_json("operator", "seal-status")
        assert st["sealed"] and not st["initialized"] and st["mode"] == "shares", st
        r = a.cli("secret", "put", "shop/db", "K=v", check=False)
        assert r.returncode == 1 and "baton operator init" in r.stderr, r.stderr
        r = run(a, "operator", "init", "--shares", "5", "--threshold", "3", token=a.token)
        assert r.returncode == 0, r.stderr
        shares = r.stdout.split()
        assert len(shares) == 5 and all(s.startswith("bs1.3.") for s in shares), r.stdout
        assert "Keep them apart" in r.stderr
        r = a.cli("operator", "init", check=False)
        assert r.returncode == 1 and "initialised already" in r.stderr, r.stderr
        clear = "s3cret-" + pysecrets.token_hex(12)
        a.cli("secret", "put", "shop/db", f"PASSWORD={clear}")
        assert a.cli("secret", "get", "shop/db", "--field", "PASSWORD").stdout == clear + "\n"

        # A restart: sealed until three shares are given.
        a.terminate()
        a.start()
        assert a.cli_json("operator", "seal-status")["sealed"]
        r = a.cli("secret", "get", "shop/db", check=False)
        assert r.returncode == 1, r.stdout
        assert "sealed: 3 more unseal shares are needed (baton operator unseal)" in r.stderr, r.stderr
        # The first from standard input, the second as the argument.
        r = run(a, "operator", "unseal", stdin=shares[4] + "\n", token=a.token)
        assert r.returncode == 0 and "Progress:  1/3" in r.stdout, (r.stdout, r.stderr)
        r = a.cli("operator", "unseal", shares[1])
        assert "Sealed:    yes" in r.stdout, r.stdout
        r = a.cli("secret", "get", "shop/db", check=False)
        assert r.returncode == 1 and "1 more unseal share is needed" in r.stderr, r.stderr
        r = run(a, "operator", "unseal", stdin=foreign[1], token=a.token)
        assert r.returncode == 1 and "share 2 belongs to another key" in r.stderr, r.stderr
        assert foreign[1] not in r.stderr and foreign[1] not in a.log()
        typo = shares[2][:25] + ("A" if shares[2][25] != "A" else "B") + shares[2][26:]
        r = run(a, "operator", "unseal", stdin=typo, token=a.token)
        assert r.returncode == 1 and "mistyped" in r.stderr, r.stderr
        # A read token may see the status but not give a share.
        read = (a.data_dir / "agent-read-token").read_text().strip()
        assert run(a, "operator", "seal-status", token=read).returncode == 0
        r = run(a, "operator", "unseal", stdin=shares[2], token=read)
        assert r.returncode == 1 and 'needs "admin" on secrets' in r.stderr, r.stderr
        r = run(a, "operator", "unseal", stdin=shares[2], token=a.token)
        assert r.returncode == 0 and "Sealed:    no" in r.stdout, (r.stdout, r.stderr)
        assert a.cli("secret", "get", "shop/db", "--field", "PASSWORD").stdout == clear + "\n"

        # Neither the key nor a share is anywhere in the data dir or the log; no key file.
        kek = combine_with_libgfshare([shares[0], shares[2], shares[3]])
        key_id = hashlib.sha256(b"baton unseal key id\0" + kek).hexdigest()[:8]
        assert shares[0].split(".")[3] == key_id, "the test's combination is the agent's key"
        needles = [kek, kek.hex().encode(), base64.urlsafe_b64encode(kek).rstrip(b"=")]
        for s in shares:
            needles += [s.encode(), s.split(".")[4].encode()]
        assert not (a.data_dir / "secrets.kek").exists()
        for path in a.data_dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for n in needles:
                    assert n not in data, f"the KEK or a share in {path}"
        log = a.log().encode()
        for n in needles:
            assert n not in log, "the KEK or a share in the agent's log"
    finally:
        teardown_agent(a, tmp_path)
