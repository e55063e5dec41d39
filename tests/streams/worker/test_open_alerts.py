"""The Alertmanager sink's open alerts when partitions change (no broker: topics in memory).

The worker lays its store out like the topics it reads (:class:`streams.worker.sinks.OpenLayout`).
"""
from __future__ import annotations

import asyncio

from streams.pipeline.codecs import partition_of
from streams.settings import Settings
from streams.worker.sinks import OpenLayout

OLD, NEW = 8, 12
S = Settings(app_id="lk", alerts_topic="alerts", input_topic="in")
STORE = S.alertmanager_open_topic_name


class Topics:
    """Topics as lists of (key, value) per partition, a consumer group's commits; what
    :class:`~streams.state.reader.StateReader` and a producer's ``send`` do with them."""

    def __init__(self, **counts: int):
        self.logs = {t: [[] for _ in range(n)] for t, n in counts.items()}
        self.committed: dict[tuple[str, int], int] = {}

    async def partition_count(self, topic):
        return len(self.logs[topic]) if topic in self.logs else None

    async def ensure_topics(self, wanted):
        for t, (n, _) in wanted.items():
            self.logs.setdefault(t, [[] for _ in range(n)])
        return {t: len(self.logs[t]) for t in wanted}

    async def grow(self, topic, n):
        assert n > len(self.logs[topic])
        self.logs[topic] += [[] for _ in range(n - len(self.logs[topic]))]

    async def read_partition(self, topic, p, start=None):
        log = self.logs[topic][p]
        return log[start or 0:], len(log)

    async def committed_offset(self, group, topic, p):
        assert group == S.app_id
        return self.committed.get((topic, p))

    async def send(self, topic, key=None, value=None, partition=None):
        self.logs[topic][partition].append((key, value))

    def latest(self, topic) -> dict[bytes, tuple[int, bytes | None]]:
        """key -> (partition, value) of its newest record, where it is not a tombstone."""
        out = {}
        for p, log in enumerate(self.logs[topic]):
            for k, v in log:
                if v is None:
                    out.pop((k, p), None)
                else:
                    out[(k, p)] = v
        return {k: (p, v) for (k, p), v in out.items()}


def customer(moved: bool, start: int = 0) -> str:
    """A customer id whose partition under NEW differs from (or equals) the one under OLD."""
    i = start
    while (partition_of(f"c{i}", OLD) != partition_of(f"c{i}", NEW)) != moved:
        i += 1
    return f"c{i}"


def test_the_worker_grows_the_store_to_the_topics_it_follows_and_knows_strays():
    # made with LOOKOUT_PARTITIONS=4 before the repartition (or with a smaller setting)
    t = Topics(**{"in": NEW, "alerts": NEW, "routed": 4, STORE: 4})
    layout = OpenLayout(t, STORE, {"alerts": "in", "routed": "routed"}, fallback=4)
    asyncio.run(layout.ensure(10))
    assert len(t.logs[STORE]) == NEW and layout.store_partitions == NEW
    c = customer(True)
    assert not layout.stray("alerts", partition_of(c, NEW), c.encode())
    assert layout.stray("alerts", partition_of(c, OLD), c.encode())  # written before the repartition
    assert not layout.stray("routed", partition_of(c, 4), c.encode())
    assert not layout.stray("alerts", 3, None)
