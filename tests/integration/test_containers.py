"""Containers through the Docker Engine API (issue 11), driven the way a user would: an app of
two containers behind the gateway, one calling the other, scaled from zero and back; a container
over its memory limit OOM-killed and restarted; containers unprivileged with a read-only root;
re-adopted after the agent is killed; and the errors a user meets (a bad image reference, an
image that cannot be pulled, a program the image lacks, no engine at the socket).

As root the agent isolates instances (docs/mesh.md): a docker container gets a network of its
own, as exec and oci instances do (reached by its node at its own address, reaching only its
node, names through the mesh's DNS); `[node] network = "host"` keeps the engine's bridge with
the port published on 127.0.0.1.

The engine is Podman's Docker API (`podman system service`, on a socket of this module's own);
the image is built offline by tests/images/busybox-image.sh.

Run: cd tests/integration && BATON_BIN=/work/main/build/src/cli/baton \\
         python3 -m pytest -q -p no:cacheprovider test_containers.py
"""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import Agent, free_port, http_get, teardown_agent, wait_for

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/baton/busybox:4"
PODMAN = ["podman", "--runtime=runc", "--cgroup-manager=cgroupfs"]
BRIDGE = "10.88.0.1"  # Podman's default bridge: how a container on it reaches its host
MESH_DNS = "169.254.127.254"  # dns::kMeshDnsAddress
ISOLATED = os.geteuid() == 0 and subprocess.run(["ip", "netns", "list"],
                                                capture_output=True).returncode == 0
needs_isolation = pytest.mark.skipif(not ISOLATED,
                                     reason="network namespaces need root and iproute2")
# How web calls the gateway: at its node (the next hop of its routes), or its host on the bridge.
CALL_NODE = "node" if ISOLATED else BRIDGE


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (scripts/install-deps.sh installs it)")
    subprocess.run(["bash", str(REPO / "tests/images/busybox-image.sh"), IMAGE], check=True)
    d = tmp_path_factory.mktemp("podman")
    sock = d / "podman.sock"
    log = open(d / "podman.log", "wb")
    proc = subprocess.Popen([*PODMAN, "system", "service", "--time=0", f"unix://{sock}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: sock.exists() and engine_get(sock, "/_ping")[0] == 200, timeout=30,
             what="podman system service")
    yield sock
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def engine_get(sock, path):
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", str(sock),
                        f"http://d/v1.41{path}"], capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def containers(sock, instance_ids):
    """The engine's containers of these instances: {instance id: inspect}."""
    code, body = engine_get(sock, "/containers/json?all=1&filters=" + urllib.parse.quote(
        json.dumps({"label": ["io.baton.instance"]})))
    assert code == 200, body
    out = {}
    for c in json.loads(body):
        iid = (c.get("Labels") or {}).get("io.baton.instance")
        if iid in instance_ids:
            out[iid] = json.loads(engine_get(sock, f"/containers/{c['Id']}/json")[1])
    return out


def config_file(tmp_path, sock, extra=""):
    cfg = tmp_path / "baton.toml"
    cfg.write_text(f'[drivers.docker]\nsocket = "{sock}"\n{extra}')
    return cfg


def make(tmp_path, sock, http_host="127.0.0.1", extra_config=""):
    a = Agent(tmp_path / "data",
              extra_args=["--config", str(config_file(tmp_path, sock, extra_config))])
    a.data_dir.mkdir(exist_ok=True)
    a.http_host = http_host
    return a


@pytest.fixture
def container_agent(tmp_path, engine):
    # The gateway listens on every address of this host so that an isolated container reaches
    # it at its node (the host end of its veth pair), as one container calls another here.
    a = make(tmp_path, engine, http_host="0.0.0.0")
    a.start()
    yield a
    teardown_agent(a, tmp_path)


def netns_names():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def in_netns(inst, *argv, timeout=30):
    """Runs argv on the host in the instance's network namespace (its network, the host's
    files), as test_mesh.py does."""
    return subprocess.run(["ip", "netns", "exec", f"baton-{inst['id']}", *argv],
                          capture_output=True, text=True, timeout=timeout)


