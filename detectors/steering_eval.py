"""The targets of engineers' steering (issue 19), measured on the simulator.

* :func:`false_alarm_trial` -- customers with a recurring false pattern; an engineer marks the
  first alert that overlaps it ``false_alarm``: how much do its repeats drop, and what is the
  recall on injected incidents of those customers before and after?
* :func:`migration_trial` -- customers with an announced migration under a ``both`` window: is
  the baseline after the window within 5 % of a run where the migration never happened (and how
  far off is it without the window)? Are notifications inside the window muted?
* :func:`notify_trial` -- ``notify`` windows laid over incidents (some starting while one is
  open): firing notifications sent inside windows, and incidents open at a window's start that
  never resolve at the sinks.

Every trial is a pure function of its seed: run the script on seeds the defaults were not tuned on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .config import DetectorConfig
from .engine import Engine
from .evaluation import evaluate
from .events import Event, parse_event, parse_ts
from .feedback import verdict_from_alert
from .history import MemoryHistory
from .signals import derive
from .silences import parse_window
from .steering import SteeredEngine, Steering
from .synthetic import SimConfig, Simulation, simulate
from .synthetic_ops import Operations, plan_operations

__all__ = ["false_alarm_trial", "migration_trial", "notify_trial"]

CHUNK = 4096
#: the verdict on a false pattern's first alert is given this long after the alert went out
VERDICT_DELAY_S = 600.0
#: signals a migration kind moves (the baseline compared after the window)
MIGRATION_SIGNALS = {
    "origin_migration": ("error_5xx", "origin_errors", "latency_p99"),
    "traffic_move": ("requests", "bytes"),
    "load_test": ("requests", "bytes", "latency_p99"),
}
#: the baseline after a migration window must be within this of a run without the migration
BASELINE_TOLERANCE = 0.05


def _events(sim: Simulation, ops: Operations | None, migrations: bool = True) -> list[Event]:
    src: Iterable[dict[str, Any]] = sim.events() if ops is None else ops.apply(sim.events(), migrations)
    return [parse_event(e) for e in src]


def _run(
    events: Sequence[Event],
    steering: Steering | None = None,
    config: DetectorConfig | None = None,
    until: float | None = None,
    start: float | None = None,
    eng: SteeredEngine | None = None,
) -> tuple[SteeredEngine, list[dict[str, Any]]]:
    """Run ``events`` with ``ts`` in ``[start, until)`` (default: all) through ``eng`` (default: a
    new steered fleet engine)."""
    if eng is None:
        eng = SteeredEngine(Engine(config), steering)
        eng.history = MemoryHistory(keep_s=86400.0 * 8)
    history = eng.history
    assert isinstance(history, MemoryHistory)
    watch = eng.steering.customers
    alerts: list[dict[str, Any]] = []
    for i in range(0, len(events), CHUNK):
        part = [
            e
            for e in events[i : i + CHUNK]
            if (until is None or e.ts < until) and (start is None or e.ts >= start)
        ]
        if not part:
            if until is not None and events[i].ts >= until:
                break
            continue
        alerts += eng.process_many(part).alerts
        history.observe(eng.engine, part, watch)
    return eng, alerts


def _sim(seed: int, customers: int, days: int, interval_s: int = 300) -> Simulation:
    return simulate(
        SimConfig(
            customers=customers,
            duration_s=days * 86400.0,
            interval_s=interval_s,
            seed=seed,
            incidents_per_customer_week=1.0,
        )
    )


@dataclass
class _Overlap:
    occurrences: list[tuple[float, float]]
    interval_s: float

    def hit(self, alert: dict[str, Any]) -> bool:
        s = parse_ts(alert["started_at"])
        return any(a - self.interval_s <= s < b + self.interval_s for a, b in self.occurrences)


def false_alarm_trial(seed: int, customers: int = 60, days: int = 28, patterns: int = 15) -> dict[str, Any]:
    """Repeats of recurring false patterns, and recall, without and with a ``false_alarm`` on the first."""
    sim = _sim(seed, customers, days)
    ops = plan_operations(sim, patterns=patterns)
    events = _events(sim, ops, migrations=False)
    _, before = _run(events)
    iv = sim.config.interval_s
    pats = {p.customer_id: _Overlap(p.occurrences(sim.end), iv) for p in ops.patterns}
    st = Steering()
    for a in before:
        cid = a["customer_id"]
        if (
            a["status"] == "firing"
            and cid in pats
            and cid not in {v.customer_id for v in st.verdicts.values()}
            and pats[cid].hit(a)
        ):
            st.put_verdict(
                verdict_from_alert(
                    a, "false_alarm", at=parse_ts(a["event_ts"]) + iv + VERDICT_DELAY_S, by="evaluation"
                )
            )
    marked = {v.customer_id: v.at for v in st.verdicts.values()}
    _, after = _run(events, st)

    def repeats(alerts: list[dict[str, Any]]) -> dict[str, int]:
        out = {c: 0 for c in marked}
        for a in alerts:
            c = a["customer_id"]
            if (
                a["status"] == "firing"
                and a["notification"] == 1
                and c in marked
                and parse_ts(a["started_at"]) >= marked[c]
                and pats[c].hit(a)
            ):
                out[c] += 1
        return out

    r0, r1 = repeats(before), repeats(after)
    labels = [
        i.to_json() for i in sim.incidents if i.customer_id in marked and i.start >= marked[i.customer_id]
    ]

    def recall(alerts: list[dict[str, Any]]) -> float | None:
        if not labels:
            return None
        mine = [a for a in alerts if a["customer_id"] in marked]
        return evaluate(mine, labels, span_s=sim.config.duration_s, interval_s=iv).recall

    rec0, rec1 = recall(before), recall(after)
    per = {c: (r0[c], r1[c]) for c in marked}
    return {
        "seed": seed,
        "customers": customers,
        "days": days,
        "patterns": len(ops.patterns),
        "marked": len(marked),
        "repeats_before": sum(r0.values()),
        "repeats_after": sum(r1.values()),
        "drop": 1.0 - sum(r1.values()) / sum(r0.values()) if sum(r0.values()) else None,
        "customers_dropping_80pct": sum(1 for b, a in per.values() if b and a <= 0.2 * b),
        "per_customer": per,
        "incidents_after_verdict": len(labels),
        "recall_before": rec0,
        "recall_after": rec1,
        "recall_ratio": (rec1 / rec0) if rec0 and rec1 is not None else None,
    }


def _baselines(eng: SteeredEngine, cid: str, e: Event, signals: Sequence[str]) -> dict[str, float]:
    """The expected value of each of ``signals`` for ``cid``'s event ``e`` (before learning it)."""
    models = eng.engine.models_of(cid)
    xs = derive(e)
    out = {}
    for s in signals:
        x = xs.get(s)
        if models is not None and x is not None and s in models:
            out[s] = models[s].assess(x).expected
    return out


