"""Replay and the live worker are one code path: the same events give the same alerts.

A real ``lookout worker`` process consumes a simulation with incidents from Kafka; then
``lookout replay kafka://<input topic>`` reads the same messages back. The sets of
(alert_id, status) must be identical (the worker may deliver an alert twice -- at least
once -- so sets, not lists, are compared) and non-empty.
"""
import json
import time

import pytest
from click.testing import CliRunner

from detectors.synthetic import SimConfig, simulate
from streams.cli import cli

from .conftest import produce, read_topic

pytestmark = pytest.mark.integration


def test_replay_of_the_input_topic_matches_the_live_alerts(start_worker, tmp_path):
    worker = start_worker(LOOKOUT_PARTITIONS=2)
    # 8 customers x 5 days at 300 s = 11,520 events: 1 day of warm-up, then incidents
    sim = simulate(SimConfig(customers=8, duration_s=5 * 86400, interval_s=300, seed=4, incidents=5,
                             size_min=1000, tiny_fraction=0.0))
    n = produce(worker.bootstrap, worker.input_topic, ((e["customer_id"], e) for e in sim.events()))
    n += produce(worker.bootstrap, worker.input_topic, [("cust-0001", b"not json")])
    worker.wait_for_events(n, timeout=120)

    out = tmp_path / "replay"
    res = CliRunner().invoke(cli, ["replay", f"kafka://{worker.input_topic}?bootstrap={worker.bootstrap}",
                                   "--out", str(out), "--no-report", "--json", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["records"] == n and summary["invalid"] == 1
    replayed = {
        (a["alert_id"], a["status"]) for a in map(json.loads, (out / "alerts.jsonl").read_text().splitlines())
    }
    assert replayed, "the simulation's incidents should produce alerts"

    # the worker publishes a batch's alerts right after counting it: allow a moment
    deadline = time.monotonic() + 30
    while True:
        live = {(a["alert_id"], a["status"]) for a in read_topic(worker.bootstrap, worker.alerts_topic, 2000)}
        if live >= replayed or time.monotonic() > deadline:
            break
    assert live == replayed
    assert any(status == "firing" for _, status in live)
