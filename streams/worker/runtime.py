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
* a partition whose saved state is refused (a model change) or missing is rebuilt from the
  input's history first, when the worker has a :class:`~streams.state.rebuild.Rebuilder`, and
  snapshotted before its first live event;
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
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from streams.pipeline.codecs import KIND_WRONG_PARTITION, encode_json
from streams.pipeline.processor import Output, Processor
from streams.state.book import PartitionBook
from streams.state.reader import StateReader
from streams.state.rebuild import Rebuilder
from streams.state.sync import Restored, StaleLayout, StateSync

from .layout import EXIT_LAYOUT, LayoutChanged, LayoutGuard

log = logging.getLogger("lookout.worker")

#: exit status when the detection agent fails for a reason that is not bad input (EX_SOFTWARE)
EXIT_AGENT_FAILED = 70
#: the detection agent's name
DETECTION_AGENT = "lookout.detect"
#: events per chunk of a batch (an envelope counts as its events): ~50 ms of processing
DEFAULT_CHUNK_EVENTS = 5000
#: longest stretch of sends to the producer between two yields to the event loop
YIELD_EVERY_S = 0.005
#: a batch whose messages hold at most this many bytes is processed on the event loop (a
#: batch of 500 single events, ~150 KB, is ~10-20 ms of work). A worker thread would keep the
#: loop free, but while it runs Python (decoding, the alert lifecycle) it holds the GIL and
#: Faust's consumer thread waits for it at every step: single events ran at 6.7k instead of
#: 10.5k events/s (issue 20). Bigger batches (envelopes) still run their chunks in the thread.
INLINE_MAX_BYTES = 256 * 1024
#: the engine's gauges (series, customers, open incidents) are recomputed at most this often
STATS_EVERY_S = 1.0


class EngineStats(NamedTuple):
    """What the engine holds, as /metrics and /healthz report it."""

    tracked: int  # series
    warming: int  # series still warming up
    customers: int
    open_by_severity: dict[str, int]


def flush_logs() -> None:
    """Every log handler and stderr flushed (best effort), before the process exits."""
    for h in logging.getLogger().handlers:
        try:
            h.flush()
        except Exception:  # pragma: no cover - best effort before exiting
            pass
    sys.stderr.flush()


def exit_after_failure(exc: BaseException, agent: str, exit: Callable[[int], Any], process: str) -> None:
    """An agent of ``process`` (a worker, ``lookout correlator``) failed for a reason that is not
    bad input: one CRITICAL line with the traceback, then ``exit(EXIT_AGENT_FAILED)``."""
    log.critical("agent %s failed; exiting with status %d so the supervisor restarts the %s at the "
                 "committed offsets (nothing it had not handled was committed):\n%s",
                 agent, EXIT_AGENT_FAILED, process, "".join(traceback.format_exception(exc)))
    flush_logs()
    exit(EXIT_AGENT_FAILED)


