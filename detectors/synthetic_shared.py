"""The simulator's customer catalogue and its shared-cause incidents.

Every simulated customer gets catalogue attributes (:func:`make_catalogue`): a ``plan`` (bigger
customers buy bigger plans), an ``origin_provider`` (six hosting providers of very different
sizes, or ``self-hosted``), an ``origin_region`` of that provider (mostly near the customer's
own time zone), an ``origin_asn`` (large providers announce two, self-hosted origins sit in one
of many ISP networks) and an ``account_team`` (``self-serve`` for small plans).

A *shared cause* (:func:`place_shared_causes`) is one provider or one region failing: it
touches a share (5-100 %) of that group's customers, of any size, each with its own onset
(up to :data:`MAX_ONSET_DELAY` intervals late, most at once) and its own recovery. Its
customers' incidents are labelled with the cause's id and scope. During each cause a few
*unrelated* single-customer incidents are placed on customers it does not touch, so that
folding can be measured against them too.

Everything is drawn from numpy generators seeded with ``(seed, customer, purpose)`` or
``(seed, global, purpose)``: a customer's attributes do not depend on how many customers are
simulated, and the same configuration gives the same causes.

>>> from detectors.synthetic import SimConfig, simulate
>>> sim = simulate(SimConfig(customers=300, duration_s=3 * 86400, shared_causes=2, seed=4))
>>> len(sim.catalogue), sorted(sim.catalogue.get("cust-0001"))
(300, ['account_team', 'origin_asn', 'origin_provider', 'origin_region', 'plan'])
>>> [(c.kind, c.scope.split("=")[0]) for c in sim.shared_causes]
[('origin_outage', 'origin_region'), ('origin_outage', 'origin_region')]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .catalogue import Catalogue, group_key
from .events import format_ts

__all__ = ["SharedCause", "make_catalogue", "place_shared_causes"]

#: hosting providers: (name, share of customers, regions); ``self-hosted`` has no region
PROVIDERS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("provider-a", 0.27, ("us-east", "us-west", "eu-west", "eu-central", "ap-southeast", "ap-northeast")),
    ("provider-b", 0.20, ("us-east", "us-central", "eu-west", "eu-north", "ap-south")),
    ("provider-c", 0.14, ("us-east", "us-west", "eu-west", "ap-east")),
    ("provider-d", 0.08, ("us-east", "eu-central", "ap-southeast")),
    ("provider-e", 0.06, ("eu-west", "us-east")),
    ("provider-f", 0.06, ("eu-central", "us-west")),
    ("self-hosted", 0.19, ()),
)
#: providers with at least this many regions announce two ASNs (Americas / the rest)
TWO_ASNS_FROM_REGIONS = 4
#: ISP networks self-hosted origins sit in
ISP_ASNS = 30
#: chance that a customer's origin region is on its own continent
NEAR_REGION_PROB = 0.8
PLANS = ("free", "pro", "business", "enterprise")
ACCOUNT_TEAMS = 8
#: peak requests per minute from which a customer counts as large / medium for its plan
LARGE_CUSTOMER = 10_000.0
MEDIUM_CUSTOMER = 200.0
#: latest onset of a customer after its cause started, in intervals (uneven onset)
MAX_ONSET_DELAY = 4
#: chance that a customer's onset is one more interval late (geometric, capped above)
ONSET_DELAY_P = 0.45
#: latest recovery of a customer after its cause ended, in intervals
MAX_RECOVERY_DELAY = 2
#: cause durations (intervals, at least 30 minutes)
CAUSE_MIN_S, CAUSE_MAX_S = 1800.0, 3 * 3600.0
#: share of causes that are a whole provider (the rest: one region)
PROVIDER_CAUSE_PROB = 0.35
#: share of causes that are origin outages (the rest: latency, e.g. a congested upstream)
ORIGIN_CAUSE_PROB = 0.8
#: smallest group a cause is placed on (a region of fewer customers is not a shared cause)
MIN_SCOPE = 5
_GLOBAL = 2**32 - 1
_PURPOSE_CATALOGUE = 5
_PURPOSE_CAUSES = 7
_CONTINENT = {"us": "americas", "eu": "emea", "ap": "apac"}


@dataclass(frozen=True)
class SharedCause:
    """One labelled shared cause: ``scope`` (a group key) failing from ``start`` to ``end``."""

    cause_id: str
    kind: str
    scope: str
    start: float
    end: float
    scope_size: int
    customers: tuple[str, ...]

    @property
    def share(self) -> float:
        return len(self.customers) / self.scope_size if self.scope_size else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"cause_id": self.cause_id, "kind": self.kind, "scope": self.scope,
                "start": format_ts(self.start), "end": format_ts(self.end), "scope_size": self.scope_size,
                "customers": list(self.customers)}


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _plan_of(rng: np.random.Generator, size: float) -> str:
    if size >= LARGE_CUSTOMER:
        p = (0.0, 0.1, 0.4, 0.5)
    elif size >= MEDIUM_CUSTOMER:
        p = (0.1, 0.45, 0.3, 0.15)
    else:
        p = (0.6, 0.33, 0.06, 0.01)
    return PLANS[int(rng.choice(len(PLANS), p=p))]


def customer_attributes(seed: int, index: int, size: float, tz_region: str) -> dict[str, str]:
    """One simulated customer's catalogue entry (a pure function of the seed and the customer)."""
    rng = _rng(seed, index, _PURPOSE_CATALOGUE)
    weights = np.array([w for _, w, _ in PROVIDERS])
    name, _, regions = PROVIDERS[int(rng.choice(len(PROVIDERS), p=weights / weights.sum()))]
    plan = _plan_of(rng, size)
    attrs = {"plan": plan, "origin_provider": name}
    if regions:
        near = [r for r in regions if _CONTINENT[r[:2]] == tz_region]
        pool = near if near and rng.random() < NEAR_REGION_PROB else list(regions)
        region = pool[int(rng.integers(len(pool)))]
        attrs["origin_region"] = f"{name}/{region}"
        p_ix = next(i for i, p in enumerate(PROVIDERS) if p[0] == name)
        two = len(regions) >= TWO_ASNS_FROM_REGIONS and not region.startswith("us")
        attrs["origin_asn"] = f"AS{64500 + 2 * p_ix + (1 if two else 0)}"
    else:
        # ISP networks: a few large, many small (Zipf-like)
        w = 1.0 / np.arange(1, ISP_ASNS + 1)
        attrs["origin_asn"] = f"AS{65100 + int(rng.choice(ISP_ASNS, p=w / w.sum()))}"
    attrs["account_team"] = (f"team-{int(rng.integers(ACCOUNT_TEAMS)) + 1}"
                             if plan in ("business", "enterprise") else "self-serve")
    return attrs


