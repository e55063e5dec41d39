"""Resident and serialised bytes per customer, in a fresh process (run by :mod:`bench.suite`).

    python -m bench.memory --customers 100000

Warms ``TEMPLATES`` simulated customers for two days, dumps their states, then loads
``--customers`` customers (template states under new ids) into a fresh engine and reports the
resident-set growth per customer and the mean serialised state size, as JSON on stdout.
"""
from __future__ import annotations

import argparse
import gc
import json
import os

#: distinct simulated customers whose warm states are cloned to reach the asked count
TEMPLATES = 200
#: simulated history of each template customer, seconds
HISTORY_S = 2 * 86400


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--customers", type=int, required=True)
    a = p.parse_args()
    from detectors import Engine, parse_event
    from detectors.synthetic import SimConfig, simulate

    warm = Engine()
    sim = simulate(SimConfig(customers=TEMPLATES, duration_s=HISTORY_S, interval_s=300, seed=5))
    warm.process_many([parse_event(ev) for ev in sim.events()])
    blobs = [warm.dump_customer(cid) for cid in sorted(warm.customers)]
    del warm
    gc.collect()
    engine = Engine()
    before = rss_bytes()
    for i in range(a.customers):
        engine.load_customer(f"m-{i:07d}", blobs[i % len(blobs)])
    gc.collect()
    after = rss_bytes()
    print(json.dumps({"customers": a.customers, "rss_bytes_per_customer": (after - before) / a.customers,
                      "state_bytes_per_customer": sum(map(len, blobs)) / len(blobs)}))


if __name__ == "__main__":
    main()
