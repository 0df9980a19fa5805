"""The mesh (docs/mesh.md): isolated instances reach only the upstreams they declare, through
the node's proxy and mutual TLS; explicit rules open and close cross-app calls, and a deny cuts
open connections; certificates rotate under load. Needs root (network namespaces)."""
import json
import os
import subprocess
import sys
import time
import urllib.parse

import pytest

from conftest import FILES, Agent, teardown_agent, wait_for, http_get

PYTHON = sys.executable
SVC = FILES / "tests" / "integration" / "meshsvc.py"
CLIENT = FILES / "tests" / "integration" / "mesh_client.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def service(name, upstreams=(), min_=1, extra=""):
    ups = ", ".join(f'"{u}"' for u in upstreams)
    return f"""
[services.{name}]
run = ["{PYTHON}", "{SVC}"]
health = "/healthz"
upstreams = [{ups}]
{extra}
[services.{name}.scale]
min = {min_}
max = 1
idle = "2s"
"""


def deploy(agent, tmp_path, name, text):
    m = tmp_path / f"{name}.toml"
    m.write_text(text)
    agent.cli("up", str(m), "--wait", "--timeout", "60s")


def via(agent, prefix, path):
    return http_get(f"{agent.gateway}{prefix}{path}", timeout=40)[1]


def call(agent, prefix, url):
    return via(agent, prefix, "/call?timeout=35&to=" + urllib.parse.quote(url, safe=""))


def instance(agent, app, svc):
    rows = [i for i in agent.instances(app=app, service=svc) if i["state"] == "healthy"]
    assert rows, f"no healthy {app}/{svc}"
    return rows[0]


def in_netns(inst, *argv, timeout=60):
    return subprocess.run(["ip", "netns", "exec", f"baton-{inst['id']}", *argv],
                          capture_output=True, text=True, timeout=timeout)


SHOP = """app = "shop"
""" + service("web", ["cart", "billing/api"]) + service("cart", min_=0) + service("admin") + """
[[routes]]
path = "/"
service = "web"

[[routes]]
path = "/admin/"
service = "admin"
strip_prefix = true
"""

BILLING = """app = "billing"
""" + service("api")


@pytest.fixture
def mesh_agent(tmp_path):
    made = []

    def start(config=""):
        cfg = tmp_path / "baton.toml"
        cfg.write_text(config)
        a = Agent(tmp_path / "data", ["--config", str(cfg)])
        a.data_dir.mkdir()
        made.append(a)
        return a.start()

    yield start
    for a in made:
        teardown_agent(a, tmp_path)


def test_a_service_reaches_its_declared_upstream_and_nothing_else(mesh_agent, tmp_path):
    agent = mesh_agent()
    deploy(agent, tmp_path, "shop", SHOP)
    assert agent.get("/v1/nodes")["nodes"][0]["network"] == "isolated"

    # The address is in web's environment; cart is at zero and wakes for the call.
    url = via(agent, "", "/env/BATON_UPSTREAM_CART_URL")
    assert url.startswith("http://169.254.") and url.endswith(":80"), url
    assert via(agent, "", "/env/BATON_ADDR") == "", "isolated instances get no API address"
    assert agent.instances(app="shop", service="cart") == []
    out = call(agent, "", url + "/whoami")
    assert out.startswith("200 shop/cart "), out

    # admin declares nothing: the same address refuses it, and so does cart's own address.
    out = call(agent, "/admin", url + "/whoami")
    assert out.startswith("error"), out
    cart = instance(agent, "shop", "cart")
    out = via(agent, "/admin", f"/connect?to={cart['address']}:{cart['port']}")
    assert out.startswith("error"), f"direct connection to {cart['address']}: {out}"
    # The host end of its pair filters by reverse path: no packets from another's address.
    a, b, c, d = (int(x) for x in cart["address"].split("."))
    host_end = f"{a}.{b}.{c}.{d - 1}"
    ifname = subprocess.run(["ip", "-o", "-4", "addr", "show", "to", host_end + "/32"],
                            capture_output=True, text=True).stdout.split()[1]
    assert open(f"/proc/sys/net/ipv4/conf/{ifname}/rp_filter").read().strip() == "1", ifname
    # Nor the agent's API, nor another instance's side of the host.
    out = via(agent, "/admin", f"/connect?to=127.0.0.1:{agent.api_port}")
    assert out.startswith("error"), out

    # Who is calling: the gateway's connections come from its own address, a service's from
    # the caller's service address, and each address has a name (docs/mesh.md "Who is calling").
    assert via(agent, "", "/peer") == "169.254.127.253"
    assert via(agent, "", "/peername") == "gateway.baton"
    out = call(agent, "", url + "/peer")
    assert out.startswith("200 169.254."), out
    web_vip = out[4:]
    a, b = (int(x) for x in web_vip.split(".")[2:])
    assert 64 <= a < 128 and web_vip != url[7:-3], f"{web_vip}: not a service address of its own"
    assert call(agent, "", url + "/peername") == "200 web.shop.service.baton"
    assert dig(agent, "-x", web_vip) == ("NOERROR", ["web.shop.service.baton."])
    # Every instance may name the gateway.
    out = via(agent, "/admin", "/peername")
    assert out == "gateway.baton", out

    r = agent.cli("why", "shop/admin", "shop/cart", check=False)
    assert r.returncode == 1 and "not an upstream of shop/admin" in r.stdout, r.stdout
    r = agent.cli("why", "shop/web", "shop/cart")
    assert "upstream of shop/web" in r.stdout, r.stdout
    metrics = http_get(agent.addr + "/metrics")[1]
    assert 'baton_mesh_connections_total{outcome="denied"}' in metrics
    denied = [l for l in metrics.splitlines() if 'outcome="denied"' in l][0]
    assert int(denied.split()[-1]) >= 1, denied


