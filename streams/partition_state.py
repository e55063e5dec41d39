"""Detector state that follows input partitions, consistent with the committed offsets.

Why: a crash, restart or rebalance must not restart a customer's models cold, and must not
lose or repeat an alert. Faust's tables write one changelog record per update (far too costly
per event) and their recovery has known hangs, so the worker keeps its own, much simpler,
per-partition snapshots in a compacted Kafka topic (``<app id>-state`` by default):

* **Snapshot** (every ``snapshot_interval_s``, on revocation and on clean shutdown). For each
  owned input partition ``p``: note ``S`` = the next input offset to process and the customers
  changed since the last snapshot; write each such customer's state (key = customer id) to
  partition ``p`` of the state topic, in slices of at most ``SLICE_S`` of event-loop time so
  processing never stalls; flush the producer (so every alert and dead letter of the events
  below ``S`` is acknowledged too); then write the partition's *marker* (input offset ``S`` and
  the alerts offset where the re-run may start producing alerts). Only then may the consumer
  commit ``S`` for ``p``: :class:`PartitionBook` is the only source of the input topic's commit
  offsets (see :func:`cap_input_commits`).
* **Restore** (on assignment, before the first event of ``p`` is processed): read partition
  ``p`` of the state topic to its end, load every customer (the newest record per key), and read
  the alerts partition from the marker's alerts offset to its end. The consumer resumes at the
  committed offset, which is never above the marker, so the events after the snapshot are
  learned again. Customers whose restored state is newer than an event ignore it (event-time
  dedup); alerts the re-run reproduces (deterministic ids) are found in the set read back from
  the alerts topic and not sent again.
* Alerts of input partition ``p`` are written to partition ``p`` of the alerts topic, so the
  read-back covers exactly one partition.

The bookkeeping (:class:`PartitionBook`) is plain Python and unit-tested without Kafka; the
Kafka reads are in :class:`StateReader`; the worker wires both in :mod:`streams.app`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

log = logging.getLogger("lookout.state")

#: key of a partition's marker record in the state topic (customer ids cannot start with NUL)
MARKER_KEY = b"\x00lookout-marker"
#: longest stretch of event-loop time one snapshot slice may take (the rest waits for the next slice)
SLICE_S = 0.02
MARKER_FORMAT = 1


def alert_key(alert: dict[str, Any]) -> tuple[str, str, int]:
    """What makes an alert notification unique: (alert_id, status, notification)."""
    return (str(alert.get("alert_id")), str(alert.get("status")), int(alert.get("notification") or 1))


@dataclass(frozen=True)
class Marker:
    """What a partition's snapshot covers.

    >>> m = Marker(input_offset=120, alerts_offset=7, written_at=1.5, customers=3, fingerprint="f")
    >>> Marker.decode(m.encode()) == m
    True
    """

    input_offset: int  # every input event below this offset is reflected in the snapshot
    alerts_offset: int  # alerts of events at/after input_offset are at/after this alerts offset
    written_at: float
    customers: int  # customers written by this snapshot (not the partition's total)
    fingerprint: str

    def encode(self) -> bytes:
        return json.dumps({"format": MARKER_FORMAT, "input_offset": self.input_offset,
                           "alerts_offset": self.alerts_offset, "written_at": self.written_at,
                           "customers": self.customers, "fingerprint": self.fingerprint},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, blob: bytes) -> "Marker":
        """Parse a marker; raise ValueError if it is not one this version understands."""
        d = json.loads(blob)
        if not isinstance(d, dict) or d.get("format") != MARKER_FORMAT:
            raise ValueError("unknown marker format")
        io, ao = d.get("input_offset"), d.get("alerts_offset")
        if type(io) is not int or type(ao) is not int or io < 0 or ao < 0:
            raise ValueError("marker offsets must be non-negative integers")
        return cls(io, ao, float(d.get("written_at") or 0.0), int(d.get("customers") or 0),
                   str(d.get("fingerprint") or ""))


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


def cap_input_commits(consumer: Any, input_topic: str, book: PartitionBook) -> None:
    """Make the Faust consumer commit the input topic only at snapshot markers.

    Faust commits the highest contiguous offset its streams have acknowledged. For the input
    topic that would run ahead of the detector state in Kafka: after a crash the models would be
    restored older than the offset the consumer resumes at, and events in between would never be
    learned. So for the input topic the commit offset is the one :class:`PartitionBook` says the
    last written snapshot covers; every other topic (the sinks' ``alerts`` consumers) keeps
    Faust's own acknowledgement-based offsets. Idempotent.
    """
    if getattr(consumer, "_lookout_commit_cap", None) is book:
        return
    original = type(consumer)._new_offset

    def _new_offset(tp):  # same signature as faust.transport.consumer.Consumer._new_offset
        if tp.topic != input_topic:
            return original(consumer, tp)
        consumer._acked[tp].clear()  # Faust's own acks of the input topic are not used
        consumer._acked_index[tp].clear()
        return book.commit_offset(tp.partition)

    consumer._new_offset = _new_offset
    consumer._lookout_commit_cap = book


class StateReader:
    """Reads one partition of the state topic and of the alerts topic (no consumer group)."""

    def __init__(self, bootstrap: str, client_kwargs: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, timeout_s: float = 30.0):
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}
        self.clock = clock
        self.timeout_s = timeout_s

    async def ensure_topics(self, wanted: dict[str, tuple[int, bool]]) -> dict[str, int]:
        """Create missing topics (``name -> (partitions, compacted)``); return every one's partition count."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_kwargs)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            for name, (n, compact) in wanted.items():
                if name in existing:
                    continue
                cfg = {"cleanup.policy": "compact"} if compact else {}
                try:
                    await admin.create_topics([NewTopic(name, n, 1, topic_configs=cfg)])
                except TopicAlreadyExistsError:
                    pass
            counts: dict[str, int] = {}
            deadline = self.clock() + self.timeout_s
            while True:
                meta = await admin.describe_topics(list(wanted))
                counts = {t["topic"]: len(t.get("partitions") or []) for t in meta if not t.get("error_code")}
                if all(counts.get(n) for n in wanted) or self.clock() > deadline:
                    return counts
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next message of ``topic``/``partition`` will get."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, **self.client_kwargs)
        await consumer.start()
        try:
            return (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()

    async def read_partition(self, topic: str, partition: int, start: int | None = None
                             ) -> tuple[list[tuple[bytes | None, bytes | None]], int]:
        """All (key, value) records of ``topic``/``partition`` from ``start`` (default: the beginning)
        up to the end offset seen when the read started; and that end offset."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_bytes=64 * 1024 * 1024,
                                    max_partition_fetch_bytes=16 * 1024 * 1024,
                                    **self.client_kwargs)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            begin = (await consumer.beginning_offsets([tp]))[tp]
            first = max(begin, start or 0)
            records: list[tuple[bytes | None, bytes | None]] = []
            if first >= end:
                return records, end
            consumer.seek(tp, first)
            deadline = self.clock() + self.timeout_s
            pos = first
            while pos < end:
                if self.clock() > deadline:
                    raise TimeoutError(f"reading {topic}[{partition}] stalled at offset {pos} of {end}")
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    if msg.offset >= end:
                        break
                    records.append((msg.key, msg.value))
                pos = await consumer.position(tp)
            return records, end
        finally:
            await consumer.stop()
