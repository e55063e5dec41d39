"""The worker end to end on the real broker: incident -> alert, bad input -> DLQ, /metrics counts."""
import pytest

from detectors.events import parse_ts
from detectors.synthetic import SimConfig, simulate

from .conftest import produce, read_topic

pytestmark = pytest.mark.integration

BAD = [
    ("broken", b"{this is not json"),
    ("broken", {"customer_id": "x y", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0}),
    (
        "broken",
        {"customer_id": "c9", "ts": "2026-01-05T00:00:00Z", "requests": 1, "status_4xx": 3, "status_5xx": 0},
    ),
]


def test_incident_becomes_an_alert_bad_input_goes_to_dlq_and_metrics_count(start_worker):
    worker = start_worker()
    sim = simulate(SimConfig(customers=4, duration_s=3 * 86400, interval_s=300, seed=21, incidents=1,
                             kinds=("origin_outage",), size_min=5000, tiny_fraction=0.0, level_shifts=False,
                             holidays=False))
    (incident,) = sim.incidents
    n = produce(worker.bootstrap, worker.input_topic, ((e["customer_id"], e) for e in sim.events()))
    n += produce(worker.bootstrap, worker.input_topic, BAD)
    worker.wait_for_events(n)

    alerts = read_topic(worker.bootstrap, worker.alerts_topic)
    firing = [a for a in alerts if a["status"] == "firing"]
    mine = [a for a in firing if a["customer_id"] == incident.customer_id
            and incident.start - 300 <= parse_ts(a["started_at"]) <= incident.end]
    assert mine, f"no alert for {incident} in {alerts}"
    a = mine[0]
    assert {"origin_errors", "error_5xx"} & set(a["signals"])
    assert a["severity"] in ("warning", "critical") and a["diagnosis"]
    assert len(a["alert_id"]) == 16
    others = [x for x in firing if x not in mine]
    assert len(others) <= 1, f"unexpected alerts: {others}"

    dlq = read_topic(worker.bootstrap, worker.dlq_topic)
    assert len(dlq) == len(BAD)
    reasons = " | ".join(d["reason"] for d in dlq)
    assert "invalid JSON" in reasons and "customer_id" in reasons and "exceeds requests" in reasons
    assert all(d["raw"] and d["source"] == worker.input_topic for d in dlq)

    assert worker.metric("lookout_events_total", outcome="invalid") == len(BAD)
    assert worker.metric("lookout_events_total") == n
    assert worker.metric("lookout_dlq_messages_total") == len(BAD)
    assert worker.metric("lookout_alerts_total", status="firing") >= 1
    assert worker.metric("lookout_series", state="tracked") == 4 * 7


def test_a_restarted_worker_keeps_its_models_and_needs_no_new_warm_up(start_worker):
    worker = start_worker(LOOKOUT_SNAPSHOT_INTERVAL_S=3600)
    sim = simulate(SimConfig(customers=3, duration_s=3 * 86400, interval_s=300, seed=5, incidents=1,
                             kinds=("traffic_drop",), size_min=5000, tiny_fraction=0.0, level_shifts=False,
                             holidays=False))
    events = list(sim.events())
    (incident,) = sim.incidents
    cut = next(i for i, e in enumerate(events) if parse_ts(e["ts"]) >= incident.start - 3600)
    n = produce(worker.bootstrap, worker.input_topic, ((e["customer_id"], e) for e in events[:cut]))
    worker.wait_for_events(n)
    worker.stop()  # SIGTERM: the final snapshot goes to the state topic on shutdown

    worker.start()
    m = produce(worker.bootstrap, worker.input_topic, ((e["customer_id"], e) for e in events[cut:]))
    worker.wait_for_events(m)  # counters restart with the process
    assert worker.metric("lookout_events_total", outcome="warming") == 0
    assert worker.metric("lookout_series", state="warming") == 0
    assert worker.metric("lookout_state_restored_customers_total") == 3
    alerts = read_topic(worker.bootstrap, worker.alerts_topic)
    assert any(a["customer_id"] == incident.customer_id and a["status"] == "firing" for a in alerts)


def test_a_worker_started_from_a_replays_state_needs_no_warm_up(start_worker, tmp_path):
    """`lookout replay --save-state` then `lookout worker --initial-state`, as an operator bootstraps."""
    import subprocess
    import sys

    from streams.offline.simfiles import write_jsonl

    sim = simulate(SimConfig(customers=3, duration_s=4 * 86400, interval_s=300, seed=8, incidents=0,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    events = list(sim.events())
    cut = min(parse_ts(e["ts"]) for e in events) + 3 * 86400
    history = [e for e in events if parse_ts(e["ts"]) < cut]
    write_jsonl(history, tmp_path / "history.jsonl")
    state = tmp_path / "state.lookout"
    p = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(tmp_path / "history.jsonl"),
                        "--out", str(tmp_path / "out"), "--no-report", "-q", "--save-state", str(state)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and state.is_file(), p.stderr

    worker = start_worker(LOOKOUT_INITIAL_STATE=state)
    n = produce(worker.bootstrap, worker.input_topic,
                ((e["customer_id"], e) for e in events if parse_ts(e["ts"]) >= cut))
    worker.wait_for_events(n)
    assert worker.metric("lookout_events_total", outcome="warming") == 0
    assert worker.metric("lookout_events_total", outcome="scored") == n
    lines = [ln for ln in worker.log_path.read_text().splitlines() if "initial detector state" in ln]
    assert len(lines) == 1 and f"loaded initial detector state of 3 customers from {state}" in lines[0]
