"""Labelled evaluation: how well did a set of alerts match known incidents?

Pure Python (no numpy): used by ``lookout replay --labels``, ``lookout tune`` and by the
detector tests to measure recall.

Definitions (``iv`` = ``interval_s``):

* A **label** (a known incident ``[start, end)`` of one customer) is *detected* when a
  ``firing`` alert of that customer has ``started_at`` or ``event_ts`` within
  ``[start - 1 iv, end + grace_intervals iv]``.
* An **opened incident** is a distinct ``alert_id`` with at least one ``firing`` alert
  (escalations re-fire the same id; ``resolved`` alerts open nothing). It is *matched* when
  any of its firing alerts matches some label by the rule above; otherwise it is a
  **false alert**.
* **precision** = matched opened incidents / opened incidents.
* **time to detect** (TTD) of a detected label, in intervals:
  ``(first matching firing event_ts - start) / iv``, clipped at 0.
* **false alerts per customer-week** = false alerts / (customers x span_s / 604800).
* Breakdowns: by incident kind (recall, TTD) and by customer-size decile (customers ranked
  by the size given in ``customers``, e.g. median requests per interval).

>>> labels = [{"customer_id": "a", "start": 3000, "end": 4200, "kind": "latency"}]
>>> alerts = [
...     {"alert_id": "x1", "status": "firing", "customer_id": "a",
...      "started_at": "1970-01-01T00:50:00Z", "event_ts": "1970-01-01T00:55:00Z"},
...     {"alert_id": "x1", "status": "resolved", "customer_id": "a",
...      "started_at": "1970-01-01T00:50:00Z", "event_ts": "1970-01-01T01:20:00Z"},
...     {"alert_id": "y2", "status": "firing", "customer_id": "b",
...      "started_at": "1970-01-01T05:00:00Z", "event_ts": "1970-01-01T05:05:00Z"},
... ]
>>> ev = evaluate(alerts, labels, customers={"a": 100.0, "b": 5.0}, span_s=604800, interval_s=300)
>>> ev.recall, ev.precision, ev.false_alerts, ev.false_per_customer_week, ev.ttd_median
(1.0, 0.5, 1, 0.5, 1.0)
>>> ev.by_kind["latency"]["recall"]
1.0
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .alerting import SEVERITIES
from .events import format_ts, time_or_none

WEEK_S = 604800.0
#: an alert up to this many intervals after a labelled incident's end still detects it (default)
GRACE_INTERVALS = 2.0

__all__ = [
    "GRACE_INTERVALS",
    "Evaluation",
    "LabelResult",
    "OpenedIncident",
    "evaluate",
    "incidents",
    "metric_deltas",
    "quantile",
    "WEEK_S",
]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def quantile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated quantile (like numpy's default); ``None`` for no values.

    >>> quantile([1, 2, 3, 4], 0.5), quantile([0, 10], 0.9), quantile([], 0.5)
    (2.5, 9.0, None)
    """
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def format_delay(intervals: float | None, interval_s: float) -> str:
    """A detection delay in intervals, and in wall-clock time, for people.

    >>> format_delay(1.0, 300), format_delay(2.5, 300), format_delay(30, 300), format_delay(None, 60)
    ('1 interval (5 min)', '2.5 intervals (12.5 min)', '30 intervals (2.5 h)', 'n/a')
    """
    if intervals is None:
        return "n/a"
    n = f"{intervals:.1f}".rstrip("0").rstrip(".")
    minutes = intervals * interval_s / 60
    clock = f"{minutes / 60:.1f}".rstrip("0").rstrip(".") + " h" if minutes >= 120 else \
        f"{minutes:.1f}".rstrip("0").rstrip(".") + " min"
    return f"{n} interval{'' if n == '1' else 's'} ({clock})"


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _r(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(v, nd)


@dataclass
class OpenedIncident:
    """One incident as seen from its alerts (all notifications with the same ``alert_id``).

    Times are the alerts' RFC 3339 strings; ``signal`` and ``score`` are those of the first
    firing, ``severity`` the highest any firing reached, ``signals`` every signal named by any
    notification, ``resolved_at`` set once a ``resolved`` alert was seen.
    """

    alert_id: str
    customer_id: str
    started_at: str | None
    signal: str | None
    severity: str
    score: float | None
    signals: list[str] = field(default_factory=list)
    firing_event_ts: list[str | None] = field(default_factory=list)  # event_ts of every firing notification
    resolved_at: str | None = None

    @property
    def first_event_ts(self) -> str | None:
        return self.firing_event_ts[0] if self.firing_event_ts else None


def incidents(alerts: Iterable[Mapping[str, Any]]) -> dict[str, OpenedIncident]:
    """Group alerts into opened incidents: ``alert_id`` -> :class:`OpenedIncident`, in order of first firing.

    An incident is opened by its first ``firing`` alert; a ``resolved`` alert whose firing is
    not among ``alerts`` (e.g. a window that starts mid-incident) opens nothing. Alerts without
    an ``alert_id`` or ``customer_id`` are skipped.

    >>> rows = incidents([
    ...     {"alert_id": "x", "status": "firing", "customer_id": "a", "signal": "error_5xx",
    ...      "signals": ["error_5xx"], "severity": "warning", "started_at": "t0", "event_ts": "t1"},
    ...     {"alert_id": "x", "status": "firing", "customer_id": "a", "signal": "latency_p99",
    ...      "signals": ["latency_p99", "error_5xx"], "severity": "critical", "started_at": "t0",
    ...      "event_ts": "t2"},
    ...     {"alert_id": "x", "status": "resolved", "customer_id": "a", "resolved_at": "t5"},
    ...     {"alert_id": "y", "status": "resolved", "customer_id": "b", "resolved_at": "t9"}])
    >>> list(rows), rows["x"].severity, rows["x"].signal, rows["x"].signals, rows["x"].resolved_at
    (['x'], 'critical', 'error_5xx', ['error_5xx', 'latency_p99'], 't5')
    """
    out: dict[str, OpenedIncident] = {}
    for a in alerts:
        aid, cid, status = a.get("alert_id"), a.get("customer_id"), a.get("status")
        if aid is None or cid is None:
            continue
        inc = out.get(aid)
        if status == "firing":
            if inc is None:
                inc = out[aid] = OpenedIncident(aid, cid, a.get("started_at"), a.get("signal"),
                                                a.get("severity") or SEVERITIES[0], a.get("score"))
            elif _rank(a.get("severity")) > _rank(inc.severity):
                inc.severity = a["severity"]
            inc.firing_event_ts.append(a.get("event_ts"))
        elif status == "resolved" and inc is not None:
            inc.resolved_at = a.get("resolved_at")
        else:
            continue
        inc.signals = sorted(
            set(inc.signals) | set(a.get("signals") or ([a["signal"]] if a.get("signal") else []))
        )
    return out


def _rank(severity: Any) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass
class LabelResult:
    customer_id: str
    start: float
    end: float
    kind: str
    detected: bool = False
    ttd_intervals: float | None = None
    alert_id: str | None = None  # the incident that detected it first

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "start": format_ts(self.start),
            "end": format_ts(self.end),
            "kind": self.kind,
            "detected": self.detected,
            "ttd_intervals": _r(self.ttd_intervals, 2),
            "alert_id": self.alert_id,
        }


