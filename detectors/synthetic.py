"""Deterministic synthetic CDN traffic with labelled incidents.

The simulator produces ``request-metrics`` events (see :mod:`detectors.events`)
for a population of customers whose sizes span orders of magnitude, with daily
seasonality in each customer's own time zone, weekly seasonality, holidays,
slow growth, unlabelled permanent level shifts, count noise and slowly
wandering ratios -- and a set of injected incidents whose windows are the
ground-truth labels.

Everything is a pure function of the :class:`SimConfig` (including ``seed``):
each customer draws its profile, its incidents (in rate mode) and its noise from
numpy Generators seeded with ``(seed, customer index, purpose[, block])``, so the
same configuration always yields the same events, and a customer's traffic does
not depend on how many other customers are simulated.

>>> sim = simulate(SimConfig(customers=3, duration_s=3600, interval_s=300, seed=7))
>>> len(sim.customers), sim.n_intervals, sim.n_events
(3, 12, 36)
>>> events = sim.events()
>>> first = next(events)
>>> first["customer_id"], first["ts"], first["interval_s"]
('cust-0001', '2026-01-05T00:00:00Z', 300)
>>> from detectors.events import parse_event
>>> all(parse_event(e) for e in sim.events())
True
>>> Incident("acme", 1767607200.0, 1767609000.0, "latency").to_json()
{'customer_id': 'acme', 'start': '2026-01-05T10:00:00Z', 'end': '2026-01-05T10:30:00Z', 'kind': 'latency'}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from detectors.catalogue import Catalogue
from detectors.events import (
    CUSTOMER_ID_RE,
    MAX_INTERVAL_S,
    MAX_TS,
    InvalidEvent,
    format_ts,
    parse_time,
    parse_ts,
)
from detectors.synthetic_shared import SharedCause, make_catalogue, place_shared_causes

__all__ = [
    "ALL_KINDS",
    "DEFAULT_START",
    "INCIDENT_KINDS",
    "ORIGIN_CODES",
    "CustomerProfile",
    "Holiday",
    "Incident",
    "LevelShift",
    "SimConfig",
    "Simulation",
    "incident_from_fields",
    "simulate",
    "warmup_seconds",
]

#: the default incident mix (abrupt onset)
INCIDENT_KINDS: tuple[str, ...] = (
    "origin_outage",
    "partial_5xx",
    "latency",
    "traffic_drop",
    "traffic_surge",
    "cache_collapse",
)
#: every kind the simulator can inject; ``error_creep`` is gradual and opt-in
ALL_KINDS: tuple[str, ...] = INCIDENT_KINDS + ("error_creep",)

#: Monday 2026-01-05T00:00:00Z -- the default, reproducible simulation start
DEFAULT_START = 1767571200.0

#: origin status codes that may appear in ``origin_errors`` (columns of the internal matrix)
ORIGIN_CODES: tuple[str, ...] = ("502", "503", "504", "520", "521", "522", "524", "525", "526")
_CODE_IX = {c: i for i, c in enumerate(ORIGIN_CODES)}
_NORMAL_CODES = ("502", "504", "520", "522", "524")

#: intervals generated together per customer; also the unit of the per-customer noise seeds.
#: Part of the determinism contract: changing it changes the noise.
_BLOCK = 32
_GLOBAL = 2**32 - 1  # spawn-key slot for draws that are not per customer
_DAY = 86400.0
#: heavy-tailed noise draws are clipped at this many standard deviations (no 100x outliers)
_T_CLIP = 8.0
_MONTH = 30 * _DAY

# time zones (UTC offset hours) and how common they are among customers
_TZ_CHOICES = (-8.0, -7.0, -6.0, -5.0, -4.0, -3.0, 0.0, 1.0, 2.0, 3.0, 5.5, 8.0, 9.0, 10.0)
_TZ_WEIGHTS = (0.10, 0.04, 0.07, 0.13, 0.03, 0.04, 0.09, 0.14, 0.06, 0.04, 0.06, 0.08, 0.07, 0.04)
REGIONS = ("americas", "emea", "apac")


def region_of(tz_offset_h: float) -> str:
    """The holiday region of a UTC offset.

    >>> region_of(-5), region_of(1), region_of(9)
    ('americas', 'emea', 'apac')
    """
    if tz_offset_h < -1:
        return "americas"
    if tz_offset_h <= 4:
        return "emea"
    return "apac"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Incident:
    """One labelled incident: ``[start, end)`` in epoch seconds for one customer.

    Part of a shared cause (:mod:`detectors.synthetic_shared`): ``cause`` is its id and
    ``scope`` the group it hit (``"origin_provider=provider-a"``); both ``None`` otherwise.
    """

    customer_id: str
    start: float
    end: float
    kind: str
    cause: str | None = None
    scope: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "customer_id": self.customer_id,
            "start": format_ts(self.start),
            "end": format_ts(self.end),
            "kind": self.kind,
        }
        if self.cause is not None:
            d["cause"] = self.cause
            d["scope"] = self.scope
        return d

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Incident":
        """Inverse of :meth:`to_json`; times may be RFC 3339 or epoch seconds."""
        get = obj.get
        inc = incident_from_fields(get("customer_id"), get("start"), get("end"), get("kind"))
        cause, scope = get("cause"), get("scope")
        if cause is None:
            return inc
        if not isinstance(cause, str) or not isinstance(scope, str) or not cause or not scope:
            raise ValueError(f"cause and scope must be non-empty strings, got {cause!r}, {scope!r}")
        return cls(inc.customer_id, inc.start, inc.end, inc.kind, cause, scope)

    def contains(self, ts: float) -> bool:
        return self.start <= ts < self.end

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class LevelShift:
    """A permanent, *unlabelled* change of a customer's traffic level from ``ts`` on."""

    customer_id: str
    ts: float
    factor: float

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "ts": format_ts(self.ts), "factor": round(self.factor, 4)}


