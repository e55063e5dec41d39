"""The detection worker's side of the correlator: onsets, alerts and watermarks onto its topics.

After each chunk the worker hands its output to :meth:`CorrelationPublisher.publish`:

* every onset goes once per group its customer belongs to, to the partition of the onsets topic
  the group hashes to (Kafka's default partitioner of the group as key: a group's onsets meet
  in one partition of stage one, whichever worker detected them);
* every alert is copied to the parents topic (stage two holds it, then routes it);
* each input partition's **watermark** -- how far its event time got -- goes to every
  partition of the onsets topic and to the parents topic, after the onsets and alerts it covers,
  whenever it enters a new interval, but from :meth:`~CorrelationPublisher.publish` at most
  every :data:`MARKS_EVERY_S` (the worker's 1 s tick sends what is left): a backlog read at
  100k events/s crosses an interval every few milliseconds, and each crossing was five records.
  While every partition's data is history being replayed (none live, see below), at most every
  :data:`HISTORY_MARKS_EVERY_S`, from the chunks and the tick alike: each watermark sent makes
  every stage-one partition and stage two take a batch, close intervals, send their tests and
  write their state, and a replay at 100k events/s paid that five times a second for
  watermarks nobody waits for in wall-clock time (the parents of history are not late).

All of it travels in **batch records** (:func:`~streams.correlation.messages.encode_batches`):
one per partition and chunk, not one per onset, alert and watermark, because each Kafka
message costs the stage agents and the worker's producer and consumer more than its content.

Watermark of input partition ``p``: the start of the latest interval it had events for (every
earlier interval is complete). When ``p`` is caught up (nothing waiting on the input topic)
and its latest interval ended at least ``grace_s`` ago, but not long ago (the data is live, not
history being replayed), its watermark is the wall clock minus ``grace_s``: the current
interval is complete ``grace_s`` after it ends, not only when the next one's events arrive.
That bounds what the hold costs: a child alert waits ``hold_intervals`` intervals plus
``grace_s``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from detectors.correlator import groups_of
from streams.pipeline.codecs import encode_json, partition_of
from streams.pipeline.processor import Output

from .messages import encode_batches, onset_item
from .stages import detector_source

__all__ = ["HISTORY_MARKS_EVERY_S", "LIVE_INTERVALS", "MARKS_EVERY_S", "CorrelationPublisher"]

#: data whose latest interval ended at most this many intervals ago is live (the wall clock may
#: stand in for its watermark); older is history being replayed (only its events count)
LIVE_INTERVALS = 2
#: the key of every message on the one-partition parents topic
PARENTS_KEY = b"parents"
#: watermarks ride with a chunk's records at most this often (wall clock); the tick sends the rest
MARKS_EVERY_S = 0.5
#: ... and while no partition's data is live (history being replayed), at most this often
HISTORY_MARKS_EVERY_S = 5.0


class CorrelationPublisher:
    """Sends a batch's onsets, alerts and watermarks (see the module docstring).

    Parameters
    ----------
    onsets_topic, parents_topic
        Faust topics (``send(key=, value=, partition=)``).
    onset_partitions : int
        Partitions of the onsets topic (each gets every watermark): the topic's own count, which
        the worker reads at every assignment (:meth:`use_partitions`), not a setting.
    catalogue : Catalogue
        Customer groups (followed from the ``customers`` topic).
    config : CorrelatorConfig
        Grouping attributes.
    grace_s : float
        How long after an interval ends a caught-up partition declares it complete.
    """

    def __init__(self, *, onsets_topic: Any, parents_topic: Any, onset_partitions: int, catalogue: Catalogue,
                 config: CorrelatorConfig, grace_s: float, clock: Callable[[], float] = time.time):
        self.onsets_topic = onsets_topic
        self.parents_topic = parents_topic
        self.onset_partitions = onset_partitions
        self.catalogue = catalogue
        self.config = config
        self.grace_s = grace_s
        self.clock = clock
        self.seen: dict[int, tuple[float, int]] = {}  # input partition -> (latest event interval, its length)
        self.sent: dict[int, float] = {}  # input partition -> watermark sent last
        self.marks_at = float("-inf")  # wall clock of the last look for moved watermarks
        self._group_partition: dict[str, int] = {}

    def use_partitions(self, n: int) -> None:
        """The onsets topic has ``n`` partitions: where groups go, and who gets the watermarks."""
        if n != self.onset_partitions:
            self.onset_partitions = n
            self._group_partition.clear()

    def partition_of(self, group: str) -> int:
        """The onsets-topic partition of ``group`` (Kafka's default partitioner, the group as key)."""
        q = self._group_partition.get(group)
        if q is None:
            q = self._group_partition[group] = partition_of(group, self.onset_partitions)
        return q

    async def publish(self, out: Output, caught_up: Callable[[int], bool] | None = None) -> None:
        """Send one chunk's onsets and alerts, then the watermarks they move (see the module docstring)."""
        by_partition: dict[int, list[bytes]] = {}
        for onset in out.onsets:
            for g in groups_of(self.catalogue, self.config, onset.customer_id):
                by_partition.setdefault(self.partition_of(g), []).append(onset_item(g, onset))
        for p, (ts, iv) in out.event_time.items():
            old = self.seen.get(p)
            if old is None or ts > old[0]:
                self.seen[p] = (ts, iv)
        due = self.clock() - self.marks_at >= (MARKS_EVERY_S if self.live() else HISTORY_MARKS_EVERY_S)
        await self._send(by_partition, [encode_json(a) for a in out.alerts],
                         self._moved(caught_up) if due else [])

    async def _send(self, onsets: dict[int, list[bytes]], alerts: list[bytes],
                    marks: list[tuple[str, float]]) -> None:
        for q in range(self.onset_partitions) if marks else sorted(onsets):
            for value in encode_batches(onsets.get(q, ()), marks, field="onsets"):
                await self.onsets_topic.send(key=None, value=value, partition=q)
        for value in encode_batches(alerts, marks, field="alerts"):
            await self.parents_topic.send(key=PARENTS_KEY, value=value, partition=0)

    def live(self) -> bool:
        """Whether any partition's latest interval ended at most :data:`LIVE_INTERVALS` intervals
        (plus the grace) ago, or has not ended yet: its watermarks are waited for in wall-clock time."""
        now = self.clock() - self.grace_s
        return any(ts + iv * (1 + LIVE_INTERVALS) >= now for ts, iv in self.seen.values())

    def watermark(self, p: int, caught_up: bool) -> float | None:
        """Input partition ``p``'s watermark now (None: no events seen)."""
        seen = self.seen.get(p)
        if seen is None:
            return None
        ts, iv = seen
        end, now = ts + iv, self.clock() - self.grace_s
        if caught_up and end <= now <= end + LIVE_INTERVALS * iv:
            return now
        return ts

    def _moved(self, caught_up: Callable[[int], bool] | None) -> list[tuple[str, float]]:
        """The watermarks that entered a new interval since sent last (now counted as sent)."""
        self.marks_at = self.clock()
        moved = []
        for p, (_, iv) in list(self.seen.items()):
            w = self.watermark(p, bool(caught_up and caught_up(p)))
            last = self.sent.get(p)
            if w is None or (last is not None and math.floor(w / iv) <= math.floor(last / iv)):
                continue
            moved.append((detector_source(p), w))
            self.sent[p] = w
        return moved

    async def watermarks(self, caught_up: Callable[[int], bool] | None = None) -> int:
        """Send the watermarks that entered a new interval (of history: at most every
        :data:`HISTORY_MARKS_EVERY_S`); return how many partitions moved."""
        if not self.live() and self.clock() - self.marks_at < HISTORY_MARKS_EVERY_S:
            return 0
        moved = self._moved(caught_up)
        await self._send({}, [], moved)
        return len(moved)

    def forget(self, p: int) -> None:
        """Input partition ``p`` moved to another worker: its watermark is theirs to send."""
        self.seen.pop(p, None)
        self.sent.pop(p, None)
