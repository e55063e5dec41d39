"""What customers do that is not an incident: recurring false patterns and announced migrations.

A layer over :func:`detectors.synthetic.simulate` (whose events it leaves untouched elsewhere):

* a **recurring pattern** -- a nightly crawler (traffic surge, cache misses), a batch job that
  hits a broken endpoint (5xx burst) or a scheduled cache purge -- repeats at the same time
  every day for 30-60 minutes. It is not labelled: an engineer would mark its first alert a
  false alarm;
* a **migration** -- an origin move (5xx and latency up), traffic moved away, or a load test
  (traffic and latency up) -- lasts a few hours once, announced in advance as a maintenance
  window, and then traffic is back to what it was.

Deterministic: everything is drawn from the simulation's seed and a purpose key of its own, so
the same configuration always gives the same operations, and adding them never changes the
incidents or noise :func:`~detectors.synthetic.simulate` draws.

>>> from detectors.synthetic import SimConfig, simulate
>>> sim = simulate(SimConfig(customers=4, duration_s=5 * 86400, seed=3, incidents=0, size_min=200))
>>> ops = plan_operations(sim, patterns=1, migrations=1)
>>> [p.kind for p in ops.patterns], [m.kind for m in ops.migrations]
(['crawler'], ['origin_migration'])
>>> changed = sum(1 for a, b in zip(sim.events(), ops.apply(sim.events())) if a != b)
>>> changed > 0
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from .events import format_ts, parse_ts
from .synthetic import Simulation, warmup_seconds

__all__ = ["MIGRATION_KINDS", "PATTERN_KINDS", "Migration", "Operations", "Pattern", "plan_operations"]

PATTERN_KINDS = ("crawler", "batch_errors", "purge")
MIGRATION_KINDS = ("origin_migration", "traffic_move", "load_test")
_DAY = 86400.0
_PURPOSE = 17  # spawn-key slot of these draws (synthetic.py uses 0-4 per customer)
#: a pattern or migration needs this many requests per interval to show at all
MIN_REQUESTS = 50.0


@dataclass(frozen=True)
class Pattern:
    """A false pattern of one customer: from ``first``, every ``period_s``, for ``duration_s``."""

    customer_id: str
    kind: str
    first: float
    period_s: float
    duration_s: float
    strength: float

    def active(self, ts: float) -> bool:
        return ts >= self.first and (ts - self.first) % self.period_s < self.duration_s

    def occurrences(self, until: float) -> list[tuple[float, float]]:
        n = int(max(0.0, until - self.first) // self.period_s) + 1
        return [(self.first + i * self.period_s, self.first + i * self.period_s + self.duration_s)
                for i in range(n) if self.first + i * self.period_s < until]

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "kind": self.kind, "first": format_ts(self.first),
                "period_s": self.period_s, "duration_s": self.duration_s, "strength": round(self.strength, 3)}


@dataclass(frozen=True)
class Migration:
    """An announced change of one customer's traffic during ``[start, end)``."""

    customer_id: str
    kind: str
    start: float
    end: float
    strength: float

    def active(self, ts: float) -> bool:
        return self.start <= ts < self.end

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "kind": self.kind, "start": format_ts(self.start),
                "end": format_ts(self.end), "strength": round(self.strength, 3)}


@dataclass
class Operations:
    """The patterns and migrations of a simulation, and how they change its events."""

    seed: int
    patterns: list[Pattern] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)

    def apply(self, events: Iterable[dict[str, Any]], migrations: bool = True) -> Iterator[dict[str, Any]]:
        """``events`` with the patterns (and, unless ``migrations`` is False, the migrations) applied."""
        pats: dict[str, list[Pattern]] = {}
        for p in self.patterns:
            pats.setdefault(p.customer_id, []).append(p)
        migs: dict[str, list[Migration]] = {}
        if migrations:
            for m in self.migrations:
                migs.setdefault(m.customer_id, []).append(m)
        for ev in events:
            cid = ev["customer_id"]
            if cid not in pats and cid not in migs:
                yield ev
                continue
            ts = parse_ts(ev["ts"])
            out = ev
            for p in pats.get(cid, ()):
                if p.active(ts):
                    out = _changed(out, p.kind, p.strength, self._rng(cid, ts))
            for m in migs.get(cid, ()):
                if m.active(ts):
                    out = _changed(out, m.kind, m.strength, self._rng(cid, ts, 1))
            yield out

    def _rng(self, cid: str, ts: float, purpose: int = 0) -> np.random.Generator:
        key = int.from_bytes(cid.encode()[-8:].rjust(8, b"\0"), "little")
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_PURPOSE, purpose, key,
                                                                                   int(ts))))


