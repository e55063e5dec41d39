"""The Alertmanager sink against a real Alertmanager (Debian prometheus-alertmanager) on loopback."""
import asyncio
import time

import pytest

from detectors.synthetic import SimConfig, simulate
from streams.sinks.alertmanager import AlertmanagerSink
from tests.services import get_json, start_alertmanager

from .conftest import produce

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]


@pytest.fixture
def alertmanager(tmp_path):
    svc = start_alertmanager(tmp_path / "am")
    yield svc
    svc.stop()


def alert(status="firing", severity="warning", notification=1, **kw):
    a = {
        "alert_id": "3f2a9c1d0e8b7a65",
        "status": status,
        "customer_id": "acme-prod",
        "signal": "origin_errors",
        "signals": ["origin_errors", "error_5xx"],
        "severity": severity,
        "score": 1.0,
        "observed": 0.24,
        "expected": 0.0004,
        "band": [0.0001, 0.0006],
        "unit": "ratio",
        "started_at": "2026-01-07T17:15:00Z",
        "event_ts": "2026-01-07T17:20:00Z",
        "resolved_at": None,
        "interval_s": 300,
        "notification": notification,
        "summary": "acme-prod: origin error rate anomaly (critical) since 2026-01-07T17:15:00Z",
        "explanation": "Since 2026-01-07T17:15:00Z: origin error rate 24.00% vs expected 0.04%",
        "diagnosis": "origin unreachable (522, connection timed out) [522 = 88% of origin errors]",
    }
    a.update(kw)
    return a


def active(am):
    return [a for a in get_json(am.url + "/api/v2/alerts") if a["status"]["state"] == "active"]


def test_firing_escalation_resend_and_resolve_reach_alertmanager(alertmanager):
    now = [time.time()]
    store = {}
    sink = AlertmanagerSink(alertmanager.url, store, grafana_url="http://grafana:3000", resend_every_s=60,
                            clock=lambda: now[0])

    async def scenario():
        assert await sink.handle(alert())
        first = active(alertmanager)
        assert await sink.handle(alert(severity="critical", notification=2))
        escalated = active(alertmanager)
        now[0] += 60
        assert await sink.resend() == 1
        resent = active(alertmanager)
        assert await sink.handle(alert("resolved", severity="critical", notification=3,
                                       resolved_at="2026-01-07T18:00:00Z", event_ts="2026-01-07T18:10:00Z"))
        after = active(alertmanager)
        await sink.close()
        return first, escalated, resent, after

    first, escalated, resent, after = asyncio.run(scenario())
    (a,) = first
    assert a["labels"] == {"alertname": "LookoutAnomaly", "customer": "acme-prod", "signal": "origin_errors",
                           "severity": "warning", "alert_id": "3f2a9c1d0e8b7a65"}
    assert "522" in a["annotations"]["diagnosis"]
    assert a["annotations"]["description"].startswith("Since 2026-01-07T17:15:00Z")
    assert a["annotations"]["dashboard"] == "http://grafana:3000/d/lookout-customer/lookout-customer?var-customer=acme-prod"
    assert a["startsAt"].startswith("2026-01-07T17:15:00")
    # escalation: one active alert, under the new severity (the old label set was ended)
    assert [x["labels"]["severity"] for x in escalated] == ["critical"]
    # re-sent before expiry: endsAt moved forward by the resend period
    assert resent[0]["endsAt"] > escalated[0]["endsAt"]
    assert after == [] and store == {}


def test_unreachable_alertmanager_keeps_alerts_for_the_next_resend(tmp_path):
    store = {}
    sink = AlertmanagerSink("http://127.0.0.1:9", store, timeout_s=2)

    async def scenario():
        ok = await sink.handle(alert())
        await sink.close()
        return ok

    assert asyncio.run(scenario()) is False
    assert "3f2a9c1d0e8b7a65" in store["acme-prod"]


def test_worker_sends_a_detected_incident_to_alertmanager(alertmanager, start_worker):
    worker = start_worker(LOOKOUT_ALERTMANAGER_URL=alertmanager.url, LOOKOUT_GRAFANA_URL="http://grafana.test:3000")
    sim = simulate(SimConfig(customers=3, duration_s=3 * 86400, interval_s=300, seed=21, incidents=1,
                             kinds=("origin_outage",), size_min=5000, tiny_fraction=0.0, level_shifts=False,
                             holidays=False))
    (incident,) = sim.incidents
    events = [e for e in sim.events() if e["ts"] <= "2026-01-07T23:59:59Z"]
    cut = [e for e in events if e["customer_id"] != incident.customer_id or
           e["ts"] < sim.incidents[0].to_json()["end"]]
    n = produce(worker.bootstrap, worker.input_topic, ((e["customer_id"], e) for e in cut))
    worker.wait_for_events(n)
    deadline = time.monotonic() + 30
    got = []
    while time.monotonic() < deadline and not got:
        got = [a for a in active(alertmanager) if a["labels"]["customer"] == incident.customer_id]
        time.sleep(0.5)
    assert got, f"no alert in Alertmanager for {incident}:\n{worker.log_tail()}"
    assert got[0]["labels"]["severity"] in ("warning", "critical")
    assert got[0]["annotations"]["dashboard"].startswith("http://grafana.test:3000/d/lookout-customer/")