def test_a_caller_that_half_closes_still_reads_its_answer(mesh_agent, tmp_path):
    # web sends a request to `tail` through the mesh, ends its side (FIN) and reads; tail
    # answers only once it has read the whole request and its end. The end crosses the proxy as
    # FIN, close_notify, FIN, and the answer comes back the same way.
    agent = mesh_agent()
    deploy(agent, tmp_path, "ends", """app = "ends"
""" + service("web", ["tail"]) + f"""
[services.tail]
run = ["{PYTHON}", "{SVC}", "--answer-at-end"]
[services.tail.scale]
min = 1
max = 1

[[routes]]
path = "/"
service = "web"
""")
    to = via(agent, "", "/env/BATON_UPSTREAM_TAIL")
    assert to.startswith("169.254."), to
    for size in (1, 200_000):
        out = via(agent, "", f"/halfclose?bytes={size}&to={to}")
        assert out == f"got {size} bytes", out


def test_cross_app_calls_follow_allow_and_deny_and_a_deny_cuts_open_connections(
        mesh_agent, tmp_path):
    agent = mesh_agent()
    deploy(agent, tmp_path, "billing", BILLING)
    deploy(agent, tmp_path, "shop", SHOP)
    url = via(agent, "", "/env/BATON_UPSTREAM_BILLING_API_URL")
    out = call(agent, "", url + "/whoami")
    assert out.startswith("error"), f"a call to another app needs a rule: {out}"
    r = agent.cli("why", "shop/web", "billing/api", check=False)
    assert r.returncode == 1 and "baton allow shop/web billing/api" in r.stdout, r.stdout

    agent.cli("allow", "shop/web", "billing/api")
    assert call(agent, "", url + "/whoami").startswith("200 billing/api "), url

    # A keep-alive connection from web's network, then a deny: it is cut within a second.
    web = instance(agent, "shop", "web")
    host, port = url[len("http://"):].split(":")
    client = subprocess.Popen(
        ["ip", "netns", "exec", f"baton-{web['id']}", PYTHON, str(CLIENT), host, port,
         "--keepalive", "--until-failure", "--seconds", "30", "--interval", "0.02"],
        stdout=subprocess.PIPE, text=True)
    wait_for(lambda: "healthy", timeout=1)
    time.sleep(1.0)  # a good number of requests on the connection first
    agent.cli("deny", "shop/web", "billing/api")
    denied_at = time.time()
    result = json.loads(client.communicate(timeout=40)[0])
    assert result["keepalive_ok"] >= 10, result
    assert result["first_failure_at"] is not None, result
    assert result["first_failure_at"] - denied_at < 1.0, result
    assert call(agent, "", url + "/whoami").startswith("error")
    r = agent.cli("why", "shop/web", "billing/api", check=False)
    assert r.returncode == 1 and "baton deny shop/web billing/api" in r.stdout, r.stdout
    metrics = http_get(agent.addr + "/metrics")[1]
    cut = [l for l in metrics.splitlines() if 'outcome="cut"' in l][0]
    assert int(cut.split()[-1]) >= 1, cut


