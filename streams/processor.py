"""Raw messages -> engine -> alerts and dead letters. Shared by the live worker and replay.

The processor owns no I/O: callers (a Faust agent, a file reader) hand it message values and
send what it returns. Bad input is never raised: it comes back as a DLQ record and is counted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from detectors.engine import Engine
from detectors.events import INVALID_KINDS, Event, InvalidEvent

from .codecs import decode_event, dlq_record
from .metrics import INVALID_OUTCOME, WorkerMetrics


@dataclass
class Output:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    #: (partition, offset, customer id or None if invalid) of every handled message that had a partition
    positions: list[tuple[int, int, str | None]] = field(default_factory=list)


class Processor:
    def __init__(self, engine: Engine, metrics: WorkerMetrics | None = None,
                 clock: Callable[[], float] = time.time, dlq_topic: str = "request-metrics-dlq"):
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.dlq_topic = dlq_topic
        if metrics is not None:
            metrics.expect_dlq(dlq_topic, INVALID_KINDS)

    def handle(self, value: bytes | str | None, *, key: Any = None, source: str = "",
               partition: int | None = None, offset: int | None = None, out: Output | None = None) -> Output:
        """Decode one raw message and process it (bad input becomes a dead letter in ``out``)."""
        out = out or Output()
        event = self.decode(value, key=key, source=source, partition=partition, offset=offset, out=out)
        if event is not None:
            self.process_event(event, out)
        if partition is not None and offset is not None:
            out.positions.append((partition, offset, event.customer_id if event is not None else None))
        return out

    def decode(self, value: bytes | str | None, *, key: Any = None, source: str = "",
               partition: int | None = None, offset: int | None = None, out: Output) -> Event | None:
        """The event in ``value``, or None after parking a dead letter with the reason in ``out``."""
        out.events += 1
        try:
            return decode_event(value)
        except InvalidEvent as exc:
            reason = str(exc)
            out.dlq.append(dlq_record(value, reason, key=key, source=source, partition=partition,
                                      offset=offset, now=self.clock()))
            if self.metrics is not None:
                self.metrics.events.labels(INVALID_OUTCOME).inc()
                self.metrics.dlq.labels(self.dlq_topic, exc.kind).inc()
            return None

    def process_event(self, event: Event, out: Output) -> None:
        """Run one decoded event through the engine; collect its alerts in ``out``."""
        verdict = self.engine.process(event)
        out.alerts.extend(verdict.alerts)
        m = self.metrics
        if m is not None:
            m.events.labels(verdict.outcome).inc()
            if verdict.outcome != "duplicate":
                m.lag.observe(max(0.0, self.clock() - (event.ts + event.interval_s)))
            for sig, score in verdict.scores.items():
                m.scores.labels(sig).observe(score)
            for a in verdict.alerts:
                m.observe_alert(a)

    def handle_many(self, records: Iterable[tuple[Any, Any, str, int | None, int | None]]) -> Output:
        """``records`` = (key, value, source, partition, offset) tuples, processed in order."""
        out = Output()
        t0 = time.perf_counter()
        for key, value, source, partition, offset in records:
            self.handle(value, key=key, source=source, partition=partition, offset=offset, out=out)
        if self.metrics is not None and out.events:
            self.metrics.batch_seconds.observe(time.perf_counter() - t0)
            self.metrics.batch_events.observe(out.events)
        return out

    def open_by_severity(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inc in self.engine.open_incidents():
            counts[inc.severity] = counts.get(inc.severity, 0) + 1
        return counts
