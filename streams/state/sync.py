"""Snapshots and restores: the worker's detector state written to and read back from Kafka.

:class:`StateSync` carries out what :mod:`streams.state` describes, for one worker: a
*snapshot* writes the customers that changed, per input partition, to the state topic in
slices of at most :data:`~streams.state.book.SLICE_S` of event-loop time, flushes both
producers, then writes the partition's marker; a *restore* reads a partition's records and
marker back, loads the customers into the engine and collects the alerts already sent after
the marker. The bookkeeping is :class:`~streams.state.book.PartitionBook`; the Kafka ends are
:class:`~streams.state.reader.StateReader` and the state sink (a Faust topic or
:class:`~streams.state.producer.StateProducer`). The worker's runtime
(:mod:`streams.worker.runtime`) decides *when*: on assignment, periodically, on revocation
and on shutdown.
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from detectors.engine import Engine
from detectors.gcpause import cyclic_gc_paused

from .book import MARKER_KEY, PERIODIC_SNAPSHOT_DUTY, SLICE_S, Marker, PartitionBook, alert_key
from .reader import StateReader

log = logging.getLogger("lookout.worker")

#: at most one GC freeze per this many seconds after snapshots (restores always freeze)
GC_FREEZE_EVERY_S = 600.0


@dataclass(frozen=True)
class Restored:
    """What a partition's restore found: its marker, whether that was written under other model
    settings (``stale``), the customers loaded and the keys of the records refused."""

    partition: int
    marker: Marker | None
    stale: bool
    loaded: set[str]
    refused: list[bytes]  # keys of the customer records the engine refused

    @property
    def incomplete(self) -> bool:
        """Is some of the partition's state missing or refused (so a rebuild has work to do)?

        >>> Restored(0, None, False, set(), []).incomplete      # no snapshot at all
        True
        >>> m = Marker(10, 0, 0.0, 2, "f")
        >>> Restored(0, m, False, {"a", "b"}, []).incomplete, Restored(0, m, True, set(), [b"a"]).incomplete
        (False, True)
        """
        return self.marker is None or self.stale or bool(self.refused)


def _settle_gc() -> None:
    """Move the long-lived objects that exist now out of the cyclic GC's sight.

    At 100,000 customers the detector state is ~10 million long-lived objects; a full cyclic
    collection over them stalls the event loop for 100-200 ms whenever allocation happens to
    trigger one. Customer state holds no reference cycles (it is freed by reference counting
    when a customer is dropped), so freezing it keeps collections to what was allocated since
    (`python -m bench state-sync`, 100k customers, loaded machine: longest stall 178 -> 26 ms). Young
    garbage is collected first; what is frozen and later becomes *cyclic* garbage (a few
    transient asyncio objects) is never reclaimed, which is why snapshots freeze at most every
    :data:`GC_FREEZE_EVERY_S`.
    """
    gc.collect(1)
    gc.freeze()


def _rest(work: float, reason: str) -> float:
    """How long a snapshot rests after a slice that took ``work`` seconds of the loop (see
    :data:`~streams.state.book.PERIODIC_SNAPSHOT_DUTY`; 0: only let waiting tasks in).

    >>> _rest(0.02, "periodic"), _rest(0.02, "revoked")
    (0.02, 0.0)
    """
    if reason != "periodic":
        return 0.0
    return work * (1.0 - PERIODIC_SNAPSHOT_DUTY) / PERIODIC_SNAPSHOT_DUTY


def same_marker(blob: bytes | None, mine: Marker | None) -> bool:
    """Is ``blob`` (a partition's last marker record, None: it has none) the marker ``mine``?

    >>> m = Marker(120, 7, 1.5, 3, "f", 8)
    >>> same_marker(m.encode(), m), same_marker(None, None), same_marker(None, m)
    (True, True, False)
    >>> same_marker(Marker(130, 7, 2.5, 1, "f", 8).encode(), m)   # another worker's, written after
    False
    """
    if blob is None or mine is None:
        return blob is None and mine is None
    try:
        return Marker.decode(blob) == mine
    except ValueError:
        return False


class StaleLayout(RuntimeError):
    """A partition's marker names another input partition count than the input topic has."""


class StateSync:
    """One worker's snapshots and restores (one instance per worker runtime).

    ``lock`` is the worker's processing lock: a snapshot or restore slice holds it, so a batch
    is never half in a snapshot. ``flush`` waits for the producer of alerts and dead letters;
    ``state_sink`` is where snapshots write (default: ``state_topic`` through that producer).
    """

    def __init__(self, *, engine: Engine, book: PartitionBook, reader: StateReader, lock: asyncio.Lock,
                 input_topic: Any, alerts_topic: Any, state_topic: Any, flush: Callable[[], Any],
                 state_sink: Any = None, metrics: Any = None):
        self.engine = engine
        self.book = book
        self.reader = reader
        self.lock = lock
        self.input_topic = input_topic
        self.alerts_topic = alerts_topic
        self.state_topic = state_topic  # read back on restore
        self.flush = flush  # the producer of alerts and dead letters
        # where snapshots write: a producer of their own (streams.state.producer), so megabytes of
        # state never queue ahead of alerts; default: the state topic through the main producer
        self.state_sink = state_sink if state_sink is not None else state_topic
        self._own_state_producer = state_sink is not None
        self.metrics = metrics
        self.snapshot_mutex = asyncio.Lock()  # one snapshot at a time
        #: the input topic's partition count (the layout markers name; None: unknown, not checked)
        self.partitions: int | None = None
        #: customer id -> its input partition under that count; a restore loads only records in
        #: their customer's home partition (None: every record)
        self.home: Callable[[str], int] | None = None
        self.fingerprint = self.engine.config.model_fingerprint()
        self._last_freeze = float("-inf")
        #: partition -> the last marker this worker restored or wrote there (None: it found none)
        self.own_marker: dict[int, Marker | None] = {}

    @staticmethod
    def _name(topic: Any) -> str:
        return topic.get_topic_name() if hasattr(topic, "get_topic_name") else str(topic)

    async def restore(self, p: int) -> Restored:
        """Load partition ``p``'s snapshot and the alerts already sent after it; say what was found.

        A marker written under other model settings still names valid offsets (of the input and
        alerts topics, not of a model), so they are kept; its customers' records are each offered
        to the engine, whose state format refuses those it cannot read (or migrates them).
        """
        t0 = time.monotonic()
        alerts_name = self._name(self.alerts_topic)
        marker, latest = await self._read_snapshot(p)
        stale = marker is not None and marker.fingerprint != self.fingerprint
        loaded, bad, first_error = await self.load_records(p, list(latest.items()))
        _report_refused(p, stale, len(loaded), bad, first_error)
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
            self.own_marker[p] = marker
        _settle_gc()
        self._last_freeze = time.monotonic()
        took = time.monotonic() - t0
        if self.metrics is not None:
            self.metrics.restore_seconds.observe(took)
            self.metrics.restored_customers.inc(len(loaded))
        log.info(
            "input partition %d: restored %d customers (snapshot up to offset %s) "
            "and %d sent alerts in %.2f s",
            p,
            len(loaded),
            marker.input_offset if marker else "-",
            len(suppress),
            took,
        )
        return Restored(p, marker, stale, loaded, bad)

    async def _read_snapshot(self, p: int) -> tuple[Marker | None, dict[bytes, bytes | None]]:
        """Partition ``p``'s marker (None if missing or unreadable) and latest record per customer."""
        records, _ = await self.reader.read_partition(self._name(self.state_topic), p)
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
        if marker is not None and None not in (marker.partitions, self.partitions) \
                and marker.partitions != self.partitions:
            raise StaleLayout(f"state of input partition {p} was written for {marker.partitions} input "
                              f"partitions, the input topic has {self.partitions}")
        return marker, latest

    async def load_records(self, p: int, items: list[tuple[bytes, bytes | None]]
                           ) -> tuple[set[str], list[bytes], str]:
        """Load customer records (key = customer id) of partition ``p`` into the engine, in slices of
        event-loop time; return (customers loaded, keys of the records refused, the first reason)."""
        loaded: set[str] = set()
        bad: list[bytes] = []
        first_error = ""
        home = self.home
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
                            if home is not None and home(cid) != p:
                                # left behind by a partition change: its home partition's record counts
                                continue
                            self.engine.load_customer(cid, v)
                        except Exception as exc:  # StateError or a key that is no customer id
                            bad.append(k)
                            first_error = first_error or f"{k[:64]!r}: {exc}"
                            continue
                        self.book.owner[cid] = p
                        loaded.add(cid)
                        if time.perf_counter() > t_end:
                            break
            await asyncio.sleep(0)
        return loaded, bad, first_error

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
                            t_start = time.perf_counter()
                            t_end = t_start + SLICE_S
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
                            work = time.perf_counter() - t_start
                        # every alert and dead letter of the events these states reflect is
                        # acknowledged before they are sent: a restore may load a record newer than
                        # its partition's marker (a snapshot that never finished) and then skip those
                        # events as re-reads, so their alerts must not be still in a buffer a crash loses
                        if blobs:
                            await self.flush()
                        # send outside the lock: a full producer buffer must not hold up processing;
                        # and let the agent in every SLICE_S / 4 (each send costs the loop ~50 us)
                        t_yield = time.perf_counter() + SLICE_S / 4
                        for cid, blob in blobs:
                            t_send = time.perf_counter()
                            await self.state_sink.send(
                                key=cid.encode(), value=blob, partition=plan.partition
                            )
                            written += 1
                            if self.metrics is not None:
                                self.metrics.state_bytes.inc(len(blob))
                            work += time.perf_counter() - t_send
                            if time.perf_counter() > t_yield:
                                await asyncio.sleep(0)
                                t_yield = time.perf_counter() + SLICE_S / 4
                        await asyncio.sleep(_rest(work, reason))
                # customer records, and every alert and dead letter before the markers
                await self.flush_state()
                await self.flush()
                markers = {}
                for plan in plans.values():
                    m = markers[plan.partition] = Marker(
                        plan.input_offset, plan.alerts_offset, time.time(), len(plan.customers),
                        self.fingerprint, self.partitions)
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
            self.own_marker.update(markers)
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

    async def still_own(self, partitions: Iterable[int]) -> set[int]:
        """Which of ``partitions`` still end with the marker this worker last restored or wrote there.

        Models kept in memory after a revocation are only as new as that marker's partition was when
        it went. If the group gave the partition to another member meanwhile (this worker missed a
        rebalance: stalled past its session timeout, then rejoined), that member restored and moved
        it on, and its markers follow ours; the consumer resumes at its commits, so the kept models
        would never learn what it processed. A partition whose last marker cannot be read counts
        as not ours (restored, which is always safe).
        """
        wanted = sorted(p for p in partitions if p in self.own_marker)
        if not wanted:
            return set()
        try:
            found = await self.reader.last_values(self._name(self.state_topic), MARKER_KEY, wanted)
        except Exception as exc:  # the broker is away: restore rather than guess
            log.warning("last markers of input partitions %s not read (%s); restoring them", wanted, exc)
            return set()
        return {p for p in wanted if same_marker(found.get(p), self.own_marker[p])}

    async def forget(self, p: int, keys: list[bytes]) -> None:
        """Delete customer records of partition ``p`` from the state topic (tombstones, written
        before the next marker), e.g. refused records a rebuild did not replace."""
        for k in keys:
            await self.state_sink.send(key=k, value=None, partition=p)

    async def flush_state(self) -> None:
        """Wait until every state record sent so far is acknowledged."""
        await (self.state_sink.flush() if self._own_state_producer else self.flush())


def _report_refused(p: int, stale: bool, loaded: int, bad: list[bytes], first_error: str) -> None:
    """One WARNING for a restore that found records written under other model settings or unusable."""
    if stale:
        log.warning("state of input partition %d was written with other model settings: %d of %d "
                    "customers carried over, the others start cold or are rebuilt (first refusal: %s)",
                    p, loaded, loaded + len(bad), first_error or "-")
    elif bad:
        log.warning("state of input partition %d: %d customer records unusable, those start cold (first: %s)",
                    p, len(bad), first_error)
