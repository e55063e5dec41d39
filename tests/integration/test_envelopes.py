"""Envelopes end to end: ``lookout simulate --batch`` -> worker -> alerts; bad envelope events -> DLQ."""
import json

import pytest

from detectors.events import parse_ts
from detectors.synthetic import SimConfig, simulate
from streams.pipeline.codecs import partition_of

from .conftest import read_topic

pytestmark = pytest.mark.integration


def test_envelopes_from_the_simulator_give_alerts_and_bad_envelope_events_are_dead_letters(start_worker):
    from click.testing import CliRunner
    from kafka import KafkaProducer

    from streams.commands.simulate import simulate as cmd

    worker = start_worker()
    opts = dict(
        customers=6, duration_s=3 * 86400, interval_s=300, seed=21, incidents=1, kinds=("origin_outage",)
    )
    args = [
        "--customers",
        "6",
        "--duration",
        "3d",
        "--interval",
        "300",
        "--seed",
        "21",
        "--incidents",
        "1",
        "--kinds",
        "origin_outage",
        "--bootstrap",
        worker.bootstrap,
        "--topic",
        worker.input_topic,
        "--batch",
        "4",
        "--quiet",
    ]
    res = CliRunner().invoke(cmd, args)
    assert res.exit_code == 0, res.output
    sim = simulate(SimConfig(**opts))
    (incident,) = sim.incidents
    n = sim.n_events

    # one envelope for partition 0: a good event, a broken one, one of a partition-1 customer
    home0 = next(f"late-{i}" for i in range(100) if partition_of(f"late-{i}", 2) == 0)
    home1 = next(f"late-{i}" for i in range(100) if partition_of(f"late-{i}", 2) == 1)
    ev = {"ts": sim.end, "interval_s": 300, "requests": 100, "status_4xx": 0, "status_5xx": 0}
    bad = {
        "events": [
            {"customer_id": home0, **ev},
            {"customer_id": home0, "ts": "soon"},
            {"customer_id": home1, **ev},
        ]
    }
    p = KafkaProducer(bootstrap_servers=worker.bootstrap)
    p.send(worker.input_topic, value=json.dumps(bad).encode(), partition=0)
    p.send(worker.input_topic, value=b'{"events": 5}', partition=1)
    p.flush()
    p.close()
    n += 3 + 1
    worker.wait_for_events(n)

    alerts = read_topic(worker.bootstrap, worker.alerts_topic)
    mine = [
        a
        for a in alerts
        if a["status"] == "firing"
        and a["customer_id"] == incident.customer_id
        and incident.start - 300 <= parse_ts(a["started_at"]) <= incident.end
    ]
    assert mine, f"no alert for {incident} in {alerts}"

    dlq = sorted(read_topic(worker.bootstrap, worker.dlq_topic), key=lambda d: d.get("index", -1))
    assert [(d["partition"], d.get("index"), d["kind"]) for d in dlq] == [
        (1, None, "contract"),
        (0, 1, "contract"),
        (0, 2, "wrong_partition"),
    ]
    assert json.loads(dlq[2]["raw"])["customer_id"] == home1
    assert worker.metric("lookout_events_total", outcome="invalid") == 3
    assert worker.metric("lookout_dlq_messages_total", kind="wrong_partition") == 1
    # every simulated customer plus the good late one are tracked
    assert worker.metric("lookout_events_total") == n
