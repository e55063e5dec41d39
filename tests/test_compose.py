"""The deployment files, checked without a container engine or a broker.

* docker-compose.yml validates against the Compose Specification JSON schema. No installable
  package ships a current one: ``compose-spec`` on PyPI is a compiled parser without the schema,
  so deploy/schema/compose-spec.json is the file docker-compose 1.29.2 (PyPI) ships as
  compose/config/compose_spec.json, unchanged (Apache-2.0);
* structure: images or builds, mounted files exist, ports unique and listed in the header
  comment, depends_on and profiles sound, LOOKOUT_* variables are Settings fields with usable
  values, the commands parse with the real ``lookout`` CLI, Prometheus scrapes every worker,
  Grafana's provisioning fits its mounts;
* promtool / amtool accept the Prometheus and Alertmanager configs (Debian packages
  prometheus and prometheus-alertmanager; skipped when missing);
* the Grafana dashboards: valid JSON, the uids the sinks link to, a query on the provisioned
  Prometheus in every panel, and only metric names the worker really exposes.
  tests/integration/test_dashboards.py runs every query against a real Prometheus.
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
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
FIELDS = {PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
PROMETHEUS_UID = "prometheus"
#: series Prometheus adds to every scrape (not exposed by the worker)
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
#: panels that hold other panels and no query of their own
CONTAINER_PANELS = {"row"}


# --------------------------------------------------------------------------- helpers
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
        if isinstance(p, dict):
            out.append((int(p["published"]), int(p["target"])))
            continue
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


def depends_on(svc: dict) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}


def workers(services) -> dict[str, dict]:
    return {n: s for n, s in services.items() if s.get("command", [None])[0] == "worker"}


def lookout_services(services) -> dict[str, dict]:
    return {n: s for n, s in services.items() if s.get("build")}


def listener_port(spec: str, name: str) -> tuple[str, int]:
    host, port = re.search(rf"\b{name}://([^:,]*):(\d+)", spec).groups()
    return host, int(port)


def parse_cli(args: list[str]):
    """Parse ``lookout ARGS`` with the real click commands (options and their types are checked,
    nothing runs) and return the command that would run."""
    import click

    from streams.cli import cli

    cmd, ctx, name, rest = cli, None, "lookout", list(args)
    while True:
        ctx = cmd.make_context(name, rest, parent=ctx)
        if not isinstance(cmd, click.Group):
            return cmd
        rest = list(getattr(ctx, "_protected_args", None) or ctx.protected_args) + list(ctx.args)
        assert rest, f"lookout {' '.join(args)}: no sub-command"
        name, rest = rest[0], rest[1:]
        cmd = cmd.get_command(ctx, name)
        assert cmd is not None, f"lookout {' '.join(args)}: unknown command {name!r}"


# --------------------------------------------------------------------------- docker-compose.yml
def test_compose_file_matches_the_compose_spec_schema(compose):
    from jsonschema import Draft201909Validator

    schema = json.loads((ROOT / "deploy/schema/compose-spec.json").read_text())
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_docker_compose_config_accepts_the_file_when_compose_is_installed():
    """`docker compose config` needs no engine, only the CLI plugin (absent on this project's machines)."""
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode
    ):
        pytest.skip("no `docker compose` CLI plugin here (the schema and structure tests cover the file)")
    r = subprocess.run([docker, "compose", "-f", str(COMPOSE), "--profile", "sim", "config", "-q"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


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
        assert re.search(rf"^#\s+{port}\s", header, re.M), (
            f"port {port} ({name}) is not in the header comment"
        )
    assert "docker compose up -d" in header
    assert "docker compose --profile sim up -d simulator" in header


def test_depends_on_names_real_services_with_conditions_they_can_meet(services):
    for name, svc in services.items():
        for dep, condition in depends_on(svc).items():
            assert dep in services and dep != name, f"{name} depends on unknown service {dep}"
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            target = services[dep]
            if condition == "service_healthy":
                hc = target.get("healthcheck") or {}
                assert hc.get("test") and not hc.get("disable"), (
                    f"{name} waits for {dep} to be healthy: no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dep} is one-shot: it must not restart"


def test_profiles_are_valid_and_the_default_stack_needs_none(services):
    for name, svc in services.items():
        for profile in svc.get("profiles", []):
            assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", profile), (name, profile)
        if not svc.get("profiles"):  # started by a plain `docker compose up`: so must be all it needs
            for dep in depends_on(svc):
                assert not services[dep].get("profiles"), (
                    f"{name} (no profile) depends on {dep}, which has one"
                )
    assert services["simulator"]["profiles"] == ["sim"]
    assert [n for n, s in services.items() if s.get("profiles")] == ["simulator"]


def test_lookout_variables_are_settings_fields_with_usable_values(services):
    for name, svc in services.items():
        env = env_of(svc)
        for var in env:
            if var.startswith(PREFIX):
                assert var in FIELDS, f"{name}: {var} is not a field of streams.settings.Settings"
        Settings.from_env(env)  # values coerce (SettingsError otherwise)
    dockerfile_env = re.findall(r"\b(LOOKOUT_[A-Z0-9_]+)=", (ROOT / "Dockerfile").read_text())
    assert dockerfile_env and set(dockerfile_env) <= FIELDS


def test_commands_of_the_lookout_image_parse_with_the_real_cli(services):
    ran = {}
    for name, svc in lookout_services(services).items():
        ran[name] = parse_cli([str(a) for a in svc["command"]]).name
    assert ran == {"topics": "create", "worker-1": "worker", "worker-2": "worker", "correlator": "correlator",
                   "simulator": "simulate"}


def test_kafka_is_a_single_kraft_node_with_a_listener_inside_and_one_for_the_host(services):
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:4.0.0"
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    ctrl_name = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert (
        env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        == f"{node}@kafka:{listener_port(env['KAFKA_LISTENERS'], ctrl_name)[1]}"
    )
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    names = {n.split(":")[0] for n in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert {listener.split("://")[0] for listener in env["KAFKA_LISTENERS"].split(",")} == names
    # inside the network: kafka:9092, the same port the broker listens on
    assert listener_port(env["KAFKA_ADVERTISED_LISTENERS"], "INTERNAL") == ("kafka", 9092)
    assert listener_port(env["KAFKA_LISTENERS"], "INTERNAL")[1] == 9092
    # the host: localhost:HOST_PORT is published to the EXTERNAL listener's container port
    host, host_port = listener_port(env["KAFKA_ADVERTISED_LISTENERS"], "EXTERNAL")
    assert host == "localhost"
    assert (host_port, listener_port(env["KAFKA_LISTENERS"], "EXTERNAL")[1]) in published(kafka)


def test_workers_have_their_own_data_dir_and_port_and_reach_kafka_and_alertmanager(services):
    ws = workers(services)
    assert len(ws) >= 2
    data = [next(v.split(":")[0] for v in w["volumes"] if v.split(":")[1] == env_of(w)["LOOKOUT_DATA_DIR"])
            for w in ws.values()]
    assert len(set(data)) == len(ws), "workers share a data dir"
    web_ports = [env_of(w)["LOOKOUT_WEB_PORT"] for w in ws.values()]
    assert len(set(web_ports)) == len(ws), "each worker has its own LOOKOUT_WEB_PORT"
    for name, w in ws.items():
        env = env_of(w)
        assert env["LOOKOUT_BOOTSTRAP"] == "kafka:9092", name
        assert env["LOOKOUT_WEB_HOST"] == "0.0.0.0", f"{name}: /metrics must be reachable from Prometheus"
        assert (int(env["LOOKOUT_WEB_PORT"]), int(env["LOOKOUT_WEB_PORT"])) in published(w), name
        assert env["LOOKOUT_ALERTMANAGER_URL"] == "http://alertmanager:9093", name
        assert env["LOOKOUT_GRAFANA_URL"] == "http://localhost:3000", name
        assert any(c == 3000 for _, c in published(services["grafana"]))
        assert any(c == 9093 for _, c in published(services["alertmanager"]))
        assert depends_on(w).get("topics") == "service_completed_successfully", name
    sim = services["simulator"]["command"]
    assert sim[sim.index("--bootstrap") + 1] == "kafka:9092"
    assert env_of(services["topics"])["LOOKOUT_BOOTSTRAP"] == "kafka:9092"
    assert services["topics"]["command"][:2] == ["topics", "create"]


def test_workers_that_leave_the_correlator_stages_apart_have_a_correlator_to_run_them(services):
    """With LOOKOUT_CORRELATOR_STAGES=apart nobody else holds the alerts' hold: a stack without a
    `lookout correlator` of the same app and broker would never send an alert."""
    apart = {n: env_of(w) for n, w in workers(services).items()
             if env_of(w).get("LOOKOUT_CORRELATOR_STAGES") == "apart"}
    correlators = [env_of(s) for s in services.values() if s.get("command", [None])[0] == "correlator"]
    if not apart:
        return
    assert correlators, f"{sorted(apart)} leave the stages apart but no service runs `lookout correlator`"
    for name, env in apart.items():
        assert any(c["LOOKOUT_BOOTSTRAP"] == env["LOOKOUT_BOOTSTRAP"]
                   and c.get("LOOKOUT_APP_ID", "lookout") == env.get("LOOKOUT_APP_ID", "lookout")
                   and c.get("LOOKOUT_PARTITIONS") == env.get("LOOKOUT_PARTITIONS")
                   for c in correlators), name
    for s in services.values():
        if s.get("command", [None])[0] == "correlator":
            assert s["restart"] in ("unless-stopped", "always", "on-failure")


def test_observability_services_use_the_official_images_and_ports(services):
    expect = {"prometheus": ("prom/prometheus", 9090), "alertmanager": ("prom/alertmanager", 9093),
              "grafana": ("grafana/grafana", 3000)}
    for name, (image, port) in expect.items():
        assert services[name]["image"].split(":")[0] == image, name
        assert (port, port) in published(services[name]), name
    g = env_of(services["grafana"])
    assert g["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and g["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_prometheus_scrapes_every_worker_as_job_lookout(services):
    prom = services["prometheus"]
    mounts = dict((dst, src) for src, dst in bind_mounts(prom))
    cfg_path = next(a.split("=", 1)[1] for a in prom["command"] if a.startswith("--config.file="))
    assert mounts[cfg_path] == "./deploy/prometheus.yml"
    cfg = yaml.safe_load((ROOT / mounts[cfg_path]).read_text())
    for rule_file in cfg.get("rule_files", []):
        assert str(Path(cfg_path).parent / rule_file) in mounts, f"rule file {rule_file} is not mounted"
    (job,) = [
        j for j in cfg["scrape_configs"] if j["job_name"] == "lookout"
    ]  # dashboards use up{job="lookout"}
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{n}:{env_of(w)['LOOKOUT_WEB_PORT']}" for n, w in workers(services).items()}
    # and the correlator's process, where the workers leave their stages to it
    expected |= {f"{n}:{env_of(s)['LOOKOUT_WEB_PORT']}" for n, s in services.items()
                 if s.get("command", [None])[0] == "correlator"}
    assert targets == expected
    (am,) = [t for a in cfg["alerting"]["alertmanagers"] for sc in a["static_configs"] for t in sc["targets"]]
    assert am == "alertmanager:9093"


def test_alertmanager_groups_by_customer_and_has_a_webhook_receiver_example():
    cfg = yaml.safe_load((ROOT / "deploy/alertmanager.yml").read_text())
    assert "customer" in cfg["route"]["group_by"]
    hooks = [r for r in cfg["receivers"] if r.get("webhook_configs")]
    assert hooks and all(h["url"].startswith("http") for r in hooks for h in r["webhook_configs"])


def test_grafana_provisioning_fits_its_mounts_and_the_compose_services(services):
    g = services["grafana"]
    mounts = dict((dst, src) for src, dst in bind_mounts(g))
    prov = ROOT / mounts["/etc/grafana/provisioning"]
    assert prov == PROVISIONING
    assert (prov / "datasources").is_dir() and (prov / "dashboards").is_dir()
    for f in (prov / "datasources").glob("*.y*ml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            host, port = re.match(r"http://([^:/]+):(\d+)", ds["url"]).groups()
            assert host in services and any(c == int(port) for _, c in published(services[host])), ds["name"]
    for f in (prov / "dashboards").glob("*.y*ml"):
        for p in yaml.safe_load(f.read_text())["providers"]:
            path = p["options"]["path"]
            assert p["type"] == "file" and path == "/var/lib/grafana/dashboards"
            assert path in mounts, f"dashboards provider reads {path}, which is not mounted"
            assert ROOT / mounts[path] == DASHBOARDS
    home = env_of(g)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    base = next(d for d in mounts if home.startswith(d + "/"))
    assert (ROOT / mounts[base] / home[len(base) + 1:]).is_file()


def test_exactly_one_provisioned_prometheus_datasource_the_dashboards_can_name():
    found = [(f.name, ds) for f in sorted((PROVISIONING / "datasources").glob("*.y*ml"))
             for ds in yaml.safe_load(f.read_text())["datasources"]]
    proms = [(f, ds) for f, ds in found if ds["type"] == "prometheus"]
    assert len(proms) == 1, f"one Prometheus datasource, not {[(f, ds['name']) for f, ds in proms]}"
    (_, ds), = proms
    assert ds["uid"] == PROMETHEUS_UID and ds["url"] == "http://prometheus:9090"
    uids = [ds.get("uid") for _, ds in found]
    assert len(uids) == len(set(uids)), "two datasources with one uid"
    assert sum(bool(ds.get("isDefault")) for _, ds in found) <= 1, "Grafana refuses two default datasources"


# --------------------------------------------------------------------------- Dockerfile
def test_dockerfile_builds_the_package_and_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert re.search(r"pip install (--no-deps )?\.(\s|$)", text)
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.M):
        for s in src.split():
            assert (ROOT / s).exists(), f"Dockerfile copies {s}, which is not in the repo"
    assert 'ENTRYPOINT ["lookout"]' in text
    assert 'lookout = "streams.cli:main"' in (ROOT / "pyproject.toml").read_text()
    rules = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip()[:1] not in ("", "#")
    ]
    assert rules[0] == "*" or ".venv" in rules  # the build context never carries the virtualenv
    # every package directory the installed `lookout` imports is copied into the image
    for pkg in ("detectors", "streams"):
        assert re.search(rf"^COPY {pkg} {pkg}$", text, re.M)


# --------------------------------------------------------------------------- promtool / amtool
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
        r = subprocess.run(
            [amtool, "config", "routes", "test", "--config.file=deploy/alertmanager.yml", *labels],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return r.stdout.strip()

    assert route("alertname=LookoutAnomaly", "severity=critical", "customer=acme") == "oncall"
    assert route("alertname=LookoutAnomaly", "severity=warning", "customer=acme") == "support"
    assert route("alertname=LookoutWorkerDown", "severity=critical") == "platform"


# --------------------------------------------------------------------------- dashboards
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "atan2", "Inf", "NaN", "inf", "nan"}
MACROS = ("$__rate_interval", "$__interval", "$__range")


def load_dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels_of(dashboard: dict):
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels") or []


def exprs(dashboards=None):
    """(file, panel title, expr) for every query of every dashboard."""
    dashboards = dashboards or load_dashboards()
    return [(f, p["title"], t["expr"]) for f, d in dashboards.items() for p in panels_of(d)
            for t in p.get("targets", []) if t.get("expr")]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, matchers, ranges and grouping removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w$.:])([a-zA-Z_:][\w:]*)(\s*\()?", s):
        if not m.group(2) and m.group(1) not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_metric_names_are_found_in_promql():
    assert metric_names('sum by (le) (rate(a_bucket{x="y"}[$__rate_interval])) / on(x) b or vector(0)') == {
        "a_bucket", "b"}
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(c[5m]))) > 1e3') == {"c"}


@pytest.fixture(scope="module")
def exposed(tmp_path_factory) -> set[str]:
    """Every metric name a worker exposes on /metrics: the app built as `lookout worker` builds it."""
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.worker.app import create_app

    registry = CollectorRegistry()
    create_app(Settings(data_dir=tmp_path_factory.mktemp("worker")), registry=registry)
    names: set[str] = set()
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][\w:]*", line).group(0))
    assert "lookout_events_total" in names and "faust_consumer_commit_latency_bucket" in names
    return names


