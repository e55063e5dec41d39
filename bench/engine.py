"""``python -m bench engine``: the detection engine alone, events/s per core and memory per customer.

    .venv/bin/python -m bench engine                 # 2,000 customers x 2 days at 5 min
    .venv/bin/python -m bench engine --customers 20000 --days 1 --batch 500 5000

Events are generated and parsed before timing, so the numbers are the engine's own (decode and
transport are measured by ``python -m bench decode``, ``python -m bench replay`` and ``python -m bench``).
It measures the fleet engine (:class:`detectors.Engine`, batches of ``--batch`` events) and the
reference it is proven equal to (:class:`detectors.reference.ReferenceEngine`, one event at a time:
the River detectors, each a call of the compiled kernel per point).
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

from detectors import Engine, parse_event
from detectors.fleet import warm_up
from detectors.reference import ReferenceEngine
from detectors.synthetic import SimConfig, simulate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=float, default=2.0)
    p.add_argument("--interval", type=int, default=300)
    p.add_argument("--batch", type=int, nargs="+", default=[500, 5000],
                   help="fleet engine batch sizes to measure (default: 500 5000)")
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) reference engine")
    a = p.parse_args(argv)
    sim = simulate(SimConfig(customers=a.customers, duration_s=a.days * 86400, interval_s=a.interval, seed=5))
    events = [parse_event(e) for e in sim.events()]
    print(f"{len(events):,} events, {a.customers:,} customers; kernel ready in {warm_up():.2f} s")
    for b in a.batch:
        eng = Engine()
        t0 = time.perf_counter()
        for i in range(0, len(events), b):
            eng.process_many(events[i:i + b])
        secs = time.perf_counter() - t0
        print(f"fleet engine, batches of {b:,}: {len(events) / secs:,.0f} events/s (one core)")
    if not a.no_reference:
        ref = ReferenceEngine()
        t0 = time.perf_counter()
        for e in events:
            ref.process(e)
        secs = time.perf_counter() - t0
        print(f"reference engine, one event at a time: {len(events) / secs:,.0f} events/s (one core)")
    for name, cls in (("fleet", Engine), ("reference", ReferenceEngine)):
        if cls is ReferenceEngine and a.no_reference:
            continue
        tracemalloc.start()
        eng2 = cls()
        eng2.process_many(events[: a.customers * 50])
        cur, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{name} state: {cur / a.customers:,.0f} bytes/customer in memory (7 signals, tracemalloc), "
              f"{len(eng2.dump_all()) / a.customers:,.0f} bytes/customer serialised; target <= 20,480")
    return 0


if __name__ == "__main__":
    sys.exit(main())