def test_certificates_rotate_under_load_without_a_failed_request(mesh_agent, tmp_path):
    agent = mesh_agent('[mesh]\ncert_ttl = "10s"\n')
    deploy(agent, tmp_path, "shop", SHOP.replace(service("cart", min_=0), service("cart")))
    url = via(agent, "", "/env/BATON_UPSTREAM_CART_URL")
    host, port = url[len("http://"):].split(":")
    issued = lambda: int([l for l in http_get(agent.addr + "/metrics")[1].splitlines()
                          if l.startswith("baton_mesh_certificates_issued_total")][0].split()[-1])
    before = issued()
    web = instance(agent, "shop", "web")
    r = in_netns(web, PYTHON, str(CLIENT), host, port, "--seconds", "16", "--fresh", "4",
                 "--keepalive", timeout=60)
    result = json.loads(r.stdout)
    assert result["failed"] == 0, result
    assert result["ok"] > 100, result
    assert result["keepalive_ok"] > 100, result
    # Both leaves (web as client, cart as server) were renewed at least twice meanwhile.
    assert issued() - before >= 4, (before, issued())


def test_an_api_grant_reads_its_own_app_and_nothing_else(mesh_agent, tmp_path):
    agent = mesh_agent()
    deploy(agent, tmp_path, "shop", SHOP.replace(service("web", ["cart", "billing/api"]),
                                                 service("web", ["cart", "billing/api"],
                                                         extra='api = "read"')))
    deploy(agent, tmp_path, "billing", BILLING)
    assert via(agent, "", "/env/BATON_ADDR") == "http://169.254.127.252:80"
    assert via(agent, "", "/env/BATON_TOKEN").startswith("app.shop.")
    status, _, text = via(agent, "", "/api?path=/v1/services").partition(" ")
    assert status == "200", text
    rows = json.loads(text)["services"]
    assert {r["app"] for r in rows} == {"shop"}, rows
    assert {r["service"] for r in rows} == {"web", "cart", "admin"}, rows
    out = via(agent, "", "/api?path=/v1/apps/shop")
    assert out.startswith("200 "), out
    for path in ("/v1/apps/billing", "/v1/services?app=billing", "/v1/nodes", "/v1/apps",
                 "/v1/intentions"):
        out = via(agent, "", "/api?path=" + urllib.parse.quote(path, safe=""))
        assert out.startswith("403 ") and "may only read its own app" in out, (path, out)
    # admin has no grant: no token, and the address answers nothing without one.
    assert via(agent, "/admin", "/env/BATON_TOKEN") == ""
    out = via(agent, "/admin", "/api?path=/v1/services")
    assert out.startswith("error") or out.startswith("401 "), out


def dig(agent, name, qtype="A"):
    r = subprocess.run(["dig", "@127.0.0.1", "-p", str(agent.dns_port), "+tries=1", "+time=2",
                        name, qtype], capture_output=True, text=True, timeout=10)
    status = next((l.split("status: ")[1].split(",")[0] for l in r.stdout.splitlines()
                   if "status: " in l), None)
    short = subprocess.run(["dig", "@127.0.0.1", "-p", str(agent.dns_port), "+tries=1", "+time=2",
                            "+short", name, qtype], capture_output=True, text=True, timeout=10)
    return status, sorted(l for l in short.stdout.splitlines() if l)


def test_dns_follows_scale_changes_and_instances_resolve_what_they_may_call(mesh_agent, tmp_path):
    agent = mesh_agent()
    text = SHOP.replace(service("cart", min_=0), service("cart").replace("max = 1", "max = 3"))
    deploy(agent, tmp_path, "shop", text)
    cart = instance(agent, "shop", "cart")
    status, addrs = dig(agent, "cart.shop.service.baton")
    assert status == "NOERROR" and addrs == [cart["address"]], (status, addrs)
    status, srv = dig(agent, "cart.shop.service.baton", "SRV")
    hexname = "".join(f"{int(x):02x}" for x in cart["address"].split("."))
    assert srv == [f"1 1 {cart['port']} {hexname}.addr.baton."], srv
    assert dig(agent, "nope.shop.service.baton")[0] == "NXDOMAIN"
    assert dig(agent, "example.com")[0] == "REFUSED"

    # Scale up: the answer follows.
    agent.cli("scale", "shop/cart", "--min", "2", "--max", "2")
    wait_for(lambda: len(dig(agent, "cart.shop.service.baton")[1]) == 2, timeout=30,
             what="two A records")
    status, srv = dig(agent, "cart.shop.service.baton", "SRV")
    assert len(srv) == 2, srv
    agent.cli("scale", "shop/cart", "--min", "1", "--max", "1")
    wait_for(lambda: len(dig(agent, "cart.shop.service.baton")[1]) == 1, timeout=30,
             what="one A record again")

    # Inside an instance, with no configuration of its own: names lead to the mesh.
    out = call(agent, "", "http://cart.service.baton/whoami")
    assert out.startswith("200 shop/cart "), out
    out = call(agent, "", "http://cart.shop.service.baton/whoami")
    assert out.startswith("200 shop/cart "), out
    # admin may not call cart: the name does not exist for it.
    out = call(agent, "/admin", "http://cart.service.baton/whoami")
    assert out.startswith("error") and ("not known" in out or "resolution" in out), out