def migration_trial(seed: int, customers: int = 60, days: int = 14, migrations: int = 12) -> dict[str, Any]:
    """The baseline after each migration window, against a run without the migration."""
    sim = _sim(seed, customers, days)
    ops = plan_operations(sim, migrations=migrations)
    with_mig, without = _events(sim, ops), _events(sim, ops, migrations=False)
    st = Steering()
    for k, m in enumerate(ops.migrations):
        st.put_window(
            parse_window(
                {
                    "id": f"mig-{k}",
                    "customer_id": m.customer_id,
                    "from": m.start,
                    "until": m.end,
                    "mode": "both",
                    "created_at": m.start - 86400.0,
                    "reason": m.kind,
                }
            )
        )
    cases: list[dict[str, Any]] = []
    inside_sent = 0
    for m in ops.migrations:
        after = next(e for e in with_mig if e.customer_id == m.customer_id and e.ts >= m.end)
        sigs = MIGRATION_SIGNALS[m.kind]
        first = next(e for e in without if e.customer_id == m.customer_id and e.ts >= m.start)
        ref = next(e for e in without if e.customer_id == m.customer_id and e.ts == after.ts)
        a, alerts = _run(with_mig, st, until=after.ts)  # migration, inside a window
        b, _ = _run(without, until=first.ts)  # no migration at all: at the window's start...
        b0 = _baselines(b, m.customer_id, first, sigs)
        b, _ = _run(without, start=first.ts, until=after.ts, eng=b)  # ...and after it
        c, _ = _run(with_mig, until=after.ts)  # migration, no window
        d, _ = _run(without, st, until=after.ts)  # the same window announced, no migration
        ba, bb, bc, bd = (
            _baselines(x, m.customer_id, y, sigs) for x, y in ((a, after), (b, ref), (c, after), (d, ref))
        )
        floor = _resolution(ref, sigs)
        dev = {s: _rel(ba[s], bb[s], floor[s]) for s in sigs if s in ba and s in bb}
        strict = {s: _rel(ba[s], bb[s]) for s in sigs if s in ba and s in bb}
        dev_open = {s: _rel(bc[s], bb[s], floor[s]) for s in sigs if s in bc and s in bb}
        # how far the baseline moved by itself over the window's hours (no migration, no window)
        drift = {s: _rel(b0[s], bb[s], floor[s]) for s in sigs if s in b0 and s in bb}
        sent = [
            x
            for x in alerts
            if x["customer_id"] == m.customer_id
            and m.start <= parse_ts(x["event_ts"]) < m.end
            and not x.get("silenced_by")
            and x["status"] == "firing"
        ]
        inside_sent += len(sent)
        cases.append(
            {
                "customer_id": m.customer_id,
                "kind": m.kind,
                "hours": (m.end - m.start) / 3600.0,
                "max_deviation": max(dev.values()) if dev else None,
                "deviation": dev,
                "max_deviation_strict": max(strict.values()) if strict else None,
                "max_deviation_without_window": max(dev_open.values()) if dev_open else None,
                "drift": drift,
                # the migration's own trace: against the same window without the migration
                "trace": max(
                    (_rel(ba[s], bd[s], floor[s]) for s in sigs if s in ba and s in bd), default=None
                ),
            }
        )
    ok = [x for x in cases if x["max_deviation"] is not None and x["max_deviation"] <= BASELINE_TOLERANCE]
    return {
        "seed": seed,
        "migrations": len(cases),
        "within_5pct": len(ok),
        "worst": max((x["max_deviation"] for x in cases if x["max_deviation"] is not None), default=None),
        "worst_strict": max(
            (x["max_deviation_strict"] for x in cases if x["max_deviation_strict"] is not None), default=None
        ),
        "worst_without_window": max(
            (
                x["max_deviation_without_window"]
                for x in cases
                if x["max_deviation_without_window"] is not None
            ),
            default=None,
        ),
        "ratio_cases_explained_by_drift": sum(
            1
            for x in cases
            if x["max_deviation"] is not None
            and x["max_deviation"] > BASELINE_TOLERANCE
            and all(
                abs(x["deviation"][s] - x["drift"].get(s, -1.0)) < 1e-9
                for s in x["deviation"]
                if x["deviation"][s] > BASELINE_TOLERANCE
            )
        ),
        "max_trace": max((x["trace"] for x in cases if x["trace"] is not None), default=None),
        "firing_sent_inside_windows": inside_sent,
        "cases": cases,
    }


