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


def _slow_first_read(store: OpenStore, log: Log, release: asyncio.Event) -> None:
    """The first read back (the worker's, started on assignment) waits for ``release``; later
    ones (the agent's, before its first alert) answer at once."""
    calls = []

    async def read(partition):
        seen = log.latest(partition)  # what the topic holds when the read starts
        calls.append(partition)
        if len(calls) == 1:
            await release.wait()
        return seen

    store._read = read  # type: ignore[method-assign]


def test_a_read_back_still_running_never_brings_back_an_alert_resolved_meanwhile():
    log = Log()
    a = store_on(log)
    a.open["acme"] = {"x": {"alert_id": "x", "status": "firing"}}
    asyncio.run(a.persist("alerts", 3, "acme"))
    b = OpenStore("open", "unused:1", {}, log.send)  # the partition's new owner

    async def scenario():
        release = asyncio.Event()
        _slow_first_read(b, log, release)
        background = asyncio.ensure_future(b.load("alerts", 3))  # on assignment
        await asyncio.sleep(0)
        agent = asyncio.ensure_future(b.load("alerts", 3))  # the agent, before the resolution
        await asyncio.sleep(0)
        release.set()
        await agent
        b.open.pop("acme", None)  # the sink handles the resolution...
        await b.persist("alerts", 3, "acme")  # ...and writes the tombstone
        await background

    asyncio.run(scenario())
    assert "acme" not in b.open  # nothing left to re-send: it stays resolved at Alertmanager


def test_a_read_back_overtaken_by_a_revocation_keeps_nothing():
    log = Log()
    a = store_on(log)
    a.open["acme"] = {"x": {"alert_id": "x", "status": "firing"}}
    asyncio.run(a.persist("alerts", 3, "acme"))
    b = OpenStore("open", "unused:1", {}, log.send)

    async def scenario():
        release = asyncio.Event()
        _slow_first_read(b, log, release)
        loading = asyncio.ensure_future(b.load("alerts", 3))
        await asyncio.sleep(0)
        b.drop("alerts", 3)  # revoked while the read was running: another worker re-sends it
        release.set()
        return await loading

    assert asyncio.run(scenario()) == 0
    assert b.open == {}


def test_a_read_back_an_assignment_asked_for_is_skipped_once_a_rebalance_took_the_partition():
    # the worker reads back a large assignment one partition at a time in the background; a second
    # worker joins before it reaches routed[0], whose alerts that worker then handles and resolves:
    # a read back after the revocation made this worker re-send them for ever (issue 20)
    log = Log()
    a = store_on(log)
    a.open["acme"] = {"x": {"alert_id": "x", "status": "firing"}}
    asyncio.run(a.persist("routed", 0, "acme"))
    a.open["beta"] = {"y": {"alert_id": "y", "status": "firing"}}
    asyncio.run(a.persist("routed", 1, "beta"))
    b = store_on(log)
    first = b.assignment([("routed", 1), ("routed", 0)])
    b.drop("routed", 0)  # the rebalance: routed[0] goes to the other worker...
    b.drop("routed", 1)
    again = b.assignment([("routed", 1)])  # ...routed[1] comes back
    assert asyncio.run(b.load_assignment(first)) == 0  # (every partition it names was revoked since)
    assert b.open == {} and b.loaded == set()
    assert asyncio.run(b.load_assignment(again)) == 1
    assert set(b.open) == {"beta"} and b.loaded == {("routed", 1)}  # nothing of routed[0] to re-send