def reaches(inst, host, port):
    """Whether a TCP connection from the instance's network to host:port opens."""
    return in_netns(inst, "curl", "-s", "-o", "/dev/null", "-m", "3",
                    f"http://{host}:{port}/").returncode not in (7, 28)  # refused, timed out


def up(agent, tmp_path, text, name="app.toml", check=True, up_args=()):
    m = tmp_path / name
    m.write_text(text)
    return agent.cli("up", *up_args, str(m), check=check)


def test_two_containers_behind_the_gateway_scale_from_zero_and_back(container_agent, tmp_path,
                                                                      engine):
    a = container_agent
    up(a, tmp_path, f"""app = "boxes"

[services.web]
image = "{IMAGE}"
run = ["httpd", "-f", "-p", "${{PORT}}", "-h", "/www"]
memory = "32MiB"
pids = 64
env = {{ CALL_ADDR = "{CALL_NODE}", CALL_PORT = "{a.http_port}", CALL_PATH = "/api/" }}
[services.web.scale]
min = 0
max = 2
idle = "3s"

[services.api]
image = "{IMAGE}"
run = ["httpd", "-f", "-p", "8080", "-h", "/www"]
port = 8080
memory = "32MiB"
[services.api.scale]
min = 0
max = 1
idle = "3s"

[[routes]]
path = "/web/"
service = "web"
strip_prefix = true

[[routes]]
path = "/api/"
service = "api"
strip_prefix = true
""")
    assert a.instances("boxes") == []  # both at zero

    # The first request wakes web; web's CGI calls api through the gateway, which wakes api.
    status, body = http_get(a.gateway + "/web/cgi-bin/call", timeout=60)
    assert status == 200
    assert "hello from a container" in body, body
    insts = {i["service"]: i for i in a.instances("boxes")}
    assert set(insts) == {"web", "api"}
    cs = containers(engine, {i["id"] for i in insts.values()})
    assert len(cs) == 2
    api = cs[insts["api"]["id"]]
    assert api["HostConfig"]["Memory"] == 32 << 20
    if ISOLATED:
        # A network of its own: none from the engine, nothing published; the node reaches it
        # at its veth address on the port it listens on.
        assert api["HostConfig"]["NetworkMode"] == "none", api["HostConfig"]
        assert not api["HostConfig"].get("PortBindings"), api["HostConfig"]
        assert insts["api"]["address"].startswith("169.254.") and insts["api"]["port"] == 8080
        assert f"baton-{insts['api']['id']}" in netns_names()

    # Unprivileged, no new privileges, a read-only root with a writable /tmp, a pids limit.
    status, body = http_get(a.gateway + "/web/cgi-bin/whoami")
    assert status == 200
    facts = body.split()
    uid = int(body.split("uid=")[1].split()[0])
    assert uid >= 0x70000000, body  # the service's dynamic UID (docs/security.md)
    assert "NoNewPrivs:\t1" in body, body
    assert "CapEff:\t0000000000000000" in body, body
    assert "root=read-only" in facts and "tmp=writable" in facts, body
    assert "pids.max=64" in facts, body

    # Idle: both go back to zero and their containers are removed, with their networks.
    wait_for(lambda: a.instances("boxes") == [], timeout=60, what="scale to zero")
    wait_for(lambda: containers(engine, {i["id"] for i in insts.values()}) == {}, timeout=30,
             what="containers removed")
    assert not {f"baton-{i['id']}" for i in insts.values()} & netns_names()

    # And up again.
    status, body = http_get(a.gateway + "/api/", timeout=60)
    assert (status, body.strip()) == (200, "hello from a container")


def test_a_container_over_its_memory_limit_is_oom_killed_and_restarted(container_agent,
                                                                       tmp_path):
    a = container_agent
    up(a, tmp_path, f"""app = "hog"

[services.hog]
image = "{IMAGE}"
run = ["sh", "-c", "httpd -p ${{PORT}} -h /www; sleep 2; x=$(head -c 200000000 /dev/zero | tr '\\\\0' a); sleep 1000"]
memory = "24MiB"
[services.hog.scale]
min = 1
max = 1
""")
    def oom_seen():
        inst = a.instances("hog")
        return inst and "out of memory" in inst[0].get("last_failure", "") and inst[0]["restarts"] >= 1
    wait_for(oom_seen, timeout=90, what="an OOM kill and a restart")
    ps = a.cli("ps", "hog", "-i").stdout
    assert "out of memory" in ps, ps


