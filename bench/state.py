"""``python -m bench state``: the state format (detectors/state.py), bytes and microseconds per customer.

    .venv/bin/python -m bench state                       # 1,000 simulated customers x 5 days
    .venv/bin/python -m bench state --scale 100000        # plus a real 100,000-customer file

The simulated customers' states are measured one by one (``Engine.dump_customer``) and as a
file (``Engine.dump_all`` / ``load_all``, the data-dir checkpoint and ``--initial-state``).
``--scale N`` builds an engine of N customers from those states (loaded under new ids) and
times the whole file. Timings are the best of ``--repeat`` runs (the machine is shared). For
comparison it also prints the size of the same state as a pickle (the old format) and as JSON.
"""
from __future__ import annotations

import argparse
import base64
import json
import pickle
import statistics
import sys
import time

import msgpack

from detectors import Engine, parse_event
from detectors.engine import ReferenceEngine
from detectors.synthetic import SimConfig, simulate

#: issue 8's budget for one customer's serialised state
TARGET_BYTES = 4096


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


#: events per engine call while building the fleet (replay's chunk size)
CHUNK = 4096


def as_json(v):
    """The same values as JSON would carry them (arrays as base64 of the float64 bytes)."""
    if isinstance(v, list):
        return [as_json(x) for x in v]
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench state", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--days", type=float, default=5.0)
    p.add_argument("--interval", type=int, default=300)
    p.add_argument("--scale", type=int, default=0, help="also time a file of this many customers")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)

    sim = simulate(SimConfig(customers=a.customers, duration_s=a.days * 86400, interval_s=a.interval, seed=5))
    eng = Engine()
    events = [parse_event(e) for e in sim.events()]
    for i in range(0, len(events), CHUNK):  # the fleet engine learns a batch at a time, as replay does
        eng.process_many(events[i:i + CHUNK])
    cids = list(eng.customers)
    n = len(cids)
    records = [eng.dump_customer(c) for c in cids]
    sizes = [len(r) for r in records]
    print(f"{n:,} customers after {a.days:g} simulated days ({a.interval} s interval), "
          f"{len(eng.open_incidents())} with an open incident")
    print(
        f"record (dump_customer): mean {statistics.mean(sizes):,.0f} B, "
        f"p99 {sorted(sizes)[int(0.99 * (n - 1))]:,} B, max {max(sizes):,} B per customer; "
        f"target <= {TARGET_BYTES:,}"
    )

    blob = eng.dump_all()
    print(f"file (dump_all): {len(blob):,} B = {len(blob) / n:,.0f} B per customer")
    ref = ReferenceEngine(eng.config)  # the old format pickled the per-customer River objects
    for c, r in zip(cids, records):
        ref.load_customer(c, r)
    pickled = len(pickle.dumps(ref.customers, protocol=pickle.HIGHEST_PROTOCOL))
    jsoned = sum(len(json.dumps(as_json(msgpack.unpackb(r[4:])), separators=(",", ":"))) for r in records)
    print(f"same state as a pickle (old format): {pickled / n:,.0f} B per customer; "
          f"as JSON (arrays base64): {jsoned / n:,.0f} B per customer")

    fresh = Engine()
    enc = best(eng.dump_all, a.repeat)
    dec = best(lambda: fresh.load_all(blob), a.repeat)
    print(f"file: encode {enc / n * 1e6:,.1f} us, decode+validate {dec / n * 1e6:,.1f} us per customer")
    one_enc = best(lambda: [eng.dump_customer(c) for c in cids], a.repeat)
    one_dec = best(lambda: [fresh.load_customer(c, r) for c, r in zip(cids, records)], a.repeat)
    print(
        f"records: dump_customer {one_enc / n * 1e6:,.1f} us, "
        f"load_customer {one_dec / n * 1e6:,.1f} us per customer"
    )
    t0 = time.perf_counter()
    dirty = eng.pop_dirty()
    print(f"pop_dirty: {len(dirty):,} customers in {(time.perf_counter() - t0) * 1e3:.2f} ms")

    if a.scale:
        big = Engine()
        for i in range(a.scale):
            big.load_customer(f"x{i:07d}", records[i % n])
        enc = best(big.dump_all, a.repeat)
        file_blob = big.dump_all()
        del big
        other = Engine()
        dec = best(lambda: other.load_all(file_blob), a.repeat)
        print(f"{a.scale:,} customers: file {len(file_blob) / 1e6:,.1f} MB, encode {enc:.2f} s, "
              f"decode+validate {dec:.2f} s (old pickle: ~{pickled / n * a.scale / 1e6:,.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
