"""``python -m bench decode``: the decode path of valid events, stage by stage, what each costs per event.

    .venv/bin/python -m bench decode                       # 200 customers x 1 day at 5 min
    .venv/bin/python -m bench decode --customers 500 --repeat 7

Prints CPU nanoseconds per valid event (``time.process_time``, best of ``--repeat`` passes, so
other load on a shared machine disturbs them less than wall time) for:

* ``json``: :func:`streams.pipeline.codecs.decode_json` (size, depth and digit guards + JSON);
* ``validate``: :func:`detectors.events.parse_event` on the decoded objects (the contract);
* ``decode_event``: both, as one single-event message;
* ``processor decode``: :meth:`Processor.decode_events` of single-event messages and of
  envelopes of ``--envelope`` events (adds the wall-clock and partition checks);
* ``engine``: one :meth:`Engine.process_many` over all events (a fresh engine per pass);
* ``handle_many``: the whole batch path, single messages and envelopes (decode + engine +
  metrics), and what it adds to the engine (``plumbing`` = handle_many - engine).

Run it before and after a change to the decoder or the processor.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry

from detectors import Engine
from detectors.events import parse_event
from detectors.synthetic import SimConfig, simulate
from streams.pipeline.codecs import decode_event, decode_json, partition_of
from streams.pipeline.metrics import WorkerMetrics
from streams.pipeline.processor import Output, Processor

PARTITIONS = 4


def best_cpu(repeat: int, run: Callable[[], Any], setup: Callable[[], Any] = lambda: None) -> float:
    """Least CPU seconds of ``repeat`` calls of ``run(setup())`` (setup not timed)."""
    best = float("inf")
    for _ in range(repeat):
        arg = setup()
        t0 = time.process_time()
        run(arg)
        best = min(best, time.process_time() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--interval", type=int, default=300)
    p.add_argument("--envelope", type=int, default=500, help="events per envelope message")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    sim = simulate(SimConfig(customers=a.customers, duration_s=a.days * 86400, interval_s=a.interval, seed=5))
    dicts = list(sim.events())
    values = [json.dumps(e).encode() for e in dicts]
    n = len(values)
    objs = [json.loads(v) for v in values]
    events = [parse_event(o) for o in objs]
    by_p: dict[int, list] = {}
    envelopes = []
    for e in dicts:  # what an aggregation tier sends: envelopes of one partition's events
        q = partition_of(e["customer_id"], PARTITIONS)
        by_p.setdefault(q, []).append(e)
        if len(by_p[q]) == a.envelope:
            envelopes.append((q, json.dumps({"events": by_p.pop(q)}).encode()))
    envelopes += [(q, json.dumps({"events": v}).encode()) for q, v in by_p.items()]

    def processor(metrics: bool = True) -> Processor:
        m = WorkerMetrics(CollectorRegistry()) if metrics else None
        return Processor(Engine(), m, partitions=PARTITIONS, max_future_s=None)

    def decode_singles(proc: Processor) -> None:
        out = Output()
        for i, v in enumerate(values):
            proc.decode_events(v, partition=0, offset=i, out=out)

    def decode_envelopes(proc: Processor) -> None:
        out = Output()
        for i, (q, v) in enumerate(envelopes):
            proc.decode_events(v, partition=q, offset=i, out=out)
        if out.dlq:
            raise SystemExit(f"unexpected dead letters: {out.dlq[:1]}")

    def handle(records: list) -> Callable[[Processor], None]:
        def run(proc: Processor) -> None:
            out = proc.handle_many(records)
            if out.dlq:
                raise SystemExit(f"unexpected dead letters: {out.dlq[:1]}")
        return run

    singles = [(None, v, "bench", partition_of(d["customer_id"], PARTITIONS), i)
               for i, (v, d) in enumerate(zip(values, dicts))]
    env_records = [(None, v, "bench", q, i) for i, (q, v) in enumerate(envelopes)]
    r = a.repeat
    stages = [
        ("json (decode_json: guards + JSON)", best_cpu(r, lambda _: [decode_json(v) for v in values])),
        ("validate (parse_event)", best_cpu(r, lambda _: [parse_event(o) for o in objs])),
        ("decode_event (single message: both)", best_cpu(r, lambda _: [decode_event(v) for v in values])),
        ("processor decode, single messages", best_cpu(r, decode_singles, processor)),
        (f"processor decode, envelopes of {a.envelope}", best_cpu(r, decode_envelopes, processor)),
    ]
    engine = best_cpu(r, lambda eng: eng.process_many(events), Engine)
    stages.append(("engine (one process_many)", engine))
    hm_single = best_cpu(r, handle(singles), processor)
    hm_env = best_cpu(r, handle(env_records), processor)
    stages += [
        ("handle_many, single messages", hm_single),
        (f"handle_many, envelopes of {a.envelope}", hm_env),
        ("  plumbing: handle_many - engine, single messages", hm_single - engine),
        (f"  plumbing: handle_many - engine, envelopes of {a.envelope}", hm_env - engine),
    ]
    print(f"{n:,} valid events, {a.customers} customers; CPU ns per event, best of {r}")
    for name, sec in stages:
        print(f"  {name:<58} {sec / n * 1e9:>8,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
