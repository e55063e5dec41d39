"""Rebuilds: a partition whose saved state is refused or missing relearns from the input's history.

Why: a new Lookout whose models changed (another model fingerprint) cannot use the state the old
one saved, so without a rebuild every customer of the fleet starts cold and misses incidents for
its first day. With ``--rebuild-from DURATION`` (``LOOKOUT_REBUILD_FROM``), when a partition is
assigned and its restore (:meth:`~streams.state.sync.StateSync.restore`) found the state missing,
written under other model settings or partly refused:

1. the range: the input partition from the first message at or after ``now - DURATION``
   (message time) up to the offset the worker resumes at -- the marker's offset, or without one
   the consumer group's committed offset -- :func:`clip_range`;
2. that range is replayed into an engine of its own, off the event loop, by the injected
   :class:`History` (the worker's is :class:`streams.offline.history.PartitionHistory`: replay's
   Kafka source and the pipeline's processor); its alerts are dropped, they belong to the past;
3. the customers the restore did not load (refused or missing) take their rebuilt state; the
   ones it did load (the same model, or migrated by :mod:`detectors.state`) keep theirs,
   alert lifecycle included;
4. the runtime then snapshots the partition (so a restart does not rebuild again) and only then
   lets its first live event in, from the offset the range stopped at.

While it runs ``/healthz`` answers 503 with ``rebuilding partition N: x %`` and the log says how
far it is (events, customers, share of the range, rate).

May import what :mod:`streams.state` may; the history itself is read by the caller's
:class:`History` (the worker gets it from the command, which may import the offline tools).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from detectors.events import format_ts

from .book import PartitionBook
from .sync import Restored, StateSync

log = logging.getLogger("lookout.rebuild")

#: at most one progress line per this many seconds
PROGRESS_EVERY_S = 5.0
#: a rebuild is rare (an upgrade), long, and holds partitions back: its start, progress and end are
#: logged at the worker's default level (warn), which Faust's handler applies to every logger
LEVEL = logging.WARNING


class RebuildCancelled(Exception):
    """The partition was revoked while its rebuild ran."""


@dataclass
class RebuildProgress:
    """How far one partition's rebuild is; written by the history reader's thread, read by the loop.

    >>> pr = RebuildProgress(partition=1, start=100, stop=300)
    >>> pr.advance(offset=149, events=50, customers=7)
    >>> pr.percent, pr.status()
    (25.0, 'rebuilding partition 1: 25 %')
    """

    partition: int
    start: int
    stop: int
    position: int = -1  # next offset to read (start until the first message)
    events: int = 0
    customers: int = 0
    started: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.position < 0:
            self.position = self.start

    def advance(self, offset: int, events: int, customers: int) -> None:
        """The message at ``offset`` is read; ``events`` read so far, ``customers`` seen so far.

        Raises :class:`RebuildCancelled` once the partition is revoked (the reader stops there).
        """
        if self.cancelled.is_set():
            raise RebuildCancelled(f"partition {self.partition} was revoked")
        self.position, self.events, self.customers = offset + 1, events, customers

    @property
    def percent(self) -> float:
        span = self.stop - self.start
        return 100.0 if span <= 0 else min(100.0, 100.0 * (self.position - self.start) / span)

    def rate(self) -> float:
        """Events per second so far."""
        return self.events / max(time.monotonic() - self.started, 1e-9)

    def status(self) -> str:
        return f"rebuilding partition {self.partition}: {self.percent:.0f} %"


class History(Protocol):
    """Replays an input partition's history into an engine of its own (blocking; run in a thread)."""

    def replay(self, partition: int, since: float, stop: int, progress: RebuildProgress) -> dict[str, bytes]:
        """Every customer's state (``Engine.dump_customer``) after the partition's messages from the
        first one at or after message time ``since`` up to offset ``stop`` (excluded)."""
        ...

    def plan(self, partition: int, since: float) -> tuple[int, int]:
        """The partition's [first offset at or after ``since``, end offset) (end when none is)."""
        ...


def clip_range(planned: tuple[int, int], stop: int) -> tuple[int, int]:
    """The offsets a rebuild reads: what the time range found, never past where live resumes.

    ``planned`` is [first offset at or after ``now - DURATION``, end offset of the partition);
    ``stop`` is the offset the worker resumes at. Messages from ``stop`` on are processed live.

    >>> clip_range((40, 900), stop=500)      # the usual case
    (40, 500)
    >>> clip_range((900, 900), stop=500)     # nothing in the time range before the resume point
    (500, 500)
    >>> clip_range((0, 900), stop=1200)      # stop beyond the end: only what exists
    (0, 900)
    """
    end = min(stop, planned[1])
    return min(planned[0], end), end


