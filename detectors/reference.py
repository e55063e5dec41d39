"""The reference engine: per-customer River detectors, one event at a time.

:class:`ReferenceEngine` is what :class:`~detectors.engine.Engine` (the fleet engine,
:mod:`detectors.fleet`) does on per-fleet arrays, a batch at a time; both run the same compiled
arithmetic (:mod:`detectors.kernel`), and ``tests/detectors/test_fleet.py`` holds them equal bit
for bit, so this is the plain statement of the fleet's batching, gating and Python paths. Replay
traces (``streams.replay.tracing``) use it to show a customer's models.

>>> from detectors.events import parse_event
>>> eng = ReferenceEngine()
>>> eng.process(parse_event({"customer_id": "c1", "ts": 0, "requests": 10, "status_4xx": 0,
...                          "status_5xx": 0})).outcome
'warming'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import alerting
from .config import DetectorConfig
from .events import Event
from .onsets import Onset
from .onsets import detect as detect_onsets
from .signals import SIGNALS, build_models
from .state import CustomerRecord, StateCodec, customer_values, model_state, tracker_state
from .verdict import OUTCOMES, BatchVerdict, Outcome, Verdict

__all__ = ["CustomerState", "GateOffsets", "ReferenceEngine"]

#: (customer id, event time) -> what false alarms ask per (signal, side), or None (see
#: :meth:`detectors.steering.Steering.offsets`)
GateOffsets = Callable[[str, float], "Mapping[tuple[str, str], alerting.GateShift] | None"]

_SCORED, _WARMING, _DUPLICATE = (OUTCOMES[o] for o in (Outcome.SCORED, Outcome.WARMING, Outcome.DUPLICATE))


@dataclass(slots=True)
class CustomerState:
    """What the reference keeps per customer."""

    models: dict[str, Any]
    tracker: alerting.Tracker
    last_ts: float | None = None
    interval_s: int = 60


class ReferenceEngine:
    """Per-customer models + alert lifecycle, one event at a time: the reference.

    Every customer has its own River detectors (:func:`~detectors.signals.build_models`).
    :class:`~detectors.engine.Engine` (the fleet engine) does exactly this on per-fleet
    arrays, a batch at a time; ``tests/detectors/test_fleet.py`` holds the two equal.

    Events of one customer must arrive in event-time order (Kafka's per-key ordering gives
    that); an event not newer than the customer's last one is a ``duplicate`` and is ignored,
    which makes at-least-once redelivery harmless.
    """

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        self._enabled = {s for s, c in self.config.signals.items() if c.enabled}
        self._alerting = {s for s, c in self.config.signals.items() if c.enabled and c.alert}
        # lowest score that could pass a signal's gates (opening or sustaining); 2.0 = never
        sustain = self.config.alerting.sustain_threshold
        self._gate = {s: (min(c.threshold, sustain) if s in self._alerting else 2.0)
                      for s, c in self.config.signals.items()}
        self._args = {name: sig.args for name, sig in SIGNALS.items()}
        self.customers: dict[str, CustomerState] = {}
        self._dirty: set[str] = set()
        #: (customer, event time) -> extra surprise, in decades, per (signal, side); None = none
        #: (engineers' false-alarm verdicts: detectors.steering)
        self.gate_offsets: GateOffsets | None = None
        self._codec = StateCodec(self.config.model_fingerprint(),
                                 {s: m.family for s, m in self._new_models().items()})

    def _new_models(self) -> dict[str, Any]:
        return build_models(self.config.model, self._enabled)

    # -- processing ----------------------------------------------------------------
    def process(self, e: Event) -> Verdict:
        st = self.customers.get(e.customer_id)
        if st is None:
            st = CustomerState(self._new_models(), alerting.Tracker())
            self.customers[e.customer_id] = st
        elif st.last_ts is not None and e.ts <= st.last_ts:
            return Verdict(_DUPLICATE, {}, [])
        self._dirty.add(e.customer_id)
        st.last_ts = e.ts
        st.interval_s = e.interval_s
        cfg_signals = self.config.signals
        scores: dict[str, float] = {}
        findings: list[alerting.Finding] = []
        warm_any = False
        expected_requests = float(e.requests)
        sustain = self.config.alerting if st.tracker.incident is not None else None
        offsets = self.gate_offsets(e.customer_id, e.ts) if self.gate_offsets is not None else None
        gate = self._gate
        args_of = self._args
        for name, model in st.models.items():
            args = args_of[name](e)
            if args is None:
                continue
            a = model.step(*args)  # scores first, then learns
            if not model.warm:
                continue
            warm_any = True
            scores[name] = a.score
            if name == "requests":
                expected_requests = a.expected
            # the volume gate of a traffic signal looks at the usual volume: a drop to almost
            # nothing must not be gated out because the *observed* volume is small
            if a.score >= gate[name]:
                # (ratios: the requests behind the evidence, more than one interval's when the
                # sequential test has accumulated it)
                volume = max(e.requests, a.support) if name != "requests" else max(e.requests, a.expected)
                off = offsets.get((name, alerting.side_of(a))) if offsets else None
                if alerting.passes_gates(name, a, volume, cfg_signals[name], sustain, off):
                    findings.append(alerting.Finding(name, e.ts, a))
        if not warm_any:
            return Verdict(_WARMING, scores, [])
        new = detect_onsets(st.tracker, e, findings, self.config.alerting) if findings else ()
        alerts = alerting.step(st.tracker, e, findings, expected_requests, self.config.alerting)
        return Verdict(_SCORED, scores, alerts, new)

    def process_many(self, events: Sequence[Event]) -> BatchVerdict:
        """:meth:`process` for every event of ``events``, in order; one result for the batch."""
        outcomes: list[str] = []
        alerts: list[dict[str, Any]] = []
        new: list[Onset] = []
        scores: dict[str, list[float]] = {}
        for e in events:
            v = self.process(e)
            outcomes.append(v.outcome)
            if v.alerts:
                alerts.extend(v.alerts)
            if v.onsets:
                new.extend(v.onsets)
            for sig, sc in v.scores.items():
                lst = scores.get(sig)
                if lst is None:
                    scores[sig] = [sc]
                else:
                    lst.append(sc)
        return BatchVerdict(outcomes, alerts, scores, new)

    def last_ts_of(self, cid: str) -> float | None:
        """Event time of ``cid``'s last processed event (None: unknown customer or none yet)."""
        st = self.customers.get(cid)
        return None if st is None else st.last_ts

    def record_last_ts(self, cid: str, blob: bytes) -> float | None:
        """Event time of the last event a state record of ``cid`` covers (None: none yet);
        StateError if the record is unusable (e.g. written under other model settings)."""
        return self._codec.load_record(cid, blob).last_ts

    def open_incidents_of(self, cid: str) -> list[alerting.Incident]:
        """``cid``'s open incident, if any, as a list."""
        st = self.customers.get(cid)
        return [] if st is None or st.tracker.incident is None else [st.tracker.incident]

    def restore_models(self, cid: str, blob: bytes, signals: Sequence[str]) -> None:
        """Set the models of ``signals`` from a :meth:`dump_customer` record of ``cid``; its last
        event time and lifecycle stay as they are (a learn mask, a rebuild)."""
        saved = self._restore(self._codec.load_record(cid, blob)).models
        st = self.customers[cid]
        for s in signals:
            st.models[s] = saved[s]
        self._dirty.add(cid)

    def resolve(self, cid: str, event: Event, extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """End ``cid``'s open incident before ``event`` (:func:`detectors.alerting.resolve_now`)."""
        st = self.customers.get(cid)
        if st is None:
            return []
        out = alerting.resolve_now(st.tracker, event, extra)
        if out:
            self._dirty.add(cid)
        return out

    def models_of(self, cid: str) -> dict[str, Any] | None:
        """``cid``'s per-signal River detectors (a read-only view: do not learn on them), or None."""
        st = self.customers.get(cid)
        return None if st is None else st.models

    # -- introspection (metrics) ------------------------------------------------------
    def series_counts(self) -> tuple[int, int]:
        """(tracked series, series still warming up)."""
        tracked = warming = 0
        for st in self.customers.values():
            for m in st.models.values():
                tracked += 1
                if not m.warm:
                    warming += 1
        return tracked, warming

    def open_incidents(self) -> list[alerting.Incident]:
        return [st.tracker.incident for st in self.customers.values() if st.tracker.incident is not None]

    # -- persistence -------------------------------------------------------------------
    # The format (msgpack data, never code) is :mod:`detectors.state`. Loading never marks a
    # customer dirty: what was loaded is already stored somewhere.
    def dump_customer(self, cid: str) -> bytes:
        """One customer's learned state, self-describing (format version, model fingerprint).

        Raises ``KeyError`` for a customer the engine does not track.
        """
        return self._codec.dump_record(self._values(self.customers[cid]))

    def load_customer(self, cid: str, blob: bytes) -> None:
        """Replace ``cid``'s state by one written by :meth:`dump_customer`.

        Raises :class:`~detectors.state.StateError` (and changes nothing) for another format
        version, another model fingerprint ("written with other model settings"), or garbage.
        """
        self.customers[cid] = self._restore(self._codec.load_record(cid, blob))

    def drop_customer(self, cid: str) -> None:
        """Forget a customer (e.g. its partition moved to another worker); no-op if unknown."""
        self.customers.pop(cid, None)
        self._dirty.discard(cid)

    def pop_dirty(self) -> set[str]:
        """Customers whose state changed since the last call (new, or a non-duplicate event)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def dump_all(self) -> bytes:
        """Every customer's state as one file (header: format version, fingerprint, count)."""
        items = ((cid, self._values(st)) for cid, st in self.customers.items())
        return b"".join(self._codec.dump_file(len(self.customers), items))

    def load_all(self, blob: bytes) -> int:
        """Load a :meth:`dump_all` file, all or nothing; return the number of customers loaded.

        Customers in the file replace those with the same id; others are kept. Raises
        :class:`~detectors.state.StateError` (and changes nothing) if any part is unusable.
        """
        loaded = self._codec.load_file(blob)
        for cid, record in loaded.items():
            self.customers[cid] = self._restore(record)
        return len(loaded)

    @staticmethod
    def _values(st: CustomerState) -> list:
        states = [model_state(m) for m in st.models.values()]
        return customer_values(st.last_ts, st.interval_s, states, tracker_state(st.tracker))

    def _restore(self, record: CustomerRecord) -> CustomerState:
        models = self._new_models()
        for m, row in zip(models.values(), record.rows):
            m.state[:] = row
        return CustomerState(models, record.tracker, record.last_ts, record.interval_s)