def test_dashboards_are_valid_json_with_the_uids_the_sinks_link_to():
    from streams.sinks.alertmanager import dashboard_url

    dashboards = load_dashboards()
    assert {d["uid"]: f for f, d in dashboards.items()} == {
        "lookout-overview": "overview.json", "lookout-customer": "customer.json"}
    for f, d in dashboards.items():
        assert 36 <= d["schemaVersion"] <= 41, f
        assert d["title"] and d["panels"], f
    url = dashboard_url("http://localhost:3000", "cust-1")
    assert url == "http://localhost:3000/d/lookout-customer/lookout-customer?var-customer=cust-1"


def test_customer_dashboard_has_the_customer_variable_of_customers_with_an_open_alert(exposed):
    d = load_dashboards()["customer.json"]
    var = {v["name"]: v for v in d["templating"]["list"]}["customer"]
    assert var["type"] == "query" and var["datasource"] == {"type": "prometheus", "uid": PROMETHEUS_UID}
    query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
    assert query == "label_values(lookout_customer_alert_score, customer_id)"
    assert "lookout_customer_alert_score" in exposed
    customer_exprs = [e for f, _, e in exprs() if f == "customer.json"]
    for metric in ("lookout_customer_alert_score", "lookout_customer_signal_observed",
                   "lookout_customer_signal_expected"):
        assert any(f'{metric}{{customer_id="$customer"}}' in e for e in customer_exprs), metric


