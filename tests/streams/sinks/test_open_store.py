"""The Alertmanager sink's open alerts, durable per source partition (no broker: the reads faked)."""
from __future__ import annotations

import asyncio
import json

from streams.sinks.open_store import OpenStore


class Log:
    """What the compacted topic would hold: (key, value, partition) writes."""

    def __init__(self):
        self.writes: list[tuple[bytes, bytes | None, int]] = []

    async def send(self, key, value, partition):
        self.writes.append((key, value, partition))

    def latest(self, partition: int) -> dict[str, bytes | None]:
        out = {}
        for k, v, p in self.writes:
            if p == partition:
                out[k.decode()] = v
        return out


def store_on(log: Log) -> OpenStore:
    s = OpenStore("open", "unused:1", {}, log.send)

    async def read(partition):
        return log.latest(partition)

    s._read = read  # type: ignore[method-assign]
    return s


def test_what_one_worker_had_open_another_reads_back_and_a_resolution_removes():
    log = Log()
    a = store_on(log)

    async def first():
        a.open["acme"] = {"x": {"alert_id": "x", "status": "firing"}}
        await a.persist("routed", 1, "acme")
        a.open["parent:p1"] = {"p1": {"parent_id": "p1"}}
        await a.persist("incidents", 1, "parent:p1")
        a.open["beta"] = {"y": {"alert_id": "y"}}
        await a.persist("routed", 0, "beta")
        del a.open["beta"]  # resolved
        await a.persist("routed", 0, "beta")

    asyncio.run(first())
    assert log.writes[-1] == (b"routed|beta", None, 0)  # a tombstone
    b = store_on(log)
    assert asyncio.run(b.load("routed", 1)) == 1 and asyncio.run(b.load("routed", 0)) == 0
    assert b.open == {"acme": {"x": {"alert_id": "x", "status": "firing"}}}  # not the other source's key
    asyncio.run(b.load("incidents", 1))
    assert json.loads(json.dumps(b.open["parent:p1"])) == {"p1": {"parent_id": "p1"}}
    b.drop("routed", 1)  # revoked: another worker re-sends them now
    assert set(b.open) == {"parent:p1"}
