"""The Grafana dashboards query metrics that really exist, with data, in a real Prometheus.

Fast checks (no services): dashboard JSON is well formed, every data panel has queries on the
provisioned datasource, and every metric name in them is one the worker exports.

Integration check: a real Prometheus (Debian ``prometheus``) scrapes a real worker (with an
Alertmanager and a webhook sink configured) while simulated traffic with incidents and one
invalid message flows through; then EVERY target expression of EVERY panel, with ``$customer``
set to a customer that has an open alert, must return at least one finite sample.
"""
from __future__ import annotations

import json
import math
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.services import HookEndpoint, get_json, start_alertmanager, start_prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# what Grafana substitutes, with values that fit a 1 s scrape interval and a short test
MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def data_panels(dashboard: dict):
    for p in dashboard["panels"]:
        yield from (p.get("panels") or []) if p["type"] == "row" else [p]


def targets():
    """(dashboard file, panel title, expr) for every query of every dashboard."""
    out = []
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for p in data_panels(d):
            for t in p.get("targets", []):
                out.append((path.name, p["title"], t["expr"]))
    return out


# (the static checks of the dashboards live in tests/test_compose.py)


# --------------------------------------------------------------------------- real services
def query(prom, expr: str) -> list[dict]:
    r = get_json(prom.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert r["status"] == "success", r
    return r["data"]["result"]


def scalar(prom, expr: str) -> float:
    res = query(prom, expr)
    return float(res[0]["value"][1]) if res else 0.0


def wait_until(what: str, pred, timeout: float, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log()}")


@pytest.fixture
def services(tmp_path):
    started = []
    try:
        am = start_alertmanager(tmp_path / "am")
        started.append(am)
        hook = HookEndpoint()
        started.append(hook)
        yield am, hook, started
    finally:
        for s in reversed(started):
            s.stop() if hasattr(s, "stop") else s.close()


@pytest.mark.integration
@pytest.mark.prometheus
def test_every_panel_query_returns_data_from_a_real_worker(services, start_worker, kafka_topics, tmp_path):
    from detectors.synthetic import DEFAULT_START, SimConfig, simulate

    from .conftest import produce

    am, hook, started = services
    worker = start_worker(LOOKOUT_ALERTMANAGER_URL=am.url, LOOKOUT_ALERTMANAGER_RESEND_S=5,
                          LOOKOUT_WEBHOOK_URL=hook.url, LOOKOUT_SINK_DLQ_TOPIC=kafka_topics("alerts-dlq"))
    prom = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{worker.web_port}"], scrape_interval="1s")
    started.append(prom)
    wait_until("Prometheus to scrape the worker", lambda: scalar(prom, 'up{job="lookout"}') == 1, 60,
               worker.log_tail)

    # three days ending about now (shifted by whole weeks, so weekdays stay as simulated)
    week = 7 * 86400
    start = DEFAULT_START + (time.time() - 3 * 86400 - DEFAULT_START) // week * week
    sim = simulate(
        SimConfig(
            customers=4,
            duration_s=3 * 86400,
            interval_s=300,
            seed=21,
            incidents=2,
            start=start,
            kinds=("origin_outage", "traffic_drop"),
            size_min=5000,
            tiny_fraction=0.0,
            level_shifts=False,
            holidays=False,
        )
    )
    last = max((i.to_json() for i in sim.incidents), key=lambda j: j["start"])
    # the last incident's customer stops reporting mid-incident, so its alert stays open
    events = [e for e in sim.events() if e["customer_id"] != last["customer_id"] or e["ts"] < last["end"]]
    n = produce(
        worker.bootstrap, worker.input_topic, [(e["customer_id"], e) for e in events] + [("bad", b"{oops")]
    )
    worker.wait_for_events(n, timeout=90)
    wait_until("Prometheus to see every event and an open alert",
               lambda: scalar(prom, "sum(lookout_events_total)") >= n
               and query(prom, "lookout_customer_alert_score"), 30, worker.log_tail)
    for sink in ("alertmanager", "webhook"):
        wait_until(
            f"the {sink} sink to deliver",
            lambda sink=sink: (
                scalar(prom, f'sum(lookout_sink_deliveries_total{{sink="{sink}",result="delivered"}})') > 0
            ),
            30,
            worker.log_tail,
        )
    time.sleep(3)  # a few more scrapes inside every rate window

    customers = get_json(prom.url + "/api/v1/label/customer_id/values?"
                         + urllib.parse.urlencode({"match[]": "lookout_customer_alert_score"}))["data"]
    assert last["customer_id"] in customers
    macros = dict(MACROS, **{"$customer": last["customer_id"]})

    empty = []
    for f, title, expr in targets():
        for k, v in macros.items():
            expr = expr.replace(k, v)
        values = [float(r["value"][1]) for r in query(prom, expr)]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{f} / {title}: {expr} -> {values}")
    assert not empty, "panels without data:\n" + "\n".join(empty) + "\n" + worker.log_tail(20)
    assert hook.accepted
