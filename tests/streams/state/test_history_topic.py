"""The state history topic has a partition for every input partition (no broker)."""
from __future__ import annotations

import asyncio

import pytest

from streams.state.history import ensure_history_topic
from streams.state.reader import StateReader


class Reader:
    """Topics and their partition counts, as a StateReader's admin calls see them."""

    def __init__(self, **counts: int):
        self.counts = counts

    async def partition_count(self, topic):
        return self.counts.get(topic)

    async def ensure_topics(self, wanted):
        for name, (n, _) in wanted.items():
            self.counts.setdefault(name, n)
        return {name: self.counts[name] for name in wanted}

    async def grow(self, topic, n):
        assert n > self.counts[topic]
        self.counts[topic] = n

    ensure_partitions = StateReader.ensure_partitions  # (on the two calls above)


@pytest.mark.parametrize("history", [None, 8], ids=["missing", "made-for-8"])
def test_history_topic_gets_the_grown_input_topics_partitions(history):
    """The input grew 8 -> 12 (LOOKOUT_PARTITIONS still 8): checkpoints of partitions 8-11 were
    refused ("Unrecognized partition") when the topic was made or left with 8."""
    counts = {"events": 12} if history is None else {"events": 12, "hist": history}
    reader = Reader(**counts)
    assert asyncio.run(ensure_history_topic(reader, "hist", "events", 8, 3600.0)) == 12
    assert reader.counts["hist"] == 12


def test_history_topic_keeps_more_partitions_than_the_input():
    reader = Reader(events=4, hist=8)
    assert asyncio.run(ensure_history_topic(reader, "hist", "events", 8, 3600.0)) == 8
    reader = Reader(events=4)
    assert asyncio.run(ensure_history_topic(reader, "hist", "events", 8, 3600.0)) == 8
