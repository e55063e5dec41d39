#!/usr/bin/env python3
"""Issue 17's "large ratio changes" target over many simulator seeds, with what was detectable.

Simulated customers with at least 10,000 requests per interval (the simulator's noise, weekly
pattern, bursts, holidays; no other incident) see, after a week, one sustained change of 30
minutes; the target is an incident on that signal within 2 intervals of the onset in >= 99 %
of cases. Three ways to make the change (each its own engine run over the same events):

* ``5xx_count``: every interval's 5xx count times five (``tests/detectors/test_large_ratio_changes.py``'s
  construction). An interval whose baseline count happened to be low stays low;
* ``5xx_rate``: the 5xx count drawn again as Binomial(requests, 5 x the customer's usual rate)
  (its median 5xx ratio over the day before the onset): the *rate* five times higher;
* ``cache_half``: cache hits halved.

For every miss it prints the change's size in counts and an **oracle** bound: the Poisson tail
probability of the first two intervals' 5xx total given the usual rate *known exactly*. When
even that is above the alert's 1-in-10,000, no calibrated detector can alert within two
intervals without paging on that much noise as often (the simulator's extra-Poisson noise makes
the true bound looser still).

    .venv/bin/python scripts/evaluate_large_changes.py --seeds 101-110
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors import Engine, parse_event  # noqa: E402
from detectors.synthetic import SimConfig, simulate  # noqa: E402

STEP = 300
DAY = 86400.0
CUSTOMERS = 24
SUSTAIN = 6  # intervals: 30 minutes
WITHIN = 2  # intervals from the onset
BIG = 10_000  # requests per interval, at least, during the change
ALERT_P = 1e-4  # the alert threshold's tail probability (score 0.9999)
KINDS = ("5xx_count", "5xx_rate", "cache_half")


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu).

    >>> round(poisson_sf(10, 2.0), 6)
    4.6e-05
    """
    if k <= 0:
        return 1.0
    if k <= mu:  # the bulk: one minus the (small) lower part
        term = total = math.exp(-mu)
        for i in range(1, k):
            term *= mu / i
            total += term
        return max(0.0, 1.0 - total)
    log_term = -mu + k * math.log(mu) - math.lgamma(k + 1) if mu > 0 else -math.inf
    total, i = 0.0, k  # the upper tail, summed upwards (exact to tiny values)
    while True:
        term = math.exp(log_term)
        total += term
        if term < total * 1e-16:
            return total
        i += 1
        log_term += math.log(mu) - math.log(i)


def seed_cases(seed: int, kind: str) -> list[dict]:
    sim = simulate(SimConfig(customers=CUSTOMERS, duration_s=10 * DAY, interval_s=STEP, seed=seed,
                             size_min=4000, small_fraction=0.0, tiny_fraction=0.0, incidents=0,
                             level_shifts=False))
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    onset = {f"cust-{k + 1:04d}": (sim.start + rnd.uniform(7.0, 9.5) * DAY) // STEP * STEP
             for k in range(CUSTOMERS)}
    history: dict[str, list[tuple[float, int, int]]] = {}  # cid -> (ts, requests, 5xx) of the day before
    case: dict[str, dict] = {}
    eng = Engine()
    signal = "cache_hit" if kind == "cache_half" else "error_5xx"
    for raw in sim.events():
        cid = raw["customer_id"]
        t0, ts = onset[cid], parse_event(raw).ts
        if t0 - DAY <= ts < t0:
            history.setdefault(cid, []).append((ts, raw["requests"], raw["status_5xx"]))
        if t0 <= ts < t0 + SUSTAIN * STEP:
            c = case.setdefault(cid, {"cid": cid, "seed": seed, "kind": kind, "min_requests": 1 << 62,
                                      "first": None, "base": [], "changed": [], "scores": []})
            ratios = [s / r for _, r, s in history.get(cid, []) if r > 0]
            usual = statistics.median(ratios) if ratios else 0.0
            raw = dict(raw)
            if kind == "cache_half":
                raw["cache_hits"] //= 2
            elif kind == "5xx_count":
                raw["status_5xx"] = min(raw["requests"], raw["status_5xx"] * 5)
            else:
                raw["status_5xx"] = int(rng.binomial(raw["requests"], min(1.0, 5 * usual)))
            c["min_requests"] = min(c["min_requests"], raw["requests"])
            c["base"].append(raw["requests"] * usual)
            c["changed"].append(raw["status_5xx"])
        v = eng.process(parse_event(raw))
        c = case.get(cid)
        if c is not None and t0 <= ts < t0 + SUSTAIN * STEP:
            c["scores"].append(v.scores.get(signal))
        for a in v.alerts:
            if c is not None and c["first"] is None and a["status"] == "firing" and signal in a["signals"]:
                c["first"] = (ts - t0) / STEP
    return [c for c in case.values() if c["min_requests"] >= BIG]


def parse_seeds(text: str) -> list[int]:
    """``101-103,7`` -> [101, 102, 103, 7].

    >>> parse_seeds("101-103,7")
    [101, 102, 103, 7]
    """
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("101-110"),
                   help="simulator seeds, e.g. 101-110 or 3,5,8 (default 101-110)")
    p.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS), help=",".join(KINDS))
    a = p.parse_args(argv)
    for kind in a.kinds:
        cases = [c for seed in a.seeds for c in seed_cases(seed, kind)]
        hit = [c for c in cases if c["first"] is not None and c["first"] < WITHIN]
        print(f"{kind}: {len(hit)} of {len(cases)} alert within {WITHIN} intervals "
              f"({len(hit) / max(1, len(cases)):.1%}; target 99 %), seeds {a.seeds[0]}..{a.seeds[-1]}")
        for c in cases:
            if c in hit:
                continue
            when = "never" if c["first"] is None else f"after {c['first']:.0f} intervals"
            line = f"  miss seed {c['seed']} {c['cid']}: {c['min_requests']:,}+ requests, alert {when}"
            if kind != "cache_half":
                expected, seen = sum(c["base"][:WITHIN]), sum(c["changed"][:WITHIN])
                oracle = poisson_sf(seen, expected)
                line += (f"; 5xx in the first {WITHIN} intervals {seen} where {expected:.1f} were usual, "
                         f"oracle p = {oracle:.1e} ({'detectable' if oracle < ALERT_P else 'not detectable'} "
                         f"at 1 in 10,000)")
                line += "\n    per interval: 5xx " + ", ".join(
                    f"{n} (usual {b:.1f})" for n, b in zip(c["changed"][:3], c["base"][:3]))
            line += "; scores " + ", ".join("-" if x is None else f"{x:.6f}" for x in c["scores"][:3])
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
