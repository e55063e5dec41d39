#!/usr/bin/env python3
"""Benchmark the decode path of valid events: what the hostile-input guards cost the hot path.

    .venv/bin/python scripts/bench_decode.py                       # 200 customers x 1 day at 5 min
    .venv/bin/python scripts/bench_decode.py --customers 500 --repeat 7

Prints nanoseconds per valid event for :func:`streams.codecs.decode_event` alone (JSON + contract,
best of ``--repeat`` passes) and for the whole :meth:`Processor.handle_many` (decode + engine, a
fresh engine per pass, best of ``--repeat``). Times are CPU time of this process
(``time.process_time``), so other load on a shared machine disturbs them less than wall time.
Run it before and after a change to the decoder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import Engine
from detectors.synthetic import SimConfig, simulate
from streams.codecs import decode_event
from streams.processor import Processor


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--interval", type=int, default=300)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    sim = simulate(SimConfig(customers=a.customers, duration_s=a.days * 86400, interval_s=a.interval, seed=5))
    values = [json.dumps(e).encode() for e in sim.events()]
    n = len(values)

    best = float("inf")
    for _ in range(a.repeat):
        t0 = time.process_time()
        for v in values:
            decode_event(v)
        best = min(best, time.process_time() - t0)
    print(f"decode_event: {n:,} valid events, {best / n * 1e9:,.0f} ns/event (best of {a.repeat})")

    records = [(None, v, "bench", 0, i) for i, v in enumerate(values)]
    best = float("inf")
    for _ in range(a.repeat):
        proc = Processor(Engine())
        t0 = time.process_time()
        out = proc.handle_many(records)
        best = min(best, time.process_time() - t0)
        if out.dlq:
            raise SystemExit(f"unexpected dead letters: {out.dlq[:1]}")
    print(f"Processor.handle_many: {best / n * 1e9:,.0f} ns/event (decode + engine, best of {a.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
