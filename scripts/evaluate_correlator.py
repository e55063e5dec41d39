#!/usr/bin/env python3
"""Measure the correlator against the simulator's labelled shared causes (the targets of issue 18).

For each seed: simulate a fleet with a customer catalogue and shared causes (provider and region
outages touching 5-100 % of their customers, uneven onset, unrelated incidents during them), run
every event through ``detectors.Engine`` and the engine's onsets and alerts through
``detectors.correlator`` (replay's code path, :func:`detectors.correlator.correlate` per batch),
and score the parents (:mod:`detectors.correlation_eval`). Seeds without shared causes measure
false parents per week. The correlator's defaults were tuned on seed 0 only; the default seeds
here are the others.

    .venv/bin/python scripts/evaluate_correlator.py                        # seeds 1 2 3, quiet seeds 1 2
    .venv/bin/python scripts/evaluate_correlator.py --seeds 0 --quiet-seeds 0   # the tuning seed
    .venv/bin/python scripts/evaluate_correlator.py --cache /tmp/corr-cache --config tuned.yaml

``--cache DIR`` keeps each seed's onsets and alerts, so another correlator configuration is
scored in seconds (the engine's settings are part of the cache key).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.config import DetectorConfig, load_config  # noqa: E402
from detectors.correlation_eval import evaluate_parents  # noqa: E402
from detectors.correlator import Correlator, CorrelatorOutput, correlate  # noqa: E402
from detectors.engine import Engine  # noqa: E402
from detectors.evaluation import WEEK_S, quantile  # noqa: E402
from detectors.events import parse_batch  # noqa: E402
from detectors.onsets import Onset  # noqa: E402
from detectors.synthetic import SimConfig, simulate, warmup_seconds  # noqa: E402

#: the seed the correlator's defaults were tuned on (never reported as a result)
TUNING_SEED = 0
TARGETS = {"parent_recall": 0.95, "localised_right": 0.90, "notification_ratio": 0.05,
           "unrelated_notified_share": 0.95, "false_parents_per_week": 1.0}


def engine_run(sim, config: DetectorConfig, cache: Path | None) -> list[tuple[float, list, list]]:
    """Per interval: (ts, onsets, alerts) of the engine over the simulation (cached when asked)."""
    key = hashlib.sha256(json.dumps([sim.config.__dict__, config.model_fingerprint(),
                                     json.loads(json.dumps(config.to_mapping()["alerting"])),
                                     {k: v for k, v in config.to_mapping()["signals"].items()}],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache / f"engine-{key}.jsonl.gz" if cache else None
    if path is not None and path.exists():
        out = []
        with gzip.open(path, "rt") as f:
            for line in f:
                ts, ons, als = json.loads(line)
                out.append((ts, [Onset.from_json(o) for o in ons], als))
        return out
    eng = Engine(config)
    out = []
    for ts, batch in sim.intervals():
        v = eng.process_many(parse_batch(batch))
        out.append((ts, list(v.onsets), v.alerts))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as f:
            for ts, ons, als in out:
                f.write(json.dumps([ts, [o.to_json() for o in ons], als]) + "\n")
    return out


def run_seed(seed: int, causes: int, args, config: DetectorConfig) -> dict:
    t0 = time.perf_counter()
    sim = simulate(SimConfig(customers=args.customers, duration_s=args.days * 86400, interval_s=args.interval,
                             seed=seed, shared_causes=causes))
    steps = engine_run(sim, config, args.cache)
    corr = Correlator(config, sim.catalogue)
    alerts, out = [], CorrelatorOutput()
    for ts, onsets, batch_alerts in steps:
        alerts += batch_alerts
        out.extend(correlate(corr, onsets, batch_alerts, ts))
    out.extend(corr.flush())
    span = sim.end - (sim.start + warmup_seconds(sim.config))
    ev = evaluate_parents(sim.incidents, alerts, out.alerts, out.incidents, span_s=span,
                          interval_s=args.interval, catalogue=sim.catalogue)
    return {"seed": seed, "causes": causes, "evaluation": ev, "seconds": time.perf_counter() - t0,
            "weeks": span / WEEK_S}


def summary(results: list[dict], quiet: list[dict]) -> dict:
    rows = [c for r in results for c in r["evaluation"].causes if c["customers"] >= 20]
    n = len(rows)
    per = sum(c["per_customer"] for c in rows)
    heads = [r["evaluation"].headline() for r in results]
    over = sum(h["unrelated_overlapping"] for h in heads)
    scope = sum(h["unrelated_in_scope"] for h in heads)
    delays = [c["delay_intervals"] for c in rows if c["delay_intervals"] is not None]
    weeks = sum(r["weeks"] for r in quiet)
    false_quiet = sum(len(r["evaluation"].false_parents) for r in quiet)
    return {
        "causes_targeted": n,
        "parent_recall": sum(c["has_parent"] for c in rows) / n if n else None,
        "localised_right": sum(c["scope_right"] for c in rows) / n if n else None,
        "localised_right_at_publish": _share(sum(c["scope_right_at_publish"] for c in rows), n),
        "time_to_parent_median": quantile(delays, 0.5),
        "time_to_parent_max": max(delays) if delays else None,
        "notifications": sum(c["notifications"] for c in rows), "per_customer": per,
        "notification_ratio": sum(c["notifications"] for c in rows) / per if per else None,
        "unrelated_overlapping": over,
        "unrelated_notified_share": _share(sum(h["unrelated_notified_alone"] for h in heads), over),
        "unrelated_in_scope": scope,
        "unrelated_in_scope_share": _share(sum(h["unrelated_in_scope_alone"] for h in heads), scope),
        "false_parents_with_causes": sum(h["false_parents"] for h in heads),
        "quiet_weeks": weeks, "false_parents_quiet": false_quiet,
        "false_parents_per_week": false_quiet / weeks if weeks else None,
        "orphans": sum(h["orphan_children"] + h["orphan_parents"] + h["notifications_lost"] for h in heads),
    }


def _share(a: float, n: int) -> float | None:
    return a / n if n else None


def passes(s: dict) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for k, want in TARGETS.items():
        v = s[k]
        lower_is_better = k in ("notification_ratio", "false_parents_per_week")
        out[k] = None if v is None else (v <= want if lower_is_better else v >= want)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3], help="seeds with shared causes")
    p.add_argument("--quiet-seeds", type=int, nargs="*", default=[1, 2],
                   help="seeds without shared causes (false parents per week)")
    p.add_argument("--causes", type=int, default=15, help="shared causes per seed")
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=float, default=14.0, help="7 of them warm-up")
    p.add_argument("--interval", type=int, default=300)
    p.add_argument("--config", help="detector config file (default: built-in defaults)")
    p.add_argument("--cache", type=Path, help="keep the engine's output per seed here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args()
    config = load_config(args.config)
    if TUNING_SEED in args.seeds + args.quiet_seeds:
        print(f"note: seed {TUNING_SEED} is the tuning seed; its figures are not held out", file=sys.stderr)
    results = [run_seed(s, args.causes, args, config) for s in args.seeds]
    quiet = [run_seed(s, 0, args, config) for s in args.quiet_seeds]
    s = summary(results, quiet)
    if args.json:
        print(json.dumps({**s, "targets": passes(s)}, indent=2))
        return 0
    for r in results + quiet:
        print(f"\n== seed {r['seed']}, {r['causes']} shared causes, {args.customers} customers x "
              f"{args.days:g} days ({r['seconds']:.0f} s)")
        print(r["evaluation"].format_table())
        for f in r["evaluation"].false_parents:
            print(f"  false parent {f['parent_id']} {f['published_at']}: {f['cause']} "
                  f"({f['children']} children)")

    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"

    print(f"\n== summary over seeds {args.seeds} (causes) and {args.quiet_seeds} (none)")
    print(f"causes touching >= 20 customers: {s['causes_targeted']}")
    print(f"one parent within 2 intervals of the first child: {pct(s['parent_recall'])} (target >= 95%)")
    print(f"localised right: {pct(s['localised_right'])} at the end, {pct(s['localised_right_at_publish'])} "
          f"when published (target >= 90%)")
    print(f"time to parent: median {s['time_to_parent_median']} intervals, max {s['time_to_parent_max']}")
    print(f"notifications: {s['notifications']} vs {s['per_customer']} per customer = "
          f"{pct(s['notification_ratio'])} (target <= 5%)")
    print(f"unrelated incidents overlapping a parent that notified on their own: "
          f"{pct(s['unrelated_notified_share'])} of {s['unrelated_overlapping']} (target >= 95%); "
          f"of those in the parent's own group: {pct(s['unrelated_in_scope_share'])} "
          f"of {s['unrelated_in_scope']}")
    per_week = "n/a" if s["false_parents_per_week"] is None else f"{s['false_parents_per_week']:.2f}"
    print(f"false parents: {s['false_parents_quiet']} in {s['quiet_weeks']:.1f} weeks without shared "
          f"causes = {per_week}/week (target <= 1); {s['false_parents_with_causes']} in the runs with causes")
    print(f"orphans (lost notifications, orphaned children or parents): {s['orphans']}")
    print("targets: " + "  ".join(f"{k}: {'n/a' if v is None else 'PASS' if v else 'FAIL'}"
                                  for k, v in passes(s).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
