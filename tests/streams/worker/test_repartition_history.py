"""After ``lookout topics repartition``, a rebuild finds a moved customer's checkpoints from
before the change (no broker)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from detectors.engine import Engine
from detectors.events import parse_event
from streams.offline.relearn import checkpoint_before
from streams.offline.sources import Source
from streams.pipeline.codecs import partition_of
from streams.worker.repartition import _move_history

BEFORE, AFTER = 8, 12
TOPIC = "lookout-state-history"


class Topic:
    """Partitions of records (key, value, timestamp_ms): the reader and the producer of one topic."""

    def __init__(self):
        self.parts: dict[int, list[tuple]] = {}
        self.sent: list[tuple] = []

    async def iter_partition(self, topic, partition, start=None, stop=None):
        assert topic == TOPIC
        recs = list(self.parts.get(partition, []))
        yield [(i, k, v) for i, (k, v, _) in enumerate(recs)], len(recs)

    async def send(self, topic, key=None, value=None, partition=None, timestamp_ms=None):
        assert topic == TOPIC and partition < AFTER
        self.parts.setdefault(partition, []).append((key, value, timestamp_ms))
        self.sent.append((key.decode(), partition, timestamp_ms))

    async def flush(self):
        pass


class Records(Source):
    """One partition as the rebuild's KafkaSource yields it."""

    def __init__(self, recs):
        self.recs = recs

    def records(self, progress=None):
        return ((v, k, 0, i) for i, (k, v, _) in enumerate(self.recs))


def _ev(cid, ts):
    return parse_event({"customer_id": cid, "ts": ts, "interval_s": 300, "requests": 100, "status_4xx": 0,
                        "status_5xx": 0})


def test_a_moved_customers_checkpoints_are_found_in_its_new_partition():
    cids = [f"cust-{i:04d}" for i in range(40)]
    moved = [c for c in cids if partition_of(c, BEFORE) != partition_of(c, AFTER)]
    stayed = [c for c in cids if c not in moved]
    assert moved and stayed
    eng, topic, blobs = Engine(), Topic(), {}
    for hour in range(3):  # hourly checkpoints, each in the partition of its input partition under 8
        eng.process_many([_ev(c, 3600 * hour) for c in cids])
        for c in cids:
            blobs[c, hour] = eng.dump_customer(c)
            topic.parts.setdefault(partition_of(c, BEFORE), []).append(
                (c.encode(), blobs[c, hour], 3600_000 * hour))
    topic.parts[0] += [(None, b"x", 0), (b"cust-0000", None, 0), (b"\xff", b"x", 0), (b"zz", b"junk", 0)]

    def rebuild_finds(c):  # what KafkaHistory reads: the history partition of the customer's input one
        return checkpoint_before(Records(topic.parts.get(partition_of(c, AFTER), [])), c, 2 * 3600.0, eng)

    assert [c for c in moved if rebuild_finds(c) is not None] == []  # what the gap was
    kafka = SimpleNamespace(reader=topic, producer=topic)
    copied = asyncio.run(_move_history(kafka, TOPIC, BEFORE, AFTER, eng))

    assert copied == 3 * len(moved)
    for c in cids:
        assert rebuild_finds(c) == blobs[c, 1]  # the newest before hour 2
    # each to the customer's partition under 12, at the event time it covers (found by that time)
    want = [(c, partition_of(c, AFTER), 3600_000 * h) for c in moved for h in range(3)]
    assert sorted(topic.sent) == sorted(want)
