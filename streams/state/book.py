"""Per-partition bookkeeping of the state that follows input partitions (see :mod:`streams.state`).

Plain Python, no I/O: :class:`PartitionBook` holds positions, dirty customers, the commit offset
each written marker allows, and the alerts a re-run after a restore must not send again;
:class:`Marker` is the record that closes a partition's snapshot.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

#: key of a partition's marker record in the state topic (customer ids cannot start with NUL)
MARKER_KEY = b"\x00lookout-marker"
#: longest stretch of event-loop time one snapshot slice may take (the rest waits for the next slice)
SLICE_S = 0.02
#: a periodic snapshot is background work: it takes at most this share of the event loop's time
#: (after each slice it rests as long as the slice's work, at 0.5), so the events arriving while
#: it runs are not held up behind it; a snapshot on revocation or shutdown runs at full speed
PERIODIC_SNAPSHOT_DUTY = 0.5
MARKER_FORMAT = 1


def alert_key(alert: dict[str, Any]) -> tuple[str, str, int]:
    """What makes an alert notification unique: (alert_id, status, notification)."""
    return (str(alert.get("alert_id")), str(alert.get("status")), int(alert.get("notification") or 1))


@dataclass(frozen=True)
class Marker:
    """What a partition's snapshot covers.

    ``partitions`` is the input topic's partition count the snapshot was written for (its
    customers hash to this partition under that count); ``None`` in markers written before
    Lookout recorded it.

    >>> m = Marker(input_offset=120, alerts_offset=7, written_at=1.5, customers=3, fingerprint="f",
    ...            partitions=8)
    >>> Marker.decode(m.encode()) == m
    True
    >>> Marker.decode(b'{"format":1,"input_offset":5,"alerts_offset":0}').partitions is None
    True
    """

    input_offset: int  # every input event below this offset is reflected in the snapshot
    alerts_offset: int  # alerts of events at/after input_offset are at/after this alerts offset
    written_at: float
    customers: int  # customers written by this snapshot (not the partition's total)
    fingerprint: str
    partitions: int | None = None  # the input topic's partition count (the layout) it was written for

    def encode(self) -> bytes:
        d: dict[str, Any] = {"format": MARKER_FORMAT, "input_offset": self.input_offset,
                             "alerts_offset": self.alerts_offset, "written_at": self.written_at,
                             "customers": self.customers, "fingerprint": self.fingerprint}
        if self.partitions is not None:
            d["partitions"] = self.partitions
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, blob: bytes) -> "Marker":
        """Parse a marker; raise ValueError if it is not one this version understands."""
        d = json.loads(blob)
        if not isinstance(d, dict) or d.get("format") != MARKER_FORMAT:
            raise ValueError("unknown marker format")
        io, ao, n = d.get("input_offset"), d.get("alerts_offset"), d.get("partitions")
        if type(io) is not int or type(ao) is not int or io < 0 or ao < 0:
            raise ValueError("marker offsets must be non-negative integers")
        if n is not None and (type(n) is not int or n < 1):
            raise ValueError("marker partitions must be a positive integer")
        return cls(io, ao, float(d.get("written_at") or 0.0), int(d.get("customers") or 0),
                   str(d.get("fingerprint") or ""), n)


@dataclass
class PartitionBook:
    """Per-partition bookkeeping of one worker: positions, dirty customers, commit offsets.

    >>> b = PartitionBook()
    >>> b.assign(0, committable=None)
    >>> b.processed(0, 10, "c1"); b.processed(0, 11, "c2")
    >>> b.mark_dirty(["c1", "c2"])
    >>> plan = b.begin_snapshot([0])
    >>> plan[0].input_offset, sorted(plan[0].customers)
    (12, ['c1', 'c2'])
    >>> b.commit_offset(0) is None      # nothing is committable before the marker is written
    True
    >>> b.snapshot_written(0, 12)
    >>> b.commit_offset(0)
    12
    """

    owner: dict[str, int] = field(default_factory=dict)  # customer -> input partition
    next_offset: dict[int, int] = field(default_factory=dict)  # partition -> next input offset
    committable: dict[int, int] = field(default_factory=dict)  # partition -> offset the last marker covers
    alerts_next: dict[int, int] = field(default_factory=dict)  # partition -> alerts offset known to be past
    suppress: dict[int, set] = field(default_factory=dict)  # partition -> alert keys already on the topic
    dirty: dict[int, set] = field(default_factory=dict)  # partition -> customers changed since last snapshot
    #: partition -> input offset below which the previous owner may have sent alerts already
    rerun_until: dict[int, int] = field(default_factory=dict)
    #: partition -> the alerts offset the restored marker named (kept while re-running)
    rerun_alerts_offset: dict[int, int] = field(default_factory=dict)
    assigned: set = field(default_factory=set)

    def assign(self, p: int, committable: int | None, alerts_next: int | None = None,
               suppress: Iterable[tuple] = (), restored_alerts_offset: int = 0,
               rerun_until: int | None = None) -> None:
        """Partition ``p`` is ours, restored from a marker covering ``committable`` (None: no marker).

        Until the input passes ``rerun_until`` (its end offset when it was assigned) events are a
        re-run of what the previous owner may already have processed: alerts they reproduce are in
        ``suppress``, and new markers keep naming ``restored_alerts_offset`` so a later restore
        reads those alerts back too.
        """
        self.assigned.add(p)
        self.dirty.setdefault(p, set())
        self.rerun_until[p] = rerun_until if rerun_until is not None else 0
        self.rerun_alerts_offset[p] = restored_alerts_offset
        if committable is not None:
            self.committable[p] = committable
            # the restored state reflects every event below its marker: the position starts there,
            # whatever older offset the consumer resumes at (re-read events never lower it, so a
            # marker never goes back and the lag is not the re-read's length)
            self.next_offset[p] = max(self.next_offset.get(p, committable), committable)
        else:
            self.committable.pop(p, None)
        if alerts_next is not None:
            self.alerts_next[p] = alerts_next
        self.suppress[p] = set(suppress)

    def revoke(self, p: int) -> list[str]:
        """Forget partition ``p``; return the customers that belonged to it."""
        self.assigned.discard(p)
        for d in (self.next_offset, self.committable, self.alerts_next, self.suppress, self.dirty,
                  self.rerun_until, self.rerun_alerts_offset):
            d.pop(p, None)
        gone = [c for c, q in self.owner.items() if q == p]
        for c in gone:
            del self.owner[c]
        return gone

    def processed(self, p: int, offset: int, customer: str | None) -> None:
        """An input message at ``offset`` of partition ``p`` has been handled."""
        if offset + 1 > self.next_offset.get(p, -1):
            self.next_offset[p] = offset + 1
        if customer is not None:
            self.owner[customer] = p

    def processed_many(self, positions: Iterable[tuple[int, int, str | None]]) -> None:
        """:meth:`processed` for every (partition, offset, customer or None), in order.

        >>> b = PartitionBook()
        >>> b.processed_many([(0, 7, "a"), (0, 7, "b"), (1, 3, None), (0, 8, "a")])
        >>> b.next_offset, b.owner
        ({0: 9, 1: 4}, {'a': 0, 'b': 0})
        """
        nxt, owner = self.next_offset, self.owner
        for p, offset, customer in positions:
            if customer is not None:
                owner[customer] = p
            if offset >= nxt.get(p, -1):
                nxt[p] = offset + 1

    def mark_dirty(self, customers: Iterable[str]) -> None:
        owner, dirty = self.owner, self.dirty
        for c in customers:
            p = owner.get(c)
            if p is not None and p in dirty:
                dirty[p].add(c)

    def alert_sent(self, p: int, offset: int) -> None:
        if offset + 1 > self.alerts_next.get(p, 0):
            self.alerts_next[p] = offset + 1

    def is_duplicate_alert(self, p: int, alert: dict[str, Any]) -> bool:
        s = self.suppress.get(p)
        return bool(s) and alert_key(alert) in s

    def begin_snapshot(self, partitions: Iterable[int]) -> dict[int, "SnapshotPlan"]:
        """Take the dirty sets and positions of ``partitions`` (call under the processing lock)."""
        plans = {}
        for p in partitions:
            if p not in self.assigned:
                continue
            start = self.next_offset.get(p)
            customers = self.dirty.get(p) or set()
            if start is None or (not customers and start == self.committable.get(p)):
                continue  # nothing processed yet, or nothing new since the last marker
            self.dirty[p] = set()
            if start < self.rerun_until.get(p, 0):
                alerts_offset = self.rerun_alerts_offset.get(p, 0)  # still re-running: keep the old bound
            else:
                alerts_offset = self.alerts_next.get(p, 0)
            plans[p] = SnapshotPlan(p, start, alerts_offset, sorted(customers))
        return plans

    def snapshot_failed(self, plan: "SnapshotPlan") -> None:
        """Put a failed snapshot's customers back so the next one writes them."""
        if plan.partition in self.dirty:
            self.dirty[plan.partition].update(plan.customers)

    def snapshot_written(self, p: int, input_offset: int) -> None:
        if p in self.assigned:
            self.committable[p] = input_offset
            if input_offset >= self.rerun_until.get(p, 0):
                # the re-run is over: no later restore starts before an alert the previous owner sent
                self.suppress[p] = set()
                self.rerun_until[p] = 0

    def commit_offset(self, p: int) -> int | None:
        return self.committable.get(p)

    def lag(self, p: int, highwater: int | None) -> int | None:
        if highwater is None:
            return None
        pos = self.next_offset.get(p, self.committable.get(p))
        return max(0, highwater - (pos or 0))


@dataclass
class SnapshotPlan:
    partition: int
    input_offset: int
    alerts_offset: int
    customers: list[str]
