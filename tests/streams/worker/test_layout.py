"""The partition layout guard without Kafka: a grown input topic stops the worker before anything
of the new layout is processed or published (the real-broker test is test_repartition.py)."""
from __future__ import annotations

import asyncio
import json

import pytest

from detectors.engine import Engine
from streams.pipeline.codecs import partition_of
from streams.pipeline.processor import Processor
from streams.state.book import MARKER_KEY, Marker, PartitionBook
from streams.worker.layout import EXIT_LAYOUT, LayoutChanged, LayoutGuard
from streams.worker.runtime import Health, WorkerRuntime

from .test_runtime import Log, Reader, Topic


class Broker(Reader):
    """The in-memory log plus what the layout guard asks: partition counts and last markers."""

    def __init__(self, log: Log, counts: dict[str, int]):
        super().__init__(log)
        self.counts = counts

    async def partition_count(self, topic):
        return self.counts.get(topic)

    async def ensure_topics(self, wanted):
        for t, (n, _) in wanted.items():
            self.counts.setdefault(t, n)
        return {t: self.counts[t] for t in wanted}

    async def last_values(self, topic, key, partitions):
        out = {}
        for p in range(partitions):
            values = [v for k, v in self.log.data[topic][p] if k == key]
            out[p] = values[-1] if values else None
        return out


def guard(broker: Broker, stops: list) -> LayoutGuard:
    return LayoutGuard(reader=broker, input_topic="input", alerts_topic="alerts", state_topic="state",
                       group="g", stop=stops.append)


def run(coro):
    return asyncio.run(coro)


def test_a_matching_layout_is_accepted_and_a_grown_topic_stops_with_the_command_to_run():
    log, stops = Log(), []
    broker = Broker(log, {"input": 8, "alerts": 8, "state": 8})
    g = guard(broker, stops)
    assert run(g.on_assigned(range(8))) == 8 and stops == []
    run(g.verify())
    assert stops == []
    broker.counts["input"] = 12
    with pytest.raises(LayoutChanged):
        run(g.verify())
    assert len(stops) == 1
    assert "now has 12 partitions" in stops[0] and "laid out for 8" in stops[0]
    assert stops[0].endswith("lookout topics repartition --partitions 12")
    with pytest.raises(LayoutChanged):  # a rebalance onto the new partitions: the same stop
        run(g.on_assigned([9, 10]))


@pytest.mark.parametrize("counts, marker_for, says", [
    ({"input": 12, "alerts": 8, "state": 8}, None, "'alerts' (8) and 'state' (8) have fewer"),
    ({"input": 12, "alerts": 12, "state": 12}, 8, "written for 8 input partitions"),  # grown by hand
])
def test_a_restarted_worker_refuses_a_layout_that_does_not_match(counts, marker_for, says):
    log, stops = Log(), []
    if marker_for is not None:
        log.append("state", 3, MARKER_KEY, Marker(10, 0, 0.0, 1, "f", marker_for).encode())
    g = guard(Broker(log, counts), stops)
    with pytest.raises(LayoutChanged):
        run(g.on_assigned(range(6)))
    assert len(stops) == 1 and says in stops[0] and stops[0].endswith("--partitions 12")


def test_the_first_event_of_a_moved_customer_stops_the_worker_before_its_chunk_is_published():
    """After 4 -> 6 partitions a customer's events arrive in the partition it hashes to under 6;
    under 4 it is another partition's customer: the worker asks the broker, sees 6, and stops
    without sending any output of that chunk (nothing is committed past the last marker)."""
    moved = next(c for c in (f"cust-{i}" for i in range(1000))
                 if partition_of(c, 6) < 4 and partition_of(c, 6) != partition_of(c, 4))
    p = partition_of(moved, 6)
    stayed = next(c for c in (f"cust-{i}" for i in range(1000)) if partition_of(c, 4) == p)
    log, exits = Log(), []
    broker = Broker(log, {"input": 4, "alerts": 4, "state": 4})
    pending: list = []
    rt = WorkerRuntime(processor=Processor(Engine()), book=PartitionBook(), reader=broker,
                       input_topic=type("T", (), {"get_topic_name": lambda self: "input"})(),
                       alerts_topic=Topic(log, "alerts", pending), dlq_topic=Topic(log, "dlq", pending),
                       state_topic=Topic(log, "state", pending), flush=lambda: None, health=Health(),
                       exit=exits.append)
    rt.layout = guard(broker, [])
    rt.layout.stop = rt.stop_for_layout

    def ev(cid, ts):
        return json.dumps({"customer_id": cid, "ts": ts, "requests": 10, "status_4xx": 0,
                           "status_5xx": 0}).encode()

    async def scenario():
        await rt.on_assigned(range(4))
        await rt.wait_ready(p)
        await rt.handle_batch([(stayed.encode(), ev(stayed, 0), "input", p, 0)])
        assert len(pending) == 0 and rt.processor.partitions == 4
        broker.counts["input"] = 6  # the topic grows; producers send `moved` to partition p now
        with pytest.raises(LayoutChanged):
            await rt.handle_batch([(stayed.encode(), ev(stayed, 300), "input", p, 1),
                                   (moved.encode(), ev(moved, 300), "input", p, 2)])

    run(scenario())
    assert exits == [EXIT_LAYOUT]
    assert pending == []  # not even the dead letter of the moved customer's event
    ok, body = rt.healthz()
    assert not ok and "now has 6 partitions" in body["reason"]
