#!/usr/bin/env python3
"""Benchmark the detection engine alone: events/s per core and memory per customer.

    .venv/bin/python scripts/bench_engine.py                 # 2,000 customers x 2 days at 5 min
    .venv/bin/python scripts/bench_engine.py --customers 20000 --days 1

Events are generated and parsed before timing, so the numbers are the engine's own
(decode + transport are measured by scripts/bench_replay.py and the demo).
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import Engine, parse_event
from detectors.synthetic import SimConfig, simulate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=float, default=2.0)
    p.add_argument("--interval", type=int, default=300)
    a = p.parse_args()
    sim = simulate(SimConfig(customers=a.customers, duration_s=a.days * 86400, interval_s=a.interval, seed=5))
    events = [parse_event(e) for e in sim.events()]
    eng = Engine()
    t0 = time.perf_counter()
    for e in events:
        eng.process(e)
    secs = time.perf_counter() - t0
    print(f"engine: {len(events):,} events in {secs:.2f} s = {len(events) / secs:,.0f} events/s (one core)")
    tracemalloc.start()
    eng2 = Engine()
    for e in events[: a.customers * 50]:
        eng2.process(e)
    cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"state: {cur / a.customers:,.0f} bytes/customer in memory (all 7 signals, tracemalloc), "
          f"{len(eng2.dump_all()) / a.customers:,.0f} bytes/customer serialised; target <= 20,480")
    return 0


if __name__ == "__main__":
    sys.exit(main())
