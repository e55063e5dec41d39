"""The fleet engine: every customer's models in per-fleet arrays, a batch of events at a time.

:class:`FleetEngine` is :class:`~detectors.engine.ReferenceEngine` (per-customer River
detectors, one event at a time) reorganised for speed, behind the same interface:

* the learned state of every series lives in a few numpy arrays indexed by customer *slot*
  (structure of arrays: ~2.6 kB per customer for the 7 signals, no Python object per series);
* :meth:`FleetEngine.process_many` turns a batch of events into columns and runs the compiled
  kernel (:mod:`detectors.fleet_kernel`) over all of them, in order (an
  :class:`~detectors.events.EventBatch` is read as the columns it already is);
* only events that matter to the alert lifecycle come back to Python: a warm signal reached its
  gate, or the customer has an open incident or recent anomalous intervals. Everything that
  decides an alert (gates, lifecycle, explanations) is the reference's own code
  (:mod:`detectors.alerting`).

The River detectors stay the public per-series API and the reference: the kernel reproduces
their arithmetic bit for bit, checked on random streams by ``tests/detectors/test_fleet.py``.
State records and files are the reference's (:mod:`detectors.state`, the same bytes).

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
from array import array
from typing import Any, Sequence

import numpy as np

from . import alerting, stats, univariate
from . import fleet_kernel as K
from .config import DetectorConfig
from .events import Event, EventBatch
from .signals import SIGNALS, build_models
from .state import StateCodec, state_names, tracker_state
from .univariate import Assessment, RatioDetector, SeasonalDetector

__all__ = ["FleetEngine"]

#: first capacity (customers) of the arrays; they double when full
INITIAL_CAPACITY = 1024
_OUTCOMES = ("scored", "warming", "duplicate")  # indexed by the kernel's outcome codes

# learned state (``_STATE``) of each model class -> where the fleet keeps it: a scalar field of
# the class's state array (and how it is written: int, bool, float, or None-able float) or one
# of its profile arrays
_SEASONAL_FIELDS: dict[str, tuple[str, Any]] = {
    "_n": ("int", K.S_N), "_t0": ("opt", K.S_T0), "_last": ("opt", K.S_LAST),
    "_level": ("float", K.S_LEVEL), "_hod": ("arr", "hod"), "_hod_w": ("arr", "hodw"),
    "_dow": ("arr", "dow"), "_dow_w": ("arr", "doww"), "_s2": ("float", K.S_S2),
    "_s2_w": ("float", K.S_S2_W), "_centred": ("bool", K.S_CENTRED), "_shift": ("float", K.S_SHIFT),
    "_anom_since": ("opt", K.S_ANOM_SINCE), "_anom_sign": ("int", K.S_ANOM_SIGN),
    "_warm": ("bool", K.S_WARM), "_cs": ("float", K.S_CS), "_cs_t0": ("float", K.S_CS_T0),
}
_RATIO_FIELDS: dict[str, tuple[str, Any]] = {
    "_n": ("int", K.R_N), "_t0": ("opt", K.R_T0), "_last": ("opt", K.R_LAST), "_a": ("float", K.R_A),
    "_b": ("float", K.R_B), "_tau2": ("float", K.R_TAU2), "_tau_w": ("float", K.R_TAU_W),
    "_anom_since": ("opt", K.R_ANOM_SINCE), "_anom_sign": ("int", K.R_ANOM_SIGN),
    "_anom_a": ("float", K.R_ANOM_A), "_anom_b": ("float", K.R_ANOM_B), "_warm": ("bool", K.R_WARM),
    "_cs": ("float", K.R_CS), "_cs_t0": ("float", K.R_CS_T0), "_cs_num": ("float", K.R_CS_NUM),
    "_cs_den": ("float", K.R_CS_DEN),
}
_DIR = {"up": K.UP, "down": K.DOWN, "both": K.BOTH}


def _constants() -> np.ndarray:
    """The constants of the reference modules, computed by Python (see fleet_kernel)."""
    c = np.zeros(K.C_N)
    c[K.C_HALF], c[K.C_TEN], c[K.C_TWO] = 0.5, 10.0, 2.0
    c[K.C_LN10] = univariate._LN10
    c[K.C_SEQ_STEP_MAX] = univariate._SEQ_STEP_MAX
    c[K.C_2_PI], c[K.C_SQRT2], c[K.C_PI] = stats._2_PI, stats._SQRT2, math.pi
    c[K.C_DAY], c[K.C_HOUR], c[K.C_MAX_STEP] = univariate.DAY, univariate.HOUR, univariate.MAX_STEP_S
    c[K.C_SCALE_CLIP] = univariate.SCALE_CLIP_SIGMAS
    c[K.C_DOW_PRIOR] = univariate.DOW_PRIOR_DAYS
    c[K.C_SHIFT_RATE] = univariate.SHIFT_TRACK_RATE
    c[K.C_NORMAL_DOF] = univariate.NORMAL_DOF
    c[K.C_MAX_SURPRISE] = univariate.MAX_SURPRISE
    c[K.C_SEQ_Z_CLIP] = univariate.SEQ_Z_CLIP
    c[K.C_SEQ_MAX_DECADES] = univariate.SEQ_MAX_DECADES
    c[K.C_DOW_RANGE] = univariate.DOW_RANGE_SIGMAS
    c[K.C_EXACT_P_MIN] = univariate.EXACT_P_MIN
    c[K.C_POISSON_MAX_K] = stats.POISSON_EXACT_MAX_K
    c[K.C_T_ASYMPT_PHI] = stats._T_ASYMPTOTIC_PHI
    c[K.C_SURPRISE_EXACT_MAX] = stats.SURPRISE_EXACT_MAX
    c[K.C_SURPRISE_COMPRESS] = stats.SURPRISE_COMPRESS
    return c


def _t_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per odd degree of freedom: the lgamma part of the Student-t log density (as
    :func:`detectors.stats.student_t_sf2` computes it) and the unit-variance scale."""
    n = univariate.NORMAL_DOF + 2
    kt = np.zeros(n)
    for nu in range(1, n):
        kt[nu] = math.lgamma((nu + 1) / 2.0) - math.lgamma(nu / 2.0) - 0.5 * math.log(nu * math.pi)
    return kt, np.array(univariate._T_UNIT, dtype=float)


