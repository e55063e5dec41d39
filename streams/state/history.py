"""Checkpoints of every customer's state, kept a while: where a rebuild starts from.

An ``expected`` verdict takes an incident's range back out of a customer's models, and a window
announced after it began keeps its start out too: the models are learned again from a state
*before* that time (:func:`detectors.steering.rebuild_models`). The state topic keeps only the
latest record per customer (compacted), so every ``history_interval_s`` the worker also writes
each customer it owns to the *state history* topic (``<app id>-state-history``, records deleted
after ``history_retention_s``), in event-loop slices like a snapshot. A checkpoint goes to the
partition of its customer's input partition, so the topic has at least the input topic's
partitions (:func:`ensure_history_topic`; ``lookout topics repartition`` grows it and copies a
moved customer's checkpoints to its new partition). About one state record per customer per
hour: a twelfth of what snapshots write when customers report every 5 minutes.

:func:`streams.offline.relearn.checkpoint_before` reads them back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from detectors.gcpause import cyclic_gc_paused

from .book import SLICE_S, PartitionBook

log = logging.getLogger("lookout.worker")


def history_topic_config(retention_s: float) -> dict[str, str]:
    """The state history topic's configuration: records deleted ``retention_s`` after their time.

    >>> history_topic_config(3600)
    {'cleanup.policy': 'delete', 'retention.ms': '3600000'}
    """
    return {"cleanup.policy": "delete", "retention.ms": str(int(retention_s * 1000))}


async def ensure_history_topic(reader: Any, name: str, input_topic: str, partitions: int,
                               retention_s: float) -> int:
    """Create the state history topic ``name``, or grow it, to at least the input topic's
    partition count (``partitions``, ``LOOKOUT_PARTITIONS``, if more); return its count.

    Checkpoints of input partition *p* go to partition *p*: with fewer partitions than the input
    (created before the input grew), those of the partitions beyond were refused every round
    (``AssertionError: Unrecognized partition``). ``reader``: a
    :class:`~streams.state.reader.StateReader`.
    """
    want = max(partitions, await reader.partition_count(input_topic) or 0)
    have = await reader.ensure_partitions(name, want, history_topic_config(retention_s))
    if have < want:
        log.info("state history: grew %s from %d to %d partitions (the input topic's)", name, have, want)
    return max(have, want)


class HistoryWriter:
    """Writes a checkpoint of every owned customer to the history sink (a :class:`StateProducer`)."""

    def __init__(self, engine: Any, book: PartitionBook, lock: asyncio.Lock, sink: Any,
                 metrics: Any = None):
        self.engine = engine
        self.book = book
        self.lock = lock
        self.sink = sink
        self.metrics = metrics
        self.mutex = asyncio.Lock()

    async def write(self) -> int:
        """One round over the owned partitions; returns the customers written (0 if it failed)."""
        async with self.mutex:
            t0 = time.monotonic()
            async with self.lock:
                owner = self.book.owner
                owned = {p: sorted(c for c, q in owner.items() if q == p) for p in self.book.assigned}
            written = 0
            try:
                for p, cids in owned.items():
                    i = 0
                    while i < len(cids):
                        blobs = []
                        async with self.lock:
                            t_end = time.perf_counter() + SLICE_S
                            with cyclic_gc_paused():
                                while i < len(cids):
                                    cid = cids[i]
                                    i += 1
                                    last = self.engine.last_ts_of(cid)
                                    if self.book.owner.get(cid) == p and last is not None:
                                        blobs.append((cid, self.engine.dump_customer(cid), int(last * 1000)))
                                    if time.perf_counter() > t_end:
                                        break
                        for cid, blob, ts_ms in blobs:  # found by the event time it covers
                            await self.sink.send(key=cid.encode(), value=blob, partition=p,
                                                 timestamp_ms=ts_ms)
                            written += 1
                        await asyncio.sleep(0)
                await self.sink.flush()
            except Exception as exc:  # the next round tries again; a rebuild finds an older checkpoint
                log.warning("state history checkpoint not written (%s: %s)", type(exc).__name__, exc)
                return 0
            log.info("state history: %d customers of partitions %s in %.2f s", written, sorted(owned),
                     time.monotonic() - t0)
            return written