def test_containers_are_readopted_after_the_agent_is_killed(tmp_path, engine):
    a = make(tmp_path, engine)
    a.start()
    try:
        up(a, tmp_path, f"""app = "keep"

[services.web]
image = "{IMAGE}"
run = ["httpd", "-f", "-p", "${{PORT}}", "-h", "/www"]
[services.web.scale]
min = 1
max = 1

[[routes]]
path = "/"
service = "web"
""")
        wait_for(lambda: a.healthy("keep", "web"), timeout=60, what="healthy")
        before = a.healthy("keep", "web")[0]
        container_before = containers(engine, {before["id"]})[before["id"]]["Id"]
        a.kill9()
        b = make(tmp_path, engine)
        b.start()
        a = b
        wait_for(lambda: b.healthy("keep", "web"), timeout=60, what="healthy again")
        after = b.healthy("keep", "web")[0]
        assert after["id"] == before["id"]
        assert after["pid"] == before["pid"]
        assert after["restarts"] == 0
        # The same network: found again by its namespace's name, at the same address.
        assert (after["address"], after["port"]) == (before["address"], before["port"])
        if ISOLATED:
            assert after["address"].startswith("169.254."), after
        assert containers(engine, {after["id"]})[after["id"]]["Id"] == container_before
        assert http_get(b.gateway + "/")[1].strip() == "hello from a container"
        # Its logs go on into the same files (the follower resumes).
        logs = b.cli("logs", "keep/web").stdout
        assert logs is not None
    finally:
        teardown_agent(a, tmp_path)


@needs_isolation
def test_a_container_reaches_only_its_node_and_resolves_with_the_mesh_dns(container_agent,
                                                                          tmp_path, engine):
    """Isolated like an exec or oci instance (test_mesh.py): the gateway reaches the container
    at its own address; from its network neither the agent's API on 127.0.0.1 nor another
    instance's address is reachable; its /etc/resolv.conf names the mesh's DNS, through which
    it calls the upstream it declares."""
    a = container_agent
    up(a, tmp_path, f"""app = "iso"

[services.web]
image = "{IMAGE}"
run = ["httpd", "-f", "-p", "${{PORT}}", "-h", "/www"]
upstreams = ["api"]
[services.web.scale]
min = 1
max = 1

[services.api]
image = "{IMAGE}"
run = ["httpd", "-f", "-p", "8080", "-h", "/www"]
port = 8080
[services.api.scale]
min = 1
max = 1

[[routes]]
path = "/"
service = "web"
""", up_args=("--wait", "--timeout", "60s"))
    web = a.healthy("iso", "web")[0]
    api = a.healthy("iso", "api")[0]
    assert web["address"].startswith("169.254.") and web["address"] != "127.0.0.1", web
    assert f"baton-{web['id']}" in netns_names()
    # The gateway reaches it at that address (nothing is published on the host).
    assert http_get(a.gateway + "/")[1].strip() == "hello from a container"
    # From its network: not the agent's API (127.0.0.1 is its own loopback there), not another
    # instance, though api answers its node at that address.
    assert reaches(web, "127.0.0.1", web["port"]), "its own service on its own loopback"
    assert not reaches(web, "127.0.0.1", a.api_port), "the agent's API"
    assert subprocess.run(["curl", "-s", "-m", "5", f"http://{api['address']}:8080/"],
                          capture_output=True).returncode == 0, "the node reaches api"
    assert not reaches(web, api["address"], 8080), "another instance"
    route = in_netns(web, "ip", "route", "show").stdout
    assert "default" not in route, route

    # Names: the mesh's DNS, and through it (and the node's proxy) the declared upstream.
    resolv = Path(f"/proc/{web['pid']}/root/etc/resolv.conf").read_text()
    assert f"nameserver {MESH_DNS}" in resolv and "search service.baton" in resolv, resolv
    assert f"cannot listen on {MESH_DNS}:53" not in a.log(), "another agent holds the mesh's DNS"
    cid = containers(engine, {web["id"]})[web["id"]]["Id"]
    def in_container(script):
        return subprocess.run([*PODMAN, "exec", cid, "sh", "-c", script], capture_output=True,
                              text=True, timeout=60)
    looked_up = in_container("nslookup api.service.baton").stdout
    assert f"Server:\t\t{MESH_DNS}" in looked_up, looked_up
    vip = looked_up.rsplit("Address:", 1)[1].strip()
    assert vip.startswith("169.254.") and vip != api["address"], looked_up  # the mesh's address
    # (stdin kept open: the proxy does not relay half-closed connections yet, docs/mesh.md.)
    called = in_container("(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 3) | "
                          "nc api.service.baton 80").stdout
    assert "hello from a container" in called, called