def _resolution(e: Event, signals: Sequence[str]) -> dict[str, float]:
    """The smallest baseline each signal's data can resolve at ``e``: for a ratio, one event among
    the interval's ``den`` (a rate of 0.00004 against 0.00003 at 800 requests is "no errors
    expected" either way, not a 28 % change); other signals need no floor.

    >>> from detectors.events import parse_event
    >>> e = parse_event({"customer_id": "c", "ts": "2026-01-01T00:00:00Z", "interval_s": 300,
    ...                  "requests": 800, "status_4xx": 0, "status_5xx": 0})
    >>> _resolution(e, ["error_5xx", "requests"])
    {'error_5xx': 0.00125, 'requests': 1e-12}
    """
    xs = derive(e)
    out = {}
    for s in signals:
        den = xs.get(s, {}).get("den")
        out[s] = 1.0 / den if den else _NO_FLOOR
    return out


_NO_FLOOR = 1e-12


def _rel(a: float, b: float, floor: float = _NO_FLOOR) -> float:
    """``|a - b|`` relative to ``b``, or to ``floor`` when ``b`` is below what the data resolve."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(b), floor)


def notify_trial(seed: int, customers: int = 60, days: int = 14, windows: int = 30) -> dict[str, Any]:
    """``notify`` windows laid over incidents: what is sent inside them, and what stays open."""
    sim = _sim(seed, customers, days)
    events = _events(sim, None)
    _, plain = _run(events)
    iv = sim.config.interval_s
    opened = [a for a in plain if a["status"] == "firing" and a["notification"] == 1]
    st = Steering()
    for k, a in enumerate(opened[:windows]):
        start = parse_ts(a["event_ts"]) + (k % 3) * iv  # at the firing, or 1-2 intervals into the incident
        hours = 1 + k % 4
        st.put_window(
            parse_window(
                {
                    "id": f"nw-{k}",
                    "customer_id": a["customer_id"],
                    "from": start,
                    "until": start + hours * 3600.0,
                    "mode": "notify" if k % 2 else "both",
                    "created_at": start - 3600.0,
                }
            )
        )
    eng, alerts = _run(events, st)
    still_firing = {inc.alert_id for inc in eng.engine.open_incidents()}  # open at the end of the data
    sent_firing_inside = 0
    sink_open: dict[str, str] = {}  # alert id -> customer, as the sinks see them
    for a in alerts:
        if a.get("silenced_by"):
            continue
        t = parse_ts(a["event_ts"])
        inside = any(w.occurrence_at(t) for w in st.windows_of(a["customer_id"]) if w.notify)
        if a["status"] == "firing" and inside:
            sent_firing_inside += 1
        if a["status"] == "firing":
            sink_open[a["alert_id"]] = a["customer_id"]
        else:
            sink_open.pop(a["alert_id"], None)
    open_at_start = set()
    for w in st.windows.values():
        for a in alerts:
            if (
                a["customer_id"] == w.customer_id
                and a["status"] == "firing"
                and not a.get("silenced_by")
                and parse_ts(a["started_at"]) < w.start <= parse_ts(a["event_ts"]) + 6 * 3600
            ):
                open_at_start.add(a["alert_id"])
    # open at a sink although the incident has ended (its resolution muted or never sent)
    still_open = [aid for aid in open_at_start if aid in sink_open and aid not in still_firing]
    return {
        "seed": seed,
        "windows": len(st.windows),
        "alerts_silenced": sum(1 for a in alerts if a.get("silenced_by")),
        "firing_sent_inside_windows": sent_firing_inside,
        "incidents_open_at_a_window_start": len(open_at_start),
        "left_open_at_the_sinks": len(still_open),
    }
