"""What engineers' verdicts and maintenance windows do to one customer's alerts and models.

:class:`Steering` holds the verdicts (:mod:`detectors.feedback`) and windows
(:mod:`detectors.silences`) by customer and answers, as pure functions of those records and an
event time:

* :meth:`~Steering.offsets` -- the extra evidence (decades of surprise) a customer x signal x
  direction needs after a ``false_alarm`` (decaying; ``confirmed`` removes it);
* :meth:`~Steering.learn_mask` -- which signals of an event the models must not learn (a
  ``learn`` window; an ``expected`` incident's range when the model is rebuilt);
* :meth:`~Steering.silenced_by` -- the windows that mute an alert's notification;
* :meth:`~Steering.due` -- the point effects that apply before an event: resolve the incident a
  verdict names, accept the current level (``new_normal``), rebuild the models from before a
  range (``expected``, a window created after it began, a withdrawal), end the incidents a
  ``notify`` window kept quiet.

**When a point effect applies** is a rule on event time, the same live and in replay: before
the customer's first event whose interval ends after the verdict was given (for a window's
end: its first event at or after the end). A worker that restarts from a snapshot re-runs the
events after it with the same verdicts known, so each effect applies again at the same event --
or, if the snapshot is newer than that event, is already in the restored state: the state
record's last event time is what records that a verdict was applied, and the marker/commit
design keeps it consistent with the input offsets.

:class:`SteeredEngine` wraps an engine (fleet or reference) with a :class:`Steering`: customers
without verdicts or windows take the engine's own path untouched.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from .alerting import GateShift, threshold_surprise
from .config import DetectorConfig
from .events import Event, EventBatch, parse_ts
from .feedback import CONFIRMED, EXPECTED, FALSE_ALARM, NEW_NORMAL, RESOLVING, Verdict
from .silences import Window

__all__ = ["Effect", "History", "SteeredEngine", "Steering", "rebuild_models"]

RESOLVE, ACCEPT, REBUILD, WINDOW_END = "resolve", "accept", "rebuild", "window_end"
DAY = 86400.0
#: the kinds of point effect (:meth:`Steering.due`), in the order they apply before one event
EFFECT_KINDS = (REBUILD, ACCEPT, RESOLVE, WINDOW_END)


@dataclass(frozen=True)
class Effect:
    """One point effect due before an event of ``customer_id``."""

    kind: str
    customer_id: str
    at: float  # when it took effect (the verdict's or window's time)
    verdict: Verdict | None = None
    window: Window | None = None
    since: float = 0.0  # REBUILD: the models are learned again from before this time
    occurrence: tuple[float, float] | None = None  # WINDOW_END: the occurrence that ended


class History(Protocol):
    """Where a rebuild finds a customer's past: a state record from before a time, and its events."""

    def checkpoint(self, customer_id: str, before: float) -> bytes | None:
        """A state record of the customer whose last event is before ``before`` (None: none kept)."""

    def events(self, customer_id: str, after: float, before: float) -> Iterable[Event]:
        """The customer's events with ``after < ts < before``, in event-time order."""


