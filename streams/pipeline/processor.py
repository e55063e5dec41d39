"""Raw messages -> engine -> alerts and dead letters. Shared by the live worker and replay.

The processor owns no I/O: callers (a Faust agent, a file reader) hand it message values and
send what it returns. Bad input is never raised: it comes back as a DLQ record and is counted.
That holds for *any* exception decoding and validating one message causes. A *valid* event
the engine fails on is a bug, not bad input: that exception propagates, and the worker stops
without committing (:mod:`streams.worker.runtime`, exit status 70) instead of parking a valid event.
"""
from __future__ import annotations

import json
import logging
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from detectors.engine import Engine
from detectors.events import (
    DEFAULT_MAX_FUTURE_S,
    INVALID_KINDS,
    KIND_FUTURE,
    KIND_INTERNAL,
    Event,
    EventBatch,
    InvalidEvent,
    event_fields,
    format_ts,
    parse_batch,
    parse_event,
)
from detectors.gcpause import cyclic_gc_paused
from detectors.onsets import Onset

from .codecs import (
    KIND_WRONG_PARTITION,
    STREAM_KINDS,
    decode_message,
    dlq_record,
    partition_of,
    plain_object,
    plain_objects,
)
from .metrics import INVALID_OUTCOME, REREAD, WorkerMetrics, observe_many

log = logging.getLogger("lookout.processor")

#: customer ids whose hashed partition is remembered (~150 bytes each; cleared when full)
PARTITION_CACHE_SIZE = 200_000
#: the engine outcome of an event not newer than its customer's last one (it has no lag)
DUPLICATE = "duplicate"


@dataclass
class Output:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    #: events seen (an envelope counts its events, a message that is not even an envelope counts 1)
    events: int = 0
    #: (partition, offset, customer id or None if invalid) of every handled message that had a partition;
    #: an envelope's valid events share its offset (one entry per event, or one with None if none was valid)
    positions: list[tuple[int, int, str | None]] = field(default_factory=list)
    #: metrics not yet applied: outcome -> count, dead-letter kind -> count, lags, signal -> scores
    tally: "_Tally" = field(default_factory=lambda: _Tally())
    #: families newly anomalous (:mod:`detectors.onsets`), the correlator's input, in event order
    onsets: list[Onset] = field(default_factory=list)
    #: input partition -> (latest event time of the batch, its interval): how far each partition got
    event_time: dict[int, tuple[float, int]] = field(default_factory=dict)


@dataclass
class _Tally:
    outcomes: dict[str, int] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)


