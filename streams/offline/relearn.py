"""A customer's past read from Kafka, for rebuilding its models: a checkpoint and the events since.

A rebuild (:func:`detectors.steering.rebuild_models`: an ``expected`` verdict, a window
announced after it began, a withdrawal) needs the customer's state from before some event time
and its events after that state. Both are read here through replay's code path -- a
:class:`~streams.offline.kafka_source.KafkaSource` on the customer's partition and the
:class:`~streams.pipeline.processor.Processor`'s decoder -- so the same functions can serve a
worker that rebuilds state from the input topic's retained history after a model upgrade:

* :func:`checkpoint_before` -- the newest record of the customer on the state history topic
  (:mod:`streams.state.history`, record time = the event time it covers) older than a time;
* :func:`customer_events` -- the customer's valid events in an event-time range of the input topic;
* :class:`KafkaHistory` -- both as a :class:`~detectors.steering.History` for the worker's
  engine, prefetched off the event loop when a verdict or window calls for a rebuild.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Callable, Iterable

from detectors.engine import Engine
from detectors.events import Event
from detectors.state import StateError
from streams.pipeline.processor import Output, Processor

from .kafka_source import KafkaSource
from .sources import Source

__all__ = ["KafkaHistory", "checkpoint_before", "customer_events"]

log = logging.getLogger("lookout.relearn")

#: Kafka message times of events trail their event times by up to this (production delay)
MARGIN_S = 900.0


def customer_events(source: Source, cid: str, after: float, before: float) -> list[Event]:
    """``cid``'s valid events with ``after < ts < before`` in ``source``, in event-time order (the
    last one kept for a repeated time). Messages keyed by another customer are skipped unread."""
    proc = Processor(None, max_future_s=None)  # type: ignore[arg-type]  # (only its decoder is used)
    out = Output()
    key_of = cid.encode()
    found: dict[float, Event] = {}
    for value, key, partition, offset in source.records():
        if value is None or (key is not None and key != key_of):
            continue
        if key is None and key_of not in (value if isinstance(value, bytes) else str(value).encode()):
            continue
        for e in proc.decode_events(value, key=key, partition=partition, offset=offset, out=out):
            if e.customer_id == cid and after < e.ts < before:
                found[e.ts] = e
        out.dlq.clear()
    return [found[t] for t in sorted(found)]


def checkpoint_before(source: Source, cid: str, before: float, engine: Any) -> bytes | None:
    """The newest state record of ``cid`` in ``source`` whose last event is before ``before``
    (records ``engine``'s codec refuses are skipped), or None."""
    best, best_ts = None, -math.inf
    key_of = cid.encode()
    for value, key, _, _ in source.records():
        if key != key_of or value is None:
            continue
        try:
            last_ts = engine.record_last_ts(cid, value)
        except StateError:
            continue
        if last_ts is not None and best_ts < last_ts < before:
            best, best_ts = value, last_ts
    return best


class KafkaHistory:
    """:class:`~detectors.steering.History` on Kafka: the state history topic and the input topic.

    Parameters
    ----------
    bootstrap, security
        The broker and kafka-python TLS/SASL arguments.
    history_topic, input_topic
        Where checkpoints and events are.
    partition_of
        A customer's input partition (None: not this worker's).
    interval_s
        How often checkpoints are written (how far back one is looked for).
    engine
        An engine of the worker's configuration (its codec reads the checkpoints).
    """

    def __init__(self, bootstrap: str, history_topic: str, input_topic: str,
                 partition_of: Callable[[str], Any], interval_s: float, engine: Engine,
                 security: dict[str, Any] | None = None, timeout_s: float = 10.0):
        self.bootstrap = bootstrap
        self.history_topic = history_topic
        self.input_topic = input_topic
        self.partition_of = partition_of
        self.interval_s = interval_s
        self.engine = engine
        self.security = security or {}
        self.timeout_s = timeout_s
        #: (customer, since) -> (checkpoint, events read when prefetched); live events are added
        self._cache: dict[str, tuple[float, bytes | None, list[Event]]] = {}
        self._tasks: set[asyncio.Future] = set()

    def _source(self, topic: str, partition: int, start: float, end: float | None) -> KafkaSource:
        return KafkaSource(topic, self.bootstrap, start, end, self.timeout_s, self.security,
                           partitions=[partition])

    def _load(self, cid: str, since: float) -> tuple[bytes | None, list[Event]]:
        p = self.partition_of(cid)
        if p is None:
            return None, []
        iv = self.interval_s
        hist = self._source(self.history_topic, p, since - 3 * iv - MARGIN_S, since + iv)
        blob = checkpoint_before(hist, cid, since, self.engine)
        if blob is None:
            return None, []
        last_ts = self.engine.record_last_ts(cid, blob)
        start = (last_ts if last_ts is not None else since) - MARGIN_S
        events = customer_events(self._source(self.input_topic, p, start, None), cid,
                                 last_ts if last_ts is not None else -math.inf, math.inf)
        return blob, events

    # -- detectors.steering.History
    def checkpoint(self, customer_id: str, before: float) -> bytes | None:
        hit = self._cache.get(customer_id)
        if hit is None or hit[0] > before:
            log.info("rebuild of %s: history not prefetched, reading it now", customer_id)
            blob, events = self._load(customer_id, before)
            hit = self._cache[customer_id] = (before, blob, events)
        return hit[1]

    def events(self, customer_id: str, after: float, before: float) -> list[Event]:
        hit = self._cache.pop(customer_id, None)  # a rebuild uses it once
        return [] if hit is None else [e for e in hit[2] if after < e.ts < before]

    # -- the worker
    def prefetch(self, customer_id: str, since: float) -> None:
        """Read the customer's past in a thread now (the rebuild then needs no Kafka read)."""
        async def load() -> None:
            try:
                blob, events = await asyncio.to_thread(self._load, customer_id, since)
            except Exception as exc:  # the rebuild reads again (and counts it unavailable if that fails)
                log.warning("prefetching the history of %s failed (%s: %s)", customer_id,
                            type(exc).__name__, exc)
                return
            self._cache[customer_id] = (since, blob, events)

        task = asyncio.ensure_future(load())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record(self, events: Iterable[Event]) -> None:
        """Events the worker processed after a prefetch read the topic (kept for the rebuild)."""
        for e in events:
            hit = self._cache.get(e.customer_id)
            if hit is not None:
                hit[2].append(e)

    async def settled(self) -> None:
        """Wait for the prefetches in flight (the agent does, before a batch)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
