"""Replay bookkeeping: :class:`ReplayEngine` (the live Engine plus counters) and per-customer
:class:`Trace`s."""

from __future__ import annotations

import math
from array import array
from typing import Any, Iterable, Mapping

from detectors.config import DetectorConfig
from detectors.engine import Engine, Verdict
from detectors.events import Event
from detectors.signals import derive

#: compact alert fields kept in memory (evaluation, diff, report)
ALERT_FIELDS = ("alert_id", "status", "customer_id", "signal", "signals", "severity", "score", "started_at",
                "event_ts", "resolved_at", "interval_s", "notification", "observed", "expected")


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
    """:class:`Engine` plus bookkeeping for reports. Every decision is ``Engine.process``'s own:
    this subclass only counts (customer sizes, time span, outcomes) and, for a few traced
    customers, peeks at the models' assessment *before* the event is processed (``assess``
    does not learn)."""

    def __init__(self, config: DetectorConfig | None = None, trace: Iterable[str] = ()):
        super().__init__(config)
        self.sizes: dict[str, list] = {}  # customer -> [events, sum of requests]
        self.outcomes: dict[str, int] = {}
        self.intervals: dict[int, int] = {}
        self.t_min = math.inf
        self.t_max = -math.inf
        self.trace_customers = set(trace)
        self.traces: dict[str, Trace] = {}

    def process(self, e: Event) -> Verdict:
        cid = e.customer_id
        s = self.sizes.get(cid)
        if s is None:
            s = self.sizes[cid] = [0, 0]
        s[0] += 1
        s[1] += e.requests
        ts = e.ts
        if ts < self.t_min:
            self.t_min = ts
        end = ts + e.interval_s
        if end > self.t_max:
            self.t_max = end
        self.intervals[e.interval_s] = self.intervals.get(e.interval_s, 0) + 1
        if cid in self.trace_customers:
            last = self.last_ts_of(cid)
            if last is None or ts > last:
                tr = self.traces.get(cid)
                if tr is None:
                    tr = self.traces[cid] = Trace(cid, self._enabled_order())
                tr.add(e, self.models_of(cid))
        v = Engine.process(self, e)
        self.outcomes[v.outcome] = self.outcomes.get(v.outcome, 0) + 1
        return v

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

