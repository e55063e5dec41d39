"""``lookout topics repartition --partitions N``: move the detector state to a new input partition count.

Why (see :mod:`streams.worker.layout`): a customer's events, state and alerts live in the
partition its id hashes to under the input topic's partition count. When the count grows, most
customers hash elsewhere; the workers stop rather than split a customer. This does, with the
workers stopped, what they could not do safely online, and leaves a consistent state for the new
count, with nothing lost, repeated or warming up again:

1. refuse while the consumer group has members (a worker still running would race it);
2. grow the input, ``alerts`` and state topics to ``N`` partitions (those already there keep theirs);
3. load every customer's state from every state partition into one engine: the newest record of
   a customer (by its last event time) wins wherever it lies, so a record left in an old partition
   never overrides a newer one;
4. *drain*: run the events after every partition's marker up to its end through the same
   pipeline as the worker, in two passes that keep each customer's events in order across the
   change: first the events still in the partition their customer hashed to under the old count
   (the backlog from before the change, and the customers that did not move), then the rest
   (events that producers sent to a customer's new partition after the change). Alerts go to
   the alerts partition of their customer's new partition (the sinks then read a moved
   customer's alerts from one partition, in order), except those already on the topic since the
   markers (a re-run sends none twice), and with the correlator on to its stage two as well (the
   sinks read what it routes), dead letters to the dead-letter topic;
5. move the Alertmanager sink's open alerts with their customers (:mod:`.open_alerts`);
6. write each customer whose partition changed (or whose state the drain changed) to its new
   partition of the state topic, then tombstones for its records in old ones; commit the group's
   input offsets at the drained ends; then a marker for every partition naming the new count.

Each step is safe to interrupt: until the last markers are written the workers refuse to start
(the markers still name the old count) and running the command again starts over from the old
markers, finding the newest records and the alerts already sent. Producers should all use the
new count (Kafka clients pick it up within ``metadata.max.age.ms``, 5 minutes by default) before
the workers start again: an event a producer still sends to a customer's old partition is then a
``wrong_partition`` dead letter.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from detectors.config import load_config
from detectors.engine import Engine, StateError
from detectors.events import Event
from streams.correlation.messages import encode_batches
from streams.correlation.publisher import PARENTS_KEY
from streams.kafka.admin import wait_for_kafka
from streams.kafka.security import aiokafka_kwargs, kafka_python_kwargs
from streams.pipeline.codecs import encode_json, partition_of
from streams.pipeline.processor import Output, Processor
from streams.settings import Settings
from streams.state.book import MARKER_KEY, Marker, alert_key
from streams.state.history import history_topic_config
from streams.state.reader import StateReader

from .open_alerts import move_open_alerts

log = logging.getLogger("lookout.repartition")

#: events per engine call while draining
DRAIN_CHUNK = 5000
#: how much longer than the group's session timeout members are waited for before giving up
MEMBERS_GRACE_S = 10.0


class RepartitionError(RuntimeError):
    """The repartition cannot be done (one line, safe to show as a CLI error)."""


@dataclass
class Report:
    """What :func:`repartition` did."""

    old: int  # the input partition count the state was laid out for
    new: int
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)  # topic -> (before, after)
    customers: int = 0
    moved: int = 0  # customers whose state moved to another partition
    unusable: int = 0  # state records that could not be used (those customers start cold)
    drained: int = 0  # events run after the markers
    alerts: int = 0  # alerts sent by the drain
    suppressed: int = 0  # alerts the drain reproduced that were on the alerts topic already
    dead_letters: int = 0
    open_alerts: int = 0  # customers whose open alerts (Alertmanager sink) moved partition
    history: int = 0  # state history checkpoints copied to their customer's new partition
    nothing_to_do: bool = False

    def lines(self) -> list[str]:
        if self.nothing_to_do:
            return [f"already laid out for {self.new} input partitions: nothing to do"]
        out = [f"{t}: {a} -> {b} partitions" for t, (a, b) in self.grown.items()]
        out.append(f"state of {self.customers:,} customers laid out for {self.old} -> {self.new} input "
                   f"partitions: {self.moved:,} moved partition")
        out.append(f"drained {self.drained:,} events after the markers: {self.alerts} alerts sent "
                   f"({self.suppressed} already on the alerts topic), {self.dead_letters} dead letters")
        if self.open_alerts:
            out.append(f"open alerts of {self.open_alerts} customers moved to their new partitions")
        if self.history:
            out.append(f"{self.history:,} state history checkpoints copied to their customers' new "
                       "partitions")
        if self.unusable:
            out.append(f"{self.unusable} state records were unusable: those customers start cold")
        out.append("the workers may start now")
        return out


class _Kafka:
    """The Kafka ends of one repartition: reads (:class:`StateReader`), admin calls, a producer."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.kwargs = aiokafka_kwargs(settings)
        self.reader = StateReader(settings.bootstrap, self.kwargs,
                                  timeout_s=max(30.0, settings.kafka_timeout_s))
        self.admin: Any = None
        self.producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient

        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap, **self.kwargs)
        await self.admin.start()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                         max_request_size=4 * 1024 * 1024, **self.kwargs)
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.admin is not None:
            await self.admin.close()

    async def members(self, group: str) -> list[str]:
        """Hosts of the consumer group's active members."""
        groups = [g for resp in await self.admin.describe_consumer_groups([group]) for g in resp.groups]
        return [str(m[2]) for g in groups for m in (g[5] or [])]

    async def ends(self, topic: str, n: int) -> dict[int, int]:
        got = await self.reader.end_offsets([(topic, p) for p in range(n)])
        return {p: got[(topic, p)] for p in range(n)}


