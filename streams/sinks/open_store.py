"""The Alertmanager sink's open alerts, kept in a compacted topic per source partition.

Alertmanager ends an alert whose ``endsAt`` passes, so the sink re-sends every open alert (and
open parent incident) until it resolves. That set must survive a worker restart -- otherwise a
parent would expire at Alertmanager and stop muting its children, or a child would not be re-sent
-- and follow the partitions of the topics the sink reads, so that exactly one worker re-sends
an alert. :class:`OpenStore` keeps it in a dict (what :class:`~streams.sinks.alertmanager.
AlertmanagerSink` reads and changes) and writes every change, before the sink's input offset is
committed, to partition ``p`` of a compacted topic (key ``<source>|<table key>``, value the open
alerts of that key, a tombstone when none is left). When partition ``p`` of a source is
assigned, its keys are read back; when it is revoked, they are dropped (the new owner reads
them). It replaces a Faust table, whose changelog recovery could hang after a SIGKILL.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Iterable

from streams.kafka.partitions import latest_by_key, read_partition
from streams.kafka.retry import until_reachable

log = logging.getLogger("lookout.sinks.open")

__all__ = ["OpenStore"]

SEP = "|"
#: a read back that makes no progress for this long fails, and is tried again
#: (:func:`~streams.kafka.retry.until_reachable`)
READ_STALL_S = 30.0


class OpenStore:
    """Open alerts per table key, durable per (source topic, partition) (see the module docstring).

    Parameters
    ----------
    topic : str
        The compacted topic, with at least as many partitions as each source (the worker
        creates and grows it: :mod:`streams.worker.sinks`).
    bootstrap, client_kwargs
        Kafka (``client_kwargs``: TLS/SASL for aiokafka).
    send : coroutine function
        ``send(key, value, partition)`` -> awaits the broker's acknowledgement (the worker's producer).
    """

    def __init__(self, topic: str, bootstrap: str, client_kwargs: dict[str, Any], send: Any):
        self.topic = topic
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs
        self.send = send
        self.open: dict[str, dict[str, dict[str, Any]]] = {}  # table key -> {id: latest firing record}
        self._owner: dict[str, tuple[str, int]] = {}  # table key -> (source, partition)
        self.loaded: set[tuple[str, int]] = set()
        self._loading: dict[tuple[str, int], asyncio.Lock] = {}  # one read back at a time
        self._dropped: dict[tuple[str, int], int] = {}  # how often each was dropped

    async def persist(self, source: str, partition: int, key: str) -> None:
        """Write ``key``'s open alerts (or a tombstone) to ``partition``; wait for the acknowledgement."""
        self._owner[key] = (source, partition)
        value = self.open.get(key)
        await self.send(f"{source}{SEP}{key}".encode(), None if not value else json.dumps(value).encode(),
                        partition)
        if not value:
            self._owner.pop(key, None)

    def assignment(self, partitions: Iterable[tuple[str, int]]) -> list[tuple[str, int, int]]:
        """The read backs an assignment asks for: each (source, partition) with how often it was
        dropped so far, for :meth:`load_assignment` to run later (call it when the partitions are
        assigned, before anything else can revoke them)."""
        return [(src, p, self._dropped.get((src, p), 0)) for src, p in partitions]

    async def load_assignment(self, claims: Iterable[tuple[str, int, int]]) -> int:
        """Read back every partition of :meth:`assignment` that no revocation took since; return
        how many keys."""
        return sum([await self.load(src, p, dropped) for src, p, dropped in claims])

    async def load(self, source: str, partition: int, dropped: int | None = None) -> int:
        """Read back the open alerts of ``source``'s ``partition`` (idempotent); return how many keys.

        One read back at a time per partition, and the others wait for it: the worker starts one
        in the background on assignment and the sink's agent asks again before its first alert.
        Two reads side by side let the slower one write back what it read *before* the agent
        handled a resolution, and the resolved alert was re-sent for ever. A read that a
        revocation overtook writes nothing, and so does one asked for by an assignment
        (``dropped``: :meth:`assignment`) that a revocation ended before the read began: the
        background read of a large assignment reached a partition after a rebalance had given
        it to another worker, and this one re-sent its alerts for ever, resolved or not.
        """
        sp = (source, partition)
        async with self._loading.setdefault(sp, asyncio.Lock()):
            if sp in self.loaded:
                return 0
            if dropped is not None and self._dropped.get(sp, 0) != dropped:
                return 0  # revoked since the assignment that asked: no longer ours
            dropped = self._dropped.get(sp, 0)
            latest = await until_reachable(lambda: self._read(partition),
                                           f"reading the open alerts of {self.topic}[{partition}]")
            if self._dropped.get(sp, 0) != dropped:
                return 0
            return self._apply(source, partition, latest)

    def _apply(self, source: str, partition: int, latest: dict[str, bytes | None]) -> int:
        n = 0
        prefix = source + SEP
        for raw_key, value in latest.items():
            if not raw_key.startswith(prefix):
                continue
            key = raw_key[len(prefix):]
            try:
                alerts = json.loads(value) if value is not None else None
            except ValueError:
                log.warning("unreadable open-alerts record %r in %s[%d]: ignored", raw_key, self.topic,
                            partition)
                continue
            if alerts:
                self.open[key] = alerts
                self._owner[key] = (source, partition)
                n += 1
        self.loaded.add((source, partition))
        return n

    def drop(self, source: str, partition: int) -> None:
        """``source``'s ``partition`` went to another worker: forget (and stop re-sending) its keys."""
        for key in [k for k, owner in self._owner.items() if owner == (source, partition)]:
            self._owner.pop(key, None)
            self.open.pop(key, None)
        self.loaded.discard((source, partition))
        self._dropped[(source, partition)] = self._dropped.get((source, partition), 0) + 1

    async def _read(self, partition: int) -> dict[str, bytes | None]:
        records: list[tuple[bytes | None, bytes | None]] = []
        async for chunk, _ in read_partition(self.bootstrap, self.client_kwargs, self.topic, partition,
                                             timeout_s=READ_STALL_S):
            records += [(key, value) for _, key, value in chunk]
        return latest_by_key(records)
