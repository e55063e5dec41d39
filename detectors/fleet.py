"""The fleet engine: every customer's models in per-fleet arrays, a batch of events at a time.

:class:`FleetEngine` is :class:`~detectors.engine.ReferenceEngine` (per-customer River
detectors, one event at a time) reorganised for speed, behind the same interface:

* the learned state of every series lives in a few numpy arrays indexed by customer *slot*
  (``ss[slot, j]``: seasonal series ``j``'s state row, ``rs[slot, j]`` ratio series ``j``'s;
  ~2.6 kB per customer for the 7 signals, no Python object per series);
* :meth:`FleetEngine.process_many` turns a batch of events into columns and runs the compiled
  kernel (:mod:`detectors.kernel`) over all of them, in order (an
  :class:`~detectors.events.EventBatch` is read as the columns it already is);
* only events that matter to the alert lifecycle come back to Python: a warm signal reached its
  gate, or the customer has an open incident or recent anomalous intervals. Everything that
  decides an alert (gates, lifecycle, explanations) is the reference's own code
  (:mod:`detectors.alerting`).

The River detectors stay the public per-series API and the reference: they run the same
kernel on one series' row at a time, and ``tests/detectors/test_fleet.py`` checks on random
streams that the fleet's batching, gating and Python paths give the reference's outcomes,
scores, alerts and state bytes. State records and files are the reference's
(:mod:`detectors.state`, the same bytes).

>>> from detectors.events import parse_event
>>> eng = FleetEngine()
>>> evs = [parse_event({"customer_id": c, "ts": 0, "requests": 10, "status_4xx": 0,
...                     "status_5xx": 0}) for c in ("a", "b", "a")]
>>> eng.process_many(evs).outcomes
['warming', 'warming', 'duplicate']
>>> sorted(eng.customers)
['a', 'b']
"""
from __future__ import annotations

import heapq
import math
from typing import Any, NamedTuple, Sequence

import numpy as np

from . import alerting
from . import kernel as K
from .config import DetectorConfig
from .events import Event, EventBatch
from .kernel import Assessment
from .layout import Family
from .onsets import Onset
from .onsets import detect as detect_onsets
from .signals import SIGNALS, build_models
from .state import FLOAT64_LE, CustomerRecord, StateCodec, customer_values, row_values, tracker_state
from .verdict import OUTCOMES, BatchVerdict, Outcome, Verdict

__all__ = ["FleetEngine"]

#: first capacity (customers) of the arrays; they double when full
INITIAL_CAPACITY = 1024


class _Series(NamedTuple):
    """Where a signal's state rows live: its family's array, at this index."""

    family: Family
    at: int  # (the index of its rows in that array)


def _idle(tr: alerting.Tracker) -> bool:
    """A lifecycle that an interval without findings leaves exactly as it is."""
    return tr.hist == 0 and not tr.recent and tr.incident is None