class Steering:
    """Verdicts and windows by customer (see the module docstring).

    >>> from detectors.feedback import Evidence, Verdict
    >>> st = Steering()
    >>> v = Verdict("39b3b6ed530df191", "false_alarm", "acme", 0.0, None, 3600.0,
    ...             (Evidence("requests", "up", 9.0, 3.0),))
    >>> st.put_verdict(v)
    >>> st.offsets("acme", 3600.0)[("requests", "up")]   # 1 decade more; near 01:00, 2x its magnitude
    (1.0, 6.0)
    >>> st.offsets("acme", 3600.0)[("error_5xx", "up")], st.offsets("acme", 43200.0)
    ((1.0, 1.0), {('requests', 'up'): (1.0, 1.0)})
    >>> st.offsets("acme", 0.0) is None, st.offsets("other", 3600.0) is None
    (True, True)
    """

    def __init__(self, config: DetectorConfig | None = None):
        cfg = config or DetectorConfig()
        self.config = cfg
        self.fb = cfg.feedback
        self._thr = {s: threshold_surprise(c.threshold) for s, c in cfg.signals.items()}
        self.verdicts: dict[str, Verdict] = {}  # alert id -> verdict
        self.windows: dict[str, Window] = {}  # window id -> window
        self._verdicts_of: dict[str, list[Verdict]] = {}
        self._windows_of: dict[str, list[Window]] = {}
        #: customers with at least one verdict or window (everything else takes the fast path)
        self.customers: set[str] = set()
        self.version = 0  # bumped on every change

    # -- the records -------------------------------------------------------------------------
    def put_verdict(self, v: Verdict) -> None:
        """Add or replace (same alert id) a verdict."""
        old = self.verdicts.get(v.alert_id)
        self.verdicts[v.alert_id] = v
        self._reindex(v.customer_id, old.customer_id if old is not None else None)

    def drop_verdict(self, alert_id: str) -> None:
        old = self.verdicts.pop(alert_id, None)
        if old is not None:
            self._reindex(old.customer_id)

    def put_window(self, w: Window) -> None:
        """Add or replace (same id) a window."""
        old = self.windows.get(w.id)
        self.windows[w.id] = w
        self._reindex(w.customer_id, old.customer_id if old is not None else None)

    def drop_window(self, window_id: str) -> None:
        old = self.windows.pop(window_id, None)
        if old is not None:
            self._reindex(old.customer_id)

    def _reindex(self, *cids: str | None) -> None:
        for cid in {c for c in cids if c is not None}:
            vs = sorted((v for v in self.verdicts.values() if v.customer_id == cid), key=lambda v: v.at)
            ws = sorted((w for w in self.windows.values() if w.customer_id == cid), key=lambda w: w.start)
            for index, items in ((self._verdicts_of, vs), (self._windows_of, ws)):
                if items:
                    index[cid] = items  # type: ignore[assignment]
                else:
                    index.pop(cid, None)
            if vs or ws:
                self.customers.add(cid)
            else:
                self.customers.discard(cid)
        self.version += 1

    def silenced_counts(self, t: float) -> dict[str, int]:
        """Customers in a window at ``t``, by what the window does (``notify``, ``learn``)."""
        notify, learn = set(), set()
        for cid, ws in self._windows_of.items():
            for w in ws:
                if w.occurrence_at(t) is not None:
                    if w.notify:
                        notify.add(cid)
                    if w.learn:
                        learn.add(cid)
        return {"notify": len(notify), "learn": len(learn)}

    def verdict_counts(self, t: float) -> dict[str, int]:
        """Verdicts standing at ``t``, by verdict."""
        out: dict[str, int] = {}
        for v in self.verdicts.values():
            if v.active(t):
                out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    def verdicts_of(self, cid: str) -> list[Verdict]:
        return self._verdicts_of.get(cid, [])

    def windows_of(self, cid: str) -> list[Window]:
        return self._windows_of.get(cid, [])

    # -- alerting ------------------------------------------------------------------------------
    def offsets(self, cid: str, t: float) -> dict[tuple[str, str], GateShift] | None:
        """What ``cid``'s false alarms ask of each (signal, side) at ``t``: (extra decades of
        surprise, least magnitude); None if nothing.

        A standing ``false_alarm`` asks its signals (in the direction they moved)
        ``false_alarm_decades`` more surprise; within ``false_alarm_window_s`` of the time of day
        its incident ran, it asks every signal of the customer that, and its own signals also
        ``1 + false_alarm_margin`` times the magnitude they had. That holds for
        ``false_alarm_hold_s``, then fades with ``false_alarm_half_life_s``; the strongest
        verdict counts, and a later ``confirmed`` on the same signal and side removes it.
        """
        vs = self._verdicts_of.get(cid)
        if not vs:
            return None
        fb = self.fb
        out: dict[tuple[str, str], GateShift] = {}

        def ask(key: tuple[str, str], decades: float, least: float) -> None:
            old = out.get(key)
            out[key] = (decades, least) if old is None else (max(old[0], decades), max(old[1], least))

        for v in vs:
            if v.verdict != FALSE_ALARM or not v.active(t):
                continue
            age = t - v.at - fb.false_alarm_hold_s
            decay = 1.0 if age <= 0.0 else 0.5 ** (age / fb.false_alarm_half_life_s)
            decades = fb.false_alarm_decades * decay
            near = _near_time_of_day(t, v.started_at, v.range_end, fb.false_alarm_window_s)
            if near:
                for s in self._thr:
                    for side in ("up", "down"):
                        if not self._confirmed_after(vs, (s, side), v.at, t):
                            ask((s, side), decades, 1.0)
            for e in v.evidence:
                key = (e.signal, e.side)
                if self._confirmed_after(vs, key, v.at, t):
                    continue
                least = 1.0 + (e.magnitude * (1.0 + fb.false_alarm_margin) - 1.0) * decay if near else 1.0
                ask(key, decades, least)
        return out or None

    @staticmethod
    def _confirmed_after(vs: Sequence[Verdict], key: tuple[str, str], after: float, t: float) -> bool:
        return any(c.verdict == CONFIRMED and c.at > after and c.active(t)
                   and any((e.signal, e.side) == key for e in c.evidence) for c in vs)

    def silenced_by(self, alert: Mapping[str, Any]) -> list[str]:
        """Ids of the ``notify`` windows that mute ``alert``'s notification ([] = it is sent).

        Muted: every signal of the alert is covered by a window in force at the alert's event
        time and known by the end of that interval. Not muted: the resolution of an incident that
        was open when the window started (sinks must not keep it open).
        """
        cid = alert.get("customer_id")
        ws = self._windows_of.get(cid) if isinstance(cid, str) else None
        if not ws:
            return []
        t = parse_ts(alert["event_ts"])
        known = t + float(alert.get("interval_s") or 0)
        started = parse_ts(alert["started_at"])
        resolved = alert.get("status") == "resolved"
        signals = set(alert.get("signals") or [alert.get("signal")])
        covered: set[Any] = set()
        ids = []
        for w in ws:
            if not w.notify or w.created_at >= known and w.created_at > t:
                continue
            occ = w.occurrence_at(t)
            if occ is None or (resolved and started < occ[0]):
                continue
            hit = signals if w.signal is None else signals & {w.signal}
            if hit:
                covered |= hit
                ids.append(w.id)
        return ids if covered >= signals else []

    def in_window(self, cid: str, t: float) -> bool:
        """Whether a window of any mode covers customer ``cid`` at event time ``t`` (known by
        then): its onsets do not count toward parent incidents."""
        for w in self._windows_of.get(cid) or ():
            if w.created_at <= t and w.occurrence_at(t) is not None:
                return True
        return False

    def annotation(self, alert_id: str) -> dict[str, Any] | None:
        """The verdict on ``alert_id`` as its resolved notification records it, or None."""
        v = self.verdicts.get(alert_id)
        if v is None:
            return None
        out = v.annotation()
        if v.withdrawn_at is not None:
            out["withdrawn"] = True
        return out

    # -- learning --------------------------------------------------------------------------------
    def learn_mask(self, cid: str, ts: float, known_before: float, signals: Sequence[str]) -> int:
        """Bit ``i`` set: do not learn ``signals[i]`` from ``cid``'s event at ``ts``.

        Counts the windows and verdicts known before ``known_before`` (the end of the event's
        interval live; the rebuild point in a rebuild): ``learn`` windows in force at ``ts``, and
        the range of an ``expected`` incident.
        """
        full = (1 << len(signals)) - 1
        mask = 0
        for w in self._windows_of.get(cid, ()):
            if w.learn and w.created_at < known_before and w.occurrence_at(ts) is not None:
                if w.signal is None:
                    return full
                if w.signal in signals:
                    mask |= 1 << signals.index(w.signal)
        for v in self._verdicts_of.get(cid, ()):
            if (v.verdict == EXPECTED and v.at < known_before
                    and (v.withdrawn_at is None or v.withdrawn_at >= known_before)
                    and v.started_at <= ts < v.range_end):
                return full
        return mask

    def rebuild_since(self, cid: str, after: float) -> float | None:
        """The earliest time a rebuild of ``cid`` that is still to come (a verdict or window taking
        effect after ``after``) must learn again from; None if none is (what a worker prefetches)."""
        out: list[float] = []
        for v in self._verdicts_of.get(cid, ()):
            if v.verdict == EXPECTED and v.at > after and v.withdrawn_at is None:
                out.append(v.started_at)
            if v.verdict in (EXPECTED, NEW_NORMAL) and v.withdrawn_at is not None and v.withdrawn_at > after:
                out.append(v.started_at if v.verdict == EXPECTED else v.at)
        for w in self._windows_of.get(cid, ()):
            if w.learn and w.created_at > after:
                began = [s for s, _ in w.occurrences(w.created_at - self.fb.max_backdate_s, w.created_at)]
                out.extend(began[:1])
        return min(out) if out else None

    # -- point effects ---------------------------------------------------------------------------
    def due(self, cid: str, prev_ts: float | None, prev_end: float | None, ts: float,
            end: float) -> list[Effect]:
        """The point effects that apply before ``cid``'s event at ``ts`` (interval end ``end``),
        given its previous event (``prev_ts``, its end ``prev_end``; None: no previous event)."""
        lo = ts if prev_end is None else prev_end  # a customer seen for the first time: from now on
        out: list[Effect] = []
        for v in self._verdicts_of.get(cid, ()):
            given = lo <= v.at < end
            gone = v.withdrawn_at is not None and lo <= v.withdrawn_at < end
            if given and gone:
                continue  # given and withdrawn between two events: nothing happened
            if given and v.withdrawn_at is None or given and not gone:
                if v.verdict == EXPECTED:
                    out.append(Effect(REBUILD, cid, v.at, verdict=v, since=v.started_at))
                if v.verdict == NEW_NORMAL:
                    out.append(Effect(ACCEPT, cid, v.at, verdict=v))
                if v.verdict in RESOLVING:
                    out.append(Effect(RESOLVE, cid, v.at, verdict=v))
            elif gone and v.verdict in (EXPECTED, NEW_NORMAL):
                since = v.started_at if v.verdict == EXPECTED else v.at
                out.append(Effect(REBUILD, cid, v.withdrawn_at or v.at, verdict=v, since=since))
        for w in self._windows_of.get(cid, ()):
            if w.learn and lo <= w.created_at < end:
                began = [s for s, _ in w.occurrences(w.created_at - self.fb.max_backdate_s, w.created_at)]
                if began:
                    out.append(Effect(REBUILD, cid, w.created_at, window=w, since=min(began)))
            if w.notify and prev_ts is not None:
                for occ in w.occurrences(prev_ts, ts + 1e-9):
                    if prev_ts < occ[1] <= ts:
                        out.append(Effect(WINDOW_END, cid, occ[1], window=w, occurrence=occ))
        rebuilds = [e for e in out if e.kind == REBUILD]
        if len(rebuilds) > 1:  # one rebuild from the earliest point covers them all
            first = min(rebuilds, key=lambda e: e.since)
            out = [e for e in out if e.kind != REBUILD or e is first]
        return sorted(out, key=lambda e: EFFECT_KINDS.index(e.kind))


