"""The worker's run-time: batches in, alerts out, partitions assigned and revoked, health.

:mod:`streams.worker.app` wires this to Faust (the agent body calls
:meth:`WorkerRuntime.handle_batch`); everything that decides *whether* to alert stays in
:mod:`detectors` (through the :class:`~streams.pipeline.processor.Processor`). What lives here is
what makes the worker lose nothing:

* a batch is processed and its alerts and dead letters are handed to the producer under one
  lock, so a snapshot never contains state whose outputs were not yet sent;
* *when* state moves: a partition is restored before its first event, and gets a final
  snapshot before it is revoked (its models are kept in case it comes back); the snapshots and
  restores themselves are :class:`~streams.state.sync.StateSync` (the design:
  :mod:`streams.state`);
* alerts the re-run after a restore reproduces are not sent again;
* a failure that is not bad input stops the process (exit code :data:`EXIT_AGENT_FAILED`)
  instead of letting Faust restart the agent and move past the failed batch.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from streams.pipeline.codecs import encode_json
from streams.pipeline.processor import Output, Processor
from streams.state.book import PartitionBook
from streams.state.reader import StateReader
from streams.state.sync import StateSync

log = logging.getLogger("lookout.worker")

#: exit status when the detection agent fails for a reason that is not bad input (EX_SOFTWARE)
EXIT_AGENT_FAILED = 70


@dataclass
class Health:
    """Is the worker doing its job? Unhealthy when the agent is not running, or when messages
    are waiting and nothing was processed for ``stall_after_s``.

    >>> t = [0.0]
    >>> h = Health(stall_after_s=30, clock=lambda: t[0])
    >>> h.check(lag=0)
    (False, 'detection agent is not running')
    >>> h.agent_running = True; h.progress()
    >>> t[0] = 100.0
    >>> h.check(lag=0), h.check(lag=5)[0]
    ((True, 'ok'), False)
    """

    stall_after_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    agent_running: bool = False
    last_progress: float = field(default=0.0)

    def progress(self) -> None:
        self.last_progress = self.clock()

    def check(self, lag: int | None) -> tuple[bool, str]:
        if not self.agent_running:
            return False, "detection agent is not running"
        idle = self.clock() - self.last_progress
        if lag and idle > self.stall_after_s:
            return (
                False,
                f"consumption stalled: nothing processed for {idle:.0f} s with {lag} messages waiting",
            )
        return True, "ok"


class WorkerRuntime:
    """One worker's processing loop state (one instance per Faust app)."""

    def __init__(self, *, processor: Processor, book: PartitionBook, reader: StateReader,
                 input_topic: Any, alerts_topic: Any, dlq_topic: Any, state_topic: Any,
                 flush: Callable[[], Any], highwater: Callable[[int], int | None] | None = None,
                 metrics: Any = None, health: Health | None = None,
                 exit: Callable[[int], Any] = os._exit, state_sink: Any = None):
        self.processor = processor
        self.engine = processor.engine
        self.book = book
        self.reader = reader
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self.highwater = highwater or (lambda p: None)
        self.metrics = metrics
        self.health = health or Health()
        self.exit = exit
        self.lock = asyncio.Lock()  # processing + publishing vs. snapshot slices
        # snapshots and restores (streams.state.sync), under the same lock
        self.state = StateSync(engine=self.engine, book=book, reader=reader, lock=self.lock,
                               input_topic=input_topic, alerts_topic=alerts_topic, state_topic=state_topic,
                               flush=flush, state_sink=state_sink, metrics=metrics)
        self.ready: dict[int, asyncio.Future] = {}  # partition -> restore done
        self.held: set[int] = set()  # revoked with a written final snapshot, state kept in memory
        self.topics_checked = False  # state/alerts topics exist with the input's partition count
        #: the correlator's publisher (streams.correlation) and topics, when it runs
        self.correlation: Any = None
        self.correlation_topics: dict[str, tuple[int, bool]] | None = None

    # -- processing -----------------------------------------------------------------------
    async def handle_batch(self, records: list[tuple[Any, Any, str, int | None, int | None]]) -> Output:
        """Process (key, value, topic, partition, offset) records; send alerts and dead letters."""
        for p in {r[3] for r in records if r[3] is not None}:
            await self.wait_ready(p)
        async with self.lock:
            out = self.processor.handle_many(records)
            book = self.book
            for p, offset, customer in out.positions:
                book.processed(p, offset, customer)
            book.mark_dirty(self.engine.pop_dirty())
            await self.publish(out)
            self.health.progress()
        return out

    async def publish(self, out: Output) -> None:
        """Hand a batch's alerts and dead letters to the producer (acknowledged before any commit)."""
        book = self.book
        fresh = []
        for a in out.alerts:
            p = book.owner.get(a["customer_id"])
            if p is not None and book.is_duplicate_alert(p, a):
                if self.metrics is not None:
                    self.metrics.alerts_suppressed.inc()
                continue
            fresh.append((a, p))
        if self.correlation is not None:
            # onsets, these alerts and the watermarks to the correlator first: a crash before the
            # alerts topic has them re-sends both (the correlator takes a repeat), never neither
            out.alerts = [a for a, _ in fresh]
            await self.correlation.publish(out, self.caught_up)
        for a, p in fresh:
            await self.alerts_topic.send(key=a["customer_id"].encode(), value=encode_json(a), partition=p,
                                         callback=self._alert_acked(p))
        for d in out.dlq:
            key = d["key"].encode() if isinstance(d.get("key"), str) else None
            await self.dlq_topic.send(key=key, value=encode_json(d))

    def _alert_acked(self, p: int | None) -> Callable[[Any], None]:
        def acked(fut: Any) -> None:
            try:
                md = fut.result()
            except BaseException:  # a failed send is retried by the producer or fails the flush
                return
            if p is not None and getattr(md, "offset", None) is not None:
                self.book.alert_sent(p, md.offset)
        return acked

    def fail(self, exc: BaseException) -> None:
        """The agent failed for a reason that is not bad input: stop now, commit nothing more."""
        self.health.agent_running = False
        log.critical("detection agent failed; exiting with status %d so the supervisor restarts the worker "
                     "at the last snapshot's offsets (nothing after them was committed):\n%s",
                     EXIT_AGENT_FAILED, "".join(traceback.format_exception(exc)))
        for h in logging.getLogger().handlers:
            try:
                h.flush()
            except Exception:  # pragma: no cover - best effort before exiting
                pass
        sys.stderr.flush()
        self.exit(EXIT_AGENT_FAILED)

    # -- partitions -----------------------------------------------------------------------
    async def wait_ready(self, p: int) -> None:
        fut = self.ready.get(p)
        if fut is None:  # a message of a partition we were never told about: restore it first
            log.warning("message of input partition %d before its assignment; restoring its state first", p)
            fut = self.ready[p] = asyncio.ensure_future(self.restore(p))
        if not fut.done():
            await asyncio.shield(fut)
        fut.result()  # re-raises a failed restore: the worker must not run with cold state

    async def on_assigned(self, partitions: Iterable[int]) -> None:
        """New assignment (Faust passes the whole of it): start restores of partitions we lack."""
        now = set(partitions)
        async with self.lock:
            for p in sorted(self.held - now):  # handed over: forget what we kept
                self._drop(p)
            for p in sorted(self.held & now):
                self.held.discard(p)  # ours again, and nobody else ran it in between: keep the models
                done = asyncio.get_running_loop().create_future()
                done.set_result(None)
                self.ready[p] = done
        for p in sorted(now):
            if p not in self.ready:
                self.ready[p] = asyncio.ensure_future(self.restore(p))

    async def on_revoked(self, partitions: Iterable[int]) -> None:
        """Before partitions go: write their final snapshot so the next owner resumes there."""
        revoked = sorted(p for p in set(partitions) if p in self.book.assigned or p in self.ready)
        if not revoked:
            return
        for p in revoked:
            fut = self.ready.get(p)
            if fut is not None and not fut.done():
                fut.cancel()
        ok = await self.snapshot(revoked, reason="revoked")
        async with self.lock:
            for p in revoked:
                self.ready.pop(p, None)
                if ok and p in self.book.assigned:
                    self.held.add(p)  # keep the models: in an eager rebalance it usually comes back
                else:
                    self._drop(p)

    def _drop(self, p: int) -> None:
        self.held.discard(p)
        for cid in self.book.revoke(p):
            self.engine.drop_customer(cid)

    async def restore(self, p: int) -> None:
        """Load partition ``p``'s snapshot and the alerts already sent after it."""
        await self.state.restore(p)

    # -- snapshots ------------------------------------------------------------------------
    async def snapshot(self, partitions: Iterable[int] | None = None, reason: str = "periodic") -> bool:
        """Write the changed customers and a marker for each partition; True if all were written."""
        return await self.state.snapshot(partitions, reason)

    # -- health ---------------------------------------------------------------------------
    def caught_up(self, p: int) -> bool:
        """Nothing of input partition ``p`` waits to be processed (its highwater is known and reached)."""
        return p in self.book.assigned and self.book.lag(p, self.highwater(p)) == 0

    def lag(self) -> int:
        total = 0
        for p in sorted(self.book.assigned):
            n = self.book.lag(p, self.highwater(p))
            total += n or 0
        return total

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        lag = self.lag()
        ok, reason = self.health.check(lag)
        tracked, warming = self.engine.series_counts()
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "reason": reason,
            "lag": lag,
            "partitions": sorted(self.book.assigned),
            "customers": len(self.engine.customers),
            "snapshot_offsets": {str(p): self.book.commit_offset(p) for p in sorted(self.book.assigned)},
            "series": tracked,
            "warming": warming,
        }