class FleetEngine:
    """Per-customer models + alert lifecycle for a whole fleet, on arrays (see the module doc).

    Same contract as :class:`~detectors.engine.ReferenceEngine`: events of one customer in
    event-time order; an event not newer than the customer's last one is a ``duplicate``.

    Parameters
    ----------
    config : DetectorConfig, optional
        Detector configuration (defaults if omitted).
    capacity : int
        Customers the arrays hold before they first grow (they double when full).
    """

    def __init__(self, config: DetectorConfig | None = None, capacity: int = INITIAL_CAPACITY):
        self.config = config or DetectorConfig()
        self._enabled = {s for s, c in self.config.signals.items() if c.enabled}
        alerting_on = {s for s, c in self.config.signals.items() if c.enabled and c.alert}
        sustain = self.config.alerting.sustain_threshold
        probe = self._new_models()
        self._signals: list[str] = list(probe)
        self._codec = StateCodec(self.config.model_fingerprint(), {s: m.family for s, m in probe.items()})
        # model families: where each signal's rows live
        other = [s for s, m in probe.items() if m.family not in (K.SEASONAL, K.RATIO)]
        if other:
            raise ValueError(f"the fleet engine has no kernel for the models of {other}")
        members: dict[Family, list[str]] = {K.SEASONAL: [], K.RATIO: []}
        self._where: list[_Series] = []  # per signal
        for s in self._signals:
            family = probe[s].family
            self._where.append(_Series(family, len(members[family])))
            members[family].append(s)
        self._seasonal, self._ratio = members[K.SEASONAL], members[K.RATIO]
        self._columns, self._spec = self._signal_spec()
        self._gate = np.array([min(self.config.signals[s].threshold, sustain) if s in alerting_on else 2.0
                               for s in self._signals])
        self._requests_signal = self._signals.index("requests") if "requests" in self._signals else -1
        # parameter rows, and the state rows of a fresh customer (copied into every new slot)
        self._ps = self._rows([probe[s].parameter_row for s in self._seasonal], K.SEASONAL.n_packed)
        self._pr = self._rows([probe[s].parameter_row for s in self._ratio], K.RATIO.n_packed)
        self._fresh_ss = self._rows([K.SEASONAL.fresh_row() for _ in self._seasonal], K.SEASONAL.width)
        self._fresh_rs = self._rows([K.RATIO.fresh_row() for _ in self._ratio], K.RATIO.width)
        self._idle_tracker_state = tracker_state(alerting.Tracker())  # (most customers have one)
        # customers
        self.customers: dict[str, int] = {}  # customer id -> slot
        self._cid: list[str | None] = []  # slot -> customer id (None: free)
        self._free: list[int] = []
        self._trackers: dict[int, alerting.Tracker] = {}  # slot -> lifecycle, when not idle
        self.gate_offsets: Any = None  # as ReferenceEngine.gate_offsets
        #: events that came back to Python for the alert lifecycle, since this engine was made
        #: (benchmarks report their share: the kernel alone handles all the others)
        self.python_events = 0
        self._alloc(max(1, capacity))

    def _new_models(self) -> dict[str, Any]:
        return build_models(self.config.model, self._enabled)

    @staticmethod
    def _rows(rows: list[np.ndarray], width: int) -> np.ndarray:
        return np.array(rows, dtype=float).reshape(len(rows), width)

    def _signal_spec(self) -> tuple[list[str], np.ndarray]:
        """The event columns the kernel reads (ts, interval, requests first) and its per-signal
        spec (``K.G_*``): family, row index, value and support columns, absent at 0 support."""
        columns: list[str] = ["ts", "interval_s", "requests"]
        spec = []
        for s, (family, j) in zip(self._signals, self._where):
            inputs = SIGNALS[s].inputs
            if inputs is None:
                raise ValueError(f"signal {s} declares no `inputs`: the fleet engine cannot read it")
            value, support, skip_zero = inputs
            for attr in (value, support):
                if attr is not None and attr not in columns:
                    columns.append(attr)
            spec.append((K.F_SEASONAL if family is K.SEASONAL else K.F_RATIO, j, columns.index(value),
                         -1 if support is None else columns.index(support), 1 if skip_zero else 0))
        return columns, np.array(spec, dtype=np.int64).reshape(len(spec), K.G_N)

    # -- arrays ----------------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        self.ss = np.zeros((cap, len(self._seasonal), K.SEASONAL.width))
        self.rs = np.zeros((cap, len(self._ratio), K.RATIO.width))
        self.last_ts = np.full(cap, np.nan)
        self.interval = np.zeros(cap)
        self.dirty = np.zeros(cap, dtype=np.uint8)
        self.active = np.zeros(cap, dtype=np.uint8)
        self.live = np.zeros(cap, dtype=bool)

    def _grow(self) -> None:
        old = self.capacity
        names = ("ss", "rs", "last_ts", "interval", "dirty", "active", "live")
        saved = {n: getattr(self, n) for n in names}
        self._alloc(2 * old)
        for n, arr in saved.items():
            getattr(self, n)[:old] = arr

    def _rows_of(self, family: Family) -> np.ndarray:
        """The fleet's array of ``family``'s state rows: ``[slot, j, :]``."""
        return self.ss if family is K.SEASONAL else self.rs

    @property
    def capacity(self) -> int:
        return int(self.last_ts.shape[0])

    def _new_slot(self, cid: str) -> int:
        if self._free:
            slot = self._free.pop()
            self._cid[slot] = cid
        else:
            slot = len(self._cid)
            if slot >= self.capacity:
                self._grow()
            self._cid.append(cid)
        self._reset(slot)
        self.live[slot] = True
        self.customers[cid] = slot
        return slot

    def _reset(self, slot: int) -> None:
        self.ss[slot] = self._fresh_ss
        self.rs[slot] = self._fresh_rs
        self.last_ts[slot] = np.nan
        self.interval[slot] = 60.0
        self.dirty[slot] = 0
        self.active[slot] = 0
        self._trackers.pop(slot, None)

    # -- processing ----------------------------------------------------------------------
    def _columns_of(self, batch: EventBatch) -> np.ndarray:
        ev = np.empty((len(batch), len(self._columns)))
        for c, name in enumerate(self._columns):
            ev[:, c] = batch.column(name)  # (None -> NaN: the signal is absent)
        return ev

    def _run(self, events: Sequence[Event]):
        n = len(events)
        get = self.customers.get
        # the kernel reads columns: an EventBatch is them already, a list of events is read once
        batch = events if isinstance(events, EventBatch) else EventBatch.of([events])
        cids = batch.column("customer_id")
        slot_list = list(map(get, cids))
        if None in slot_list:
            for k, s in enumerate(slot_list):
                if s is None:
                    cid = cids[k]
                    s = get(cid)
                    slot_list[k] = s if s is not None else self._new_slot(cid)
        slots = np.array(slot_list, dtype=np.int64)
        ev = self._columns_of(batch)
        n_sig = len(self._signals)
        o = np.empty((n, n_sig, K.ASSESSMENT_WIDTH))
        warm = np.empty((n, n_sig), dtype=np.int8)
        outcome = np.empty(n, dtype=np.int8)
        exp_req = np.empty(n)
        need = np.empty(n, dtype=np.uint8)
        active_start = self.active[slots] if self._trackers else None
        K.run_batch(slots, ev, 0, 1, 2, self._requests_signal, self._spec, self._gate,
                    self.last_ts, self.interval, self.dirty, self.active,
                    self.ss, self._ps, self.rs, self._pr, K.CONSTANTS, o, warm, outcome, exp_req, need)
        alerts_at: dict[int, list[dict[str, Any]]] = {}
        onsets_at: dict[int, list[Onset]] = {}
        if need.any():
            self._lifecycle(events, slots, o, warm, outcome, exp_req, need, active_start, alerts_at,
                            onsets_at)
        return o, warm, outcome, alerts_at, onsets_at

    def _lifecycle(self, events, slots, o, warm, outcome, exp_req, need, active_start, alerts_at,
                   onsets_at) -> None:
        """The alert lifecycle (reference code) for the events that need it, in event order.

        A customer whose lifecycle leaves idle in this batch has its later scored events of the
        batch looked at too (the kernel only knew the lifecycle as it was at the batch start).
        """
        cfg = self.config
        cfg_signals, acfg = cfg.signals, cfg.alerting
        signals, gate = self._signals, self._gate
        todo = np.flatnonzero(need).tolist()
        extra: list[int] = []
        done: set[int] = set()
        woke: set[int] = set()
        pos = 0
        n_sig = len(signals)
        while True:
            if extra and (pos >= len(todo) or extra[0] < todo[pos]):
                k = heapq.heappop(extra)
            elif pos < len(todo):
                k = todo[pos]
                pos += 1
            else:
                break
            if extra or woke:
                if k in done:
                    continue
                done.add(k)
            self.python_events += 1
            e = events[k]
            slot = int(slots[k])
            tr = self._trackers.get(slot)
            if tr is None:
                tr = alerting.Tracker()
            sustain = acfg if tr.incident is not None else None
            offsets = self.gate_offsets(e.customer_id, e.ts) if self.gate_offsets is not None else None
            findings: list[alerting.Finding] = []
            row, wrow = o[k], warm[k]
            for s in range(n_sig):
                if wrow[s] == 1 and row[s, K.SCORE] >= gate[s]:
                    a = Assessment(*row[s].tolist())
                    name = signals[s]
                    volume = max(e.requests, a.support) if name != "requests" else max(e.requests, a.expected)
                    off = offsets.get((name, alerting.side_of(a))) if offsets else None
                    if alerting.passes_gates(name, a, volume, cfg_signals[name], sustain, off):
                        findings.append(alerting.Finding(name, e.ts, a))
            if findings:
                new = detect_onsets(tr, e, findings, acfg)
                if new:
                    onsets_at[k] = new
            out = alerting.step(tr, e, findings, float(exp_req[k]), acfg)
            if out:
                alerts_at[k] = out
            if _idle(tr):
                self._trackers.pop(slot, None)
                self.active[slot] = 0
            else:
                self._trackers[slot] = tr
                self.active[slot] = 1
                if slot not in woke and (active_start is None or not active_start[k]):
                    woke.add(slot)
                    scored = outcome[k + 1:] == Outcome.SCORED
                    later = np.flatnonzero((slots[k + 1:] == slot) & scored) + k + 1
                    for kk in later.tolist():
                        heapq.heappush(extra, kk)

    def process_many(self, events: Sequence[Event]):
        """Every event of ``events`` in order; one :class:`~detectors.verdict.BatchVerdict`."""
        if not events:
            return BatchVerdict([], [], {})
        o, warm, outcome, alerts_at, onsets_at = self._run(events)
        names = OUTCOMES
        outcomes = [names[c] for c in outcome.tolist()]
        alerts: list[dict[str, Any]] = []
        for k in sorted(alerts_at):
            alerts.extend(alerts_at[k])
        new = [x for k in sorted(onsets_at) for x in onsets_at[k]]
        scores: dict[str, list[float]] = {}
        for s, name in enumerate(self._signals):
            mask = warm[:, s] == 1
            if mask.any():
                scores[name] = o[mask, s, K.SCORE].tolist()
        return BatchVerdict(outcomes, alerts, scores, new)

    def process(self, e: Event):
        """One event (a batch of one: use :meth:`process_many` for speed)."""
        o, warm, outcome, alerts_at, onsets_at = self._run([e])
        code = int(outcome[0])
        scores = {name: float(o[0, s, K.SCORE]) for s, name in enumerate(self._signals) if warm[0, s] == 1}
        return Verdict(OUTCOMES[code], scores, alerts_at.get(0, []), onsets_at.get(0, ()))

    # -- introspection ----------------------------------------------------------------------
    def series_counts(self) -> tuple[int, int]:
        """(tracked series, series still warming up)."""
        live = self.live
        n = int(live.sum())
        warming = int((self.ss[live, :, K.S_WARM] == 0.0).sum() + (self.rs[live, :, K.R_WARM] == 0.0).sum())
        return n * len(self._signals), warming

    def open_incidents(self) -> list[alerting.Incident]:
        return [tr.incident for tr in self._trackers.values() if tr.incident is not None]

    def last_ts_of(self, cid: str) -> float | None:
        """Event time of ``cid``'s last processed event (None: unknown customer or none yet)."""
        slot = self.customers.get(cid)
        if slot is None or math.isnan(self.last_ts[slot]):
            return None
        return float(self.last_ts[slot])

    def record_last_ts(self, cid: str, blob: bytes) -> float | None:
        """Event time of the last event a state record of ``cid`` covers (None: none yet);
        StateError if the record is unusable (e.g. written under other model settings)."""
        return self._codec.load_record(cid, blob).last_ts

    def open_incidents_of(self, cid: str) -> list[alerting.Incident]:
        """``cid``'s open incident, if any, as a list."""
        slot = self.customers.get(cid)
        tr = None if slot is None else self._trackers.get(slot)
        return [] if tr is None or tr.incident is None else [tr.incident]

    def restore_models(self, cid: str, blob: bytes, signals: Sequence[str]) -> None:
        """Set the models of ``signals`` from a record of ``cid`` (as ReferenceEngine.restore_models)."""
        record = self._codec.load_record(cid, blob)
        slot = self.customers[cid]
        for s in signals:
            i = self._signals.index(s)
            family, j = self._where[i]
            self._rows_of(family)[slot, j] = record.rows[i]
        self.dirty[slot] = 1

    def resolve(self, cid: str, event: Event, extra: Any = None) -> list[dict[str, Any]]:
        """End ``cid``'s open incident before ``event`` (:func:`detectors.alerting.resolve_now`)."""
        slot = self.customers.get(cid)
        tr = None if slot is None else self._trackers.get(slot)
        if slot is None or tr is None:
            return []
        out = alerting.resolve_now(tr, event, extra)
        if _idle(tr):
            self._trackers.pop(slot, None)
            self.active[slot] = 0
        self.dirty[slot] = 1
        return out

    def models_of(self, cid: str) -> dict[str, Any] | None:
        """``cid``'s per-signal River detectors built from the arrays (a copy), or None."""
        slot = self.customers.get(cid)
        if slot is None:
            return None
        models = self._new_models()
        for m, (family, j) in zip(models.values(), self._where):
            m.state[:] = self._rows_of(family)[slot, j]
        return models

    # -- persistence (the reference's format, see detectors.state) ----------------------------
    def _customer_values(self, slot: int) -> list:
        """The record values of one customer (:func:`~detectors.state.customer_values`), read
        straight from the arrays: one ``tolist``/``tobytes`` per array, then plain lists."""
        rows = {}
        for family in (K.SEASONAL, K.RATIO):
            arr = self._rows_of(family)[slot]
            rows[family] = (arr.tolist(), arr.astype(FLOAT64_LE, copy=False).tobytes(), 8 * family.width)
        states = []
        for family, j in self._where:
            row, raw, size = rows[family]
            states.append(row_values(family, row[j], raw[j * size:(j + 1) * size]))
        lt = float(self.last_ts[slot])
        tr = self._trackers.get(slot)
        return customer_values(None if lt != lt else lt, int(self.interval[slot]), states,
                               self._idle_tracker_state if tr is None else tracker_state(tr))

    def _load_record(self, cid: str, record: CustomerRecord) -> None:
        slot = self.customers.get(cid)
        if slot is None:
            slot = self._new_slot(cid)
        else:
            self._reset(slot)
        for (family, j), row in zip(self._where, record.rows):
            self._rows_of(family)[slot, j] = row
        self.last_ts[slot] = np.nan if record.last_ts is None else record.last_ts
        self.interval[slot] = record.interval_s
        if not _idle(record.tracker):
            self._trackers[slot] = record.tracker
            self.active[slot] = 1
        self.dirty[slot] = 0  # loading never marks a customer dirty: it is stored somewhere already

    def dump_customer(self, cid: str) -> bytes:
        """One customer's learned state (the reference's record format). KeyError if unknown."""
        return self._codec.dump_record(self._customer_values(self.customers[cid]))

    def load_customer(self, cid: str, blob: bytes) -> None:
        """Replace ``cid``'s state by a record; StateError (and nothing changed) if unusable."""
        self._load_record(cid, self._codec.load_record(cid, blob))

    def drop_customer(self, cid: str) -> None:
        """Forget a customer (e.g. its partition moved to another worker); no-op if unknown."""
        slot = self.customers.pop(cid, None)
        if slot is None:
            return
        self._reset(slot)
        self.live[slot] = False
        self._cid[slot] = None
        self._free.append(slot)

    def pop_dirty(self) -> set[str]:
        """Customers whose state changed since the last call (new, or a non-duplicate event)."""
        slots = np.flatnonzero(self.dirty)
        self.dirty[:] = 0
        cid = self._cid
        return {c for c in (cid[s] for s in slots.tolist()) if c is not None}

    def dump_all(self) -> bytes:
        """Every customer's state as one file (the reference's file format)."""
        items = ((cid, self._customer_values(slot)) for cid, slot in self.customers.items())
        return b"".join(self._codec.dump_file(len(self.customers), items))

    def load_all(self, blob: bytes) -> int:
        """Load a :meth:`dump_all` file, all or nothing; return the number of customers loaded."""
        loaded = self._codec.load_file(blob)
        for cid, record in loaded.items():
            self._load_record(cid, record)
        return len(loaded)


def warm_up() -> float:
    """Compile (or load from numba's cache) the kernel now; return the seconds it took.

    The first batch would otherwise pay it: a few seconds once per installation, then a fraction
    of a second per process. ``scripts/setup.sh`` and the worker's start call it. The River
    detectors' entry points too (replay traces and users call them).
    """
    import time

    from .events import parse_event

    t0 = time.perf_counter()
    eng = FleetEngine(capacity=1)
    eng.process_many([parse_event({"customer_id": "warm-up", "ts": 0, "requests": 10, "status_4xx": 1,
                                   "status_5xx": 1, "latency_p99_ms": 5.0, "cache_hits": 5,
                                   "bytes_out": 100})])
    for m in eng._new_models().values():
        m.assess({"ts": 0.0, "value": 1.0, "num": 1.0, "den": 2.0})
        m.update({"ts": 0.0, "value": 1.0, "num": 1.0, "den": 2.0})
    return time.perf_counter() - t0
