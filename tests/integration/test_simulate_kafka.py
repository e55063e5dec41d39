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


def test_simulate_traffic_sends_envelopes_to_the_partition_of_their_customers(kafka_bootstrap, kafka_topics):
    from kafka import KafkaConsumer

    from streams.devtools.traffic import TrafficOptions, simulate_traffic
    from streams.pipeline.codecs import partition_of

    topic = kafka_topics("envelopes", partitions=3)
    res = simulate_traffic(TrafficOptions(customers=7, duration_s=6 * 3600, interval_s=600, seed=4,
                                          bootstrap=kafka_bootstrap, topic=topic, batch=2))
    assert not res.interrupted and res.where == f"kafka {kafka_bootstrap} topic {topic}"
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    try:
        msgs = list(consumer)
    finally:
        consumer.close()
    got = []
    for m in msgs:
        batch = json.loads(m.value)["events"]
        assert 1 <= len(batch) <= 2 and m.key is None
        assert {partition_of(e["customer_id"], 3) for e in batch} == {m.partition}
        got += batch
    assert len(got) == res.sim.n_events == 7 * 36

    def key(e):
        return e["customer_id"], e["ts"]

    assert sorted(got, key=key) == sorted(res.sim.events(), key=key)