def _near_time_of_day(t: float, start: float, end: float, window_s: float) -> bool:
    """Whether the time of day of ``t`` is within ``window_s`` of that of ``[start, end]``.

    >>> _near_time_of_day(3 * DAY + 3600, 7200, 9000, 3600), _near_time_of_day(DAY + 20000, 7200, 9000, 3600)
    (True, False)
    """
    if end - start + 2 * window_s >= DAY:
        return True
    d = (t - (start - window_s)) % DAY
    return d <= end - start + 2 * window_s


# -- the engine driver ---------------------------------------------------------------------------
class SteeredEngine:
    """An engine with a :class:`Steering` applied: same interface as the engine it wraps.

    Events of customers with verdicts or windows are processed in order with, before each, the
    point effects :meth:`Steering.due` lists and a learn mask; every other event takes the
    engine's own path in the same call. Alerts of steered customers get ``silenced_by`` (when a
    ``notify`` window mutes them) and ``feedback`` (the verdict on the alert, on its resolution).

    Parameters
    ----------
    engine
        A :class:`~detectors.engine.Engine` or :class:`~detectors.engine.ReferenceEngine`.
    steering
        The verdicts and windows (default: an empty :class:`Steering` for the engine's config).
    history
        Where rebuilds find checkpoints and past events (:class:`History`); without one a
        rebuild is counted as ``unavailable`` and the models stay as they are.
    models_only
        Apply only what changes the models (masks, accepts): what a rebuild runs.
    on_effect
        Called with the kind of every effect applied (metrics).
    """

    def __init__(self, engine: Any, steering: Steering | None = None, history: History | None = None,
                 models_only: bool = False, on_effect: Callable[[str], Any] | None = None):
        self.engine = engine
        self.steering = steering if steering is not None else Steering(engine.config)
        self.history = history
        self.models_only = models_only
        self._signals: list[str] = list(engine._new_models())
        #: effects applied, by kind (and ``rebuild_unavailable``): the worker's metrics read them
        self.applied: Counter[str] = Counter()
        self.on_effect = on_effect
        engine.gate_offsets = self.steering.offsets

    def __getattr__(self, name: str) -> Any:  # the engine's interface (customers, dump_customer, ...)
        return getattr(self.engine, name)

    # -- processing ------------------------------------------------------------------------------
    def process(self, e: Event) -> Any:
        from .verdict import Verdict

        v = self.process_many([e])
        return Verdict(v.outcomes[0], {s: sc[0] for s, sc in v.scores.items()}, v.alerts, v.onsets)

    def process_many(self, events: Sequence[Event]) -> Any:
        """:meth:`~detectors.engine.Engine.process_many` with the steering applied."""
        steered = self.steering.customers
        if not steered or not events:
            return self.engine.process_many(events)
        cids = (events.column("customer_id") if isinstance(events, EventBatch)
                else [e.customer_id for e in events])
        if steered.isdisjoint(cids):
            return self.engine.process_many(events)
        return self._steered(events, cids, steered)

    def _steered(self, events: Sequence[Event], cids: Sequence[str], steered: set[str]) -> Any:
        from .verdict import BatchVerdict

        stops = self._stops(events, cids, steered)  # index -> (effects, learn mask)
        outcomes: list[str] = []
        alerts: list[dict[str, Any]] = []
        scores: dict[str, list[float]] = {}
        onsets: list[Any] = []
        in_window = self.steering.in_window

        def run(part: Sequence[Event]) -> None:
            if not part:
                return
            v = self.engine.process_many(part)
            outcomes.extend(v.outcomes)
            alerts.extend(v.alerts)
            # a customer in a maintenance window does not count toward parent incidents
            onsets.extend(o for o in v.onsets if not in_window(o.customer_id, o.ts))
            for sig, values in v.scores.items():
                scores.setdefault(sig, []).extend(values)

        start = 0
        for k in sorted(stops):
            run(events[start:k])
            effects, mask = stops[k]
            e = events[k]
            for eff in effects:
                alerts.extend(self._apply(eff, e, events, k))
            cid = e.customer_id
            if mask and cid in self.engine.customers:
                # score and run the lifecycle as usual, then put the masked models back as they
                # were: the event is scored but not learned
                before = self.engine.dump_customer(cid)
                run([e])
                masked = [s for i, s in enumerate(self._signals) if mask >> i & 1]
                self.engine.restore_models(cid, before, masked)
            else:
                run([e])
            start = k + 1
        run(events[start:])
        if not self.models_only:
            for a in alerts:
                self._decorate(a)
        record = getattr(self.history, "record", None)
        if record is not None:  # a history that keeps what the worker processed (for its rebuilds)
            record([events[k] for k, c in enumerate(cids) if c in steered])
        return BatchVerdict(outcomes, alerts, scores, onsets)

    def _stops(self, events: Sequence[Event], cids: Sequence[str], steered: set[str]
               ) -> dict[int, tuple[list[Effect], int]]:
        """Events of steered customers that need effects or a learn mask before/while processing."""
        st = self.steering
        prev: dict[str, tuple[float | None, float | None]] = {}
        stops: dict[int, tuple[list[Effect], int]] = {}
        for k, cid in enumerate(cids):
            if cid not in steered:
                continue
            e = events[k]
            if cid not in prev:
                last = self.engine.last_ts_of(cid)
                iv = self._interval_of(cid)
                prev[cid] = (last, None if last is None else last + iv)
            p_ts, p_end = prev[cid]
            if p_ts is not None and e.ts <= p_ts:
                continue  # a duplicate: the engine ignores it
            end = e.ts + e.interval_s
            effects = st.due(cid, p_ts, p_end, e.ts, end)
            if self.models_only:
                effects = [f for f in effects if f.kind == ACCEPT]
            mask = st.learn_mask(cid, e.ts, self._known_before(end), self._signals)
            if effects or mask:
                stops[k] = (effects, mask)
            prev[cid] = (e.ts, end)
        return stops

    def _known_before(self, end: float) -> float:
        return end if self._rebuild_point is None else max(end, self._rebuild_point)

    _rebuild_point: float | None = None  # set while this engine runs a rebuild (rebuild_models)

    def _interval_of(self, cid: str) -> float:
        eng = self.engine
        if hasattr(eng, "interval"):
            slot = eng.customers.get(cid)
            return float(eng.interval[slot]) if slot is not None else 0.0
        st = eng.customers.get(cid)
        return float(st.interval_s) if st is not None else 0.0

    def _count(self, what: str) -> None:
        self.applied[what] += 1
        if self.on_effect is not None:
            self.on_effect(what)

    def _apply(self, eff: Effect, e: Event, batch: Sequence[Event], k: int) -> list[dict[str, Any]]:
        self._count(eff.kind)
        cid = eff.customer_id
        if eff.kind == RESOLVE:
            assert eff.verdict is not None
            inc = self._open_incident(cid)
            if inc is None or inc.alert_id != eff.verdict.alert_id:
                return []
            return self.engine.resolve(cid, e, {"feedback": self.steering.annotation(eff.verdict.alert_id)})
        if eff.kind == WINDOW_END:
            assert eff.occurrence is not None and eff.window is not None
            inc = self._open_incident(cid)
            if inc is None or not eff.occurrence[0] <= inc.started_at < eff.occurrence[1]:
                return []
            # kept quiet by the window and still open: resolved quietly; if the customer is
            # still anomalous the lifecycle opens (and notifies) a new incident within open_n intervals
            return self.engine.resolve(cid, e, {"silenced_by": [eff.window.id], "window_ended": True})
        if eff.kind == ACCEPT:
            assert eff.verdict is not None
            if cid in self.engine.customers:
                accept_now(self.engine, cid, [s for s in eff.verdict.signals if s in self._signals])
            return []
        if eff.kind == REBUILD:
            if self.history is None or cid not in self.engine.customers:
                self._count("rebuild_unavailable")
                return []
            earlier = [x for x in batch[:k] if x.customer_id == cid]  # this batch's, already processed
            blob = rebuild_models(self.engine.config, self.steering, self.history, cid, eff.since, e, earlier)
            if blob is None:
                self._count("rebuild_unavailable")
                return []
            self.engine.restore_models(cid, blob, self._signals)
        return []

    def _open_incident(self, cid: str) -> Any:
        for inc in self.engine.open_incidents_of(cid):
            return inc
        return None

    def _decorate(self, a: dict[str, Any]) -> None:
        st = self.steering
        if a.get("customer_id") not in st.customers:
            return
        if "silenced_by" not in a:
            ids = st.silenced_by(a)
            if ids:
                a["silenced_by"] = ids
        if a.get("status") == "resolved" and "feedback" not in a:
            note = st.annotation(a["alert_id"])
            if note is not None:
                a["feedback"] = note


