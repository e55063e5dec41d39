"""Every Grafana panel query returns data from a real Prometheus scraping a loaded worker.

A real worker (with the webhook sink, so the sink metrics move) consumes three days of
simulated traffic ending about now, with one origin outage whose customer stops reporting
mid-incident (so its alert is still open at the end) and one invalid message (so the input
dead-letter counter moves). A real Prometheus (Debian ``prometheus``) scrapes the worker every
second. Then each ``expr`` of each panel of each dashboard, with Grafana's macros replaced
(``$customer`` = the customer with the open incident), must give at least one finite sample
as an instant query. All empty panels are reported together.

The static checks of the same dashboards (JSON, uids, metric names) are in tests/test_compose.py.
"""
from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from detectors.synthetic import DEFAULT_START, SimConfig, simulate
from tests.services import get_json, start_prometheus

from .conftest import produce

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
#: what Grafana substitutes, with values that fit a 1 s scrape interval and a short test
MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
WEEK = 7 * 86400


class Webhook:
    """A local endpoint that accepts every POST (the worker's webhook sink delivers to it)."""

    def __init__(self):
        self.received = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def prometheus_for(tmp_path):
    """Factory: a real Prometheus scraping the given targets every second (stopped at teardown)."""
    started = []

    def make(targets: list[str]):
        prom = start_prometheus(tmp_path / "prometheus", targets, "1s")
        started.append(prom)
        return prom

    yield make
    for prom in started:
        prom.stop()


def query(prom, expr: str) -> list[dict]:
    r = get_json(prom.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert r["status"] == "success", f"{expr}: {r}"
    return r["data"]["result"]


def scalar(prom, expr: str) -> float:
    res = query(prom, expr)
    return float(res[0]["value"][1]) if res else 0.0


def wait_until(what: str, pred, timeout: float, diagnostics=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out ({timeout} s) waiting for {what}\n{diagnostics()}")


def panel_queries():
    """(dashboard file, panel title, expr) of every query of every dashboard."""
    out = []
    for path in DASHBOARDS:
        for p in json.loads(path.read_text())["panels"]:
            for panel in [p, *(p.get("panels") or [])]:
                for t in panel.get("targets", []):
                    if t.get("expr"):
                        out.append((path.name, panel["title"], t["expr"]))
    return out


def test_every_panel_query_returns_data(start_worker, kafka_topics, webhook, prometheus_for):
    worker = start_worker(LOOKOUT_WEBHOOK_URL=webhook.url, LOOKOUT_SINK_DLQ_TOPIC=kafka_topics("alerts-dlq"))
    prom = prometheus_for([f"127.0.0.1:{worker.web_port}"])
    wait_until("Prometheus to scrape the worker", lambda: scalar(prom, 'up{job="lookout"}') == 1, 60,
               worker.log_tail)

    # three days ending at most a week ago (shifted by whole weeks: same weekdays, same events)
    start = DEFAULT_START + (time.time() - 3 * 86400 - DEFAULT_START) // WEEK * WEEK
    sim = simulate(SimConfig(customers=4, duration_s=3 * 86400, interval_s=300, seed=21, incidents=1, start=start,
                             kinds=("origin_outage",), size_min=5000, tiny_fraction=0.0, level_shifts=False,
                             holidays=False))
    (incident,) = sim.incidents
    end = incident.to_json()["end"]
    # the incident's customer stops reporting inside the incident: its alert stays open
    events = [e for e in sim.events() if e["customer_id"] != incident.customer_id or e["ts"] < end]
    items = [(e["customer_id"], e) for e in events] + [("broken", b"{not json")]
    n = produce(worker.bootstrap, worker.input_topic, items)
    worker.wait_for_events(n, timeout=60)

    customer = incident.customer_id
    wait_until(
        "Prometheus to see every event, the dead letter, the open incident and a webhook delivery",
        lambda: scalar(prom, "sum(lookout_events_total)") >= n
        and scalar(prom, 'sum(lookout_dlq_messages_total{kind="undecodable"})') >= 1
        and query(prom, f'lookout_customer_alert_score{{customer_id="{customer}"}}')
        and scalar(prom, 'sum(lookout_sink_deliveries_total{sink="webhook",result="delivered"})') >= 1,
        30, worker.log_tail)
    time.sleep(3)  # a few more scrapes inside every 1 m rate window after the load

    # the customer dashboard's variable: label_values(lookout_customer_alert_score, customer_id)
    values = get_json(prom.url + "/api/v1/label/customer_id/values?"
                      + urllib.parse.urlencode({"match[]": "lookout_customer_alert_score"}))["data"]
    assert customer in values

    macros = dict(MACROS, **{"$customer": customer})
    queries = panel_queries()
    assert len(queries) >= 30
    empty = []
    for f, title, expr in queries:
        for k, v in macros.items():
            expr = expr.replace(k, v)
        samples = [float(r["value"][1]) for r in query(prom, expr)]
        if not any(math.isfinite(v) for v in samples):
            empty.append(f"  {f} / {title}: {expr} -> {samples or 'no series'}")
    assert not empty, (f"{len(empty)} of {len(queries)} panel queries return no data:\n" + "\n".join(empty)
                       + f"\n--- worker log:\n{worker.log_tail(20)}")
    assert webhook.received >= 1
