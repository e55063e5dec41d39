"""Kafka source: ``kafka://TOPIC?from=..&to=..&bootstrap=..``, a time range of a topic.

Offsets come from ``offsets_for_times`` per partition; the consumer has no group id and never
commits, so it never touches the live consumer group. Partitions are merged by message timestamp
(approximately event time); per-customer order -- all the detectors need -- is Kafka's per-key order.

>>> KafkaSource.from_url("kafka://request-metrics?from=2026-01-01T00:00:00Z&bootstrap=h:9092").describe()["from"]
'2026-01-01T00:00:00Z'
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

from detectors.events import InvalidEvent, format_ts, parse_time
from streams.kafka.admin import AUTH_CHECK_S, auth_failure
from streams.kafka.security import rejection
from streams.settings import Settings

from .sources import Record, Source, SourceError


class KafkaSource(Source):
    """A time range of a Kafka topic, read without a consumer group (never commits offsets)."""

    unit = "msg"
    KNOWN = ("from", "to", "bootstrap", "timeout")

    def __init__(self, topic: str, bootstrap: str, start: float | None = None, end: float | None = None,
                 timeout_s: float = 10.0, security: Mapping[str, Any] | None = None,
                 partitions: Sequence[int] | None = None):
        self.topic, self.bootstrap, self.start, self.end, self.timeout_s = (
            topic,
            bootstrap,
            start,
            end,
            timeout_s,
        )
        #: kafka-python TLS/SASL arguments (streams.kafka.security.kafka_python_kwargs)
        self.security = dict(security or {})
        self.name = f"kafka://{topic}"
        #: only these partitions (e.g. the one a customer hashes to); None = all
        self.partitions = None if partitions is None else sorted(set(partitions))
        self._ranges: dict[Any, tuple[int, int]] | None = None

    @classmethod
    def from_url(cls, url: str, default_bootstrap: str | None = None,
                 default_timeout_s: float = 10.0, security: Mapping[str, Any] | None = None) -> "KafkaSource":
        u = urlsplit(url)
        topic = (u.netloc + u.path).strip("/")
        if not topic or "/" in topic:
            raise SourceError(f"{url}: expected kafka://TOPIC?from=...&to=...&bootstrap=HOST:PORT")
        q = parse_qs(u.query, keep_blank_values=True)
        unknown = sorted(set(q) - set(cls.KNOWN))
        if unknown:
            raise SourceError(
                f"{url}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(cls.KNOWN)})"
            )

        def one(k):
            v = q.get(k)
            return v[-1] if v else None

        def when(k):
            v = one(k)
            if v in (None, ""):
                return None
            try:
                return parse_time(v)
            except InvalidEvent as exc:
                raise SourceError(f"{url}: {k}={v}: {str(exc).replace('ts ', '', 1)}") from None

        start, end = when("from"), when("to")
        if start is not None and end is not None and end <= start:
            raise SourceError(f"{url}: 'to' must be after 'from'")
        try:
            timeout = float(one("timeout") or default_timeout_s)
        except ValueError:
            raise SourceError(f"{url}: timeout must be seconds") from None
        bootstrap = one("bootstrap") or default_bootstrap or Settings.bootstrap
        return cls(topic, bootstrap, start, end, timeout, security)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "kafka", "topic": self.topic, "bootstrap": self.bootstrap,
                             "from": format_ts(self.start) if self.start is not None else None,
                             "to": format_ts(self.end) if self.end is not None else None}
        if self._ranges:
            d["offsets"] = {str(tp.partition): [a, b] for tp, (a, b) in self._ranges.items()}
        return d

    def _consumer(self):
        import logging

        import kafka.errors as kerr
        from kafka import KafkaConsumer

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        ms = max(int(self.timeout_s * 1000), 100)
        kwargs: dict[str, Any] = dict(
            bootstrap_servers=self.bootstrap.split(","), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id="lookout-replay", request_timeout_ms=max(ms, 5000) + 1000,
            fetch_max_bytes=64 << 20, max_partition_fetch_bytes=8 << 20, max_poll_records=10000,
            **self.security,
        )
        # kafka-python >= 3 bounds the bootstrap with bootstrap_timeout_ms,
        # 2.x with api_version_auto_timeout_ms
        if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG:
            kwargs["bootstrap_timeout_ms"] = ms
        else:
            kwargs["api_version_auto_timeout_ms"] = ms
        unreachable = tuple(c for c in (getattr(kerr, "NoBrokersAvailable", None), kerr.KafkaTimeoutError,
                                         getattr(kerr, "KafkaConnectionError", None)) if c is not None)
        # kafka-python retries a rejected login like an unreachable broker: ask a secured one first
        reason = rejection(self.bootstrap, self.security, min(self.timeout_s, AUTH_CHECK_S))
        if reason:
            raise SourceError(str(auth_failure(self.bootstrap, self.security, reason)))
        try:
            return KafkaConsumer(**kwargs)
        except unreachable:
            raise SourceError(f"cannot reach Kafka at {self.bootstrap} within {self.timeout_s:g} s") from None
        except (kerr.KafkaError, OSError, ValueError) as exc:
            raise SourceError(f"Kafka at {self.bootstrap}: {exc}") from None

    def _plan(self, consumer) -> dict[Any, tuple[int, int]]:
        """Per partition [start, stop) offsets for the time range (fixed once, so re-reads match)."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        if self._ranges is not None:
            return self._ranges
        try:
            topics = consumer.topics()
            if self.topic not in topics:
                raise SourceError(f"topic {self.topic!r} not found on {self.bootstrap}")
            parts = consumer.partitions_for_topic(self.topic) or set()
            if self.partitions is not None:
                parts = {p for p in parts if p in self.partitions}
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            first = consumer.beginning_offsets(tps)
            last = consumer.end_offsets(tps)
            starts = dict(first)
            stops = dict(last)
            if self.start is not None:
                found = consumer.offsets_for_times({tp: int(self.start * 1000) for tp in tps})
                for tp in tps:
                    starts[tp] = found[tp].offset if found.get(tp) is not None else last[tp]
            if self.end is not None:
                found = consumer.offsets_for_times({tp: int(self.end * 1000) for tp in tps})
                for tp in tps:
                    if found.get(tp) is not None:
                        stops[tp] = found[tp].offset
        except SourceError:
            raise
        except KafkaError as exc:
            raise SourceError(f"Kafka at {self.bootstrap}: {type(exc).__name__}: {exc}") from None
        self._ranges = {tp: (starts[tp], max(starts[tp], stops[tp])) for tp in tps}
        self.total = sum(b - a for a, b in self._ranges.values())
        return self._ranges

    def prepare(self) -> None:
        """Connect and fix the offset ranges now (so errors surface before any work starts)."""
        c = self._consumer()
        try:
            self._plan(c)
        finally:
            c.close()

    def records(self, progress=None) -> Iterator[Record]:
        consumer = self._consumer()
        try:
            merge = _Merge(self, consumer, self._plan(consumer))
            n = 0
            while merge.live or merge.buffered():
                if merge.hungry():
                    merge.fill()
                    if merge.hungry():
                        continue
                # every live partition has buffered messages: emit in timestamp order until one runs dry
                for tp, m in merge.drain():
                    n += 1
                    if progress is not None and not n & 1023:
                        progress(1024)
                    yield m.value, m.key, tp.partition, m.offset
            if progress is not None:
                progress(n & 1023)
        finally:
            consumer.close()


