"""A customer's recent past kept in memory: state checkpoints and events (replay, tests).

A rebuild (:func:`detectors.steering.rebuild_models`) needs a state record of the customer from
before some time and the events since. The worker finds both in Kafka (the state history topic
and the input topic, :mod:`streams.state.history`); a replay keeps them here, for the customers
that have verdicts or windows only, for as long as a rebuild may reach back.

>>> from detectors.engine import Engine
>>> from detectors.events import parse_event
>>> eng = Engine()
>>> h = MemoryHistory(every_s=600, keep_s=3600)
>>> for i in range(12):
...     evs = [parse_event({"customer_id": "a", "ts": 300 * i, "interval_s": 300, "requests": 10,
...                         "status_4xx": 0, "status_5xx": 0})]
...     _ = eng.process_many(evs)
...     h.observe(eng, evs, {"a"})
>>> eng.load_customer("a", h.checkpoint("a", before=1500))
>>> eng.last_ts_of("a")
1200.0
>>> [e.ts for e in h.events("a", after=1200, before=2400)]
[1500.0, 1800.0, 2100.0]
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from .events import Event

__all__ = ["MemoryHistory"]


class MemoryHistory:
    """Checkpoints every ``every_s`` of event time and the events of the last ``keep_s`` (plus
    what reaches back to the oldest checkpoint kept), per customer."""

    def __init__(self, every_s: float = 3600.0, keep_s: float = 86400.0):
        self.every_s = every_s
        self.keep_s = keep_s
        self._checkpoints: dict[str, list[tuple[float, bytes]]] = {}  # cid -> [(last_ts, record)]
        self._events: dict[str, list[Event]] = {}

    def observe(self, engine: Any, events: Sequence[Event], customers: Iterable[str]) -> None:
        """After ``engine`` processed ``events``: keep those of ``customers`` and, once per
        ``every_s``, a checkpoint of each of them."""
        want = set(customers)
        if not want:
            return
        touched = set()
        for e in events:
            if e.customer_id in want:
                self._events.setdefault(e.customer_id, []).append(e)
                touched.add(e.customer_id)
        for cid in touched:
            last = engine.last_ts_of(cid)
            if last is None:
                continue
            cps = self._checkpoints.setdefault(cid, [])
            if not cps or last - cps[-1][0] >= self.every_s:
                cps.append((last, engine.dump_customer(cid)))
                self._trim(cid, last)

    def _trim(self, cid: str, now: float) -> None:
        cps = self._checkpoints[cid]
        # the newest checkpoint at least keep_s old stays: a rebuild back to now - keep_s needs it
        old = [i for i, (ts, _) in enumerate(cps) if ts <= now - self.keep_s]
        if len(old) > 1:
            del cps[:old[-1]]
        first = cps[0][0]
        evs = self._events.get(cid, [])
        k = 0
        while k < len(evs) and evs[k].ts <= first:
            k += 1
        if k:
            del evs[:k]

    def checkpoint(self, customer_id: str, before: float) -> bytes | None:
        best = None
        for ts, blob in self._checkpoints.get(customer_id, ()):
            if ts < before:
                best = blob
        return best

    def events(self, customer_id: str, after: float, before: float) -> list[Event]:
        return [e for e in self._events.get(customer_id, ()) if after < e.ts < before]