def test_host_network_mode_publishes_on_loopback(tmp_path, engine):
    """`[node] network = "host"`: the engine's network, the port published on 127.0.0.1, no
    namespace of the agent's."""
    a = make(tmp_path, engine, extra_config='[node]\nnetwork = "host"\n')
    a.start()
    try:
        up(a, tmp_path, f"""app = "hostnet"

[services.api]
image = "{IMAGE}"
run = ["httpd", "-f", "-p", "8080", "-h", "/www"]
port = 8080
[services.api.scale]
min = 1
max = 1

[[routes]]
path = "/"
service = "api"
""", up_args=("--wait", "--timeout", "60s"))
        assert a.get("/v1/nodes")["nodes"][0]["network"] == "host"
        inst = a.healthy("hostnet", "api")[0]
        c = containers(engine, {inst["id"]})[inst["id"]]
        assert c["HostConfig"]["NetworkMode"] != "none", c["HostConfig"]
        bindings = c["HostConfig"]["PortBindings"]["8080/tcp"][0]
        assert bindings["HostIp"] == "127.0.0.1"
        assert int(bindings["HostPort"]) == inst["port"] != 8080  # the node's side
        assert inst["address"] == "127.0.0.1", inst
        assert f"baton-{inst['id']}" not in netns_names()
        assert http_get(a.gateway + "/")[1].strip() == "hello from a container"
    finally:
        teardown_agent(a, tmp_path)


def test_what_a_user_gets_wrong_is_one_clear_error(container_agent, tmp_path):
    a = container_agent
    # A bad reference: refused at `baton up`, with the file, line and key.
    r = up(a, tmp_path, f'app = "bad"\n[services.web]\nimage = "Busybox:2"\n', check=False)
    assert r.returncode != 0
    assert "bad.toml:3" in r.stderr or "app.toml:3" in r.stderr, r.stderr
    assert "services.web.image" in r.stderr and "lower case" in r.stderr, r.stderr

    # An image that cannot be pulled (no registry answers here), and a program the image lacks:
    # `baton up --wait` says what each instance is doing, then gives up.
    r = up(a, tmp_path, f"""app = "oops"

[services.nopull]
image = "localhost:1/baton/nosuch:1"
[services.nopull.scale]
min = 1
max = 1

[services.noprog]
image = "{IMAGE}"
run = ["nosuch-program"]
[services.noprog.scale]
min = 1
max = 1
""", up_args=("--wait", "--timeout", "40s"), check=False)
    assert r.returncode == 1, r
    assert "oops/nopull oops-nopull-" in r.stdout and "pulling image localhost:1/baton/nosuch:1" in r.stdout, r.stdout
    assert 'oops/noprog oops-noprog-' in r.stdout and 'run[0] "nosuch-program"' in r.stdout, r.stdout
    def failed(service):
        # Failing to start (backing off, or failed: the controller then replaces it).
        return next((i for i in a.instances("oops", service)
                     if "failed to start" in i.get("message", "")), None)
    nopull = wait_for(lambda: failed("nopull"), timeout=120, what="nopull failed")
    assert "pulling image localhost:1/baton/nosuch:1" in nopull["message"], nopull
    noprog = wait_for(lambda: failed("noprog"), timeout=60, what="noprog failed")
    assert 'run[0] "nosuch-program": no such file or directory in image' in noprog["message"], noprog