def dig_out(agent, *args):
    """dig's full output (flags, counts, records and its own notes)."""
    return subprocess.run(["dig", "@127.0.0.1", "-p", str(agent.dns_port), "+tries=1", "+time=5",
                           *args], capture_output=True, text=True, timeout=30).stdout


def dig_counts(out):
    """(header flags, ANSWER count) from dig's ';; flags: qr aa tc rd; QUERY: 1, ANSWER: 12, ...'."""
    line = next(l for l in out.splitlines() if l.startswith(";; flags:"))
    flags = line.split(";")[2].split(":")[1].split()
    return flags, int(line.split("ANSWER: ")[1].split(",")[0])


# 13 instances: 13 SRV records (39 bytes each, compressed) after the 40-byte header and question
# of many.big.service.baton do not fit in 512 bytes; 12 do.
BIG = """app = "big"

[services.many]
run = ["{python}", "{svc}"]
health = "/healthz"
cpu = 0.02
memory = "64MiB"

[services.many.scale]
min = 13
max = 13
""".format(python=PYTHON, svc=SVC)


def test_dns_over_tcp_and_udp_answers_too_big_are_truncated(mesh_agent, tmp_path):
    agent = mesh_agent()
    m = tmp_path / "big.toml"
    m.write_text(BIG)
    agent.cli("up", str(m), "--wait", "--timeout", "120s", timeout=180)
    rows = agent.healthy("big", "many")
    assert len(rows) == 13, rows
    hexname = lambda a: "".join(f"{int(x):02x}" for x in a.split("."))
    expected = sorted(f"1 1 {r['port']} {hexname(r['address'])}.addr.baton." for r in rows)

    # Over TCP: the whole answer, with the targets' A records (RFC 7766).
    out = dig_out(agent, "+tcp", "many.big.service.baton", "SRV")
    flags, answers = dig_counts(out)
    assert "tc" not in flags and answers == 13, out
    assert sorted(l for l in dig_out(agent, "+tcp", "+short", "many.big.service.baton", "SRV")
                  .splitlines() if l) == expected
    assert "ADDITIONAL: 13" in out, out

    # Over UDP the 513th byte does not go: TC and the whole records that fit (dig +ignore shows
    # that answer as it came; by default dig asks again over TCP and has them all).
    out = dig_out(agent, "+ignore", "many.big.service.baton", "SRV")
    flags, answers = dig_counts(out)
    assert "tc" in flags and answers == 12, out
    out = dig_out(agent, "many.big.service.baton", "SRV")
    assert "Truncated, retrying in TCP mode" in out, out
    flags, answers = dig_counts(out)
    assert "tc" not in flags and answers == 13, out
    # A records (16 bytes each) still fit over UDP: no TC.
    flags, answers = dig_counts(dig_out(agent, "+ignore", "many.big.service.baton", "A"))
    assert "tc" not in flags and answers == 13, (flags, answers)
    # Unknown names over TCP too.
    assert "status: NXDOMAIN" in dig_out(agent, "+tcp", "nope.big.service.baton")

    metrics = http_get(agent.addr + "/metrics")[1]
    truncated = next(l for l in metrics.splitlines() if l.startswith("baton_dns_truncated_total "))
    assert int(truncated.split()[1]) >= 2, metrics  # +ignore, then dig's own UDP try
    accepted = next(l for l in metrics.splitlines()
                    if l.startswith('baton_dns_tcp_connections_total{outcome="accepted"}'))
    assert int(accepted.split()[1]) >= 4, metrics