class Processor:
    """Decode, validate and process raw messages; bad ones become dead letters.

    A message is one event, or an *envelope* ``{"events": [...]}`` of many events of one input
    partition (see :func:`streams.pipeline.codecs.decode_message`). Each event of an envelope is checked on
    its own: a bad one is one dead letter (with its ``index`` in the envelope), its neighbours are
    processed. Metrics are applied once per :meth:`handle_many` batch, not per event.

    Parameters
    ----------
    engine : Engine
        The detection engine events are fed to.
    metrics : WorkerMetrics, optional
        Counters to update (events by outcome, dead letters by kind, lag, scores, alerts).
    clock : callable, optional
        Wall clock, epoch seconds: ``received_at`` of dead letters, event lag and the
        "too far in the future" check.
    dlq_topic : str, optional
        Dead-letter topic, the ``topic`` label of the dead-letter counter.
    max_future_s : float or None, optional
        An event whose ``ts`` is more than this ahead of ``clock()`` is dead-lettered (kind
        ``future``) and never reaches the engine, where it would make every later event of its
        customer a duplicate. ``None`` turns the check off.
    partitions : int or None, optional
        Partition count of the input topic. When given, an event (single or in an envelope)
        whose customer id does not hash (Kafka's default partitioner,
        :func:`streams.pipeline.codecs.partition_of`) to the message's partition is
        dead-lettered (kind ``wrong_partition``): its customer's state lives with another
        partition (the worker takes one as a sign the topic may have grown, and checks).
        ``None`` (replay of files) skips the check.
    """

    def __init__(self, engine: Engine, metrics: WorkerMetrics | None = None,
                 clock: Callable[[], float] = time.time, dlq_topic: str = "request-metrics-dlq",
                 max_future_s: float | None = DEFAULT_MAX_FUTURE_S, partitions: int | None = None):
        if max_future_s is not None and not max_future_s >= 0:
            raise ValueError(f"max_future_s must be >= 0 or None, got {max_future_s!r}")
        if partitions is not None and not partitions >= 1:
            raise ValueError(f"partitions must be >= 1 or None, got {partitions!r}")
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.dlq_topic = dlq_topic
        self.max_future_s = max_future_s
        # customer id -> hashed partition, at most PARTITION_CACHE_SIZE
        self._partition_of: dict[str, int] = {}
        self.partitions = partitions
        self._logged_errors: set[tuple[str, str]] = set()
        #: partition -> input offset below which the partition's events are re-read after a restore
        #: (the worker shares its book's bounds here): their duplicates count as ``reread``
        self.rerun_below: Mapping[int, int] = {}
        if metrics is not None:
            metrics.expect_dlq(dlq_topic, (*INVALID_KINDS, *STREAM_KINDS))

    @property
    def partitions(self) -> int | None:
        """Partition count of the input topic envelope events are checked against (None: no check)."""
        return self._partitions

    @partitions.setter
    def partitions(self, n: int | None) -> None:
        self._partitions = n
        self._partition_of.clear()
        self._homed: dict[int, set[str]] = {}  # partition -> customers known to hash to it

    def handle(
        self,
        value: bytes | str | None,
        *,
        key: Any = None,
        source: str = "",
        partition: int | None = None,
        offset: int | None = None,
        out: Output | None = None,
    ) -> Output:
        """Decode one raw message (an event or an envelope) and process it; metrics applied now."""
        out = out or Output()
        self._handle(value, key, source, partition, offset, out)
        self.flush_metrics(out)
        return out

    def _handle(
        self, value: Any, key: Any, source: str, partition: int | None, offset: int | None, out: Output
    ) -> None:
        self.process_events(self._decode(value, key, source, partition, offset, out), out)

    def _decode(
        self, value: Any, key: Any, source: str, partition: int | None, offset: int | None, out: Output
    ) -> Sequence[Event]:
        """:meth:`decode_events`, and the message's positions recorded in ``out``."""
        events = self.decode_events(
            value, key=key, source=source, partition=partition, offset=offset, out=out
        )
        if partition is not None and offset is not None:
            if events:
                cids = events.column("customer_id") if isinstance(events, EventBatch) else [
                    e.customer_id for e in events]
                out.positions.extend([(partition, offset, c) for c in cids])
                last_ts, interval_s = _latest(events)
                seen = out.event_time.get(partition)
                if seen is None or last_ts > seen[0]:
                    out.event_time[partition] = (last_ts, interval_s)
            else:
                out.positions.append((partition, offset, None))
        return events

    def decode_events(
        self,
        value: bytes | str | None,
        *,
        key: Any = None,
        source: str = "",
        partition: int | None = None,
        offset: int | None = None,
        out: Output,
    ) -> Sequence[Event]:
        """The valid events of message ``value`` (one, or an envelope's); each bad one becomes a dead letter.

        An envelope whose events are all valid comes back as one :class:`~detectors.events.EventBatch`.

        Never raises (except ``BaseException``s such as ``KeyboardInterrupt``).
        """
        decoded: Event | list[Any] | None = None
        check_partition = partition is not None and self.partitions is not None
        try:
            decoded = decode_message(value)
            if isinstance(decoded, Event):
                out.events += 1
                self._check_future(decoded)
                wrong = self._wrong_partition(decoded.customer_id, partition) if check_partition else None
                if wrong is not None:
                    self._park(value, wrong, KIND_WRONG_PARTITION, key, source, partition, offset, out)
                    return []
                return [decoded]
        except InvalidEvent as exc:
            if not isinstance(decoded, Event):
                out.events += 1
            self._park(value, str(exc), exc.kind, key, source, partition, offset, out)
            return []
        except Exception as exc:  # a decoder bug must not stop the stream either
            if not isinstance(decoded, Event):
                out.events += 1
            self._park(
                value, self._internal(exc, "decoder"), KIND_INTERNAL, key, source, partition, offset, out
            )
            return []
        out.events += len(decoded)
        batch = self._envelope_batch(decoded, partition if check_partition else None)
        if batch is not None:
            return batch
        events = []
        for i, obj in enumerate(decoded):
            try:
                event = parse_event(obj)
                self._check_future(event)
                wrong = self._wrong_partition(event.customer_id, partition) if check_partition else None
                if wrong is not None:
                    self._park(
                        _raw_of(obj),
                        f"envelope event {i}: {wrong}",
                        KIND_WRONG_PARTITION,
                        key,
                        source,
                        partition,
                        offset,
                        out,
                        index=i,
                    )
                    continue
                events.append(event)
            except InvalidEvent as exc:
                self._park(
                    _raw_of(obj),
                    f"envelope event {i}: {exc}",
                    exc.kind,
                    key,
                    source,
                    partition,
                    offset,
                    out,
                    index=i,
                )
            except Exception as exc:  # a validator bug: this event only
                self._park(
                    _raw_of(obj),
                    self._internal(exc, "decoder"),
                    KIND_INTERNAL,
                    key,
                    source,
                    partition,
                    offset,
                    out,
                    index=i,
                )
        return events

    def _envelope_batch(self, objs: list[Any], partition: int | None) -> EventBatch | None:
        """An envelope's events validated as a whole into columns (no event object each), or None
        when any of them is refused (then they are checked one by one, for each one's reason)."""
        try:
            batch = EventBatch.of_fields([event_fields(obj) for obj in objs])
        except Exception:  # a bad event (or a validator bug): one by one says which and why
            return None
        if not len(batch):
            return batch
        if self.max_future_s is not None and max(batch.column("ts")) - self.clock() > self.max_future_s:
            return None
        if partition is not None:
            known = self._homed.get(partition)
            cids = set(batch.column("customer_id"))
            if known is None or not cids <= known:  # (a C-speed check for customers seen before)
                home = self.home_of
                if any(home(c) != partition for c in cids):
                    return None
                if known is None or len(known) >= PARTITION_CACHE_SIZE:
                    known = self._homed[partition] = set()
                known |= cids
        return batch

    def decode_values(
        self, values: Sequence[Any], offsets: Sequence[int | None], *, source: str = "", out: Output
    ) -> Iterator[Sequence[Event]]:
        """The valid events of message ``values`` without key or partition (e.g. a file's lines), in order.

        Yields what :meth:`decode_events` would give value by value (the same events, and the
        same dead letters in ``out`` with ``offsets`` as their offsets), but plain single events
        (:func:`~streams.pipeline.codecs.decode_plain`) come out in
        :class:`~detectors.events.EventBatch` runs: all ``values`` checked as a whole when they
        are all plain and none is too far ahead of the clock; otherwise value by value, the plain
        ones still without an event object each, every other one through :meth:`decode_events`.
        """
        objs = plain_objects(values)  # the common case: every value plain, checked as a whole
        if objs is not None and set(map(type, objs)) == {dict}:
            try:
                batch = parse_batch(objs)
            except Exception:  # a bad event (or a validator bug): the objects serve below
                pass
            else:
                limit = self.max_future_s
                if limit is None or not batch or max(batch.column("ts")) - self.clock() <= limit:
                    out.events += len(batch)
                    yield batch
                    return
        # value by value: plain events still go into batches, anything else through decode_events
        rows: list[tuple[Any, ...]] = []
        limit = self.max_future_s
        for k, value in enumerate(values):
            obj = objs[k] if objs is not None else plain_object(value)
            fields = None
            if type(obj) is dict:
                try:
                    fields = event_fields(obj)
                except Exception:  # decode_events says why
                    fields = None
            if fields is not None and (limit is None or fields[1] - self.clock() <= limit):
                rows.append(fields)
                continue
            if rows:
                out.events += len(rows)
                yield EventBatch.of_fields(rows)
                rows = []
            yield self.decode_events(value, source=source, offset=offsets[k], out=out)
        if rows:
            out.events += len(rows)
            yield EventBatch.of_fields(rows)

    def _check_future(self, event: Event) -> None:
        if self.max_future_s is not None:
            ahead = event.ts - self.clock()
            if ahead > self.max_future_s:
                raise InvalidEvent(
                    f"ts {format_ts(event.ts)} is {ahead:,.0f} s ahead of the wall clock "
                    f"(at most {self.max_future_s:g} s)",
                    KIND_FUTURE,
                )

    def home_of(self, customer_id: str) -> int:
        """The input partition ``customer_id`` hashes to under :attr:`partitions` (which must be set)."""
        home = self._partition_of.get(customer_id)
        if home is None:
            assert self.partitions is not None
            home = partition_of(customer_id, self.partitions)
            if len(self._partition_of) >= PARTITION_CACHE_SIZE:  # ids need not be customers we know
                self._partition_of.clear()
            self._partition_of[customer_id] = home
        return home

    def _wrong_partition(self, customer_id: str, partition: int) -> str | None:
        """Why ``customer_id`` does not belong to ``partition``, or None if it does."""
        home = self.home_of(customer_id)
        if home == partition:
            return None
        return (
            f"customer {customer_id!r} belongs to partition {home} of {self.partitions} "
            f"(murmur2 of the customer id), not to this message's partition {partition}"
        )

    def _internal(self, exc: Exception, where: str, customer: str | None = None) -> str:
        """Reason for an unexpected exception; logged with its traceback once per exception type."""
        name = type(exc).__name__
        if (where, name) not in self._logged_errors:
            self._logged_errors.add((where, name))
            log.error(
                "%s failed on a message (%s); it is dead-lettered, further %s errors are only counted",
                where,
                customer or "no customer",
                name,
                exc_info=exc,
            )
        try:
            detail = str(exc)[:200]
        except Exception:  # str() of an exception can fail too
            detail = "?"
        return f"internal error in the {where}: {name}: {detail}"

    def _park(
        self,
        value: Any,
        reason: str,
        kind: str,
        key: Any,
        source: str,
        partition: int | None,
        offset: int | None,
        out: Output,
        index: int | None = None,
    ) -> None:
        out.dlq.append(
            dlq_record(
                value,
                reason,
                kind=kind,
                key=key,
                source=source,
                partition=partition,
                offset=offset,
                now=self.clock(),
                index=index,
            )
        )
        if self.metrics is not None:
            t = out.tally
            t.outcomes[INVALID_OUTCOME] = t.outcomes.get(INVALID_OUTCOME, 0) + 1
            t.dlq[kind] = t.dlq.get(kind, 0) + 1

    def process_events(self, events: Sequence[Event], out: Output,
                       spans: Sequence[tuple[int, int, int]] = ()) -> None:
        """Run decoded ``events`` through the engine in one batch; collect alerts (and metrics) in ``out``.

        ``spans``: (index of a message's first event, its partition, its offset), in order, for
        telling re-read events (see :attr:`rerun_below`) from real duplicates.

        A valid event the engine fails on is not bad input but a bug: the exception propagates,
        and the worker stops without committing (:mod:`streams.worker.runtime`) rather than park a
        valid event.
        """
        if not events:
            return
        verdict = self.engine.process_many(events)
        alerts = verdict.alerts
        if alerts:
            out.alerts.extend(alerts)
        if verdict.onsets:
            out.onsets.extend(verdict.onsets)
        if self.metrics is None:
            return
        t = out.tally
        counts = t.outcomes
        outcomes = verdict.outcomes
        by_outcome = Counter(outcomes)
        duplicates = by_outcome.get(DUPLICATE)
        if duplicates and spans and self.rerun_below:
            reread = self._rereads(outcomes, spans)
            if reread:
                by_outcome[DUPLICATE] -= reread
                by_outcome[REREAD] = reread
        for outcome, n in by_outcome.items():
            if n:
                counts[outcome] = counts.get(outcome, 0) + n
        # event ends, turned into lags at flush time (one clock read); duplicates have no lag
        if isinstance(events, EventBatch):
            ends = map(float.__add__, events.column("ts"), map(float, events.column("interval_s")))
        else:
            ends = (e.ts + e.interval_s for e in events)
        if duplicates:
            t.lags.extend([end for end, o in zip(ends, outcomes) if o != DUPLICATE])
        else:
            t.lags.extend(ends)
        scores = t.scores
        for sig, values in verdict.scores.items():
            lst = scores.get(sig)
            if lst is None:
                scores[sig] = list(values)
            else:
                lst.extend(values)
        if alerts:
            t.alerts.extend(alerts)

    def _rereads(self, outcomes: Sequence[str], spans: Sequence[tuple[int, int, int]]) -> int:
        """How many of the duplicates are events of messages below their partition's re-run bound."""
        starts = [s[0] for s in spans]
        below = self.rerun_below
        n = 0
        for k, o in enumerate(outcomes):
            if o == DUPLICATE:
                _, p, offset = spans[bisect_right(starts, k) - 1]
                if offset < below.get(p, 0):
                    n += 1
        return n

    def flush_metrics(self, out: Output) -> None:
        """Apply what ``out`` tallied to the metrics, once (a batch's label lookups, not an event's)."""
        m, t = self.metrics, out.tally
        if m is None:
            return
        for outcome, n in t.outcomes.items():
            m.events.labels(outcome).inc(n)
        for kind, n in t.dlq.items():
            m.dlq.labels(self.dlq_topic, kind).inc(n)
        if t.lags:
            now = self.clock()
            observe_many(m.lag, [max(0.0, now - end) for end in t.lags])
        for sig, values in t.scores.items():
            observe_many(m.scores.labels(sig), values)
        for a in t.alerts:
            m.observe_alert(a)
        out.tally = _Tally()

    def handle_many(self, records: Iterable[tuple[Any, Any, str, int | None, int | None]]) -> Output:
        """``records`` = (key, value, source, partition, offset) tuples, processed in order.

        Every message is decoded and validated first (dead letters and positions in message
        order), then all valid events of the batch go to the engine in ONE
        :meth:`~detectors.engine.Engine.process_many` call (alerts in event order), then the
        metrics are applied once.
        """
        outs = list(self.handle_chunks(records))
        return outs[0] if outs else Output()

    def handle_chunks(self, records: Iterable[tuple[Any, Any, str, int | None, int | None]],
                      max_events: int | None = None) -> Iterator[Output]:
        """:meth:`handle_many` in chunks of about ``max_events`` events: one :class:`Output` each.

        A chunk takes messages until it holds ``max_events`` events or more (an envelope counts
        as its events; a message is never split, so one envelope may exceed it); its valid
        events go to the engine in one call. The caller publishes a chunk's alerts before
        asking for the next one, so no chunk's work waits for the whole batch. ``None``: one
        chunk (what :meth:`handle_many` returns). Yields nothing for no records.

        >>> p = Processor(Engine())
        >>> msg = lambda c: (None, f'{{"customer_id": "{c}", "ts": 0, "requests": 1, '
        ...                        f'"status_4xx": 0, "status_5xx": 0}}', "t", 0, 0)
        >>> [o.events for o in p.handle_chunks([msg(c) for c in "abcde"], max_events=2)]
        [2, 2, 1]
        """
        it = iter(records)
        decode = self._decode
        limit = max_events if max_events is not None and max_events > 0 else None
        more = True
        while more:
            out = Output()
            t0 = time.perf_counter()
            parts: list[Sequence[Event]] = []  # each message's valid events (envelopes: a batch)
            n = 0
            #: (index of the message's first event, partition, offset) of messages with events
            spans: list[tuple[int, int, int]] = []
            more = False
            with cyclic_gc_paused():
                for key, value, source, partition, offset in it:
                    got = decode(value, key, source, partition, offset, out)
                    if got:
                        if partition is not None and offset is not None:
                            spans.append((n, partition, offset))
                        parts.append(got)
                        n += len(got)
                    if limit is not None and out.events >= limit:
                        more = True
                        break
                one = len(parts) == 1 and isinstance(parts[0], EventBatch)
                events = parts[0] if one else EventBatch.of(parts)
                self.process_events(events, out, spans)
                del parts, events
            if not (out.events or out.positions or out.dlq):
                return
            self.flush_metrics(out)
            if self.metrics is not None and out.events:
                self.metrics.batch_seconds.observe(time.perf_counter() - t0)
                self.metrics.batch_events.observe(out.events)
            yield out

    def open_by_severity(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inc in self.engine.open_incidents():
            counts[inc.severity] = counts.get(inc.severity, 0) + 1
        return counts


def _latest(events: Sequence[Event]) -> tuple[float, int]:
    """(event time, interval) of the latest of ``events`` (a batch: read from its columns)."""
    if isinstance(events, EventBatch):
        ts = events.column("ts")
        i = max(range(len(ts)), key=ts.__getitem__)
        return ts[i], events.column("interval_s")[i]
    last = max(events, key=lambda e: e.ts)
    return last.ts, last.interval_s


def _raw_of(obj: Any) -> str:
    """An envelope event as JSON text, for its dead letter (it came from JSON, so it encodes)."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # pragma: no cover - decoded JSON always encodes
        return repr(obj)
