#!/usr/bin/env python3
"""Print the targets of issue 19 (engineers' verdicts and maintenance windows) on simulator seeds.

    .venv/bin/python scripts/evaluate_steering.py --seeds 101 102 103        # held-out seeds
    .venv/bin/python scripts/evaluate_steering.py --seeds 0 --json          # the tuning seed, as JSON

The defaults of the feedback section were chosen on seed 0; quote the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.steering_eval import false_alarm_trial, migration_trial, notify_trial  # noqa: E402


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f} %"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--customers", type=int, default=60)
    ap.add_argument("--json", action="store_true", help="one JSON object per seed and trial")
    args = ap.parse_args()
    for seed in args.seeds:
        t0 = time.perf_counter()
        fa = false_alarm_trial(seed, customers=args.customers)
        mig = migration_trial(seed, customers=args.customers)
        nt = notify_trial(seed, customers=args.customers)
        took = time.perf_counter() - t0
        if args.json:
            print(
                json.dumps({"seed": seed, "false_alarm": fa, "migration": mig, "notify": nt, "seconds": took})
            )
            continue
        print(f"seed {seed} ({args.customers} customers, {took:.0f} s)")
        print(
            f"  false_alarm on a recurring pattern: {fa['marked']} customers marked, repeats "
            f"{fa['repeats_before']} -> {fa['repeats_after']} (drop {pct(fa['drop'])}; "
            f"{fa['customers_dropping_80pct']}/{fa['marked']} customers drop >= 80 %); recall on their "
            f"{fa['incidents_after_verdict']} later incidents {pct(fa['recall_before'])} -> "
            f"{pct(fa['recall_after'])} (ratio {pct(fa['recall_ratio'])})"
        )
        print(
            f"  migrations under a window: {mig['within_5pct']}/{mig['migrations']} baselines within 5 % "
            f"of a "
            f"run without the migration, ratios to one event per interval (worst {pct(mig['worst'])}; "
            f"strictly relative {pct(mig['worst_strict'])}; without the window "
            f"{pct(mig['worst_without_window'])}); beyond 5 % and equal to the baseline's own drift over the "
            f"window: {mig['ratio_cases_explained_by_drift']}; trace of the migration in the model "
            f"{pct(mig['max_trace'])}; firing notifications sent inside: {mig['firing_sent_inside_windows']}"
        )
        for c in mig["cases"]:
            dev = ", ".join(f"{s} {pct(v)}" for s, v in c["deviation"].items())
            print(f"    {c['customer_id']} {c['kind']:<16} {c['hours']:.0f} h: {dev}")
        print(
            f"  notify windows: {nt['windows']}, alerts silenced {nt['alerts_silenced']}, firing sent inside "
            f"{nt['firing_sent_inside_windows']}, incidents open at a window's start "
            f"{nt['incidents_open_at_a_window_start']}, left open at the sinks {nt['left_open_at_the_sinks']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