def rebuild_models(config: DetectorConfig, steering: Steering, history: History, cid: str, since: float,
                   at_event: Event, recent: Sequence[Event] = ()) -> bytes | None:
    """``cid``'s state learned again from a checkpoint before ``since`` up to ``at_event``
    (exclusive), with every verdict and window known at ``at_event`` applied; None if the
    history has no checkpoint that old. ``recent``: events the history may not hold yet (the
    current batch's).

    Only the models of the result are meant to be used (:meth:`restore_models`): the lifecycle
    of the live engine has already notified what it notified.
    """
    from .engine import Engine

    blob = history.checkpoint(cid, since)
    if blob is None:
        return None
    scratch = SteeredEngine(Engine(config), steering, models_only=True)
    scratch._rebuild_point = at_event.ts + at_event.interval_s
    scratch.engine.load_customer(cid, blob)
    last = scratch.engine.last_ts_of(cid)
    after = last if last is not None else float("-inf")
    by_ts = {e.ts: e for e in history.events(cid, after, at_event.ts)}
    by_ts.update((e.ts, e) for e in recent if after < e.ts < at_event.ts)
    events = [by_ts[t] for t in sorted(by_ts)]
    for i in range(0, len(events), 4096):
        scratch.process_many(events[i:i + 4096])
    return scratch.engine.dump_customer(cid)


