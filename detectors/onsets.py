"""Onsets: a signal family newly anomalous for a customer, the correlator's input.

The correlator (:mod:`detectors.correlator`) looks for many customers of one group going wrong
*in the same way at the same time*. Its unit is the **onset**: in one interval, a customer's
anomalous signals (the findings that passed their gates, :func:`detectors.alerting.passes_gates`)
name a *family* of problem that the customer did not already have. Onsets come from interval
anomalies, not from alerts: an alert needs 2 of the last 3 intervals anomalous, so onsets are
one interval earlier, which is the time a parent needs to form before the first child pages.

A *family* is what a shared cause looks like from one customer, the most specific first
(:data:`FAMILY_PRIORITY`): origin errors keyed by their dominant status code
(``origin:522``: a hosting provider's region unreachable), 5xx without origin errors, a traffic
drop, latency, a cache-hit collapse, 4xx, a traffic surge, bytes. One interval of one customer
has one family: the most specific its findings show.

*Newly* anomalous: none of the family's signals was anomalous in the customer's previous
``open_m - 1`` intervals, nor is it part of the customer's open incident. So a customer already
in an origin incident produces no origin onset, and an onset is a pure function of the
lifecycle state before the interval (:class:`detectors.alerting.Tracker`) and the interval's
findings: nothing more to store, and the same with the fleet engine and the reference.

>>> from detectors.univariate import Assessment
>>> from detectors.events import parse_event
>>> from detectors.alerting import Finding, Tracker
>>> from detectors.config import AlertingConfig
>>> e = parse_event({"customer_id": "c1", "ts": 600, "interval_s": 300, "requests": 900,
...                  "status_4xx": 0, "status_5xx": 400, "origin_errors": {"522": 380, "502": 20}})
>>> a = Assessment(0.99999, 0.44, 0.01, 0.0, 0.02, 390.0, 9.0)
>>> detect(Tracker(), e, [Finding("origin_errors", 600, a)], AlertingConfig())
[Onset(customer_id='c1', ts=600.0, interval_s=300, family='origin:522')]
>>> tr = Tracker(hist=1, recent=[(300.0, [Finding("error_5xx", 300, a)])])
>>> detect(tr, e, [Finding("origin_errors", 600, a)], AlertingConfig())   # already anomalous
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .alerting import Finding, Tracker
from .config import AlertingConfig
from .events import Event

__all__ = ["FAMILY_PRIORITY", "FAMILY_SIGNALS", "Onset", "detect", "family_label", "family_of"]

ORIGIN = "origin"
#: families, most specific first; ``origin`` stands for ``origin:<code>``
FAMILY_PRIORITY: tuple[str, ...] = (
    ORIGIN, "5xx", "traffic_drop", "latency", "cache_hit", "4xx", "traffic_surge", "bytes",
)
#: the signals whose findings make up each family ("newly" means none of them was anomalous)
FAMILY_SIGNALS: Mapping[str, frozenset[str]] = {
    ORIGIN: frozenset({"origin_errors", "error_5xx"}),
    "5xx": frozenset({"origin_errors", "error_5xx"}),
    "traffic_drop": frozenset({"requests"}),
    "traffic_surge": frozenset({"requests"}),
    "latency": frozenset({"latency_p99"}),
    "cache_hit": frozenset({"cache_hit"}),
    "4xx": frozenset({"error_4xx"}),
    "bytes": frozenset({"bytes"}),
}
#: a 5xx finding counts as origin errors when at least this share of the 5xx came from the origin
ORIGIN_SHARE_OF_5XX = 0.5
_LABELS = {
    "5xx": "5xx errors without origin errors", "traffic_drop": "a traffic drop",
    "latency": "high p99 latency", "cache_hit": "a cache-hit collapse", "4xx": "a 4xx rise",
    "traffic_surge": "a traffic surge", "bytes": "a change of bytes served",
}


@dataclass(frozen=True, slots=True)
class Onset:
    """Customer ``customer_id`` newly anomalous in ``family`` in the interval starting at ``ts``."""

    customer_id: str
    ts: float
    interval_s: int
    family: str

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "ts": self.ts, "interval_s": self.interval_s,
                "family": self.family}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Onset":
        """Inverse of :meth:`to_json`; ``ValueError`` names what is wrong."""
        cid, ts, iv, fam = obj.get("customer_id"), obj.get("ts"), obj.get("interval_s"), obj.get("family")
        if not isinstance(cid, str) or not cid:
            raise ValueError(f"onset customer_id must be a non-empty string, got {cid!r}")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or ts != ts:
            raise ValueError(f"onset ts must be a number, got {ts!r}")
        if isinstance(iv, bool) or not isinstance(iv, int) or iv < 1:
            raise ValueError(f"onset interval_s must be a positive integer, got {iv!r}")
        if not isinstance(fam, str) or family_base(fam) not in FAMILY_SIGNALS:
            raise ValueError(f"onset family must be one of {', '.join(FAMILY_PRIORITY)}, got {fam!r}")
        return cls(cid, float(ts), iv, fam)


def family_base(family: str) -> str:
    """``origin:522`` -> ``origin``; other families are their own base.

    >>> family_base("origin:522"), family_base("latency")
    ('origin', 'latency')
    """
    return family.split(":", 1)[0]


def family_label(family: str) -> str:
    """A family in words, for a parent incident's summary.

    >>> family_label("origin:522"), family_label("traffic_drop")
    ('origin errors (522)', 'a traffic drop')
    """
    base, _, code = family.partition(":")
    if base == ORIGIN:
        return f"origin errors ({code})" if code else "origin errors"
    return _LABELS.get(family, family)


def _families(signals: set[str], findings: Sequence[Finding], event: Event) -> list[str]:
    out = []
    if signals & FAMILY_SIGNALS[ORIGIN]:
        origin = event.origin_errors
        total = sum(origin.values()) if origin else 0
        if total and ("origin_errors" in signals or total >= ORIGIN_SHARE_OF_5XX * event.status_5xx):
            code = max(origin.items(), key=lambda kv: (kv[1], kv[0]))[0]
            out.append(f"{ORIGIN}:{code}")
        else:
            out.append("5xx")
    if "requests" in signals:
        f = next(f for f in findings if f.signal == "requests")
        out.append("traffic_drop" if f.a.value < f.a.expected else "traffic_surge")
    for fam, sig in (("latency", "latency_p99"), ("cache_hit", "cache_hit"), ("4xx", "error_4xx"),
                     ("bytes", "bytes")):
        if sig in signals:
            out.append(fam)
    return sorted(out, key=lambda f: FAMILY_PRIORITY.index(family_base(f)))


def family_of(findings: Sequence[Finding], event: Event) -> str | None:
    """The most specific family one interval's findings show (None: no findings).

    >>> from detectors.univariate import Assessment
    >>> from detectors.events import parse_event
    >>> e = parse_event({"customer_id": "c", "ts": 0, "requests": 100, "status_4xx": 0, "status_5xx": 9})
    >>> up = Assessment(0.99999, 0.09, 0.01, 0.0, 0.02, 8.0, 6.0)
    >>> family_of([Finding("latency_p99", 0, up), Finding("error_5xx", 0, up)], e)
    '5xx'
    """
    fams = _families({f.signal for f in findings}, findings, event)
    return fams[0] if fams else None


def _busy_signals(tr: Tracker, event: Event, cfg: AlertingConfig) -> set[str]:
    """Signals already anomalous for the customer: in the window before ``event``, or in its open incident."""
    horizon = event.ts - (cfg.open_m - 1) * event.interval_s
    busy = {f.signal for ts, fs in tr.recent if horizon <= ts < event.ts for f in fs}
    if tr.incident is not None:
        busy.update(tr.incident.findings)
    return busy


def detect(tr: Tracker, event: Event, findings: Sequence[Finding], cfg: AlertingConfig) -> list[Onset]:
    """The onset of ``event``'s interval, if any (0 or 1), from the lifecycle *before* the interval.

    Call it before :func:`detectors.alerting.step` advances ``tr`` with the same findings.
    """
    if not findings:
        return []
    family = family_of(findings, event)
    if family is None or FAMILY_SIGNALS[family_base(family)] & _busy_signals(tr, event, cfg):
        return []
    return [Onset(event.customer_id, float(event.ts), int(event.interval_s), family)]


def onsets_json(onsets: Iterable[Onset]) -> list[dict[str, Any]]:
    """Onsets as JSON objects (the repartition topic's values)."""
    return [o.to_json() for o in onsets]
