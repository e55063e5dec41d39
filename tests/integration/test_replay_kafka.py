"""``lookout replay kafka://...`` against the real broker: time ranges, DLQ offsets, no consumer group."""
import json

import pytest
from click.testing import CliRunner

from detectors.events import parse_ts
from detectors.synthetic import SimConfig, simulate
from streams.cli import cli
from streams.offline.simfiles import write_jsonl

pytestmark = pytest.mark.integration

T_SPLIT = "2026-01-06T12:00:00Z"


def produce_with_timestamps(bootstrap, topic, items):
    """(key, value, timestamp seconds) -> messages with that Kafka timestamp."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    for key, value, ts in items:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        p.send(topic, key=key.encode(), value=raw, timestamp_ms=int(ts * 1000))
    p.flush()
    p.close()


def groups_reading(bootstrap, topic):
    """Consumer groups that have committed offsets for ``topic`` (others may share the broker)."""
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if hasattr(a, "list_groups"):  # kafka-python >= 3
            ids = [g["group_id"] for g in a.list_groups()]
            offsets = a.list_group_offsets
        else:
            ids = [g[0] for g in a.list_consumer_groups()]
            offsets = a.list_consumer_group_offsets
        found = set()
        for g in ids:
            res = offsets(g)
            if g in res and isinstance(res[g], dict):  # kafka-python 3: {group: {tp: offset}}
                res = res[g]
            if any(getattr(tp, "topic", None) == topic for tp in res):
                found.add(g)
        return found
    finally:
        a.close()


def replay(*args):
    return CliRunner().invoke(cli, ["replay", *map(str, args)], catch_exceptions=False)


def test_kafka_source_time_range_dlq_and_no_group(kafka_bootstrap, kafka_topics, tmp_path):
    topic = kafka_topics("replay-src", partitions=3)
    sim = simulate(SimConfig(customers=5, duration_s=3 * 86400, interval_s=300, seed=9, incidents=3,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    events = list(sim.events())
    # Kafka timestamp = event time, so from/to select by event time here
    items = [(e["customer_id"], e, parse_ts(e["ts"])) for e in events]
    # bad messages among them (Kafka timestamps stay in order: offsets_for_times relies on that)
    items.insert(100, ("cust-0001", b"{broken", items[100][2]))
    items.insert(200, ("cust-0002", {"customer_id": "cust-0002", "ts": "nope"}, items[200][2]))
    produce_with_timestamps(kafka_bootstrap, topic, items)
    url = f"kafka://{topic}?bootstrap={kafka_bootstrap}"

    out = tmp_path / "all"
    res = replay(url, "--out", out, "--no-report", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == len(items) and summary["invalid"] == 2
    dlq = [json.loads(x) for x in (out / "dlq.jsonl").read_text().splitlines()]
    assert all(d["partition"] is not None and d["offset"] is not None and d["key"] for d in dlq)
    assert {d["source"] for d in dlq} == {f"kafka://{topic}"}

    # the same events from a file give the same alerts (order across customers does not matter)
    write_jsonl(events, tmp_path / "events.jsonl")
    assert replay(tmp_path / "events.jsonl", "--out", tmp_path / "file", "--no-report", "-q").exit_code == 0

    def alert_set(p):
        return {
            (a["alert_id"], a["status"])
            for a in map(json.loads, (p / "alerts.jsonl").read_text().splitlines())
        }

    assert alert_set(out) == alert_set(tmp_path / "file") and alert_set(out)

    # time ranges (by Kafka message timestamp)
    split = parse_ts(T_SPLIT)
    n_before = sum(1 for _, _, ts in items if ts < split)
    res = replay(f"{url}&to={T_SPLIT}", "--out", tmp_path / "a", "--no-report", "--json", "-q")
    assert json.loads(res.output)["records"] == n_before
    res = replay(f"{url}&from={T_SPLIT}", "--out", tmp_path / "b", "--no-report", "--json", "-q")
    assert json.loads(res.output)["records"] == len(items) - n_before
    res = replay(f"{url}&from=2030-01-01T00:00:00Z", "--out", tmp_path / "c", "--no-report", "--json", "-q")
    assert json.loads(res.stdout)["records"] == 0  # an empty range is reported, and is not a success
    assert res.exit_code == 1 and res.stderr == "Error: no records in the source: nothing was replayed\n"

    assert groups_reading(kafka_bootstrap, topic) == set()  # never joined or committed a consumer group


def test_missing_topic_is_a_clear_error(kafka_bootstrap, tmp_path):
    res = replay(f"kafka://no-such-topic-xyz?bootstrap={kafka_bootstrap}", "--out", tmp_path, "-q")
    assert res.exit_code == 1 and "not found" in res.output and "Traceback" not in res.output