def _changed(ev: dict[str, Any], kind: str, strength: float, rng: np.random.Generator) -> dict[str, Any]:
    """One event as ``kind`` changes it (counts stay consistent: the event contract holds)."""
    e = dict(ev)
    req = int(e["requests"])
    if kind in ("crawler", "load_test"):
        extra = int(rng.poisson(req * (strength - 1.0)))
        hits_share = 0.2 if kind == "crawler" else 0.7  # crawlers fetch what is not cached
        e["requests"] = req + extra
        if e.get("cache_hits") is not None:
            e["cache_hits"] = int(e["cache_hits"]) + int(rng.binomial(extra, hits_share))
        if e.get("bytes_out") is not None:
            e["bytes_out"] = int(e["bytes_out"] * (1.0 + 0.6 * (strength - 1.0)))
        e["status_4xx"] = int(e["status_4xx"]) + int(rng.binomial(extra, 0.05 if kind == "crawler" else 0.01))
        if kind == "load_test" and e.get("latency_p99_ms") is not None:
            e["latency_p99_ms"] = round(float(e["latency_p99_ms"]) * (1.0 + 0.4 * strength), 2)
            e["latency_p50_ms"] = round(float(e.get("latency_p50_ms") or 0.0) * 1.3, 2)
    elif kind == "traffic_move":
        keep = 1.0 / strength
        e["requests"] = int(rng.binomial(req, keep))
        scale = e["requests"] / req if req else 0.0
        for k in ("status_4xx", "status_5xx", "cache_hits"):
            if e.get(k) is not None:
                e[k] = int(math.floor(int(e[k]) * scale))
        if e.get("bytes_out") is not None:
            e["bytes_out"] = int(e["bytes_out"] * scale)
        e.pop("origin_errors", None)
    elif kind in ("batch_errors", "origin_migration"):
        ok = req - int(e["status_4xx"]) - int(e["status_5xx"])
        rate = 0.02 * strength
        extra = int(rng.binomial(max(ok, 0), min(rate, 0.5)))
        e["status_5xx"] = int(e["status_5xx"]) + extra
        origin = dict(e.get("origin_errors") or {})
        origin["502"] = int(origin.get("502", 0)) + extra
        e["origin_errors"] = origin
        if kind == "origin_migration" and e.get("latency_p99_ms") is not None:
            e["latency_p99_ms"] = round(float(e["latency_p99_ms"]) * (1.0 + 0.5 * strength), 2)
    elif kind == "purge":
        if e.get("cache_hits") is not None:
            e["cache_hits"] = int(int(e["cache_hits"]) / strength)
    else:  # pragma: no cover - kinds are checked when planned
        raise ValueError(f"unknown kind {kind!r}")
    return e


def plan_operations(sim: Simulation, *, patterns: int = 0, migrations: int = 0,
                    pattern_kinds: tuple[str, ...] = PATTERN_KINDS,
                    migration_kinds: tuple[str, ...] = MIGRATION_KINDS) -> Operations:
    """Place ``patterns`` recurring false patterns and ``migrations`` migrations on distinct
    customers of ``sim`` big enough to show them (kinds in turn), after its warm-up.

    Patterns start on the day after the warm-up, at a random hour, and recur daily; a
    migration lasts 2-6 hours on a random day of the evaluation window.
    """
    cfg = sim.config
    g = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_PURPOSE, 2**32 - 1)))
    iv = cfg.interval_s
    # customers whose traffic is large enough (at night too) for a change to be unmistakable
    big = [p for p in sim.customers if p.size * (iv / 60.0) * p.trough >= MIN_REQUESTS]
    order = [big[i] for i in g.permutation(len(big))]
    busy = {i.customer_id for i in sim.incidents}  # prefer customers without injected incidents
    order.sort(key=lambda p: p.customer_id in busy)
    warm_end = cfg.start + warmup_seconds(cfg)
    ops = Operations(cfg.seed)
    n_days = int((cfg.end - warm_end) // _DAY)
    for k, prof in enumerate(order[:patterns]):
        kind = pattern_kinds[k % len(pattern_kinds)]
        hour = int(g.integers(0, 24))
        first = (math.floor(warm_end / _DAY) + 1) * _DAY + hour * 3600.0
        duration = float(g.choice([1800.0, 2700.0, 3600.0]))
        duration = max(iv, round(duration / iv) * iv)
        strength = float(g.uniform(3.0, 6.0))
        ops.patterns.append(Pattern(prof.customer_id, kind, first, _DAY, duration, strength))
    for k, prof in enumerate(order[patterns:patterns + migrations]):
        kind = migration_kinds[k % len(migration_kinds)]
        day = int(g.integers(1, max(2, n_days)))
        start = math.floor(warm_end / _DAY) * _DAY + day * _DAY + float(g.integers(0, 18)) * 3600.0
        start = max(warm_end, min(start, cfg.end - 8 * 3600.0))
        start = math.floor(start / iv) * iv
        hours = float(g.integers(2, 7))
        strength = float(g.uniform(3.0, 5.0))
        ops.migrations.append(Migration(prof.customer_id, kind, start, start + hours * 3600.0, strength))
    return ops