def repartition_topics(settings: Settings, partitions: int, *,
                       progress: Callable[[str], Any] = lambda line: None) -> Report:
    """``lookout topics repartition``: :func:`repartition` once the broker answers (one line if
    not: :class:`~streams.kafka.admin.BrokerError`)."""
    wait_for_kafka(settings.bootstrap, timeout=settings.kafka_timeout_s,
                   security=kafka_python_kwargs(settings))
    return asyncio.run(repartition(settings, partitions, progress=progress))


async def repartition(settings: Settings, partitions: int, *, engine: Engine | None = None,
                      progress: Callable[[str], Any] = lambda line: None) -> Report:
    """Lay Lookout's topics and detector state out for ``partitions`` input partitions (module doc).

    Raises :class:`RepartitionError` when it cannot (workers running, fewer partitions than the
    input topic has, a topic missing).
    """
    kafka = _Kafka(settings)
    await kafka.start()
    try:
        return await _repartition(kafka, settings, partitions, engine, progress)
    finally:
        await kafka.stop()


async def _repartition(kafka: _Kafka, settings: Settings, n: int, engine: Engine | None,
                       progress: Callable[[str], Any]) -> Report:
    s, reader = settings, kafka.reader
    await _require_stopped(kafka, s, progress)
    history = s.state_history_topic_name
    counts = {t: await reader.partition_count(t)
              for t in (s.input_topic, s.alerts_topic, s.state_topic_name, history)}
    n_in = counts[s.input_topic]
    if n_in is None:
        raise RepartitionError(f"input topic {s.input_topic!r} does not exist")
    if n < n_in:
        raise RepartitionError(f"--partitions {n} is fewer than input topic {s.input_topic!r} has ({n_in}): "
                               "Kafka cannot take partitions away")
    n_state = counts[s.state_topic_name] or 0
    records, markers = await _read_state(reader, s.state_topic_name, n_state)
    old = _old_layout(markers, n_state or n_in)  # no marker yet: the layout the state topic was made with
    if old == n and all((counts[t] or 0) >= n for t in counts):
        return Report(old, n, nothing_to_do=True)
    report = Report(old, n)
    for topic, have in counts.items():
        if (have or 0) < n:
            progress(f"growing {topic} from {have or 0} to {n} partitions")
            config = history_topic_config(s.history_retention_s) if topic == history else (
                topic == s.state_topic_name)
            await reader.ensure_partitions(topic, n, config)
            report.grown[topic] = (have or 0, n)
    engine = engine or Engine(load_config(s.detector_config))
    origin = _load(engine, records, markers, report)
    progress(f"loaded the state of {report.customers:,} customers; draining the events after the markers")
    proc = Processor(engine, dlq_topic=s.dlq_topic, max_future_s=s.max_future_s)
    engine.pop_dirty()
    ends = await _drain(kafka, s, proc, markers, old, n, report)
    changed = engine.pop_dirty()
    report.open_alerts = await move_open_alerts(reader, kafka.producer.send, s, old, n)
    await kafka.producer.flush()
    progress("copying moved customers' state history checkpoints to their new partitions")
    report.history = await _move_history(kafka, history, counts[history] or 0, n, engine)
    progress("writing the state for the new layout")
    await _write(kafka, s, engine, origin, changed, markers, ends, n, report)
    return report