class Rebuilder:
    """One worker's rebuilds (one instance per worker runtime).

    Parameters
    ----------
    history
        Reads and replays a partition's range (see :class:`History`).
    duration_s
        How far back a rebuild reads (``--rebuild-from``), seconds.
    committed_offset
        ``partition -> the consumer group's committed input offset`` (None if none), for a
        partition without a marker.
    clock
        Wall clock, epoch seconds (where ``now - DURATION`` is).
    """

    def __init__(self, history: History, duration_s: float,
                 committed_offset: Callable[[int], Awaitable[int | None]],
                 clock: Callable[[], float] = time.time):
        self.history = history
        self.duration_s = duration_s
        self.committed_offset = committed_offset
        self.clock = clock
        self.running: dict[int, RebuildProgress] = {}

    def status(self) -> str | None:
        """``rebuilding partition N: x %`` for each partition being rebuilt, or None."""
        if not self.running:
            return None
        return "; ".join(self.running[p].status() for p in sorted(self.running))

    async def stop_offset(self, found: Restored) -> int | None:
        """Where partition ``found.partition`` goes live: its marker's offset, else the committed one."""
        if found.marker is not None:
            return found.marker.input_offset
        return await self.committed_offset(found.partition)

    async def rebuild(self, found: Restored, sync: StateSync) -> int:
        """Rebuild the customers of ``found`` that its restore did not load; return how many.

        The rebuilt customers are marked dirty and the partition's position set to where the
        range stopped, so the caller's next snapshot writes them and a marker there.
        """
        p = found.partition
        # health says "rebuilding" from now on: the partition is assigned but not live yet
        pr = self.running[p] = RebuildProgress(p, 0, 0)
        try:
            stop = await self.stop_offset(found)
            if stop is None:
                log.warning("input partition %d: no snapshot and no committed offset, nothing to rebuild "
                            "(the consumer starts where the group's offset reset says)", p)
                return 0
            since = self.clock() - self.duration_s
            planned = await asyncio.to_thread(self.history.plan, p, since)
            pr.start, pr.stop = clip_range(planned, stop)
            pr.position = pr.start
            log.log(LEVEL, "input partition %d: saved state %s; rebuilding it from the input's history "
                    "since %s (offsets %d to %d, %d messages) before going live", p, _why(found),
                    format_ts(since), pr.start, pr.stop, pr.stop - pr.start)
            states = await self._replay(pr, since)
            items = [(cid.encode(), blob) for cid, blob in states.items() if cid not in found.loaded]
            rebuilt, bad, first_error = await sync.load_records(p, items)
            if bad:
                log.warning("input partition %d: %d rebuilt customers could not be loaded (first: %s)",
                            p, len(bad), first_error)
            # refused records nobody replaced (customers silent for the whole range): deleted, or every
            # later restart would find the partition's state partly refused and rebuild again
            await sync.forget(p, [k for k in found.refused if _cid(k) not in rebuilt])
            # customers carried over from a stale snapshot are written again too, in today's format
            async with sync.lock:
                _rebuilt_until(sync.book, p, pr.stop, rebuilt | (found.loaded if found.stale else set()))
        finally:
            self.running.pop(p, None)
        took = time.monotonic() - pr.started
        log.log(LEVEL, "input partition %d: rebuilt %d customers (%d kept their saved state) from %d "
                "events in %.1f s (%.0f events/s); live from offset %d", p, len(rebuilt), len(found.loaded),
                pr.events, took, pr.events / max(took, 1e-9), pr.stop)
        return len(rebuilt)

    async def _replay(self, pr: RebuildProgress, since: float) -> dict[str, bytes]:
        """Run the history's replay in a thread, logging its progress every :data:`PROGRESS_EVERY_S`."""
        if pr.stop <= pr.start:
            return {}
        task = asyncio.ensure_future(asyncio.to_thread(self.history.replay, pr.partition, since, pr.stop, pr))
        task.add_done_callback(_retrieved)  # a revoked partition's thread ends in RebuildCancelled
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
                if done:
                    return task.result()
                log.log(LEVEL, "rebuilding input partition %d: %d events, %d customers, %.0f %% of the "
                        "range, %.0f events/s", pr.partition, pr.events, pr.customers, pr.percent, pr.rate())
        except asyncio.CancelledError:
            pr.cancelled.set()  # the thread stops at its next message
            raise


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def _why(found: Restored) -> str:
    if found.marker is None:
        return "missing"
    if found.stale:
        return "written with other model settings"
    return f"partly refused ({len(found.refused)} customers)"


def _cid(key: bytes) -> str | None:
    try:
        return key.decode("ascii")
    except UnicodeDecodeError:
        return None


def _rebuilt_until(book: PartitionBook, p: int, stop: int, customers: set[str]) -> None:
    """The book after a rebuild: ``customers`` belong to ``p`` and are dirty, the position is ``stop``."""
    if p not in book.assigned:
        return
    for cid in customers:
        book.owner[cid] = p
    book.dirty[p].update(customers)
    if stop > 0:
        book.processed(p, stop - 1, None)
