"""Replay bookkeeping: :class:`ReplayEngine` (the live Engine plus counters) and per-customer
:class:`Trace`s."""

from __future__ import annotations

import math
import operator
from array import array
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from detectors.config import DetectorConfig
from detectors.engine import BatchVerdict, Engine, ReferenceEngine, Verdict
from detectors.events import Event, EventBatch
from detectors.signals import derive

#: compact alert fields kept in memory (evaluation, diff, report)
ALERT_FIELDS = ("alert_id", "status", "customer_id", "signal", "signals", "severity", "score", "started_at",
                "event_ts", "resolved_at", "interval_s", "notification", "observed", "expected",
                "silenced_by", "feedback")


class Trace:
    """Per event of one customer: observed value and, once warm, the model's expected value, band
    and score for every signal (compact float arrays; NaN = not available)."""

    FIELDS = ("value", "expected", "lo", "hi", "score")

    def __init__(self, customer_id: str, signals: Iterable[str]):
        self.customer_id = customer_id
        self.ts = array("d")
        self.requests = array("d")
        self.series: dict[str, dict[str, array]] = {s: {f: array("d") for f in self.FIELDS} for s in signals}

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, e: Event, models: Mapping[str, Any] | None) -> None:
        nan = math.nan
        self.ts.append(e.ts)
        self.requests.append(e.requests)
        xs = derive(e)
        for name, cols in self.series.items():
            x = xs.get(name)
            value = expected = lo = hi = score = nan
            if x is not None:
                if "value" in x:
                    value = float(x["value"])
                elif x.get("den"):
                    value = x["num"] / x["den"]
                model = models.get(name) if models is not None else None
                if model is not None and model.warm:
                    a = model.assess(x)
                    expected, lo, hi, score = a.expected, a.lo, a.hi, a.score
            cols["value"].append(value)
            cols["expected"].append(expected)
            cols["lo"].append(lo)
            cols["hi"].append(hi)
            cols["score"].append(score)


class ReplayEngine(Engine):
    """:class:`Engine` plus bookkeeping for reports. Every decision is the engine's own: this
    subclass only counts (customer sizes, time span, outcomes), per batch of
    :meth:`process_many`, and, for a few traced customers, records how their models assessed
    each event *before* learning it (``assess`` does not learn).

    Batches go to :meth:`Engine.process_many` whole. The traced customers' events also go, one
    at a time, to a :class:`~detectors.engine.ReferenceEngine` of their own, whose River
    detectors are looked at before each event: the fleet engine holds exactly the same state
    (``tests/detectors/test_fleet.py``), but would have to build the detectors from its arrays
    and split the batch at every traced event.
    """

    def __init__(self, config: DetectorConfig | None = None, trace: Iterable[str] = ()):
        super().__init__(config)
        self.sizes: dict[str, list] = {}  # customer -> [events, sum of requests]
        self.outcomes: dict[str, int] = {}
        self.intervals: dict[int, int] = {}
        self.t_min = math.inf
        self.t_max = -math.inf
        self.trace_customers = set(trace)
        self.traces: dict[str, Trace] = {}
        self._in_batch = False
        #: the traced customers' events, one at a time, for their models before each event
        self._mirror = ReferenceEngine(self.config) if self.trace_customers else None

    def process(self, e: Event) -> Verdict:
        """One event, with the same bookkeeping as :meth:`process_many`."""
        if self._in_batch:  # Engine.process_many calling back per event: counted already
            return Engine.process(self, e)
        b = self.process_many((e,))
        return Verdict(b.outcomes[0], {s: v[0] for s, v in b.scores.items()}, b.alerts)

    def process_many(self, events: Sequence[Event]) -> BatchVerdict:
        self._count(events)
        if self._mirror is not None:
            traced = self.trace_customers
            if isinstance(events, EventBatch):  # only the traced customers' events become objects
                cids = events.column("customer_id")
                for k in [k for k, c in enumerate(cids) if c in traced]:
                    self._trace(events[k], self._mirror)
            else:
                for e in events:
                    if e.customer_id in traced:
                        self._trace(e, self._mirror)
        v = self._engine_many(events)
        by = self.outcomes
        for outcome, n in Counter(v.outcomes).items():
            by[outcome] = by.get(outcome, 0) + n
        return v

    def _engine_many(self, events: Sequence[Event]) -> BatchVerdict:
        self._in_batch = True
        try:
            return Engine.process_many(self, events)
        finally:
            self._in_batch = False

    def _count(self, events: Sequence[Event]) -> None:
        """Customer sizes, time span and intervals of ``events``, from their columns."""
        if not events:
            return
        batch = events if isinstance(events, EventBatch) else EventBatch.of([events])
        sizes = self.sizes
        for cid, req in zip(batch.column("customer_id"), batch.column("requests")):
            s = sizes.get(cid)
            if s is None:
                s = sizes[cid] = [0, 0]
            s[0] += 1
            s[1] += req
        ts, iv = batch.column("ts"), batch.column("interval_s")
        self.t_min = min(self.t_min, min(ts))
        self.t_max = max(self.t_max, max(map(operator.add, ts, iv)))
        intervals = self.intervals
        for i, n in Counter(iv).items():
            intervals[i] = intervals.get(i, 0) + n

    def _trace(self, e: Event, mirror: ReferenceEngine) -> None:
        """Add ``e`` to its customer's trace, assessed by the models as they are before learning
        it (unless it is a duplicate, which the engine ignores); then the mirror learns it."""
        cid = e.customer_id
        last = mirror.last_ts_of(cid)
        if last is None or e.ts > last:
            tr = self.traces.get(cid)
            if tr is None:
                tr = self.traces[cid] = Trace(cid, self._enabled_order())
            tr.add(e, mirror.models_of(cid))
        mirror.process(e)

    # state loaded or dropped reaches the traced customers' mirror too
    def load_customer(self, cid: str, blob: bytes) -> None:
        super().load_customer(cid, blob)
        if self._mirror is not None and cid in self.trace_customers:
            self._mirror.load_customer(cid, blob)

    def load_all(self, blob: bytes) -> int:
        n = super().load_all(blob)
        if self._mirror is not None:
            self._mirror.load_all(blob)
        return n

    def drop_customer(self, cid: str) -> None:
        super().drop_customer(cid)
        if self._mirror is not None:
            self._mirror.drop_customer(cid)

    def _enabled_order(self) -> list[str]:
        return [s for s in self.config.signals if s in self._enabled]

    # -- derived facts -----------------------------------------------------------------
    def customer_sizes(self) -> dict[str, float]:
        """Customer -> mean requests per interval (the size used for deciles)."""
        return {c: (tot / n if n else 0.0) for c, (n, tot) in self.sizes.items()}

    @property
    def span_s(self) -> float:
        return max(0.0, self.t_max - self.t_min) if self.t_max > self.t_min else 0.0

    @property
    def interval_s(self) -> int | None:
        return max(self.intervals, key=self.intervals.get) if self.intervals else None


def compact_alert(a: Mapping[str, Any]) -> dict[str, Any]:
    return {k: a.get(k) for k in ALERT_FIELDS}