async def _require_stopped(kafka: _Kafka, s: Settings, progress: Callable[[str], Any]) -> None:
    """Wait until the consumer group has no members: a worker that stopped itself (exit status 78)
    or was killed stays a member until its session times out; one still running never leaves."""
    deadline = time.monotonic() + s.session_timeout_s + MEMBERS_GRACE_S
    said = False
    while hosts := await kafka.members(s.app_id):
        if time.monotonic() > deadline:
            raise RepartitionError(f"consumer group {s.app_id!r} has {len(hosts)} active member(s) "
                                   f"({', '.join(sorted(set(hosts)))}): stop every worker first")
        if not said:
            progress(f"waiting for the {len(hosts)} member(s) of group {s.app_id!r} to leave (a stopped "
                     f"worker's session ends within {s.session_timeout_s:g} s)")
            said = True
        await asyncio.sleep(1.0)


async def _read_state(reader: StateReader, topic: str, n: int
                      ) -> tuple[dict[int, dict[bytes, bytes]], dict[int, Marker | None]]:
    """Every state partition's customer records (the newest per key, tombstones dropped) and marker."""
    records: dict[int, dict[bytes, bytes]] = {}
    markers: dict[int, Marker | None] = {}
    for p in range(n):
        latest: dict[bytes, bytes | None] = {}
        marker = None
        for k, v in (await reader.read_partition(topic, p))[0]:
            if k == MARKER_KEY:
                marker = v
            elif k is not None:
                latest[k] = v
        records[p] = {k: v for k, v in latest.items() if v is not None}
        try:
            markers[p] = Marker.decode(marker) if marker is not None else None
        except ValueError as exc:
            log.warning("state partition %d: unreadable marker (%s); its customers start cold", p, exc)
            markers[p], records[p] = None, {}
    return records, markers


def _old_layout(markers: dict[int, Marker | None], n_state: int) -> int:
    """The input partition count the state was written for: what the markers name, or for markers
    written before Lookout recorded it, one more than the highest partition with a marker; with no
    marker at all (the workers stopped before their first snapshot), ``n_state``, the state topic's
    partition count: the worker creates it with the input's count, so it still says the old layout
    after the input grew (the input's new count would make the drain run a moved customer's new
    events before its old ones).

    >>> m = lambda n: Marker(0, 0, 0.0, 0, "f", n)
    >>> _old_layout({0: m(8), 7: m(8), 9: None}, 12), _old_layout({0: m(None), 5: m(None)}, 12)
    (8, 6)
    >>> _old_layout({}, 4)
    4
    """
    named = {m.partitions for m in markers.values() if m is not None and m.partitions is not None}
    if len(named) > 1:
        raise RepartitionError(f"state partitions' markers name different partition counts: {sorted(named)}")
    if named:
        return named.pop()
    with_marker = [p for p, m in markers.items() if m is not None]
    return max(with_marker) + 1 if with_marker else n_state


