"""Raw messages -> engine -> alerts and dead letters. Shared by the live worker and replay.

The processor owns no I/O: callers (a Faust agent, a file reader) hand it message values and
send what it returns. Bad input is never raised: it comes back as a DLQ record and is counted.
That holds for *any* exception one message causes, in decoding or in the engine: a message
that crashes the worker would crash it again on every restart and stop the stream for good.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from detectors.engine import Engine
from detectors.events import (
    DEFAULT_MAX_FUTURE_S,
    INVALID_KINDS,
    KIND_FUTURE,
    KIND_INTERNAL,
    Event,
    InvalidEvent,
    format_ts,
)

from .codecs import decode_event, dlq_record
from .metrics import INVALID_OUTCOME, WorkerMetrics

log = logging.getLogger("lookout.processor")


@dataclass
class Output:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    #: (partition, offset, customer id or None if invalid) of every handled message that had a partition
    positions: list[tuple[int, int, str | None]] = field(default_factory=list)


class Processor:
    """Decode, validate and process raw messages; bad ones become dead letters.

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
    """

    def __init__(self, engine: Engine, metrics: WorkerMetrics | None = None,
                 clock: Callable[[], float] = time.time, dlq_topic: str = "request-metrics-dlq",
                 max_future_s: float | None = DEFAULT_MAX_FUTURE_S):
        if max_future_s is not None and not max_future_s >= 0:
            raise ValueError(f"max_future_s must be >= 0 or None, got {max_future_s!r}")
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.dlq_topic = dlq_topic
        self.max_future_s = max_future_s
        self._logged_errors: set[tuple[str, str]] = set()
        if metrics is not None:
            metrics.expect_dlq(dlq_topic, INVALID_KINDS)

    def handle(self, value: bytes | str | None, *, key: Any = None, source: str = "",
               partition: int | None = None, offset: int | None = None, out: Output | None = None) -> Output:
        """Decode one raw message and process it (bad input becomes a dead letter in ``out``)."""
        out = out or Output()
        event = self.decode(value, key=key, source=source, partition=partition, offset=offset, out=out)
        if event is not None:
            # A valid event the engine fails on is not bad input but a bug: it propagates, and the
            # worker stops without committing (streams.runtime) rather than park a valid event.
            self.process_event(event, out)
        if partition is not None and offset is not None:
            out.positions.append((partition, offset, event.customer_id if event is not None else None))
        return out

    def decode(self, value: bytes | str | None, *, key: Any = None, source: str = "",
               partition: int | None = None, offset: int | None = None, out: Output) -> Event | None:
        """The event in ``value``, or None after parking a dead letter with the reason in ``out``.

        Never raises (except ``BaseException``s such as ``KeyboardInterrupt``).
        """
        out.events += 1
        try:
            event = decode_event(value)
            if self.max_future_s is not None:
                ahead = event.ts - self.clock()
                if ahead > self.max_future_s:
                    raise InvalidEvent(f"ts {format_ts(event.ts)} is {ahead:,.0f} s ahead of the wall clock "
                                       f"(at most {self.max_future_s:g} s)", KIND_FUTURE)
            return event
        except InvalidEvent as exc:
            self._park(value, str(exc), exc.kind, key, source, partition, offset, out)
        except Exception as exc:  # a decoder bug must not stop the stream either
            self._park(
                value, self._internal(exc, "decoder"), KIND_INTERNAL, key, source, partition, offset, out
            )
        return None

    def _internal(self, exc: Exception, where: str, customer: str | None = None) -> str:
        """Reason for an unexpected exception; logged with its traceback once per exception type."""
        name = type(exc).__name__
        if (where, name) not in self._logged_errors:
            self._logged_errors.add((where, name))
            log.error("%s failed on a message (%s); it is dead-lettered, further %s errors are only counted",
                      where, customer or "no customer", name, exc_info=exc)
        try:
            detail = str(exc)[:200]
        except Exception:  # str() of an exception can fail too
            detail = "?"
        return f"internal error in the {where}: {name}: {detail}"

    def _park(self, value: Any, reason: str, kind: str, key: Any, source: str, partition: int | None,
              offset: int | None, out: Output) -> None:
        out.dlq.append(dlq_record(value, reason, kind=kind, key=key, source=source, partition=partition,
                                  offset=offset, now=self.clock()))
        if self.metrics is not None:
            self.metrics.events.labels(INVALID_OUTCOME).inc()
            self.metrics.dlq.labels(self.dlq_topic, kind).inc()

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
