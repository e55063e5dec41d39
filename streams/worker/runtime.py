"""The worker's run-time: batches in, alerts out, state snapshots and restores, health.

:mod:`streams.worker.app` wires this to Faust (the agent body calls :meth:`WorkerRuntime.handle_batch`);
everything that decides *whether* to alert stays in :mod:`detectors` (through the
:class:`~streams.pipeline.processor.Processor`). What lives here is what makes the worker lose nothing:

* a batch is processed and its alerts and dead letters are handed to the producer under one
  lock, so a snapshot never contains state whose outputs were not yet sent;
* snapshots, restores and the commit cap of :mod:`streams.state`;
* alerts the re-run after a restore reproduces are not sent again;
* a failure that is not bad input stops the process (exit code :data:`EXIT_AGENT_FAILED`)
  instead of letting Faust restart the agent and move past the failed batch.
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from detectors.gcpause import cyclic_gc_paused
from streams.pipeline.codecs import encode_json
from streams.pipeline.processor import Output, Processor
from streams.state.book import MARKER_KEY, SLICE_S, Marker, PartitionBook, alert_key
from streams.state.reader import StateReader

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


#: at most one GC freeze per this many seconds after snapshots (restores always freeze)
GC_FREEZE_EVERY_S = 600.0


def _settle_gc() -> None:
    """Move the long-lived objects that exist now out of the cyclic GC's sight.

    At 100,000 customers the detector state is ~10 million long-lived objects; a full cyclic
    collection over them stalls the event loop for 100-200 ms whenever allocation happens to
    trigger one. Customer state holds no reference cycles (it is freed by reference counting
    when a customer is dropped), so freezing it keeps collections to what was allocated since
    (bench_state_sync.py, 100k customers, loaded machine: longest stall 178 -> 26 ms). Young
    garbage is collected first; what is frozen and later becomes *cyclic* garbage (a few
    transient asyncio objects) is never reclaimed, which is why snapshots freeze at most every
    :data:`GC_FREEZE_EVERY_S`.
    """
    gc.collect(1)
    gc.freeze()


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
        self.input_topic = input_topic
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self.state_topic = state_topic  # read back on restore
        self.flush = flush  # the producer of alerts and dead letters
        # where snapshots write: a producer of their own (streams.state.producer), so megabytes of
        # state never queue ahead of alerts; default: the state topic through the main producer
        self.state_sink = state_sink if state_sink is not None else state_topic
        self._own_state_producer = state_sink is not None
        self.highwater = highwater or (lambda p: None)
        self.metrics = metrics
        self.health = health or Health()
        self.exit = exit
        self.lock = asyncio.Lock()  # processing + publishing vs. snapshot slices
        self.snapshot_mutex = asyncio.Lock()  # one snapshot at a time
        self.ready: dict[int, asyncio.Future] = {}  # partition -> restore done
        self.held: set[int] = set()  # revoked with a written final snapshot, state kept in memory
        self.fingerprint = self.engine.config.model_fingerprint()
        self._last_freeze = float("-inf")
        self.topics_checked = False  # state/alerts topics exist with the input's partition count

    # -- names ----------------------------------------------------------------------------
    @staticmethod
    def _name(topic: Any) -> str:
        return topic.get_topic_name() if hasattr(topic, "get_topic_name") else str(topic)

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
        for a in out.alerts:
            cid = a["customer_id"]
            p = book.owner.get(cid)
            if p is not None and book.is_duplicate_alert(p, a):
                if self.metrics is not None:
                    self.metrics.alerts_suppressed.inc()
                continue
            await self.alerts_topic.send(key=cid.encode(), value=encode_json(a), partition=p,
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
        t0 = time.monotonic()
        state_name, alerts_name = self._name(self.state_topic), self._name(self.alerts_topic)
        records, _ = await self.reader.read_partition(state_name, p)
        latest: dict[bytes, bytes | None] = {}
        marker_blob = None
        for k, v in records:
            if k == MARKER_KEY:
                marker_blob = v
            elif k is not None:
                latest[k] = v
        marker = None
        if marker_blob is not None:
            try:
                marker = Marker.decode(marker_blob)
            except ValueError as exc:
                log.warning("state of input partition %d: unreadable marker (%s); starting it cold", p, exc)
        if marker is not None and marker.fingerprint != self.fingerprint:
            log.warning(
                "state of input partition %d was written with other model settings; starting it cold", p
            )
            marker, latest = None, {}
        loaded = bad = 0
        first_error = ""
        items = list(latest.items())
        i = 0
        while i < len(items):
            async with self.lock:
                t_end = time.perf_counter() + SLICE_S
                # decoding allocates many small objects: no cyclic GC pass mid-slice
                with cyclic_gc_paused():
                    while i < len(items):
                        k, v = items[i]
                        i += 1
                        if v is None:
                            continue
                        try:
                            cid = k.decode("ascii")
                            self.engine.load_customer(cid, v)
                        except Exception as exc:  # StateError or a key that is no customer id
                            bad += 1
                            first_error = first_error or f"{k[:64]!r}: {exc}"
                            continue
                        self.book.owner[cid] = p
                        loaded += 1
                        if time.perf_counter() > t_end:
                            break
            await asyncio.sleep(0)
        if bad:
            log.warning(
                "state of input partition %d: %d customer records unusable, those start cold (first: %s)",
                p,
                bad,
                first_error,
            )
        alerts_from = marker.alerts_offset if marker is not None else 0
        alert_records, alerts_end = await self.reader.read_partition(alerts_name, p, alerts_from)
        rerun_until = await self.reader.end_offset(self._name(self.input_topic), p)
        suppress = set()
        for _, v in alert_records:
            try:
                suppress.add(alert_key(json.loads(v)))
            except (TypeError, ValueError):
                continue
        async with self.lock:
            self.book.assign(p, committable=marker.input_offset if marker else None,
                             alerts_next=alerts_end, suppress=suppress,
                             restored_alerts_offset=alerts_from, rerun_until=rerun_until)
        _settle_gc()
        self._last_freeze = time.monotonic()
        took = time.monotonic() - t0
        if self.metrics is not None:
            self.metrics.restore_seconds.observe(took)
            self.metrics.restored_customers.inc(loaded)
        log.info(
            "input partition %d: restored %d customers (snapshot up to offset %s) "
            "and %d sent alerts in %.2f s",
            p,
            loaded,
            marker.input_offset if marker else "-",
            len(suppress),
            took,
        )

    # -- snapshots ------------------------------------------------------------------------
    async def snapshot(self, partitions: Iterable[int] | None = None, reason: str = "periodic") -> bool:
        """Write the changed customers and a marker for each partition; True if all were written."""
        async with self.snapshot_mutex:
            t0 = time.monotonic()
            async with self.lock:
                self.book.mark_dirty(self.engine.pop_dirty())
                wanted = sorted(self.book.assigned) if partitions is None else sorted(partitions)
                plans = self.book.begin_snapshot(wanted)
            if not plans:
                return True
            written = 0
            try:
                for plan in plans.values():
                    cids, i = plan.customers, 0
                    while i < len(cids):
                        blobs = []
                        async with self.lock:  # encode between batches, at most SLICE_S at a time
                            t_end = time.perf_counter() + SLICE_S
                            while i < len(cids):
                                cid = cids[i]
                                i += 1
                                if (
                                    self.book.owner.get(cid) != plan.partition
                                    or cid not in self.engine.customers
                                ):
                                    continue
                                blobs.append((cid, self.engine.dump_customer(cid)))
                                if time.perf_counter() > t_end:
                                    break
                        # send outside the lock: a full producer buffer must not hold up processing;
                        # and let the agent in every SLICE_S / 4 (each send costs the loop ~50 us)
                        t_yield = time.perf_counter() + SLICE_S / 4
                        for cid, blob in blobs:
                            await self.state_sink.send(
                                key=cid.encode(), value=blob, partition=plan.partition
                            )
                            written += 1
                            if self.metrics is not None:
                                self.metrics.state_bytes.inc(len(blob))
                            if time.perf_counter() > t_yield:
                                await asyncio.sleep(0)
                                t_yield = time.perf_counter() + SLICE_S / 4
                        await asyncio.sleep(0)
                # customer records, and every alert and dead letter before the markers
                await self.flush_state()
                await self.flush()
                for plan in plans.values():
                    m = Marker(plan.input_offset, plan.alerts_offset, time.time(), len(plan.customers),
                               self.fingerprint)
                    await self.state_sink.send(key=MARKER_KEY, value=m.encode(), partition=plan.partition)
                await self.flush_state()
            except Exception as exc:
                for plan in plans.values():
                    self.book.snapshot_failed(plan)
                log.warning("%s snapshot of partitions %s not written (%s); retrying with the next one",
                            reason, sorted(plans), exc)
                return False
            for plan in plans.values():
                self.book.snapshot_written(plan.partition, plan.input_offset)
            if time.monotonic() - self._last_freeze > GC_FREEZE_EVERY_S:
                _settle_gc()
                self._last_freeze = time.monotonic()
            took = time.monotonic() - t0
            if self.metrics is not None:
                self.metrics.snapshot_seconds.observe(took)
                self.metrics.snapshot_customers.inc(written)
            log.info(
                "%s snapshot: %d customers of partitions %s in %.2f s", reason, written, sorted(plans), took
            )
            return True

    async def flush_state(self) -> None:
        """Wait until every state record sent so far is acknowledged."""
        await (self.state_sink.flush() if self._own_state_producer else self.flush())

    # -- health ---------------------------------------------------------------------------
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