def _load(engine: Engine, records: dict[int, dict[bytes, bytes]], markers: dict[int, Marker | None],
          report: Report) -> dict[str, set[int]]:
    """Load the newest record of every customer; return customer -> state partitions holding one."""
    fingerprint = engine.config.model_fingerprint()
    origin: dict[str, set[int]] = {}
    best: dict[str, tuple[float, int, bytes]] = {}  # customer -> (last event time, partition, record)
    for p, recs in records.items():
        m = markers.get(p)
        if m is not None and m.fingerprint != fingerprint:
            log.warning("state partition %d was written with other model settings: its customers start cold",
                        p)
            report.unusable += len(recs)
            continue
        for k, v in recs.items():
            try:
                cid = k.decode("ascii")
                engine.load_customer(cid, v)
            except (UnicodeDecodeError, StateError) as exc:
                report.unusable += 1
                log.warning("state partition %d: record %r unusable (%s)", p, k[:64], exc)
                continue
            origin.setdefault(cid, set()).add(p)
            ts = engine.last_ts_of(cid)
            candidate = (float("-inf") if ts is None else ts, p, v)
            if cid not in best or candidate[0] > best[cid][0]:
                best[cid] = candidate
    for cid, (_, _, v) in best.items():
        engine.load_customer(cid, v)  # the newest wins, whichever was loaded last
    report.customers = len(best)
    return origin


async def _drain(kafka: _Kafka, s: Settings, proc: Processor, markers: dict[int, Marker | None],
                 old: int, n: int, report: Report) -> dict[int, int]:
    """Run every partition's events after its marker; return each partition's drained end."""
    ends = await kafka.ends(s.input_topic, n)
    later: dict[int, list[Event]] = {}  # partition -> its events for the second pass
    suppress: set[tuple] = set()  # alerts on the topic since the markers, wherever they are
    for p in range(n):
        m = markers.get(p)
        suppress |= await _sent_alerts(kafka.reader, s.alerts_topic, p, m.alerts_offset if m else 0)
    for p in range(n):
        m = markers.get(p)
        first: list[Event] = []
        later[p] = []
        start = m.input_offset if m else None
        async for chunk, _ in kafka.reader.iter_partition(s.input_topic, p, start, stop=ends[p]):
            out = Output()
            for offset, key, value in chunk:
                for e in proc.decode_events(value, key=key, source=s.input_topic, partition=p, offset=offset,
                                            out=out):
                    stayed = p < old and partition_of(e.customer_id, old) == p
                    (first if stayed else later[p]).append(e)
            await _send(kafka, s, out, n, suppress, report)
            if len(first) >= DRAIN_CHUNK:
                await _run(kafka, s, proc, first, n, suppress, report)
                first = []
        await _run(kafka, s, proc, first, n, suppress, report)
    for p in range(n):
        events = later[p]
        for i in range(0, len(events), DRAIN_CHUNK):
            await _run(kafka, s, proc, events[i:i + DRAIN_CHUNK], n, suppress, report)
    await kafka.producer.flush()
    return ends


async def _sent_alerts(reader: StateReader, topic: str, p: int, start: int) -> set[tuple]:
    """Keys of the alerts on partition ``p`` of the alerts topic from ``start`` (the marker's)."""
    keys = set()
    for _, v in (await reader.read_partition(topic, p, start))[0]:
        try:
            keys.add(alert_key(json.loads(v)))
        except (TypeError, ValueError):
            continue
    return keys


async def _run(kafka: _Kafka, s: Settings, proc: Processor, events: list[Event], n: int,
               suppress: set[tuple], report: Report) -> None:
    if not events:
        return
    out = Output()
    proc.process_events(events, out)
    report.drained += len(events)
    await _send(kafka, s, out, n, suppress, report)