def test_no_engine_at_the_socket_is_a_clear_error(tmp_path, engine):
    a = make(tmp_path, tmp_path / "no-engine.sock")
    a.start()
    try:
        up(a, tmp_path, f"""app = "noengine"

[services.web]
image = "{IMAGE}"
[services.web.scale]
min = 1
max = 1
""")
        def failed():
            inst = a.instances("noengine")
            return inst[0] if inst and inst[0]["state"] == "failed" else None
        inst = wait_for(failed, timeout=60, what="failed")
        assert f"cannot reach the container engine at {tmp_path / 'no-engine.sock'}" in inst["message"], inst
    finally:
        teardown_agent(a, tmp_path)


# --- the oci driver: runc without an engine ---------------------------------------------------

@pytest.fixture(scope="module")
def oci_archive(tmp_path_factory, engine):
    """The same busybox image as an OCI archive (podman save), readable by the agent."""
    d = tmp_path_factory.mktemp("oci")
    path = d / "busybox.tar"
    subprocess.run([*PODMAN, "save", "--format", "oci-archive", "-o", str(path), IMAGE],
                   check=True, capture_output=True)
    return path


def test_oci_containers_scale_from_zero_unprivileged_and_oom_killed(container_agent, tmp_path,
                                                                    oci_archive):
    a = container_agent
    up(a, tmp_path, f"""app = "runc"

[services.web]
driver = "oci"
image = "oci-archive:{oci_archive}"
run = ["httpd", "-f", "-p", "${{PORT}}", "-h", "/www"]
memory = "32MiB"
pids = 64
env = {{ CALL_ADDR = "node", CALL_PORT = "{a.http_port}", CALL_PATH = "/api/" }}
[services.web.scale]
min = 0
max = 1
idle = "3s"

[services.api]
driver = "oci"
image = "oci-archive:{oci_archive}"
run = ["httpd", "-f", "-p", "8080", "-h", "/www"]
port = 8080
[services.api.scale]
min = 0
max = 1
idle = "3s"

[services.hog]
driver = "oci"
image = "oci-archive:{oci_archive}"
run = ["sh", "-c", "httpd -p ${{PORT}} -h /www; sleep 2; x=$(head -c 200000000 /dev/zero | tr '\\\\0' a); sleep 1000"]
memory = "24MiB"
[services.hog.scale]
min = 1
max = 1

[[routes]]
path = "/"
service = "web"

[[routes]]
path = "/api/"
service = "api"
strip_prefix = true
""")
    # web wakes; its CGI calls api through the gateway at its node (the veth's other end), which
    # wakes api.
    status, body = http_get(a.gateway + "/cgi-bin/call", timeout=60)
    assert (status, body.strip()) == (200, "hello from a container"), body
    api = a.instances("runc", "api")[0]
    assert api["address"].startswith("169.254.") and api["port"] == 8080, api
    web = a.instances("runc", "web")[0]
    # The node reaches it at its own address (its veth), not on the host's loopback.
    assert web["address"].startswith("169.254.") and web["port"] > 0, web
    assert f"baton-{web['id']}" in netns_names()

    status, body = http_get(a.gateway + "/cgi-bin/whoami")
    facts = body.split()
    uid = int(body.split("uid=")[1].split()[0])
    assert uid >= 0x70000000, body
    assert "NoNewPrivs:\t1" in body and "CapEff:\t0000000000000000" in body, body
    assert "root=read-only" in facts and "tmp=writable" in facts, body
    pids_max = Path(f"/sys/fs/cgroup/pids/baton-oci/{web['id']}/pids.max")
    if pids_max.exists():
        assert pids_max.read_text().strip() == "64"

    def oom_seen():
        inst = a.instances("runc", "hog")
        return inst and "out of memory" in inst[0].get("last_failure", "") and inst[0]["restarts"] >= 1
    wait_for(oom_seen, timeout=90, what="an OOM kill and a restart")

    # Idle: back to zero, and the instance's network namespace is gone with it.
    wait_for(lambda: a.instances("runc", "web") == [], timeout=60, what="scale to zero")
    assert f"baton-{web['id']}" not in netns_names()