@dataclass
class Health:
    """Is the worker doing its job? Unhealthy when the agent is not running, or when messages
    are waiting and nothing was processed for ``stall_after_s``.

    The idle time is counted from the latest of: the last processed batch, the worker's start,
    and the moment messages were first seen waiting (a worker idle for an hour with nothing to
    do is not "stalled for an hour" the moment a backlog arrives).

    >>> t = [2203.0]  # a monotonic clock starts at the host's boot, not at zero
    >>> h = Health(stall_after_s=30, clock=lambda: t[0])
    >>> h.check(lag=0)
    (False, 'detection agent is not running')
    >>> h.agent_running = True
    >>> h.check(lag=5)       # a backlog at start-up: nothing processed yet, but not for 2203 s
    (True, 'ok')
    >>> t[0] += 31
    >>> h.check(lag=5)
    (False, 'consumption stalled: nothing processed for 31 s with 5 messages waiting')
    >>> h.progress(); t[0] += 100
    >>> h.check(lag=0), h.check(lag=5)   # idle without work, then work arrives: not stalled yet
    ((True, 'ok'), (True, 'ok'))
    """

    stall_after_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    agent_running: bool = False
    last_progress: float | None = None  # None: since the worker started (set on construction)
    problem: str | None = None  # a reason the worker cannot work (a partition change): always unhealthy
    waiting_since: float | None = None  # first check that saw messages waiting (None: none wait)

    def __post_init__(self) -> None:
        if self.last_progress is None:
            self.last_progress = self.clock()

    def progress(self) -> None:
        self.last_progress = self.clock()

    def check(self, lag: int | None) -> tuple[bool, str]:
        if self.problem is not None:
            return False, self.problem
        if not self.agent_running:
            return False, "detection agent is not running"
        now = self.clock()
        if not lag:
            self.waiting_since = None
            return True, "ok"
        if self.waiting_since is None:
            self.waiting_since = now
        idle = now - max(self.last_progress or 0.0, self.waiting_since)
        if idle > self.stall_after_s:
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
                 exit: Callable[[int], Any] = os._exit, state_sink: Any = None,
                 chunk_events: int | None = DEFAULT_CHUNK_EVENTS, layout: LayoutGuard | None = None,
                 inline_max_bytes: int = INLINE_MAX_BYTES,
                 rebuilder: Rebuilder | None = None):
        self.processor = processor
        self.engine = processor.engine
        self.book = book
        processor.rerun_below = book.rerun_until  # duplicates of re-read messages count as "reread"
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
        self.rebuilder = rebuilder  # relearns partitions whose state is refused or missing (None: cold)
        self.ready: dict[int, asyncio.Future] = {}  # partition -> restore done
        self.held: set[int] = set()  # revoked with a written final snapshot, state kept in memory
        self.chunk_events = chunk_events
        #: batches of at most this many bytes are processed on the loop (see INLINE_MAX_BYTES)
        self.inline_max_bytes = inline_max_bytes
        #: checks the input topic's partition count (None: not checked, as in tests without Kafka)
        self.layout = layout
        self.restoring_since: dict[int, float] = {}  # partition -> when its restore started
        self.stats = EngineStats(0, 0, 0, {})
        self._stats_at = float("-inf")
        #: the correlator's publisher (streams.correlation), when it runs
        self.correlation: Any = None

    # -- processing -----------------------------------------------------------------------
    async def handle_batch(self, records: list[tuple[Any, Any, str, int | None, int | None]]) -> Output:
        """Process (key, value, topic, partition, offset) records; send alerts and dead letters.

        The batch is cut into chunks of about :attr:`chunk_events` events (an envelope counts as
        its events); each chunk is decoded and run through the engine in a worker thread, off the
        event loop (the web port keeps answering; the numba kernel releases the GIL) -- unless the
        batch is small (:data:`INLINE_MAX_BYTES`: single events), which runs on the loop -- then its
        alerts and dead letters are handed to the producer. A chunk is one unit under the lock:
        processed, accounted for and published, even if the agent is cancelled meanwhile, so a
        snapshot never holds state whose outputs were not handed to the producer.
        """
        for p in {r[3] for r in records if r[3] is not None}:
            await self.wait_ready(p)
        chunks = self.processor.handle_chunks(records, self.chunk_events)
        inline = _size(records) <= self.inline_max_bytes
        merged = Output()
        while True:
            # shielded: a cancelled agent lets the chunk finish (it runs in a thread anyway)
            out = await asyncio.shield(asyncio.ensure_future(self._chunk(chunks, inline)))
            if out is None:
                return merged
            merged.events += out.events
            merged.alerts += out.alerts
            merged.dlq += out.dlq
            merged.positions += out.positions

    async def _chunk(self, chunks: Iterator[Output], inline: bool = False) -> Output | None:
        async with self.lock:
            if inline:
                out = self._process_next(chunks)
            else:
                out = await asyncio.to_thread(self._process_next, chunks)
            if out is not None:
                if self.layout is not None and any(d.get("kind") == KIND_WRONG_PARTITION for d in out.dlq):
                    # a customer that hashes elsewhere: the input topic may have grown (its first
                    # moved event); nothing of this chunk may go out if so (stops the worker)
                    await self.layout.verify()
                await self.publish(out)
                self.health.progress()
            return out

    def _process_next(self, chunks: Iterator[Output]) -> Output | None:
        """In the worker thread, under the lock: the next chunk through the processor, and its books."""
        out = next(chunks, None)
        if out is None:
            return None
        book = self.book
        book.processed_many(out.positions)
        book.mark_dirty(self.engine.pop_dirty())
        self._refresh_stats(force=False)
        return out

    async def publish(self, out: Output) -> None:
        """Hand a batch's alerts and dead letters to the producer (acknowledged before any commit).

        Yields to the event loop every :data:`YIELD_EVERY_S` (thousands of dead letters are
        thousands of sends).
        """
        book = self.book
        fresh = []
        t_yield = time.perf_counter() + YIELD_EVERY_S
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
            if time.perf_counter() > t_yield:
                await asyncio.sleep(0)
                t_yield = time.perf_counter() + YIELD_EVERY_S
        for d in out.dlq:
            key = d["key"].encode() if isinstance(d.get("key"), str) else None
            await self.dlq_topic.send(key=key, value=encode_json(d))
            if time.perf_counter() > t_yield:
                await asyncio.sleep(0)
                t_yield = time.perf_counter() + YIELD_EVERY_S

    # -- what the engine holds, for /metrics and /healthz -----------------------------------
    def _refresh_stats(self, force: bool) -> None:
        """Recompute :attr:`stats` (at most every :data:`STATS_EVERY_S` unless ``force``).

        Only whoever holds the lock may read the engine (a chunk may be changing it in the
        worker thread): the processing thread after each chunk, the loop when the lock is free.
        """
        now = time.monotonic()
        if not force and now - self._stats_at < STATS_EVERY_S:
            return
        tracked, warming = self.engine.series_counts()
        self.stats = EngineStats(tracked, warming, len(self.engine.customers),
                                 self.processor.open_by_severity())
        self._stats_at = now

    def engine_stats(self) -> "EngineStats":
        """The engine's series, customers and open incidents: fresh when nothing is processing,
        else as of the last chunk (at most :data:`STATS_EVERY_S` old)."""
        if not self.lock.locked():
            self._refresh_stats(force=False)
        return self.stats

    def _alert_acked(self, p: int | None) -> Callable[[Any], None]:
        def acked(fut: Any) -> None:
            try:
                md = fut.result()
            except BaseException:  # a failed send is retried by the producer or fails the flush
                return
            if p is not None and getattr(md, "offset", None) is not None:
                self.book.alert_sent(p, md.offset)
        return acked

    def stop_for_layout(self, message: str) -> None:
        """The input topic's partition count does not match the layout: stop, one CRITICAL line
        (see :mod:`streams.worker.layout`); no snapshot, nothing more committed."""
        self.health.problem = message
        log.critical("%s", message)
        flush_logs()
        self.exit(EXIT_LAYOUT)

    def fail(self, exc: BaseException, agent: str = DETECTION_AGENT) -> None:
        """An agent failed for a reason that is not bad input: stop now, commit nothing more
        (:mod:`streams.kafka.supervision`)."""
        if isinstance(exc, LayoutChanged):  # stopped already, with its own line and status
            return
        self.health.agent_running = False  # (/healthz: 503 until the exit)
        exit_after_failure(exc, agent, self.exit, "worker")

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
        """New assignment (Faust passes the whole of it): start restores of partitions we lack.

        Faust may resume the stream while this runs: a message of a new partition that reaches the
        agent during the layout check waits for the restore started here (registered before the
        check, started after it), not for one of its own.
        """
        now = set(partitions)
        checked = asyncio.get_running_loop().create_future()
        for p in sorted(now - self.held):
            if p not in self.ready:
                self.ready[p] = asyncio.ensure_future(self._restore_when(checked, p))
        ok = False
        try:
            if self.layout is not None:
                self.use_layout(await self.layout.on_assigned(now))
            ok = True
        finally:
            checked.set_result(ok)
        # ours again: the models kept since the revocation are used only if nobody ran the partition
        # in between (this worker saw every rebalance); otherwise it is restored like a new one.
        # Registered before the check, like the restores above: a message may arrive meanwhile
        back = self.held & now
        decided = asyncio.get_running_loop().create_future()
        for p in sorted(back):
            self.ready[p] = asyncio.ensure_future(self._back_when(decided, p))
        kept: set[int] = set()
        try:
            kept = await self.state.still_own(back) if back else set()
        finally:
            try:
                async with self.lock:
                    for p in sorted(self.held - kept):  # handed over, or run by another meanwhile
                        self._drop(p)
                    self.held -= kept
            finally:  # even if cancelled waiting for the lock: an undecided partition waits for ever
                if not decided.done():
                    decided.set_result(kept)
        for p in sorted(now):
            if p not in self.ready:
                self.ready[p] = asyncio.ensure_future(self.restore(p))

    async def _back_when(self, decided: asyncio.Future, p: int) -> None:
        if p in await decided:
            return
        log.warning("input partition %d was run by another worker since this one's last snapshot of it (a "
                    "rebalance this worker missed): restoring its state instead of keeping its models", p)
        await self.restore(p)

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
        self.state.own_marker.pop(p, None)
        for cid in self.book.revoke(p):
            self.engine.drop_customer(cid)

    def use_layout(self, partitions: int) -> None:
        """Run with the input topic's partition count: envelope and single events are checked
        against it, markers name it, restores load only records in their customer's home."""
        if self.processor.partitions != partitions:
            self.processor.partitions = partitions
        self.state.partitions = partitions
        self.state.home = self.processor.home_of

    async def _restore_when(self, checked: asyncio.Future, p: int) -> None:
        if not await checked:  # the layout check stopped the worker
            raise LayoutChanged(f"input partition {p} not restored: the partition layout changed")
        await self.restore(p)

    async def restore(self, p: int) -> None:
        """Load partition ``p``'s snapshot and the alerts already sent after it; rebuild what it lacks.

        A rebuilt partition is snapshotted before its first live event, so a restart finds it
        complete (if that snapshot fails, the periodic one retries it).
        """
        self.restoring_since[p] = time.monotonic()
        try:
            found = await self.state.restore(p)
            if self.rebuilder is not None and found.incomplete:
                await self._rebuild(self.rebuilder, found)
        except StaleLayout as exc:
            assert self.layout is not None
            self.stop_for_layout(self.layout.message(str(exc), self.state.partitions or 0))
            raise LayoutChanged(str(exc)) from None
        finally:
            self.restoring_since.pop(p, None)
        self.health.progress()  # the time spent restoring is not a stall

    async def _rebuild(self, rebuilder: Rebuilder, found: Restored) -> None:
        try:
            await rebuilder.rebuild(found, self.state)
            await self.snapshot([found.partition], reason="rebuilt")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the history cannot be read: go live cold rather than not at all
            log.warning("input partition %d: rebuild from history failed (%s: %s); its customers "
                        "without saved state start cold", found.partition, type(exc).__name__, exc)

    # -- snapshots ------------------------------------------------------------------------
    async def snapshot(self, partitions: Iterable[int] | None = None, reason: str = "periodic") -> bool:
        """Write the changed customers and a marker for each partition; True if all were written."""
        return await self.state.snapshot(partitions, reason)

    # -- health ---------------------------------------------------------------------------
    def caught_up(self, p: int) -> bool:
        """Nothing of input partition ``p`` waits to be processed (its highwater is known and reached)."""
        return p in self.book.assigned and self.book.lag(p, self.highwater(p)) == 0

    def lag(self) -> int | None:
        """Input messages of the owned partitions not processed yet; None while the end of one of
        them is not known yet (just assigned, no fetch answered): "0" would read as caught up."""
        total = 0
        for p in sorted(self.book.assigned):
            n = self.book.lag(p, self.highwater(p))
            if n is None:
                return None
            total += n
        return total

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        lag = self.lag()
        ok, reason = self.health.check(lag)
        restoring = sorted(self.restoring_since)
        if ok and restoring:
            took = time.monotonic() - min(self.restoring_since.values())
            # a rebuild is part of its partition's restore: say how far it is
            rebuilding = self.rebuilder.status() if self.rebuilder is not None else None
            ok, reason = False, rebuilding or (f"input partitions {restoring} are not consumed yet: "
                                               f"restoring their state ({took:.0f} s)")
        stats = self.engine_stats()
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "reason": reason,
            "lag": lag,
            "partitions": sorted(self.book.assigned),
            "customers": stats.customers,
            "snapshot_offsets": {str(p): self.book.commit_offset(p) for p in sorted(self.book.assigned)},
            "series": stats.tracked,
            "warming": stats.warming,
        }


def _size(records: list[tuple[Any, Any, str, int | None, int | None]]) -> int:
    """Bytes of a batch's message values (what its processing scales with; a value Faust already
    decoded counts as nothing: it is cheap)."""
    return sum(len(r[1]) for r in records if isinstance(r[1], (bytes, bytearray, str)))