async def _send(kafka: _Kafka, s: Settings, out: Output, n: int, suppress: set[tuple],
                report: Report) -> None:
    """Alerts to their customer's partition under ``n`` (unless on the topic already), dead letters.

    Under ``n``, not the event's partition: a moved customer's alerts from its old partition's
    backlog and from its new partition then reach the sinks in one partition, in order. With the
    correlator on, the sinks read what it routes, not ``alerts``: the same alerts also go to its
    stage two (the parents topic, as a worker's publisher sends them), after everything the
    stopped workers sent there, so they are routed in order once the workers start (paging alone
    unless they join a parent: the drain sends no onsets to group tests that are long decided)."""
    routed: list[bytes] = []
    for a in out.alerts:
        if alert_key(a) in suppress:
            report.suppressed += 1
            continue
        value = encode_json(a)
        await kafka.producer.send(s.alerts_topic, key=a["customer_id"].encode(), value=value,
                                  partition=partition_of(a["customer_id"], n))
        routed.append(value)
        report.alerts += 1
    if s.correlator:
        for record in encode_batches(routed, [], field="alerts"):
            await kafka.producer.send(s.parents_topic_name, key=PARENTS_KEY, value=record, partition=0)
    for d in out.dlq:
        key = d["key"].encode() if isinstance(d.get("key"), str) else None
        await kafka.producer.send(s.dlq_topic, key=key, value=encode_json(d))
        report.dead_letters += 1


async def _move_history(kafka: _Kafka, topic: str, have: int, n: int, engine: Engine) -> int:
    """Copy every checkpoint on the state history topic's first ``have`` partitions whose customer
    hashes to another partition under ``n`` to that one, with its record time (the event time it
    covers); return how many. A rebuild reads the history partition of its customer's input
    partition only (:class:`~streams.offline.relearn.KafkaHistory`): a moved customer's
    checkpoints from before the change would not be found. The originals expire with the topic's
    retention; a re-run copies them again (a duplicate checkpoint is harmless: the newest before a
    time is taken)."""
    copied = 0
    for q in range(have):
        async for chunk, _ in kafka.reader.iter_partition(topic, q):
            for _, key, value in chunk:
                try:
                    cid = key.decode("ascii") if key is not None and value is not None else None
                    home = q if cid is None else partition_of(cid, n)
                    last = None if home == q else engine.record_last_ts(cid, value)
                except (UnicodeDecodeError, StateError):
                    continue  # a rebuild would skip it too
                if last is not None:
                    await kafka.producer.send(topic, key=key, value=value, partition=home,
                                              timestamp_ms=int(last * 1000))
                    copied += 1
    await kafka.producer.flush()
    return copied


async def _write(kafka: _Kafka, s: Settings, engine: Engine, origin: dict[str, set[int]], changed: set[str],
                 markers: dict[int, Marker | None], ends: dict[int, int], n: int, report: Report) -> None:
    """Customers to their new partitions, tombstones, the group's commits, then the markers."""
    topic, send = s.state_topic_name, kafka.producer.send
    written = dict.fromkeys(range(n), 0)
    for cid in engine.customers:
        home = partition_of(cid, n)
        was = origin.get(cid, set())
        if home not in was or cid in changed or len(was) > 1:
            await send(topic, key=cid.encode(), value=engine.dump_customer(cid), partition=home)
            written[home] += 1
        report.moved += home not in was
    await kafka.producer.flush()
    for cid, was in origin.items():
        home = partition_of(cid, n)
        for q in was - {home}:
            await send(topic, key=cid.encode(), value=None, partition=q)
    await kafka.producer.flush()
    # the group resumes where the markers will say; until they are written the workers refuse to start
    await kafka.reader.commit(s.app_id, s.input_topic, ends)
    alerts_end = await kafka.ends(s.alerts_topic, n)
    fingerprint = engine.config.model_fingerprint()
    for p in range(n):
        m = Marker(ends[p], alerts_end[p], time.time(), written[p], fingerprint, n)
        await send(topic, key=MARKER_KEY, value=m.encode(), partition=p)
    await kafka.producer.flush()