def accept_now(engine: Any, cid: str, signals: Sequence[str]) -> None:
    """Accept the level shift each of ``signals`` is tracking now, as the models do by themselves
    once it has lasted ``accept_shift_after_s`` (``new_normal``); a signal not in an anomaly is
    left alone. Works on a copy of the customer's state rows (a reference engine with the same
    config) and puts the changed models back with :meth:`restore_models`.
    """
    from . import kernel as K
    from .reference import ReferenceEngine

    scratch = ReferenceEngine(engine.config)
    scratch.load_customer(cid, engine.dump_customer(cid))
    models = scratch.customers[cid].models
    for s in signals:
        m = models[s]
        row = m.state
        if m.family is K.SEASONAL:
            if math.isnan(row[K.S_ANOM_SINCE]):
                continue
            row[K.S_LEVEL] += row[K.S_SHIFT]  # the shadow level becomes the level
            row[K.S_SHIFT] = 0.0
            row[K.S_ANOM_SINCE], row[K.S_ANOM_SIGN] = math.nan, 0.0
        else:  # the rate seen since the anomaly began becomes the baseline
            if math.isnan(row[K.R_ANOM_SINCE]):
                continue
            b = row[K.R_B]
            keep = min(1.0, row[K.R_ANOM_B] / b) if b else 0.0
            row[K.R_A], row[K.R_B] = row[K.R_ANOM_A], row[K.R_ANOM_B]
            row[K.R_TAU2] *= keep or 1.0
            row[K.R_ANOM_SINCE], row[K.R_ANOM_SIGN] = math.nan, 0.0
    engine.restore_models(cid, scratch.dump_customer(cid), list(signals))