class _Merge:
    """A topic's partitions merged by message timestamp: a buffer per partition, filled by polls
    (a partition far ahead is paused), drained in timestamp order while every live partition --
    one not yet at the end of its range -- has something buffered."""

    #: a partition is paused with more than this many messages buffered, resumed below RESUME_BELOW
    PAUSE_ABOVE, RESUME_BELOW = 20000, 2000
    POLL_MS = 500

    def __init__(self, source: KafkaSource, consumer: Any, ranges: dict[Any, tuple[int, int]]):
        self.source, self.consumer, self.ranges = source, consumer, ranges
        active = [tp for tp, (a, b) in ranges.items() if b > a]
        consumer.assign(active)
        for tp in active:
            consumer.seek(tp, ranges[tp][0])
        self.bufs: dict[Any, deque] = {tp: deque() for tp in active}
        self.paused: set = set()
        self.live = set(active)
        self.idle_since = time.monotonic()

    def buffered(self) -> bool:
        return any(self.bufs.values())

    def hungry(self) -> bool:
        """Is a live partition's buffer empty (so that the merge must poll before it goes on)?"""
        return any(not self.bufs[tp] for tp in self.live)

    def fill(self) -> None:
        """One poll: buffer the messages in range, note partitions at their end, pause full ones;
        :class:`SourceError` when live partitions stay silent for the source's timeout."""
        from kafka.errors import KafkaError

        consumer, bufs, live, src = self.consumer, self.bufs, self.live, self.source
        for tp in list(self.paused):
            if len(bufs[tp]) < self.RESUME_BELOW:
                consumer.resume(tp)
                self.paused.discard(tp)
        try:
            batch = consumer.poll(timeout_ms=self.POLL_MS)
        except KafkaError as exc:
            raise SourceError(f"Kafka at {src.bootstrap}: {type(exc).__name__}: {exc}") from None
        got = False
        for tp, msgs in batch.items():
            if tp not in live:
                continue
            stop = self.ranges[tp][1]
            buf = bufs[tp]
            for m in msgs:
                if m.offset >= stop:
                    break
                buf.append(m)
                got = True
            if (msgs and msgs[-1].offset + 1 >= stop) or consumer.position(tp) >= stop:
                live.discard(tp)
                consumer.pause(tp)
            elif len(buf) > self.PAUSE_ABOVE:
                consumer.pause(tp)
                self.paused.add(tp)
        if got:
            self.idle_since = time.monotonic()
            return
        for tp in list(live):
            if consumer.position(tp) >= self.ranges[tp][1]:
                live.discard(tp)
        if live and time.monotonic() - self.idle_since > src.timeout_s:
            raise SourceError(f"Kafka at {src.bootstrap}: no data from {src.topic} partition(s) "
                              f"{sorted(tp.partition for tp in live)} for {src.timeout_s:g} s")

    def drain(self) -> Iterator[tuple[Any, Any]]:
        """(partition, message) in timestamp order until a live partition runs dry or all are empty."""
        bufs, live = self.bufs, self.live
        while True:
            heads = [(bufs[tp][0].timestamp, tp.partition, tp) for tp in bufs if bufs[tp]]
            if not heads:
                return
            _, _, tp = min(heads)
            yield tp, bufs[tp].popleft()
            if not bufs[tp] and tp in live:
                return
