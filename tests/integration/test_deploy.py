"""Deploy, inspect, scale, tear down: the user's everyday loop, through the CLI."""
import json
import shutil
from pathlib import Path

from conftest import REPO, http_get, wait_for


def deploy_example(agent, tmp_path):
    app_dir = tmp_path / "shop"
    shutil.copytree(REPO / "examples" / "shop", app_dir)
    agent.cli("up", str(app_dir / "app.toml"), "--wait", "--timeout", "60s")
    return app_dir


def test_example_app_deploys_and_serves(agent, tmp_path):
    deploy_example(agent, tmp_path)
    catalog = agent.healthy("shop", "catalog")
    web = agent.healthy("shop", "web")
    assert len(catalog) == 2 and len(web) == 1
    for inst in catalog + web:
        assert inst["pid"] > 0 and inst["port"] > 0 and inst["node"]
        assert inst["version"] == 1 and inst["started_at"] > 0
    status, page = http_get(f"http://{web[0]['address']}:{web[0]['port']}/")
    assert status == 200 and "Baton mug" in page and "Welcome" in page

    ps = agent.cli("ps", "shop").stdout
    assert "catalog" in ps and "2/2" in ps and "web" in ps and "1/1" in ps
    services = agent.cli_json("ps", "shop")["services"]
    by_name = {s["service"]: s for s in services}
    assert by_name["catalog"]["ready"] == 2 and by_name["catalog"]["desired"] == 2


def test_up_of_same_manifest_changes_nothing(agent, tmp_path):
    app_dir = deploy_example(agent, tmp_path)
    before = {i["id"] for i in agent.instances("shop")}
    out = agent.cli("up", str(app_dir / "app.toml")).stdout
    assert "unchanged" in out
    assert {i["id"] for i in agent.instances("shop")} == before


def test_scale_changes_the_instance_count(agent, tmp_path):
    deploy_example(agent, tmp_path)
    agent.cli("scale", "shop/catalog", "--min", "3", "--max", "4")
    wait_for(lambda: len(agent.healthy("shop", "catalog")) == 3, what="3 healthy catalogs")
    svc = {s["service"]: s for s in agent.cli_json("ps", "shop")["services"]}["catalog"]
    assert svc["min"] == 3 and svc["source"] == "override"

    agent.cli("scale", "shop/catalog", "--min", "1", "--max", "1")
    wait_for(lambda: len(agent.instances("shop", "catalog")) == 1, what="one catalog left")
    # min > max is a usage error when both are given; the agent refuses it when the other bound
    # comes from the override in force (max = 1 here).
    usage = agent.cli("scale", "shop/catalog", "--min", "5", "--max", "2", check=False)
    assert usage.returncode == 2 and "min" in usage.stderr
    bad = agent.cli("scale", "shop/catalog", "--min", "5", check=False)
    assert bad.returncode == 1 and "min" in (bad.stderr + bad.stdout)
    assert len(agent.instances("shop", "catalog")) == 1


def test_down_stops_everything(agent, tmp_path):
    deploy_example(agent, tmp_path)
    pids = [i["pid"] for i in agent.instances("shop")]
    agent.cli("down", "shop")
    wait_for(lambda: agent.instances("shop") == [], what="no instances")
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_logs_show_the_service_output(agent, tmp_path):
    deploy_example(agent, tmp_path)
    web = agent.healthy("shop", "web")[0]
    http_get(f"http://{web['address']}:{web['port']}/")
    wait_for(lambda: "web listening" in agent.cli("logs", "shop/web").stdout, what="log line")
    wait_for(lambda: "GET / " in agent.cli("logs", "shop/web").stdout, what="access log line")


def test_cli_exit_codes(agent, tmp_path):
    assert agent.cli("scale", check=False).returncode == 2          # usage
    assert agent.cli("no-such-command", check=False).returncode == 2
    assert agent.cli("down", "nosuchapp", check=False).returncode == 1
    assert json.loads(agent.cli("nodes", "--json").stdout)["nodes"][0]["id"]