def make_catalogue(seed: int, profiles: list[Any]) -> Catalogue:
    """The catalogue of simulated customers (``profiles``: :class:`~detectors.synthetic.CustomerProfile`)."""
    return Catalogue({p.customer_id: customer_attributes(seed, p.index, p.size, p.region) for p in profiles})


def _scopes(catalogue: Catalogue) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for cid in catalogue:
        attrs = catalogue.get(cid)
        if attrs.get("origin_provider") not in (None, "self-hosted"):
            members.setdefault(group_key("origin_provider", attrs["origin_provider"]), []).append(cid)
        if "origin_region" in attrs:
            members.setdefault(group_key("origin_region", attrs["origin_region"]), []).append(cid)
    return {k: v for k, v in members.items() if len(v) >= MIN_SCOPE}


def _cause_params(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    """What every customer of one cause shares: the origin status code and how bad it is."""
    if kind == "origin_outage":
        u = rng.random()
        return {"main": "522" if u < 0.6 else "521" if u < 0.85 else "525", "fail": rng.uniform(0.3, 1.0)}
    return {"p50": rng.uniform(1.5, 3.0), "p99": rng.uniform(2.5, 8.0)}


#: ``inject(rng, customer, first interval, end interval, kind, common params, cause id, scope)``:
#: put one customer's part of a cause into its plan; False if it is busy then
Inject = Callable[[np.random.Generator, str, int, int, str, dict, str, str], bool]
#: ``inject_unrelated(rng, customers hit, first interval, duration)``: the unrelated incidents
InjectUnrelated = Callable[[np.random.Generator, set, int, int], None]


def place_shared_causes(cfg: Any, catalogue: Catalogue, warm_i: int, inject: Inject,
                        inject_unrelated: InjectUnrelated) -> list[SharedCause]:
    """Draw ``cfg.shared_causes`` causes (a :class:`~detectors.synthetic.SimConfig`) and hand each
    customer's part, then the unrelated incidents, to the simulator's callbacks; return the causes."""
    n, iv = cfg.n_intervals, cfg.interval_s
    rng = _rng(cfg.seed, _GLOBAL, _PURPOSE_CAUSES)
    scopes = _scopes(catalogue)
    providers = sorted(k for k in scopes if k.startswith("origin_provider="))
    regions = sorted(k for k in scopes if k.startswith("origin_region="))
    lo_i, hi_i = max(3, math.ceil(CAUSE_MIN_S / iv)), max(4, math.ceil(CAUSE_MAX_S / iv))
    causes: list[SharedCause] = []
    for k in range(cfg.shared_causes):
        pool = providers if providers and (rng.random() < PROVIDER_CAUSE_PROB or not regions) else regions
        if not pool:
            break
        scope = pool[int(rng.integers(len(pool)))]
        kind = "origin_outage" if rng.random() < ORIGIN_CAUSE_PROB else "latency"
        dur = int(rng.integers(lo_i, hi_i + 1))
        last = n - dur - MAX_ONSET_DELAY - MAX_RECOVERY_DELAY
        if last <= warm_i:
            break
        i0 = int(rng.integers(warm_i, last))
        members = scopes[scope]
        share = rng.uniform(0.05, 1.0)
        chosen = rng.permutation(len(members))[: max(1, round(share * len(members)))]
        common = _cause_params(rng, kind)
        cause_id = f"cause-{k + 1:03d}"
        hit: list[str] = []
        for j in sorted(int(c) for c in chosen):
            delay = min(MAX_ONSET_DELAY, int(rng.geometric(1.0 - ONSET_DELAY_P)) - 1)
            a, b = i0 + delay, i0 + dur + int(rng.integers(MAX_RECOVERY_DELAY + 1))
            if inject(rng, members[j], a, b, kind, common, cause_id, scope):
                hit.append(members[j])
        causes.append(SharedCause(cause_id, kind, scope, cfg.start + i0 * iv, cfg.start + (i0 + dur) * iv,
                                  len(members), tuple(sorted(hit))))
        inject_unrelated(rng, set(hit), i0, dur)
    return causes
