"""``lookout simulate --bootstrap``: every simulated event lands on the topic, keyed by customer."""
from __future__ import annotations

import json
import time

import pytest

from detectors.events import parse_event
from detectors.synthetic import SimConfig, simulate
from streams.offline.simfiles import read_labels

pytestmark = pytest.mark.integration


def test_simulate_produces_every_event_to_kafka(kafka_bootstrap, kafka_topics, tmp_path):
    from click.testing import CliRunner
    from kafka import KafkaConsumer

    from streams.commands.simulate import simulate as cmd

    topic = kafka_topics("simulate", partitions=2)
    labels = tmp_path / "labels.jsonl"
    args = ["--customers", "3", "--duration", "3d", "--interval", "3600", "--incidents", "2", "--seed", "9",
            "--bootstrap", kafka_bootstrap, "--topic", topic, "--labels-out", str(labels), "--quiet"]
    res = CliRunner().invoke(cmd, args)
    assert res.exit_code == 0, res.output
    expected = list(simulate(SimConfig(customers=3, duration_s=3 * 86400, interval_s=3600, seed=9,
                                       incidents=2)).events())
    assert len(expected) == 3 * 72
    assert f"{len(expected)} events" in res.output and topic in res.output
    assert len(read_labels(labels)) == 2

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000)
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(expected) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                got.extend(batch)
        # nothing beyond the expected events arrives
        extra = consumer.poll(timeout_ms=1500)
        got.extend(m for batch in extra.values() for m in batch)
    finally:
        consumer.close()
    assert len(got) == len(expected)
    for msg in got:
        value = json.loads(msg.value)
        assert msg.key.decode() == value["customer_id"]
        parse_event(value)

    def key(e):
        return e["customer_id"], e["ts"]

    assert sorted((json.loads(m.value) for m in got), key=key) == sorted(expected, key=key)
