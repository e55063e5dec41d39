"""Worker metrics: names and labels, per-customer series bounded by open incidents, dead letters by
kind. Every test has its own CollectorRegistry. (Faust's sensors on the worker's registry:
tests/streams/worker/test_app.py.)"""
from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.pipeline.metrics import WorkerMetrics
from tests.streams.conftest import samples

BASE_UNIT_SUFFIXES = ("_total", "_seconds", "_events", "_alerts", "_score")  # score: unitless, 0..1
CUSTOMER_METRICS = {"lookout_customer_alert_score", "lookout_customer_signal_observed",
                    "lookout_customer_signal_expected"}


def alert(
    status="firing", severity="warning", cid="acme", signals=("error_5xx", "origin_errors"), notification=1
):
    return {
        "alert_id": "a1",
        "status": status,
        "customer_id": cid,
        "signal": signals[0],
        "severity": severity,
        "notification": notification,
        "details": {
            s: {"observed": 0.2, "expected": 0.001, "score": 0.99999, "unit": "ratio"} for s in signals
        },
    }


def test_names_are_lookout_prefixed_in_base_units_and_labels_never_name_a_customer_except_open_incidents():
    reg = CollectorRegistry()
    WorkerMetrics(reg)
    for fam in reg.collect():
        assert fam.name.startswith("lookout_"), fam.name
        assert not re.search(r"_(ms|milliseconds|minutes|percent)\b", fam.name), fam.name
        if fam.type in ("counter", "histogram"):
            full = fam.name + ("_total" if fam.type == "counter" else "")
            assert full.endswith(BASE_UNIT_SUFFIXES), full
    text = generate_latest(reg).decode()
    assert "customer_id=" not in text  # nothing open yet: no per-customer series at all


def test_known_label_sets_start_at_zero_so_rate_sees_the_first_increment():
    reg = CollectorRegistry()
    m = WorkerMetrics(reg)
    m.expect_dlq("request-metrics-dlq", ("undecodable", "contract"))
    alerts = samples(reg, "lookout_alerts_total")
    assert len(alerts) == 2 * 3 * 7 and set(alerts.values()) == {0.0}
    assert samples(reg, "lookout_dlq_messages_total") == {
        (("kind", "contract"), ("topic", "request-metrics-dlq")): 0.0,
        (("kind", "undecodable"), ("topic", "request-metrics-dlq")): 0.0,
    }
    assert {dict(k)["sink"] for k in samples(reg, "lookout_sink_deliveries_total")} == {
        "alertmanager",
        "webhook",
    }
    assert samples(reg, "lookout_sink_queue_alerts") == {(("sink", "webhook"),): 0.0}
    assert {dict(k)["sink"] for k in samples(reg, "lookout_sink_request_seconds_count")} == {
        "alertmanager",
        "webhook",
    }


def test_customer_series_exist_exactly_while_the_incident_is_open():
    reg = CollectorRegistry()
    m = WorkerMetrics(reg)
    m.observe_alert(alert())
    score = samples(reg, "lookout_customer_alert_score")
    assert score == {
        (("customer_id", "acme"), ("severity", "warning"), ("signal", "error_5xx")): 0.99999,
        (("customer_id", "acme"), ("severity", "warning"), ("signal", "origin_errors")): 0.99999,
    }
    assert (
        samples(reg, "lookout_customer_signal_observed")[
            (("customer_id", "acme"), ("signal", "error_5xx"), ("unit", "ratio"))
        ]
        == 0.2
    )
    assert len(samples(reg, "lookout_customer_signal_expected")) == 2

    # escalation: the series move to the new severity and signal set, nothing stale is left
    m.observe_alert(alert(severity="critical", signals=("origin_errors",), notification=2))
    assert list(samples(reg, "lookout_customer_alert_score")) == [
        (("customer_id", "acme"), ("severity", "critical"), ("signal", "origin_errors"))
    ]
    assert len(samples(reg, "lookout_customer_signal_observed")) == 1

    # another customer is independent
    m.observe_alert(alert(cid="globex"))
    m.observe_alert(alert("resolved", severity="critical", signals=("origin_errors",), notification=3))
    for name in CUSTOMER_METRICS:
        assert {dict(k)["customer_id"] for k in samples(reg, name)} == {"globex"}, name
    m.observe_alert(alert("resolved", cid="globex", notification=2))
    text = generate_latest(reg).decode()
    assert "customer_id=" not in text
    counted = samples(reg, "lookout_alerts_total")
    assert counted[(("severity", "critical"), ("signal", "origin_errors"), ("status", "resolved"))] == 1
    assert sum(counted.values()) == 5


def test_a_resolve_without_a_firing_seen_by_this_worker_is_harmless():
    reg = CollectorRegistry()
    m = WorkerMetrics(reg)
    m.observe_alert(alert("resolved"))  # e.g. the firing was processed before a restart
    assert samples(reg, "lookout_customer_alert_score") == {}


@pytest.mark.parametrize(
    "value, kind",
    [
        (b"\xff\xfe", "undecodable"),
        (b'{"customer_id": "c1"', "undecodable"),
        (None, "undecodable"),
        (b"[1, 2]", "contract"),
        (b'{"customer_id": "c1", "ts": 0, "requests": 1}', "contract"),
    ],
)
def test_dead_letters_are_counted_by_what_went_wrong(value, kind):
    from detectors.engine import Engine
    from streams.pipeline.processor import Processor

    reg = CollectorRegistry()
    out = Processor(Engine(), WorkerMetrics(reg), clock=lambda: 0.0).handle(value)
    assert len(out.dlq) == 1
    dlq = samples(reg, "lookout_dlq_messages_total")
    assert dlq[(("kind", kind), ("topic", "request-metrics-dlq"))] == 1.0
    assert sum(dlq.values()) == 1.0