def _seasonal_params(m: SeasonalDetector) -> np.ndarray:
    p = np.zeros(K.P_N)
    p[K.P_LOG] = 1.0 if m._log else 0.0
    p[K.P_DIR] = _DIR[m.direction]
    p[K.P_LEVEL_HL] = m.level_half_life_s
    p[K.P_SEASON_HL] = m.season_half_life_visits
    p[K.P_SCALE_HL] = m.scale_half_life_s
    p[K.P_WEEKLY] = 1.0 if m.weekly else 0.0
    p[K.P_WARMUP_S] = m.warmup_s
    p[K.P_WARMUP_N] = m.warmup_points
    p[K.P_Z_LEARN] = m._z_learn
    p[K.P_CLIP] = m.learn_clip_sigmas
    p[K.P_ACCEPT] = m.accept_shift_after_s
    p[K.P_MIN_REL] = m.min_rel_scale
    p[K.P_MIN_ABS] = m.min_abs_scale
    p[K.P_COUNT_NOISE] = 1.0 if m.count_noise else 0.0
    p[K.P_SUPPORT_NOISE] = m.support_noise
    p[K.P_BAND] = m.band_sigmas
    p[K.P_TAIL_DOF] = m.tail_dof
    p[K.P_DOW_DN] = m._dow_dn
    p[K.P_DOW_UP] = m._dow_up
    p[K.P_DOW_SEEN] = m.dow_seen_days
    p[K.P_SEQ_SHIFT] = m.seq_shift
    p[K.P_SEQ_PENALTY] = m.seq_penalty
    p[K.P_SCALE_MIN_N] = m.scale_min_points
    return p