@dataclass(frozen=True)
class Holiday:
    """A whole local calendar day with lower traffic for every customer in ``region``."""

    region: str
    date: str  # YYYY-MM-DD, in each customer's own time zone
    factor: float

    @property
    def day_number(self) -> int:
        return _day_number(self.date)

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "date": self.date, "factor": round(self.factor, 4)}


def _day_number(date: str) -> int:
    return int(parse_ts(date + "T00:00:00Z") // _DAY)


@dataclass(frozen=True)
class CustomerProfile:
    """The static description of one simulated customer (all rates are baselines)."""

    index: int
    customer_id: str
    size: float  # peak requests per 60 s (before growth, level shift, seasonality noise)
    tz_offset_h: float
    region: str
    tiny: bool
    peak_hour: float  # local hour of the daily peak
    trough: float  # night trough as a fraction of the peak
    sharpness: float  # exponent of the daily curve (higher = narrower peak)
    harmonic: float  # amplitude of a secondary daily bump
    harmonic_hour: float
    weekend_factor: float  # Saturday/Sunday traffic relative to weekdays
    growth_per_month: float  # e.g. 0.1 = +10 % per 30 days
    rate_5xx: float
    rate_4xx: float
    cache_ratio: float
    latency_p50_ms: float
    latency_p99_ms: float
    bytes_per_request: float
    origin_share: float  # fraction of baseline 5xx that are origin errors (0 = never any)
    origin_weights: tuple[float, ...] = field(repr=False)  # over ORIGIN_CODES
    noise_cv: float = field(repr=False, default=0.04)  # extra-Poisson dispersion of requests
    wander: tuple[tuple[float, float, float], ...] = field(repr=False, default=())  # (amp, omega, phase)

    def to_json(self) -> dict[str, Any]:
        d = {
            k: getattr(self, k)
            for k in (
                "customer_id",
                "size",
                "tz_offset_h",
                "region",
                "tiny",
                "peak_hour",
                "trough",
                "weekend_factor",
                "growth_per_month",
                "rate_5xx",
                "rate_4xx",
                "cache_ratio",
                "latency_p50_ms",
                "latency_p99_ms",
                "bytes_per_request",
                "origin_share",
            )
        }
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Sizes (``size_min``/``size_max``) are peak requests per 60 s; they are scaled by
    ``interval_s / 60``. Incidents come either from ``incidents`` (a total count,
    spread over customers, kinds balanced) or, when that is ``None``, from
    ``incidents_per_customer_week`` (Poisson per customer over the evaluation window).
    ``warmup_s`` (default: see :func:`warmup_seconds`) keeps incidents out of the start.

    Like a real CDN fleet, ``small_fraction`` of the customers (half by default) peak at no
    more than ``small_max`` requests per 60 s -- tens of requests per 5-minute interval.
    Noise is heavy-tailed: extra-Poisson dispersion of traffic, 5xx rate and p99 latency is
    Student-t with ``noise_dof`` degrees of freedom, and each interval has a ``burst_prob``
    chance of an unlabelled one-interval burst of 1.3-2.5x traffic.

    ``shared_causes`` provider or region outages (:mod:`detectors.synthetic_shared`) touch
    5-100 % of their group's customers each, with ``unrelated_per_cause`` single-customer
    incidents starting during each of them on other customers.
    """

    customers: int = 20
    start: float = DEFAULT_START
    duration_s: float = 14 * _DAY
    interval_s: int = 300
    seed: int = 0
    incidents_per_customer_week: float = 1.0
    incidents: int | None = None
    kinds: tuple[str, ...] = INCIDENT_KINDS
    size_min: float = 10.0
    size_max: float = 2_000_000.0
    holidays: bool = True
    growth: bool = True
    level_shifts: bool = True
    weekly: bool = True
    tiny_fraction: float = 0.05
    level_shift_prob: float = 0.1
    warmup_s: float | None = None
    small_fraction: float = 0.5
    small_max: float = 25.0
    noise_dof: float = 3.0
    burst_prob: float = 0.004
    shared_causes: int = 0
    unrelated_per_cause: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.kinds, str):
            object.__setattr__(self, "kinds", tuple(k.strip() for k in self.kinds.split(",") if k.strip()))
        else:
            object.__setattr__(self, "kinds", tuple(self.kinds))
        if not isinstance(self.customers, int) or self.customers < 1:
            raise ValueError(f"customers must be a positive integer, got {self.customers!r}")
        if (
            isinstance(self.interval_s, bool)
            or not isinstance(self.interval_s, int)
            or not 1 <= self.interval_s <= MAX_INTERVAL_S
        ):
            raise ValueError(
                f"interval_s must be an integer from 1 to {MAX_INTERVAL_S}, got {self.interval_s!r}"
            )
        if not (math.isfinite(self.duration_s) and self.duration_s >= self.interval_s):
            raise ValueError(
                f"duration_s ({self.duration_s}) must be at least one interval ({self.interval_s} s)"
            )
        if not (math.isfinite(self.start) and 0 <= self.start and self.start + self.duration_s <= MAX_TS):
            raise ValueError(
                f"start/duration out of range (start={self.start}, duration_s={self.duration_s})"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.incidents is not None and (not isinstance(self.incidents, int) or self.incidents < 0):
            raise ValueError(f"incidents must be a non-negative integer, got {self.incidents!r}")
        if not (self.incidents_per_customer_week >= 0):
            raise ValueError("incidents_per_customer_week must be >= 0")
        bad = [k for k in self.kinds if k not in ALL_KINDS]
        if bad:
            raise ValueError(f"unknown incident kind(s) {', '.join(bad)}; choose from {', '.join(ALL_KINDS)}")
        if not self.kinds and (
            self.incidents or self.incidents is None and self.incidents_per_customer_week > 0
        ):
            raise ValueError("kinds is empty but incidents were requested")
        if not (0 < self.size_min <= self.size_max):
            raise ValueError(f"need 0 < size_min <= size_max, got {self.size_min}, {self.size_max}")
        if not (0 <= self.tiny_fraction <= 1 and 0 <= self.level_shift_prob <= 1):
            raise ValueError("tiny_fraction and level_shift_prob must be within [0, 1]")
        if not (0 <= self.small_fraction <= 1 and 0 <= self.burst_prob <= 1):
            raise ValueError("small_fraction and burst_prob must be within [0, 1]")
        if not (self.noise_dof > 2 and self.small_max > 0):
            raise ValueError("noise_dof must be > 2 (finite variance) and small_max > 0")
        for name in ("shared_causes", "unrelated_per_cause"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if self.warmup_s is not None and not (0 <= self.warmup_s < self.duration_s):
            raise ValueError("warmup_s must be within [0, duration_s)")

    @property
    def n_intervals(self) -> int:
        return int(self.duration_s // self.interval_s)

    @property
    def end(self) -> float:
        return self.start + self.n_intervals * self.interval_s


def warmup_seconds(cfg: SimConfig) -> float:
    """How long incidents are kept out of the start of the simulation.

    7 days when at least one more day follows, else 2 days when at least 6 hours
    follow, else half the duration (unless ``cfg.warmup_s`` says otherwise).

    >>> warmup_seconds(SimConfig(duration_s=14 * 86400)) / 86400
    7.0
    >>> warmup_seconds(SimConfig(duration_s=3 * 86400)) / 86400
    2.0
    >>> warmup_seconds(SimConfig(duration_s=86400)) / 3600
    12.0
    """
    if cfg.warmup_s is not None:
        return float(cfg.warmup_s)
    d = cfg.n_intervals * cfg.interval_s
    if d >= 8 * _DAY:
        return 7 * _DAY
    if d >= 2 * _DAY + 6 * 3600:
        return 2 * _DAY
    return math.floor(d / 2 / cfg.interval_s) * cfg.interval_s


# --------------------------------------------------------------------------- simulation


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


@dataclass
class _Injected:
    incident: Incident
    i0: int  # first interval index (inclusive)
    i1: int  # last interval index (exclusive)
    params: dict[str, Any]


@dataclass
class _Plan:
    profile: CustomerProfile
    injected: list[_Injected] = field(default_factory=list)
    shift_at: int | None = None  # interval index of the level shift
    shift_factor: float = 1.0
    holiday_days: dict[int, float] = field(default_factory=dict)  # local day number -> factor


def _make_profile(cfg: SimConfig, i: int, width: int) -> CustomerProfile:
    rng = _rng(cfg.seed, i, 0)
    tiny = bool(rng.random() < cfg.tiny_fraction)
    small = bool(rng.random() < cfg.small_fraction)
    if tiny:
        size = _logu(rng, max(0.2, cfg.size_min / 20), cfg.size_min)
    elif small:  # most customers of a CDN are small: tens of requests per 5 minutes
        size = _logu(rng, cfg.size_min, min(cfg.size_max, max(cfg.size_min, cfg.small_max)))
    else:
        size = _logu(rng, cfg.size_min, cfg.size_max)
    tz = float(rng.choice(_TZ_CHOICES, p=np.asarray(_TZ_WEIGHTS) / sum(_TZ_WEIGHTS)))
    business = bool(rng.random() < 0.6)
    peak_hour = rng.uniform(11, 16) if business else rng.uniform(18, 22)
    # business sites lose 5-60 % at the weekend (local time), consumer sites gain up to 20 %
    weekend = rng.uniform(0.40, 0.95) if business else rng.uniform(0.95, 1.20)
    origin_share = 0.0 if rng.random() < 0.15 else rng.uniform(0.05, 0.35)
    w = np.zeros(len(ORIGIN_CODES))
    w[[_CODE_IX[c] for c in _NORMAL_CODES]] = rng.dirichlet(np.ones(len(_NORMAL_CODES)))
    p50 = _logu(rng, 8, 150)
    wander = []
    # signals: requests, 5xx, 4xx, cache (logit), latency; 3 slow sinusoids each
    for amp in (0.04, 0.22, 0.12, 0.15, 0.07):
        for _ in range(3):
            period = _logu(rng, 4 * 3600, 5 * _DAY)
            wander.append(
                (amp * rng.uniform(0.3, 1.0) / 1.5, 2 * math.pi / period, rng.uniform(0, 2 * math.pi))
            )
    return CustomerProfile(
        index=i,
        customer_id=f"cust-{i + 1:0{width}d}",
        size=size,
        tz_offset_h=tz,
        region=region_of(tz),
        tiny=tiny,
        peak_hour=float(peak_hour),
        trough=float(rng.uniform(0.2, 0.4)),
        sharpness=float(rng.uniform(0.7, 1.6)),
        harmonic=float(rng.uniform(0.0, 0.08)),
        harmonic_hour=float(rng.uniform(0, 24)),
        weekend_factor=float(weekend) if cfg.weekly else 1.0,
        growth_per_month=float(rng.uniform(-0.3, 0.3)) if cfg.growth else 0.0,
        rate_5xx=_logu(rng, 1e-5, 1e-3) if tiny else _logu(rng, 1e-4, 2e-2),
        rate_4xx=_logu(rng, 0.002, 0.02) if tiny else _logu(rng, 0.01, 0.08),
        cache_ratio=float(rng.uniform(0.5, 0.98)),
        latency_p50_ms=p50,
        latency_p99_ms=p50 * _logu(rng, 3, 15),
        bytes_per_request=_logu(rng, 2_000, 500_000),
        origin_share=float(origin_share),
        origin_weights=tuple(float(x) for x in w),
        noise_cv=float(rng.uniform(0.02, 0.08)),
        wander=tuple(wander),
    )


def _duration_intervals(rng: np.random.Generator, kind: str, iv: int) -> int:
    if kind == "error_creep":  # gradual: hours
        lo = max(6, math.ceil(2 * 3600 / iv))
        hi = max(2 * lo, math.ceil(8 * 3600 / iv))
    else:  # 3-24 intervals, at least 30 minutes
        lo = max(3, math.ceil(1800 / iv))
        hi = max(24, 4 * lo)
    return int(round(_logu(rng, lo, hi)))


def _incident_params(rng: np.random.Generator, kind: str, prof: CustomerProfile) -> dict[str, Any]:
    r5 = prof.rate_5xx
    if kind == "origin_outage":
        u = rng.random()
        main = "522" if u < 0.6 else "521" if u < 0.9 else ("525" if rng.random() < 0.5 else "526")
        w = np.zeros(len(ORIGIN_CODES))
        others = [c for c in ("520", "521", "522", "524") if c != main]
        w[_CODE_IX[main]] = rng.uniform(0.8, 0.97)
        w[[_CODE_IX[c] for c in others]] = (1 - w[_CODE_IX[main]]) * rng.dirichlet(np.ones(len(others)))
        return {
            "fail": rng.uniform(0.3, 1.0),
            "codes": w,
            "req": rng.uniform(1.0, 1.15),
            "p50": rng.uniform(1.1, 1.6),
            "p99": rng.uniform(2.0, 5.0),
            "main": main,
        }
    if kind == "partial_5xx":
        target = max(r5 * rng.uniform(3, 20), r5 + 0.02 + rng.uniform(0, 0.02))
        w = np.zeros(len(ORIGIN_CODES))
        w[[_CODE_IX[c] for c in ("502", "503", "504")]] = rng.dirichlet(np.full(3, 2.0))
        return {
            "add": min(target, 0.6) - r5,
            "codes": w,
            "origin": rng.uniform(0.85, 1.0),
            "p99": rng.uniform(1.0, 1.5),
        }
    if kind == "error_creep":
        target = max(r5 * rng.uniform(10, 20), r5 + 0.01)
        w = np.zeros(len(ORIGIN_CODES))
        w[[_CODE_IX[c] for c in ("502", "503", "504")]] = rng.dirichlet(np.full(3, 2.0))
        return {"add": min(target, 0.6) - r5, "codes": w, "origin": rng.uniform(0.4, 0.8)}
    if kind == "latency":
        return {"p50": rng.uniform(1.5, 3.0), "p99": rng.uniform(2.5, 8.0)}
    if kind == "traffic_drop":
        return {"req": rng.uniform(0.05, 0.35)}
    if kind == "traffic_surge":
        return {
            "req": rng.uniform(3, 15),
            "r4": rng.uniform(2, 6) if rng.random() < 0.6 else 1.0,
            "cache": rng.uniform(0.7, 1.0),
            "bpr": rng.uniform(0.3, 1.0),
            "p99": rng.uniform(1.0, 1.5),
        }
    if kind == "cache_collapse":
        return {
            "cache": rng.uniform(0.05, 0.4),
            "bytes": rng.uniform(1.05, 1.25),
            "p50": rng.uniform(1.1, 1.5),
            "p99": rng.uniform(1.1, 1.6),
        }
    raise ValueError(f"unknown incident kind {kind!r}")


def _try_place(
    rng: np.random.Generator, plan: _Plan, kind: str, cfg: SimConfig, warm_i: int, gap_i: int, tries: int = 40
) -> _Injected | None:
    n = cfg.n_intervals
    iv = cfg.interval_s
    dur = _duration_intervals(rng, kind, iv)
    dur = min(dur, n - warm_i)
    if dur < 1:
        return None
    busy = [(x.i0, x.i1) for x in plan.injected]
    if plan.shift_at is not None:
        busy.append((plan.shift_at, plan.shift_at + 1))
    for _ in range(tries):
        i0 = int(rng.integers(warm_i, n - dur + 1))
        i1 = i0 + dur
        if all(i1 + gap_i <= a or i0 >= b + gap_i for a, b in busy):
            prof = plan.profile
            inc = Incident(prof.customer_id, cfg.start + i0 * iv, cfg.start + i1 * iv, kind)
            return _Injected(inc, i0, i1, _incident_params(rng, kind, prof))
    return None


class Simulation:
    """The result of :func:`simulate`: profiles, labels, and a lazy event stream."""

    def __init__(self, cfg: SimConfig, plans: list[_Plan], holidays: list[Holiday], requested: int,
                 catalogue: Catalogue | None = None, shared_causes: list[SharedCause] | None = None):
        self.config = cfg
        self._plans = plans
        self._catalogue = catalogue
        #: the labelled shared causes (their customers' incidents carry their ``cause`` id)
        self.shared_causes: list[SharedCause] = list(shared_causes or [])
        self.customers: list[CustomerProfile] = [p.profile for p in plans]
        self.incidents: list[Incident] = sorted(
            (x.incident for p in plans for x in p.injected), key=lambda i: (i.start, i.customer_id)
        )
        self.level_shifts: list[LevelShift] = sorted(
            (
                LevelShift(p.profile.customer_id, cfg.start + p.shift_at * cfg.interval_s, p.shift_factor)
                for p in plans
                if p.shift_at is not None
            ),
            key=lambda s: (s.ts, s.customer_id),
        )
        self.holidays: list[Holiday] = holidays
        #: how many incidents were asked for (explicit count or expected from the rate);
        #: fewer are placed when the evaluation window is too short to fit them
        self.requested_incidents = requested

    @property
    def catalogue(self) -> Catalogue:
        """Every customer's catalogue attributes (plan, origin provider/region/ASN, account team)."""
        if self._catalogue is None:
            self._catalogue = make_catalogue(self.config.seed, self.customers)
        return self._catalogue

    @property
    def start(self) -> float:
        return self.config.start

    @property
    def end(self) -> float:
        return self.config.end

    @property
    def n_intervals(self) -> int:
        return self.config.n_intervals

    @property
    def n_events(self) -> int:
        return self.n_intervals * len(self.customers)

    @property
    def warmup_s(self) -> float:
        return warmup_seconds(self.config)

    def incidents_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.incidents:
            out[i.kind] = out.get(i.kind, 0) + 1
        return out

    def profile(self, customer_id: str) -> CustomerProfile:
        for p in self.customers:
            if p.customer_id == customer_id:
                return p
        raise KeyError(customer_id)

    def events(self) -> Iterator[dict[str, Any]]:
        """All events in timestamp order (every customer for interval t, then t+1, ...), lazily."""
        for _ts, batch in self.intervals():
            yield from batch

    def intervals(self) -> Iterator[tuple[float, list[dict[str, Any]]]]:
        """``(ts, events of every customer for that interval)`` in order, lazily."""
        cfg = self.config
        n, iv, C = cfg.n_intervals, cfg.interval_s, len(self._plans)
        ids = [p.profile.customer_id for p in self._plans]
        codes = ORIGIN_CODES
        for b in range(-(-n // _BLOCK)):
            i0 = b * _BLOCK
            i1 = min(n, i0 + _BLOCK)
            T = i1 - i0
            counts = np.empty((6, C, T), dtype=np.int64)
            lat = np.empty((2, C, T), dtype=np.float64)
            origin = np.empty((C, T, len(codes)), dtype=np.int64)
            for c, plan in enumerate(self._plans):
                _gen_block(cfg, plan, b, i0, i1, counts[:, c, :], lat[:, c, :], origin[c])
            otot = origin.sum(axis=2)
            for t in range(T):
                ts = cfg.start + (i0 + t) * iv
                # column views -> python lists once per interval (fast), then one dict per event
                tss = format_ts(ts)
                req, s4, s5, hits, byt = (counts[k, :, t].tolist() for k in range(5))
                p50, p99 = lat[0, :, t].tolist(), lat[1, :, t].tolist()
                has_origin = otot[:, t].tolist()
                orow = origin[:, t, :]
                batch = []
                for j in range(C):
                    r = req[j]
                    ev: dict[str, Any] = {
                        "customer_id": ids[j],
                        "ts": tss,
                        "interval_s": iv,
                        "requests": r,
                        "status_4xx": s4[j],
                        "status_5xx": s5[j],
                    }
                    if has_origin[j]:
                        ev["origin_errors"] = {codes[k]: v for k, v in enumerate(orow[j].tolist()) if v}
                    if r:
                        ev["latency_p50_ms"] = p50[j]
                        ev["latency_p99_ms"] = p99[j]
                    ev["cache_hits"] = hits[j]
                    ev["bytes_out"] = byt[j]
                    batch.append(ev)
                yield ts, batch


def _gen_block(
    cfg: SimConfig,
    plan: _Plan,
    b: int,
    i0: int,
    i1: int,
    counts: np.ndarray,
    lat: np.ndarray,
    origin: np.ndarray,
) -> None:
    """Fill one customer's arrays for intervals ``[i0, i1)`` (counts: req, 4xx, 5xx, hits, bytes).

    The random draws happen in one fixed order (counts, origin errors, latency and bytes), so a
    seed gives the same traffic every time.
    """
    p = plan.profile
    rng = _rng(cfg.seed, p.index, 1, b)
    T = i1 - i0
    iv = cfg.interval_s
    mid = cfg.start + np.arange(i0, i1) * float(iv) + iv / 2.0  # seasonality at the interval midpoint

    # ---- slow wander: 5 signals x 3 sinusoids, one vectorised evaluation
    wv = np.asarray(p.wander)
    wander = (wv[:, 0:1] * np.sin(wv[:, 1:2] * mid[None, :] + wv[:, 2:3])).reshape(5, 3, T).sum(axis=1)

    mu, load = _expected_requests(cfg, plan, i0, i1, mid, wander[0])
    active = [x for x in plan.injected if x.i1 > i0 and x.i0 < i1]
    mods = _incident_modifiers(active, i0, i1, mu)
    req, hits, s4, s5, s5b, extra, fail = _counts(cfg, p, rng, mu, wander, mods, active, i0, i1)
    _origin_errors(p, rng, origin, s5b, extra, fail, active, i0, i1)

    # ---- latency (lognormal-ish, noisier with few requests) and bytes
    nu = cfg.noise_dof
    few = 1.0 / np.sqrt(req + 1.0)
    base = wander[4] + 0.1 * load
    p50 = p.latency_p50_ms * mods["p50"] * np.exp(base + rng.normal(0, 1, T) * (0.03 + 0.5 * few))
    t99 = np.clip(rng.standard_t(nu, T) * math.sqrt((nu - 2) / nu), -_T_CLIP, _T_CLIP)
    p99 = p.latency_p99_ms * mods["p99"] * np.exp(base + 0.1 * load + t99 * (0.05 + 1.5 * few))
    p99 = np.maximum(p99, p50 * 1.05)
    ok = req - s4 - s5
    bnoise = np.exp(rng.normal(0, 1, T) * (0.03 + 0.3 * few))
    byt = (p.bytes_per_request * mods["bytes"] * ok * bnoise + 600.0 * (s4 + s5)).astype(np.int64)

    counts[0] = req
    counts[1] = s4
    counts[2] = s5
    counts[3] = hits
    counts[4] = byt
    lat[0] = np.round(p50, 2)
    lat[1] = np.round(p99, 2)


def _expected_requests(cfg: SimConfig, plan: _Plan, i0: int, i1: int, mid: np.ndarray,
                       wander: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected requests per interval (daily and weekly seasonality in the customer's time zone,
    holidays, growth, a level shift) and the daily load, 0 at night .. ~1 at the peak."""
    p = plan.profile
    iv = cfg.interval_s
    local_s = mid + p.tz_offset_h * 3600.0
    hour = (local_s / 3600.0) % 24.0
    daily = (
        p.trough + (1 - p.trough) * ((1 + np.cos(2 * np.pi * (hour - p.peak_hour) / 24)) / 2) ** p.sharpness
    )
    daily *= 1 + p.harmonic * np.cos(2 * np.pi * (hour - p.harmonic_hour) / 12)
    load = (daily - p.trough) / (1 - p.trough)  # 0 at night .. ~1 at peak
    mu = p.size * (iv / 60.0) * daily * np.exp(wander)
    pos = (local_s / _DAY + 3.0) % 7.0  # 0 = Monday 00:00 local
    ramp = 0.125  # 3 h transition around midnight
    wk = np.maximum(
        np.clip(np.minimum((pos - 5) / ramp + 0.5, (7 - pos) / ramp + 0.5), 0, 1),
        np.clip(0.5 - pos / ramp, 0, 1),
    )
    if p.weekend_factor != 1.0:
        mu *= 1 + (p.weekend_factor - 1) * wk
    if plan.holiday_days:
        day = np.floor(local_s / _DAY).astype(np.int64)
        hol = np.ones(i1 - i0)
        for d, f in plan.holiday_days.items():
            hol[day == d] = f
        # a public holiday that falls on a weekend changes nothing more: traffic already
        # follows the customer's weekend pattern
        mu *= 1 + (hol - 1) * (1 - wk)
    if p.growth_per_month:
        mu *= (1 + p.growth_per_month) ** ((mid - cfg.start) / _MONTH)
    if plan.shift_at is not None and i1 > plan.shift_at:
        mu[max(0, plan.shift_at - i0) :] *= plan.shift_factor
    return mu, load


#: incident parameter -> the modifier it multiplies (``req`` multiplies the expected requests)
_MODIFIED_BY = {"cache": "cache", "r4": "r4", "p50": "p50", "p99": "p99", "bytes": "bytes", "bpr": "bytes"}


def _incident_modifiers(active: list[_Injected], i0: int, i1: int, mu: np.ndarray) -> dict[str, np.ndarray]:
    """Per-interval factors of the active incidents (cache ratio, 4xx rate, latencies, bytes);
    their effect on the request count is applied to ``mu`` in place."""
    T = i1 - i0
    mods = {name: np.ones(T) for name in ("cache", "r4", "p50", "p99", "bytes")}
    for x in active:
        a, z = max(x.i0, i0) - i0, min(x.i1, i1) - i0
        q = x.params
        if "req" in q:
            mu[a:z] *= q["req"]
        for key, name in _MODIFIED_BY.items():
            if key in q:
                mods[name][a:z] *= q[key]
    return mods


def _counts(cfg: SimConfig, p: CustomerProfile, rng: np.random.Generator, mu: np.ndarray, wander: np.ndarray,
            mods: dict[str, np.ndarray], active: list[_Injected], i0: int, i1: int) -> tuple[np.ndarray, ...]:
    """Requests, cache hits, 4xx, 5xx and the 5xx parts (baseline, incident extra, origin-outage
    failures): heavy-tailed (Student-t on a log scale) extra-Poisson noise plus rare one-interval
    bursts (crawlers, retries) that are not incidents."""
    T = i1 - i0
    nu = cfg.noise_dof
    heavy = np.clip(rng.standard_t(nu, T) * math.sqrt((nu - 2) / nu), -_T_CLIP, _T_CLIP)
    burst = np.where(rng.random(T) < cfg.burst_prob, rng.uniform(1.3, 2.5, T), 1.0)
    req = rng.poisson(mu * np.exp(p.noise_cv * heavy) * burst)
    c_logit = math.log(p.cache_ratio / (1 - p.cache_ratio)) + wander[3] + rng.normal(0, 0.05, T)
    cache = np.clip(mods["cache"] / (1 + np.exp(-c_logit)), 0.0, 0.999)
    hits = rng.binomial(req, cache)
    t5 = np.clip(rng.standard_t(nu, T) * math.sqrt((nu - 2) / nu), -_T_CLIP, _T_CLIP)
    r5 = np.minimum(p.rate_5xx * np.exp(wander[1] + 0.15 * t5), 0.5)
    r4 = np.minimum(p.rate_4xx * mods["r4"] * np.exp(wander[2] + rng.normal(0, 0.1, T)), 0.9)
    fail = np.zeros(T, dtype=np.int64)  # origin-outage failures (uncached requests only)
    add = np.zeros(T)  # extra 5xx probability (partial_5xx / error_creep)
    for x in active:
        a, z = max(x.i0, i0) - i0, min(x.i1, i1) - i0
        k = x.incident.kind
        if k == "origin_outage":
            fail[a:z] = rng.binomial(req[a:z] - hits[a:z], x.params["fail"])
        elif k == "partial_5xx":
            add[a:z] = x.params["add"]
        elif k == "error_creep":
            steps = np.arange(max(x.i0, i0), min(x.i1, i1)) - x.i0 + 1
            add[a:z] = x.params["add"] * steps / (x.i1 - x.i0)
    rest = req - fail
    s5b = rng.binomial(rest, r5)
    if active and add.any():
        extra = rng.binomial(rest - s5b, np.clip(add, 0, 1))
    else:
        extra = np.zeros(T, dtype=np.int64)
    s4 = rng.binomial(rest - s5b - extra, r4)
    s5 = s5b + extra + fail
    return req, hits, s4, s5, s5b, extra, fail


def _origin_errors(p: CustomerProfile, rng: np.random.Generator, origin: np.ndarray, s5b: np.ndarray,
                   extra: np.ndarray, fail: np.ndarray, active: list[_Injected], i0: int, i1: int) -> None:
    """Origin errors by code into ``origin``: a baseline share of the 5xx over the usual codes,
    plus the incidents' codes."""
    origin[:] = 0
    if p.origin_share > 0:
        ob = rng.binomial(s5b, p.origin_share)
        if ob.any():
            origin += rng.multinomial(ob, np.asarray(p.origin_weights))
    for x in active:
        a, z = max(x.i0, i0) - i0, min(x.i1, i1) - i0
        k = x.incident.kind
        if k == "origin_outage":
            origin[a:z] += rng.multinomial(fail[a:z], x.params["codes"])
        elif k in ("partial_5xx", "error_creep"):
            origin[a:z] += rng.multinomial(rng.binomial(extra[a:z], x.params["origin"]), x.params["codes"])


def _free(plan: _Plan, i0: int, i1: int, gap_i: int) -> bool:
    return all(i1 + gap_i <= x.i0 or i0 >= x.i1 + gap_i for x in plan.injected)


def _shared_params(rng: np.random.Generator, kind: str, common: dict[str, Any],
                   prof: CustomerProfile) -> dict[str, Any]:
    """One customer's part of a shared cause: its own incident, with the cause's code and severity."""
    q = _incident_params(rng, kind, prof)
    jitter = rng.uniform(0.85, 1.15)
    if kind == "origin_outage":
        w = np.zeros(len(ORIGIN_CODES))
        w[_CODE_IX[common["main"]]] = 1.0
        q.update(codes=w, main=common["main"], fail=min(1.0, common["fail"] * jitter))
    else:
        q.update(p50=common["p50"] * jitter, p99=common["p99"] * jitter)
    return q


def _injectors(cfg: SimConfig, plans: list[_Plan], gap_i: int):
    """The callbacks :func:`~detectors.synthetic_shared.place_shared_causes` injects through."""
    by_id = {p.profile.customer_id: p for p in plans}
    n, iv = cfg.n_intervals, cfg.interval_s

    def inject(rng, cid, a, b, kind, common, cause_id, scope) -> bool:
        plan = by_id[cid]
        q = _shared_params(rng, kind, common, plan.profile)
        if not _free(plan, a, b, gap_i):
            return False  # already in another incident then: not part of this cause
        inc = Incident(cid, cfg.start + a * iv, cfg.start + b * iv, kind, cause_id, scope)
        plan.injected.append(_Injected(inc, a, b, q))
        return True

    def inject_unrelated(rng, hit, i0, dur) -> None:
        """``cfg.unrelated_per_cause`` single-customer incidents during a cause, off its customers."""
        placed = tries = 0
        while placed < cfg.unrelated_per_cause and tries < 50 * max(1, cfg.unrelated_per_cause) and cfg.kinds:
            tries += 1
            plan = plans[int(rng.integers(len(plans)))]
            if plan.profile.customer_id in hit:
                continue
            kind = cfg.kinds[int(rng.integers(len(cfg.kinds)))]
            a = i0 + int(rng.integers(max(1, dur)))
            b = min(n, a + _duration_intervals(rng, kind, iv))
            if b <= a or not _free(plan, a, b, gap_i):
                continue
            inc = Incident(plan.profile.customer_id, cfg.start + a * iv, cfg.start + b * iv, kind)
            plan.injected.append(_Injected(inc, a, b, _incident_params(rng, kind, plan.profile)))
            placed += 1

    return inject, inject_unrelated


def simulate(cfg: SimConfig) -> Simulation:
    """Draw profiles, holidays, level shifts and incidents for ``cfg`` (events are generated lazily)."""
    C, n, iv = cfg.customers, cfg.n_intervals, cfg.interval_s
    width = max(4, len(str(C)))
    plans = [_Plan(_make_profile(cfg, i, width)) for i in range(C)]
    warm_i = min(n - 1, int(math.ceil(warmup_seconds(cfg) / iv)))
    gap_i = max(2, math.ceil(3 * 3600 / iv))

    # holidays: a few whole local days per region (~1 per 3 weeks), same calendar date for the region
    holidays: list[Holiday] = []
    if cfg.holidays:
        g = _rng(cfg.seed, _GLOBAL, 0)
        first = int(cfg.start // _DAY)
        last = int((cfg.end - 1) // _DAY)
        ndays = last - first + 1
        for region in REGIONS:
            k = min(ndays, int(g.poisson(ndays / 21.0)))
            days = sorted(int(d) for d in g.choice(ndays, size=k, replace=False)) if k else []
            for d in days:
                date = format_ts((first + d) * _DAY)[:10]
                holidays.append(Holiday(region, date, float(g.uniform(0.6, 0.8))))
        holidays.sort(key=lambda h: (h.date, h.region))
        for plan in plans:
            for h in holidays:
                if h.region == plan.profile.region:
                    # each customer reacts a little differently to the same holiday
                    jitter = _rng(cfg.seed, plan.profile.index, 3, h.day_number).uniform(-0.05, 0.05)
                    plan.holiday_days[h.day_number] = min(0.8, max(0.6, h.factor + jitter))

    # unlabelled permanent level shifts (in the evaluation window)
    if cfg.level_shifts:
        for plan in plans:
            r = _rng(cfg.seed, plan.profile.index, 4)
            if r.random() < cfg.level_shift_prob and n - warm_i > 2:
                plan.shift_at = int(r.integers(warm_i, n))
                plan.shift_factor = float(r.uniform(0.4, 0.7) if r.random() < 0.5 else r.uniform(1.4, 2.5))

    # shared causes first: their customers are then busy for the per-customer incidents
    catalogue = causes = None
    if cfg.shared_causes and n - warm_i >= 1:
        catalogue = make_catalogue(cfg.seed, [p.profile for p in plans])
        causes = place_shared_causes(cfg, catalogue, warm_i, *_injectors(cfg, plans, gap_i))

    # incidents
    requested = 0
    if cfg.kinds and n - warm_i >= 1:
        if cfg.incidents is None:
            weeks = (n - warm_i) * iv / (7 * _DAY)
            for plan in plans:
                r = _rng(cfg.seed, plan.profile.index, 2)
                k = int(r.poisson(cfg.incidents_per_customer_week * weeks))
                requested += k
                for _ in range(k):
                    kind = cfg.kinds[int(r.integers(len(cfg.kinds)))]
                    inj = _try_place(r, plan, kind, cfg, warm_i, gap_i)
                    if inj is not None:
                        plan.injected.append(inj)
        else:
            requested = cfg.incidents
            g = _rng(cfg.seed, _GLOBAL, 1)
            kinds = [cfg.kinds[j % len(cfg.kinds)] for j in range(cfg.incidents)]
            g.shuffle(kinds)
            for kind in kinds:
                order = g.permutation(C)[: min(C, 16)]  # a few customers to try, in random order
                for ci in order:
                    inj = _try_place(g, plans[int(ci)], kind, cfg, warm_i, gap_i, tries=20)
                    if inj is not None:
                        plans[int(ci)].injected.append(inj)
                        break
    for plan in plans:
        plan.injected.sort(key=lambda x: x.i0)
    return Simulation(cfg, plans, holidays, requested, catalogue, causes)


# --------------------------------------------------------------------------- label parsing


def incident_from_fields(cid: Any, start: Any, end: Any, kind: Any) -> Incident:
    """An :class:`Incident` from a label's raw fields (JSON or CSV); ValueError says what is wrong."""
    if not isinstance(cid, str) or not CUSTOMER_ID_RE.match(cid):
        raise ValueError(f"customer_id must be 1-64 chars of [A-Za-z0-9._:-], got {cid!r}")
    if start is None or end is None:
        raise ValueError("start and end are required")
    try:
        s, e = parse_time(start), parse_time(end)
    except InvalidEvent as exc:
        raise ValueError(str(exc).replace("ts ", "time ", 1)) from None
    if e <= s:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if kind is not None and not isinstance(kind, str):
        raise ValueError(f"kind must be a string, got {kind!r}")
    return Incident(cid, s, e, kind or "unknown")

