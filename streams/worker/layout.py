"""The partition layout the worker runs with, and what it does when the input topic's changes.

Why: a customer's events, detector state and alerts live in one partition number, the one its
id hashes to (murmur2, Kafka's default partitioner) under the input topic's partition count:
events in that partition of the input topic, state in that partition of the state topic, alerts
in that partition of ``alerts``. Adding partitions to the input topic (8 -> 12, as traffic
grows) changes where most customers hash to: their later events arrive in another partition,
whose owner has no state for them (they would warm up again, and their alerts before and after
would come from two models), while their events from before the change may still wait in the
old one. Kafka cannot move keyed records, and with several workers in a group no worker can see
that a customer's old events are all processed before its new ones. So the worker does not try:
it notices the change and stops, and ``lookout topics repartition --partitions N``
(:mod:`streams.worker.repartition`) moves the state with the workers stopped.

The *layout* is the input partition count the alerts and state topics are laid out for. It is
checked

* at every assignment: the input, alerts and state topics' partition counts, and the layout
  every state partition's last marker names (:class:`streams.state.book.Marker`);
* every ``partition_check_s`` (the consumer itself refreshes its metadata only every 5 minutes):
  the input topic's partition count;
* at once when an event of a customer that hashes to another partition arrives (the first event
  of a customer moved by a new partition count; the processor dead-letters such events as
  ``wrong_partition``): before that batch's outputs are published.

A mismatch stops the worker: one CRITICAL line that says what to do, and exit status
:data:`EXIT_LAYOUT` (78, EX_CONFIG), without a snapshot or a commit of anything processed under
the new count. A supervisor that restarts it gets the same line at the first assignment.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from streams.state.book import MARKER_KEY, Marker
from streams.state.reader import StateReader

log = logging.getLogger("lookout.worker")

#: exit status when the input topic's partition count does not match the layout (EX_CONFIG)
EXIT_LAYOUT = 78


class LayoutChanged(Exception):
    """The worker was stopped because of a partition change (raised after the exit call, for
    exits that return, such as a test's)."""


class LayoutGuard:
    """Knows the layout a worker runs with and stops the worker when the input topic's differs.

    ``stop(message)`` is called with the CRITICAL line's text; it exits (it does not return in
    a real worker).
    """

    def __init__(self, *, reader: StateReader, input_topic: str, alerts_topic: str, state_topic: str,
                 group: str, stop: Callable[[str], Any]):
        self.reader = reader
        self.input_topic = input_topic
        self.alerts_topic = alerts_topic
        self.state_topic = state_topic
        self.group = group
        self.stop = stop
        #: the input partition count this worker runs with (None before its first assignment)
        self.partitions: int | None = None
        #: other topics to create at the first assignment, ``{name: (partitions, compacted)}``,
        #: with their own partition counts (the correlator's)
        self.extra_topics: dict[str, tuple[int, bool]] = {}

    async def on_assigned(self, assigned: Iterable[int]) -> int:
        """Check the layout before an assignment's partitions are restored; return it.

        The first assignment reads the topics' partition counts (creating the state topic, and
        ``alerts`` if missing, with the input's count) and the layout of every state partition's
        last marker; later ones only check that no assigned partition lies beyond the layout.
        """
        assigned = sorted(assigned)
        if self.partitions is not None:
            beyond = [p for p in assigned if p >= self.partitions]
            if beyond:
                now = await self.reader.partition_count(self.input_topic)
                self._stop(self.grew(now or max(beyond) + 1))
            return self.partitions
        n = await self.reader.partition_count(self.input_topic)
        if n is None:
            raise RuntimeError(f"input topic {self.input_topic!r} does not exist")
        counts = await self.reader.ensure_topics(
            {**self.extra_topics, self.alerts_topic: (n, False), self.state_topic: (n, True)})
        for name in self.extra_topics:
            counts.pop(name, None)
        short = {t: c for t, c in counts.items() if c < n}
        if short:
            self._stop(self.message(
                f"input topic {self.input_topic!r} has {n} partitions but {_listing(short)} fewer (alerts "
                f"and state of input partition p go to partition p)", n))
        markers = await self.reader.last_values(self.state_topic, MARKER_KEY, counts[self.state_topic])
        written_for = set()
        for blob in markers.values():
            try:
                m = Marker.decode(blob) if blob is not None else None
            except ValueError:
                continue  # the restore says so, and starts that partition cold
            if m is not None and m.partitions is not None:
                written_for.add(m.partitions)
        if written_for - {n}:
            self._stop(self.message(
                f"the detector state in {self.state_topic!r} was written for "
                f"{' and '.join(str(x) for x in sorted(written_for))} input partitions but input topic "
                f"{self.input_topic!r} has {n}", n))
        self.partitions = n
        return n

    async def verify(self) -> None:
        """Ask the broker for the input topic's partition count now; stop if it is not the layout."""
        if self.partitions is None:
            return
        n = await self.reader.partition_count(self.input_topic)
        if n is not None and n != self.partitions:
            self._stop(self.grew(n))

    def grew(self, n: int) -> str:
        return self.message(f"input topic {self.input_topic!r} now has {n} partitions but this worker's "
                            f"alerts and detector state are laid out for {self.partitions}", n)

    def message(self, what: str, n: int) -> str:
        """The CRITICAL line: what is wrong, what the worker did, what to do (one line)."""
        return (f"{what}. Customers whose id hashes to another partition under {n} would be split between "
                f"two (models warming up again, alerts lost): stopped before processing anything under that "
                f"count (exit status {EXIT_LAYOUT}). Stop every worker of group {self.group!r}, then run: "
                f"lookout topics repartition --partitions {n}")

    def _stop(self, message: str) -> None:
        self.stop(message)
        raise LayoutChanged(message)


def _listing(counts: dict[str, int]) -> str:
    """Topics and their partition counts, as the subject of a sentence.

    >>> print(_listing({"alerts": 8, "lookout-state": 8}))
    'alerts' (8) and 'lookout-state' (8) have
    """
    parts = [f"{t!r} ({c})" for t, c in sorted(counts.items())]
    return (" and ".join(parts)) + (" have" if len(parts) > 1 else " has")