def _ratio_params(m: RatioDetector) -> np.ndarray:
    p = np.zeros(K.Q_N)
    p[K.Q_DIR] = _DIR[m.direction]
    p[K.Q_HL] = m.half_life_s
    p[K.Q_WARMUP_S] = m.warmup_s
    p[K.Q_WARMUP_N] = m.warmup_points
    p[K.Q_LEARN_THR] = m.learn_threshold
    p[K.Q_CLIP] = m.learn_clip_sigmas
    p[K.Q_ACCEPT] = m.accept_shift_after_s
    p[K.Q_MIN_REL] = m.min_rel_scale
    p[K.Q_PRIOR] = m.prior_events
    p[K.Q_BAND] = m.band_sigmas
    p[K.Q_SEQ_RATIO] = m.seq_ratio
    p[K.Q_SEQ_WINDOW] = m.seq_window_s
    p[K.Q_SEQ_ABS] = m.seq_abs
    p[K.Q_SEQ_PENALTY] = m.seq_penalty
    p[K.Q_TAIL_DOF] = m.tail_dof
    p[K.Q_Z_LEARN] = m._z_learn
    return p


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
        from .engine import Verdict  # (engine imports this module)

        self._verdict = Verdict
        self.config = config or DetectorConfig()
        self._enabled = {s for s, c in self.config.signals.items() if c.enabled}
        alerting_on = {s for s, c in self.config.signals.items() if c.enabled and c.alert}
        sustain = self.config.alerting.sustain_threshold
        probe = self._new_models()
        self._signals: list[str] = list(probe)
        self._codec = StateCodec(self.config.model_fingerprint(), self._new_models)
        # model families, event columns and the kernel's per-signal spec
        seasonal = [s for s in self._signals if isinstance(probe[s], SeasonalDetector)]
        ratio = [s for s in self._signals if isinstance(probe[s], RatioDetector)]
        other = [s for s in self._signals if s not in seasonal and s not in ratio]
        if other:
            raise ValueError(f"the fleet engine has no kernel for the models of {other}")
        self._seasonal, self._ratio = seasonal, ratio
        for fam, fields in ((seasonal, _SEASONAL_FIELDS), (ratio, _RATIO_FIELDS)):
            for s in fam:
                missing = set(state_names(probe[s])) ^ set(fields)
                if missing:
                    raise ValueError(f"signal {s}: the fleet engine does not map state {sorted(missing)}")
        self._columns: list[str] = ["ts", "interval_s", "requests"]
        spec = []
        for s in self._signals:
            inputs = SIGNALS[s].inputs
            if inputs is None:
                raise ValueError(f"signal {s} declares no `inputs`: the fleet engine cannot read it")
            value, support, skip_zero = inputs
            for attr in (value, support):
                if attr is not None and attr not in self._columns:
                    self._columns.append(attr)
            family, pos = (K.F_SEASONAL, seasonal.index(s)) if s in seasonal else (K.F_RATIO, ratio.index(s))
            spec.append((family, pos, self._columns.index(value),
                         -1 if support is None else self._columns.index(support), 1 if skip_zero else 0))
        self._spec = np.array(spec, dtype=np.int64).reshape(len(spec), K.G_N)
        self._gate = np.array([min(self.config.signals[s].threshold, sustain) if s in alerting_on else 2.0
                               for s in self._signals])
        self._requests_signal = self._signals.index("requests") if "requests" in self._signals else -1
        self._ps = np.array([_seasonal_params(probe[s]) for s in seasonal]).reshape(len(seasonal), K.P_N)
        self._pr = np.array([_ratio_params(probe[s]) for s in ratio]).reshape(len(ratio), K.Q_N)
        self._c = _constants()
        self._kt, self._tu = _t_tables()
        # the state of a fresh customer, copied into every new slot
        self._fresh_ss = np.zeros((len(seasonal), K.S_N_FIELDS))
        self._fresh_rs = np.zeros((len(ratio), K.R_N_FIELDS))
        for j, s in enumerate(seasonal):
            self._write_model(self._fresh_ss[j], None, probe[s], _SEASONAL_FIELDS)
            self._fresh_ss[j, K.S_DT] = probe[s]._dt
        for j, s in enumerate(ratio):
            self._write_model(self._fresh_rs[j], None, probe[s], _RATIO_FIELDS)
            self._fresh_rs[j, K.R_DT], self._fresh_rs[j, K.R_DEC] = probe[s]._dt, probe[s]._dec
        # what a state record holds, per signal: (seasonal?, index in its family, [(kind, where)]
        # in the class's _STATE order); an idle lifecycle's values (most customers have one)
        self._dump_plan = [
            (True, seasonal.index(s), [_SEASONAL_FIELDS[a] for a in SeasonalDetector._STATE]) if s in seasonal
            else (False, ratio.index(s), [_RATIO_FIELDS[a] for a in RatioDetector._STATE])
            for s in self._signals
        ]
        self._idle_tracker_state = tracker_state(alerting.Tracker())
        # customers
        self.customers: dict[str, int] = {}  # customer id -> slot
        self._cid: list[str | None] = []  # slot -> customer id (None: free)
        self._free: list[int] = []
        self._trackers: dict[int, alerting.Tracker] = {}  # slot -> lifecycle, when not idle
        self.gate_offsets: Any = None  # as ReferenceEngine.gate_offsets
        self._alloc(max(1, capacity))

    def _new_models(self) -> dict[str, Any]:
        return build_models(self.config.model, self._enabled)

    # -- arrays ----------------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        ns, nr = len(self._seasonal), len(self._ratio)
        self.ss = np.zeros((cap, ns, K.S_N_FIELDS))
        self.hod = np.zeros((cap, ns, 24))
        self.hodw = np.zeros((cap, ns, 24))
        self.dow = np.zeros((cap, ns, 7))
        self.doww = np.zeros((cap, ns, 7))
        self.rs = np.zeros((cap, nr, K.R_N_FIELDS))
        self.last_ts = np.full(cap, np.nan)
        self.interval = np.zeros(cap)
        self.dirty = np.zeros(cap, dtype=np.uint8)
        self.active = np.zeros(cap, dtype=np.uint8)
        self.live = np.zeros(cap, dtype=bool)

    def _grow(self) -> None:
        old = self.capacity
        names = ("ss", "hod", "hodw", "dow", "doww", "rs", "last_ts", "interval", "dirty", "active", "live")
        saved = {n: getattr(self, n) for n in names}
        self._alloc(2 * old)
        for n, arr in saved.items():
            getattr(self, n)[:old] = arr

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
        self.hod[slot] = 0.0
        self.hodw[slot] = 0.0
        self.dow[slot] = 0.0
        self.doww[slot] = 0.0
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
        o = np.empty((n, n_sig, K.A_N))
        warm = np.empty((n, n_sig), dtype=np.int8)
        outcome = np.empty(n, dtype=np.int8)
        exp_req = np.empty(n)
        need = np.empty(n, dtype=np.uint8)
        active_start = self.active[slots] if self._trackers else None
        K.run_batch(slots, ev, 0, 1, 2, self._requests_signal, self._spec, self._gate,
                    self.last_ts, self.interval, self.dirty, self.active,
                    self.ss, self.hod, self.hodw, self.dow, self.doww, self._ps, self.rs, self._pr,
                    self._c, self._kt, self._tu, o, warm, outcome, exp_req, need)
        alerts_at: dict[int, list[dict[str, Any]]] = {}
        if need.any():
            self._lifecycle(events, slots, o, warm, outcome, exp_req, need, active_start, alerts_at)
        return o, warm, outcome, alerts_at

    def _lifecycle(self, events, slots, o, warm, outcome, exp_req, need, active_start, alerts_at) -> None:
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
                if wrow[s] == 1 and row[s, K.A_SCORE] >= gate[s]:
                    a = Assessment(*row[s].tolist())
                    name = signals[s]
                    volume = max(e.requests, a.support) if name != "requests" else max(e.requests, a.expected)
                    off = offsets.get((name, alerting.side_of(a))) if offsets else None
                    if alerting.passes_gates(name, a, volume, cfg_signals[name], sustain, off):
                        findings.append(alerting.Finding(name, e.ts, a))
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
                    later = np.flatnonzero((slots[k + 1:] == slot) & (outcome[k + 1:] == K.SCORED)) + k + 1
                    for kk in later.tolist():
                        heapq.heappush(extra, kk)

    def process_many(self, events: Sequence[Event]):
        """Every event of ``events`` in order; one :class:`~detectors.engine.BatchVerdict`."""
        from .engine import BatchVerdict

        if not events:
            return BatchVerdict([], [], {})
        o, warm, outcome, alerts_at = self._run(events)
        names = _OUTCOMES
        outcomes = [names[c] for c in outcome.tolist()]
        alerts: list[dict[str, Any]] = []
        for k in sorted(alerts_at):
            alerts.extend(alerts_at[k])
        scores: dict[str, list[float]] = {}
        for s, name in enumerate(self._signals):
            mask = warm[:, s] == 1
            if mask.any():
                scores[name] = o[mask, s, K.A_SCORE].tolist()
        return BatchVerdict(outcomes, alerts, scores)

    def process(self, e: Event):
        """One event (a batch of one: use :meth:`process_many` for speed)."""
        o, warm, outcome, alerts_at = self._run([e])
        code = int(outcome[0])
        scores = {name: float(o[0, s, K.A_SCORE]) for s, name in enumerate(self._signals) if warm[0, s] == 1}
        return self._verdict(_OUTCOMES[code], scores, alerts_at.get(0, []))

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

    def open_incidents_of(self, cid: str) -> list[alerting.Incident]:
        """``cid``'s open incident, if any, as a list."""
        slot = self.customers.get(cid)
        tr = None if slot is None else self._trackers.get(slot)
        return [] if tr is None or tr.incident is None else [tr.incident]

    def restore_models(self, cid: str, blob: bytes, signals: Sequence[str]) -> None:
        """Set the models of ``signals`` from a record of ``cid`` (as ReferenceEngine.restore_models)."""
        states, _, _, _ = self._codec.load_values(cid, blob)
        slot = self.customers[cid]
        for s in signals:
            values = states[self._signals.index(s)]
            if s in self._seasonal:
                j = self._seasonal.index(s)
                self.ss[slot, j] = self._fresh_ss[j]  # derived caches too, as a loaded customer has them
                self._write_values(self.ss[slot, j], self._profiles(slot, j), values, SeasonalDetector._STATE,
                                   _SEASONAL_FIELDS)
            else:
                j = self._ratio.index(s)
                self.rs[slot, j] = self._fresh_rs[j]
                self._write_values(self.rs[slot, j], None, values, RatioDetector._STATE, _RATIO_FIELDS)
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
        _, _, states, _ = self._customer_values(slot)  # the state a record of it would hold
        for m, values in zip(models.values(), states):
            for name, v in zip(state_names(m), values):
                setattr(m, name, array("d", v) if isinstance(v, bytes) else v)
        # and the step-length caches, which the reference's assessments read too
        for j, s in enumerate(self._seasonal):
            models[s]._dt = float(self.ss[slot, j, K.S_DT])
            models[s]._rates = tuple(float(x) for x in self.ss[slot, j, K.S_R0:K.S_R3 + 1])
        for j, s in enumerate(self._ratio):
            models[s]._dt, models[s]._dec = float(self.rs[slot, j, K.R_DT]), float(self.rs[slot, j, K.R_DEC])
        return models

    def _profiles(self, slot: int, j: int) -> dict[str, np.ndarray]:
        return {"hod": self.hod[slot, j], "hodw": self.hodw[slot, j], "dow": self.dow[slot, j],
                "doww": self.doww[slot, j]}

    def _write_model(self, row: np.ndarray, prof: dict | None, m: Any, fields: dict) -> None:
        self._write_values(row, prof, [getattr(m, a) for a in state_names(m)], state_names(m), fields)

    @staticmethod
    def _write_values(row: np.ndarray, prof: dict | None, values: Sequence[Any], names: Sequence[str],
                      fields: dict) -> None:
        for name, v in zip(names, values):
            kind, where = fields[name]
            if kind == "arr":
                if prof is not None:
                    prof[where][:] = np.frombuffer(v, dtype=np.float64)
                continue
            row[where] = np.nan if v is None else float(v)

    # -- persistence (the reference's format, see detectors.state) ----------------------------
    def _customer_values(self, slot: int) -> list:
        """The codec's values of one customer (:meth:`StateCodec.customer`'s layout), read
        straight from the arrays: one ``tolist``/``tobytes`` per array, then plain lists."""
        ss, rs = self.ss[slot].tolist(), self.rs[slot].tolist()
        prof = {"hod": (self.hod[slot].tobytes(), 24 * 8), "hodw": (self.hodw[slot].tobytes(), 24 * 8),
                "dow": (self.dow[slot].tobytes(), 7 * 8), "doww": (self.doww[slot].tobytes(), 7 * 8)}
        states = []
        for seasonal, j, plan in self._dump_plan:
            row = ss[j] if seasonal else rs[j]
            vals: list[Any] = []
            for kind, where in plan:
                if kind == "arr":
                    raw, size = prof[where]
                    vals.append(raw[j * size:(j + 1) * size])
                    continue
                x = row[where]
                if kind == "float":
                    vals.append(x)
                elif kind == "int":
                    vals.append(int(x))
                elif kind == "bool":
                    vals.append(x != 0.0)
                else:
                    vals.append(None if x != x else x)
            states.append(vals)
        lt = float(self.last_ts[slot])
        tr = self._trackers.get(slot)
        return [None if lt != lt else lt, int(self.interval[slot]), states,
                self._idle_tracker_state if tr is None else tracker_state(tr)]

    def _load_decoded(self, cid: str, decoded: tuple) -> None:
        states, tracker, last_ts, interval_s = decoded
        slot = self.customers.get(cid)
        if slot is None:
            slot = self._new_slot(cid)
        else:
            self._reset(slot)
        for s, values in zip(self._signals, states):
            if s in self._seasonal:
                j = self._seasonal.index(s)
                self._write_values(self.ss[slot, j], self._profiles(slot, j), values, SeasonalDetector._STATE,
                                   _SEASONAL_FIELDS)
            else:
                j = self._ratio.index(s)
                self._write_values(self.rs[slot, j], None, values, RatioDetector._STATE, _RATIO_FIELDS)
        self.last_ts[slot] = np.nan if last_ts is None else last_ts
        self.interval[slot] = interval_s
        if not _idle(tracker):
            self._trackers[slot] = tracker
            self.active[slot] = 1
        self.dirty[slot] = 0  # loading never marks a customer dirty: it is stored somewhere already

    def dump_customer(self, cid: str) -> bytes:
        """One customer's learned state (the reference's record format). KeyError if unknown."""
        return self._codec.dump_values(self._customer_values(self.customers[cid]))

    def load_customer(self, cid: str, blob: bytes) -> None:
        """Replace ``cid``'s state by a record; StateError (and nothing changed) if unusable."""
        self._load_decoded(cid, self._codec.load_values(cid, blob))

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
        return b"".join(self._codec.dump_file_values(len(self.customers), items))

    def load_all(self, blob: bytes) -> int:
        """Load a :meth:`dump_all` file, all or nothing; return the number of customers loaded."""
        loaded = self._codec.load_file(blob, self._codec.decode_customer)
        for cid, decoded in loaded.items():
            self._load_decoded(cid, decoded)
        return len(loaded)


def warm_up() -> float:
    """Compile (or load from numba's cache) the kernel now; return the seconds it took.

    The first batch would otherwise pay it: a few seconds once per installation, then a fraction
    of a second per process. ``scripts/setup.sh`` and the worker's start call it.
    """
    import time

    from .events import parse_event

    t0 = time.perf_counter()
    eng = FleetEngine(capacity=1)
    eng.process_many([parse_event({"customer_id": "warm-up", "ts": 0, "requests": 10, "status_4xx": 1,
                                   "status_5xx": 1, "latency_p99_ms": 5.0, "cache_hits": 5,
                                   "bytes_out": 100})])
    return time.perf_counter() - t0