def test_every_panel_queries_the_provisioned_prometheus():
    ds = {"type": "prometheus", "uid": PROMETHEUS_UID}
    for f, d in load_dashboards().items():
        ids = [p["id"] for p in panels_of(d)]
        assert len(ids) == len(set(ids)), f"{f}: duplicate panel ids"
        for p in panels_of(d):
            if p["type"] in CONTAINER_PANELS:
                continue
            where = f"{f}: panel {p['title']!r}"
            assert p.get("datasource") == ds, where
            assert p.get("targets"), f"{where} has no query"
            assert any(t.get("expr", "").strip() for t in p["targets"]), f"{where} has no expr"
            for t in p["targets"]:
                assert t["expr"].strip() and t["datasource"] == ds and t["refId"], where


def test_panels_do_not_overlap():
    for f, d in load_dashboards().items():
        cells = {}
        for p in d["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, (f, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{f}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_every_metric_in_a_query_is_one_the_worker_exposes(exposed):
    known = exposed | SCRAPE_SERIES
    unknown = sorted(
        {(f, title, name) for f, title, e in exprs() for name in metric_names(e) if name not in known}
    )
    assert not unknown, f"metrics the worker does not expose: {unknown}"
    used = {name for _, _, e in exprs() for name in metric_names(e)}
    assert {
        "lookout_events_total",
        "lookout_event_lag_seconds_bucket",
        "lookout_batch_processing_seconds_bucket",
        "lookout_alerts_total",
        "lookout_alerts_firing",
        "lookout_dlq_messages_total",
        "lookout_sink_deliveries_total",
        "lookout_sink_retries_total",
        "lookout_sink_queue_alerts",
        "lookout_anomaly_score_bucket",
        "lookout_anomaly_score_count",
        "lookout_series",
        "faust_consumer_commit_latency_bucket",
        "faust_messages_received_total",
    } <= used


def test_rate_windows_are_grafana_macros_and_fallbacks_are_explained():
    panels = {(f, p["title"]): p for f, d in load_dashboards().items() for p in panels_of(d)}
    for f, title, e in exprs():
        for window in re.findall(r"\[([^\]]+)\]", e):
            assert window in MACROS, f"{f} / {title}: window [{window}] (use $__rate_interval or $__range)"
        for fn in re.findall(r"\b(rate|irate|increase)\(", e):
            assert re.search(rf"\b{fn}\([^()]*\[\$__(rate_interval|range)\]\)", e), (f, title, e)
        if re.search(r"\bor\s+vector\(", e):
            desc = panels[(f, title)].get("description", "")
            assert "vector(0)" in desc or "not exist" in desc, (
                f"{f} / {title}: say why `or vector(0)` is needed"
            )


@pytest.mark.prometheus
def test_promtool_parses_every_dashboard_query(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    rules = []
    for n, (f, title, e) in enumerate(exprs()):
        for macro, value in zip(MACROS, ("1m", "15s", "5m")):
            e = e.replace(macro, value)
        rules.append({"record": f"dashboard:query_{n}", "expr": e.replace("$customer", "c1"),
                      "labels": {"panel": f"{f} / {title}"}})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_rules_use_metrics_the_worker_exposes(exposed):
    rules = yaml.safe_load((ROOT / "deploy/rules.yml").read_text())
    rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert rule_exprs
    for e in rule_exprs:
        assert metric_names(e) <= exposed | SCRAPE_SERIES, e