@dataclass
class Evaluation:
    """The result of :func:`evaluate` (see the module docstring for the definitions)."""

    n_labels: int
    detected: int
    opened: int
    matched: int
    n_customers: int
    span_s: float
    interval_s: float
    grace_intervals: float
    ttd: list[float]
    labels: list[LabelResult]
    false_alert_ids: list[dict[str, Any]]
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_size_decile: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return _ratio(self.detected, self.n_labels)

    @property
    def precision(self) -> float | None:
        return _ratio(self.matched, self.opened)

    @property
    def false_alerts(self) -> int:
        return self.opened - self.matched

    @property
    def customer_weeks(self) -> float:
        return self.n_customers * self.span_s / WEEK_S

    @property
    def false_per_customer_week(self) -> float | None:
        cw = self.customer_weeks
        return self.false_alerts / cw if cw > 0 else None

    @property
    def ttd_median(self) -> float | None:
        return quantile(self.ttd, 0.5)

    @property
    def ttd_p90(self) -> float | None:
        return quantile(self.ttd, 0.9)

    @property
    def missed(self) -> list[LabelResult]:
        return [lr for lr in self.labels if not lr.detected]

    def headline(self) -> dict[str, Any]:
        """The main numbers only (what tuning and diffs compare)."""
        return {
            "labels": self.n_labels,
            "detected": self.detected,
            "recall": _r(self.recall),
            "opened_incidents": self.opened,
            "matched_incidents": self.matched,
            "precision": _r(self.precision),
            "false_alerts": self.false_alerts,
            "false_per_customer_week": _r(self.false_per_customer_week, 5),
            "ttd_median_intervals": _r(self.ttd_median, 2),
            "ttd_p90_intervals": _r(self.ttd_p90, 2),
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.headline()
        d.update({
            "customers": self.n_customers,
            "span_s": self.span_s,
            "customer_weeks": _r(self.customer_weeks, 4),
            "interval_s": self.interval_s,
            "grace_intervals": self.grace_intervals,
            "by_kind": self.by_kind,
            "by_size_decile": self.by_size_decile,
            "label_results": [lr.to_dict() for lr in self.labels],
            "false_alert_incidents": self.false_alert_ids,
        })
        return d

    def format_table(self) -> str:
        """A plain-text rendering for terminals."""

        def pct(v):
            return "n/a" if v is None else f"{v:.1%}"

        def num(v, nd=2):
            return "n/a" if v is None else f"{v:.{nd}f}"

        lines = [
            f"labels {self.n_labels}  detected {self.detected}  recall {pct(self.recall)}",
            f"opened incidents {self.opened}  matched {self.matched}  precision {pct(self.precision)}",
            f"false alerts {self.false_alerts}  per customer-week {num(self.false_per_customer_week, 3)}"
            f"  ({self.n_customers} customers x {self.span_s / 86400:.1f} days)",
            f"time to detect: median {format_delay(self.ttd_median, self.interval_s)}  "
            f"p90 {format_delay(self.ttd_p90, self.interval_s)}",
        ]
        if self.by_kind:
            lines += ["", f"{'incident kind':<18}{'labels':>7}{'detected':>9}{'recall':>8}{'TTD med':>9}"]
            for kind, row in self.by_kind.items():
                lines.append(f"{kind:<18}{row['labels']:>7}{row['detected']:>9}{pct(row['recall']):>8}"
                             f"{num(row['ttd_median_intervals'], 1):>9}")
        if self.by_size_decile:
            lines += ["", f"{'size decile':<12}{'customers':>10}{'size range':>22}{'labels':>7}{'recall':>8}"
                          f"{'false':>6}{'false/cw':>9}"]
            for row in self.by_size_decile:
                lo, hi = row["size_min"], row["size_max"]
                rng = "n/a" if lo is None else f"{lo:,.0f}-{hi:,.0f}"
                lines.append(f"{row['decile']:<12}{row['customers']:>10}{rng:>22}{row['labels']:>7}"
                             f"{pct(row['recall']):>8}{row['false_alerts']:>6}"
                             f"{num(row['false_per_customer_week'], 3):>9}")
        return "\n".join(lines)


def evaluate(
    alerts: Iterable[Mapping[str, Any]],
    labels: Iterable[Any],
    *,
    customers: Mapping[str, float] | None = None,
    span_s: float,
    interval_s: float | None = None,
    grace_intervals: float = GRACE_INTERVALS,
    n_customers: int | None = None,
) -> Evaluation:
    """Score ``alerts`` (dicts of the ``alerts`` topic schema) against ``labels``.

    ``labels`` are objects or mappings with ``customer_id``, ``start``, ``end`` (epoch seconds
    or RFC 3339) and optionally ``kind``. ``customers`` maps every customer in the data to its
    size (enables the size deciles and fixes the customer count for the false-alert rate);
    without it the count is ``n_customers`` or, failing that, the customers seen in alerts and
    labels. ``interval_s`` defaults to the alerts' ``interval_s`` (else 60).
    """
    alerts = list(alerts)
    if interval_s is None:
        ivs = [float(a["interval_s"]) for a in alerts if isinstance(a.get("interval_s"), (int, float))]
        interval_s = quantile(ivs, 0.5) or 60.0
    iv = float(interval_s)
    results = _label_results(labels)
    opened = _match(alerts, results, iv, float(grace_intervals) * iv)
    ttd = [lr.ttd_intervals for lr in results if lr.ttd_intervals is not None]
    matched = sum(1 for inc in opened.values() if inc["matched"])
    false_incs = [
        {"alert_id": inc["alert_id"], "customer_id": inc["customer_id"],
         "started_at": format_ts(inc["started_at"]) if inc["started_at"] is not None else None}
        for inc in opened.values() if not inc["matched"]
    ]

    if customers:
        n_cust = len(customers)
    elif n_customers is not None:
        n_cust = n_customers
    else:
        n_cust = len({r.customer_id for r in results} | {inc["customer_id"] for inc in opened.values()})

    ev = Evaluation(
        n_labels=len(results), detected=len(ttd), opened=len(opened), matched=matched, n_customers=n_cust,
        span_s=float(span_s), interval_s=iv, grace_intervals=grace_intervals, ttd=ttd, labels=results,
        false_alert_ids=false_incs,
    )
    ev.by_kind = _by_kind(results)
    if customers:
        ev.by_size_decile = _by_size_decile(customers, results, false_incs, span_s)
    return ev


def _label_results(labels: Iterable[Any]) -> list[LabelResult]:
    """One :class:`LabelResult` per label, by start time."""
    results: list[LabelResult] = []
    for lab in labels:
        s, e = time_or_none(_get(lab, "start")), time_or_none(_get(lab, "end"))
        cid = _get(lab, "customer_id")
        if s is None or e is None or not isinstance(cid, str):
            raise ValueError(f"label needs customer_id, start and end: {lab!r}")
        results.append(LabelResult(cid, s, e, _get(lab, "kind") or "unknown"))
    results.sort(key=lambda r: (r.start, r.customer_id))
    return results


def _match(alerts: list[Mapping[str, Any]], results: list[LabelResult], iv: float,
           grace: float) -> dict[str, dict[str, Any]]:
    """The opened incidents in order of first firing, each ``matched`` or not to a label; every
    label ``results`` gets its earliest detection (and delay in intervals)."""
    by_cust: dict[str, list[LabelResult]] = {}
    for lr in results:
        by_cust.setdefault(lr.customer_id, []).append(lr)
    opened: dict[str, dict[str, Any]] = {}
    for aid, oi in incidents(alerts).items():
        st = time_or_none(oi.started_at)
        inc = opened[aid] = {
            "alert_id": aid,
            "customer_id": oi.customer_id,
            "started_at": st,
            "matched": False,
        }
        for et in map(time_or_none, oi.firing_event_ts):
            for lr in by_cust.get(oi.customer_id, ()):
                lo, hi = lr.start - iv, lr.end + grace
                t_alert = et if et is not None else st
                if t_alert is not None and (
                    (st is not None and lo <= st <= hi) or (et is not None and lo <= et <= hi)
                ):
                    inc["matched"] = True
                    delay = max(0.0, (t_alert - lr.start) / iv)
                    if lr.ttd_intervals is None or delay < lr.ttd_intervals:
                        lr.detected, lr.ttd_intervals, lr.alert_id = True, delay, aid
    return opened


def _by_kind(results: list[LabelResult]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, list[LabelResult]] = {}
    for lr in results:
        kinds.setdefault(lr.kind, []).append(lr)
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted(kinds):
        rows = kinds[kind]
        det = [lr.ttd_intervals for lr in rows if lr.ttd_intervals is not None]
        out[kind] = {
            "labels": len(rows), "detected": len(det), "recall": _r(_ratio(len(det), len(rows))),
            "ttd_median_intervals": _r(quantile(det, 0.5), 2),
        }
    return out


def _by_size_decile(customers: Mapping[str, float], results: list[LabelResult],
                    false_incs: list[dict[str, Any]], span_s: float) -> list[dict[str, Any]]:
    """Recall and false alerts per customer-size decile (customers outside ``customers``: unsized)."""
    ranked = sorted(customers, key=lambda c: (customers[c], c))
    n = len(ranked)
    decile_of = {c: (i * 10) // n for i, c in enumerate(ranked)}
    weeks = span_s / WEEK_S
    groups: dict[int, dict[str, Any]] = {}

    def group(d: int) -> dict[str, Any]:
        return groups.setdefault(d, {"members": [], "labels": 0, "detected": 0, "false": 0})

    for c in ranked:
        group(decile_of[c])["members"].append(c)
    for lr in results:
        g = group(decile_of.get(lr.customer_id, -1))
        g["labels"] += 1
        g["detected"] += lr.detected
    for inc in false_incs:
        group(decile_of.get(inc["customer_id"], -1))["false"] += 1
    out = []
    for d in sorted(groups, key=lambda k: (k < 0, k)):
        g = groups[d]
        sizes = [customers[c] for c in g["members"]]
        cw = len(g["members"]) * weeks
        out.append({
            "decile": f"D{d + 1}" if d >= 0 else "unsized",
            "customers": len(g["members"]),
            "size_min": min(sizes) if sizes else None,
            "size_max": max(sizes) if sizes else None,
            "labels": g["labels"],
            "detected": g["detected"],
            "recall": _r(_ratio(g["detected"], g["labels"])),
            "false_alerts": g["false"],
            "false_per_customer_week": _r(g["false"] / cw, 5) if cw > 0 else None,
        })
    return out


def metric_deltas(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per headline metric ``{"old", "new", "delta"}`` of two :meth:`Evaluation.headline` dicts.

    >>> metric_deltas({"recall": 0.75, "false_alerts": 2}, {"recall": 0.5, "false_alerts": 3})
    {'recall': {'old': 0.5, 'new': 0.75, 'delta': 0.25}, 'false_alerts': {'old': 3, 'new': 2, 'delta': -1}}
    """
    out: dict[str, dict[str, Any]] = {}
    for k, nv in new.items():
        ov = old.get(k)
        if isinstance(nv, (int, float)) and isinstance(ov, (int, float)):
            d = nv - ov
            delta = round(d, 6) if isinstance(d, float) else d
        else:
            delta = None
        out[k] = {"old": ov, "new": nv, "delta": delta}
    return out
