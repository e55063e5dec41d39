"""docker-compose.yml, Dockerfile and deploy/ are checked without a container engine.

* the compose file validates against the Compose Specification JSON schema
  (deploy/schema/compose-spec.json, taken unchanged from the docker-compose 1.29.2 package on
  PyPI, compose/config/compose_spec.json, Apache-2.0);
* structure: images or builds, files and dirs that are mounted exist, published ports unique and
  listed in the header comment, depends_on names real services, LOOKOUT_* variables are
  Settings fields, Prometheus scrapes every worker, Grafana's provisioning fits its mounts;
* promtool / amtool accept the Prometheus and Alertmanager configs (when installed).
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
FIELDS = {PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: str(v) for k, v in env.items()}


def published(svc: dict) -> list[tuple[int, int]]:
    """(host port, container port) pairs of ``ports:`` entries."""
    out = []
    for p in svc.get("ports", []):
        parts = str(p).split("/")[0].split(":")
        out.append((int(parts[-2]), int(parts[-1])))
    return out


def bind_mounts(svc: dict) -> list[tuple[str, str]]:
    out = []
    for v in svc.get("volumes", []):
        src, dst = (v.split(":")[:2] if isinstance(v, str) else (v["source"], v["target"]))
        if src.startswith((".", "/")):
            out.append((src, dst))
    return out


def workers(services) -> dict[str, dict]:
    return {n: s for n, s in services.items() if s.get("command", [None])[0] == "worker"}


def test_compose_file_matches_the_compose_spec_schema(compose):
    from jsonschema import Draft201909Validator

    schema = json.loads((ROOT / "deploy/schema/compose-spec.json").read_text())
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_every_service_has_an_image_or_a_build_whose_dockerfile_exists(services):
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name
        build = svc.get("build")
        if build:
            ctx = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (ctx / dockerfile).is_file(), f"{name}: {ctx / dockerfile} missing"


def test_mounted_files_exist_and_named_volumes_are_declared(compose, services):
    for name, svc in services.items():
        for src, _ in bind_mounts(svc):
            assert (ROOT / src).exists(), f"{name}: mounts {src}, which is not in the repo"
        for v in svc.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v["source"]
            if not src.startswith((".", "/")):
                assert src in (compose.get("volumes") or {}), f"{name}: volume {src} not declared"


def test_published_ports_are_unique_and_documented_in_the_header(services):
    ports = [(host, name) for name, svc in services.items() for host, _ in published(svc)]
    hosts = [p for p, _ in ports]
    assert len(hosts) == len(set(hosts)), f"port used twice: {ports}"
    header = "".join(line for line in COMPOSE.read_text().splitlines(True) if line.startswith("#"))
    for port, name in ports:
        assert re.search(rf"^#\s+{port}\s", header, re.M), f"port {port} ({name}) is not in the header comment"


def test_depends_on_names_real_services(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in (deps if isinstance(deps, list) else deps.keys()):
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name


def test_lookout_variables_are_settings_fields(services):
    for name, svc in services.items():
        for var in env_of(svc):
            if var.startswith(PREFIX):
                assert var in FIELDS, f"{name}: {var} is not a field of streams.settings.Settings"
    dockerfile_env = re.findall(r"\b(LOOKOUT_[A-Z0-9_]+)=", (ROOT / "Dockerfile").read_text())
    assert dockerfile_env and set(dockerfile_env) <= FIELDS


def test_workers_have_their_own_data_dir_and_port_and_reach_kafka_and_alertmanager(services):
    ws = workers(services)
    assert len(ws) >= 2
    data = [next(v.split(":")[0] for v in w["volumes"] if v.split(":")[1] == env_of(w)["LOOKOUT_DATA_DIR"])
            for w in ws.values()]
    assert len(set(data)) == len(ws), "workers share a data dir"
    kafka_env = env_of(services["kafka"])
    internal = re.search(r"INTERNAL://([^,]+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"]).group(1)
    for name, w in ws.items():
        env = env_of(w)
        assert env["LOOKOUT_BOOTSTRAP"] == internal, name
        assert env["LOOKOUT_WEB_HOST"] == "0.0.0.0", f"{name}: /metrics must be reachable from Prometheus"
        assert any(c == int(env["LOOKOUT_WEB_PORT"]) for _, c in published(w)), name
        am = re.match(r"http://([^:/]+):(\d+)", env["LOOKOUT_ALERTMANAGER_URL"])
        assert am.group(1) in services and any(c == int(am.group(2)) for _, c in published(services[am.group(1)]))
    sim = services["simulator"]
    assert sim["profiles"] == ["sim"]
    assert sim["command"][sim["command"].index("--kafka") + 1] == internal
    assert env_of(services["topics"])["LOOKOUT_BOOTSTRAP"] == internal
    # tools on the host reach the broker: the advertised EXTERNAL port is published, to the
    # container port the EXTERNAL listener binds
    advertised = re.search(r"EXTERNAL://localhost:(\d+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"]).group(1)
    listener = re.search(r"EXTERNAL://[^:,]*:(\d+)", kafka_env["KAFKA_LISTENERS"]).group(1)
    assert (int(advertised), int(listener)) in published(services["kafka"])


def test_prometheus_scrapes_every_worker_as_job_lookout(services):
    prom = services["prometheus"]
    mounts = dict((dst, src) for src, dst in bind_mounts(prom))
    cfg_path = next(a.split("=", 1)[1] for a in prom["command"] if a.startswith("--config.file="))
    cfg = yaml.safe_load((ROOT / mounts[cfg_path]).read_text())
    for rule_file in cfg.get("rule_files", []):
        assert str(Path(cfg_path).parent / rule_file) in mounts, f"rule file {rule_file} is not mounted"
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "lookout"]  # dashboards use up{job="lookout"}
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{n}:{env_of(w)['LOOKOUT_WEB_PORT']}" for n, w in workers(services).items()}
    assert targets == expected
    (am,) = [t for a in cfg["alerting"]["alertmanagers"] for sc in a["static_configs"] for t in sc["targets"]]
    assert am.split(":")[0] in services


def test_rules_use_metrics_the_worker_exports():
    from tests.integration.test_prometheus_dashboards import METRIC_RE, exported_names

    known = exported_names()
    rules = yaml.safe_load((ROOT / "deploy/rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert exprs
    for expr in exprs:
        for name in METRIC_RE.findall(expr):
            assert name in known, f"{name} in deploy/rules.yml is not exported"


def test_grafana_provisioning_fits_its_mounts_and_the_compose_services(services):
    g = services["grafana"]
    mounts = dict((dst, src) for src, dst in bind_mounts(g))
    prov = ROOT / mounts["/etc/grafana/provisioning"]
    assert (prov / "datasources").is_dir() and (prov / "dashboards").is_dir()
    for f in (prov / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            host, port = re.match(r"http://([^:/]+):(\d+)", ds["url"]).groups()
            assert host in services and any(c == int(port) for _, c in published(services[host])), ds["name"]
    for f in (prov / "dashboards").glob("*.yml"):
        for p in yaml.safe_load(f.read_text())["providers"]:
            path = p["options"]["path"]
            assert path in mounts, f"dashboards provider reads {path}, which is not mounted"
            assert list((ROOT / mounts[path]).glob("*.json"))
    home = env_of(g)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    base = next(d for d in mounts if home.startswith(d + "/"))
    assert (ROOT / mounts[base] / home[len(base) + 1:]).is_file()


def test_dockerfile_copies_what_exists_and_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.M):
        for s in src.split():
            assert (ROOT / s).exists(), f"Dockerfile copies {s}, which is not in the repo"
    assert 'ENTRYPOINT ["lookout"]' in text
    assert 'lookout = "streams.cli:main"' in (ROOT / "pyproject.toml").read_text()
    rules = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()[:1] not in ("", "#")]
    assert rules[0] == "*" or ".venv" in rules  # the build context never carries the virtualenv


@pytest.mark.prometheus
def test_promtool_and_amtool_accept_the_configs():
    for binary, args in (("promtool", ["check", "config", "deploy/prometheus.yml"]),
                         ("amtool", ["check-config", "deploy/alertmanager.yml"])):
        path = shutil.which(binary)
        if path is None:
            pytest.skip(f"{binary} not installed (Debian packages prometheus, prometheus-alertmanager)")
        r = subprocess.run([path, *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.prometheus
def test_alertmanager_routes_lookout_alerts_as_documented():
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")

    def route(*labels):
        r = subprocess.run([amtool, "config", "routes", "test", "--config.file=deploy/alertmanager.yml", *labels],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    assert route("alertname=LookoutAnomaly", "severity=critical", "customer=acme") == "oncall"
    assert route("alertname=LookoutAnomaly", "severity=warning", "customer=acme") == "support"
    assert route("alertname=LookoutWorkerDown", "severity=critical") == "platform"
