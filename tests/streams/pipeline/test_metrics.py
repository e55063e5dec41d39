"""Worker metrics: names and labels, per-customer series bounded by open incidents, Faust sensors
on the same registry without duplicate registration. Every test has its own CollectorRegistry."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.pipeline.metrics import WorkerMetrics
from streams.settings import Settings

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


def samples(reg, name):
    return {
        tuple(sorted(s.labels.items())): s.value
        for fam in reg.collect()
        for s in fam.samples
        if s.name == name
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


def test_faust_sensors_are_on_the_workers_registry_and_two_apps_do_not_clash(tmp_path):
    from streams.app import create_app

    regs = []
    for i in range(2):
        s = Settings.from_env({}, data_dir=tmp_path / f"w{i}", app_id=f"metrics-test-{i}")
        lk = create_app(s)
        regs.append(lk.registry)
        text = generate_latest(lk.registry).decode()
        assert "faust_messages_received_total" in text
        assert "lookout_events_total" in text
    assert regs[0] is not regs[1]
    # and with an injected registry and Faust's full monitor, plus the default lean one
    reg = CollectorRegistry()
    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "w3", faust_metrics=True), registry=reg)
    assert lk.registry is reg and "faust_total_events_total" in generate_latest(reg).decode()
    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "w4"), registry=CollectorRegistry())

    def received():
        return lk.registry.get_sample_value("faust_messages_received_total")

    lk.app.monitor.on_message_in(None, 0, None)  # per message: no work, nothing counted
    assert received() == 0
    lk.app.monitor.received(500)  # the agent counts once per batch
    assert received() == 500


def test_lean_monitor_end_offsets_follow_records_and_rebalances():
    """The lag panel (end offset - committed offset) reads what Faust reports per record, and a
    rebalance drops the partitions it reported before (the full monitor does the same)."""
    from faust.sensors.prometheus import FaustMetrics
    from faust.types import TP

    from streams.faust_tuning import LeanMonitor

    reg = CollectorRegistry()
    mon = LeanMonitor(FaustMetrics.create(reg, "faust"))

    def ends():
        return {dict(k)["partition"]: v for k, v in samples(reg, "faust_topic_partition_end_offset").items()}

    for offset in range(100, 110):
        mon.track_tp_end_offset(TP("in", 0), offset)
    mon.track_tp_end_offset(TP("in", 3), 42)
    assert ends() == {"0": 109, "3": 42}
    mon.track_tp_end_offset(TP("in", 0), 250)  # a later record: the scrape sees the newest value
    assert ends() == {"0": 250, "3": 42}
    mon.on_rebalance_start(SimpleNamespace(rebalancing_count=1))
    assert ends() == {}
    mon.track_tp_end_offset(TP("in", 3), 43)
    assert ends() == {"3": 43}


def test_sinks_are_registered_only_when_configured_and_their_dlq_series_start_at_zero(tmp_path):
    from streams.app import create_app

    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "a"))
    assert lk.sinks == []
    lk = create_app(
        Settings.from_env(
            {},
            data_dir=tmp_path / "b",
            alertmanager_url="http://127.0.0.1:9",
            webhook_url="http://127.0.0.1:9/hook",
            webhook_token="s3cret",
        )
    )
    assert lk.sinks == ["alertmanager", "webhook"]
    assert set(lk.app.agents) >= {"lookout.detect", "lookout.sink.alertmanager", "lookout.sink.webhook"}
    dlq = samples(lk.registry, "lookout_dlq_messages_total")
    assert (("kind", "webhook"), ("topic", "alerts-dlq")) in dlq
    assert "s3cret" not in generate_latest(lk.registry).decode()


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
