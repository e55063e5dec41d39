"""``python -m bench rebuild``: how fast a worker rebuilds a partition from the input's history.

What ``lookout worker --rebuild-from`` does after a model change.

Produces simulated traffic (one event per message, keyed by customer, as producers send it) into
a one-partition topic on a real broker, then times what a rebuild does for that partition: plan
the range (``now - DURATION`` to the end), replay it through the worker's
:class:`~streams.offline.history.PartitionHistory` (replay's Kafka source, the pipeline's
processor, an engine of its own), and load the rebuilt customers into a fresh engine. Prints
events per second and the time for the whole range.

    .venv/bin/python -m bench rebuild                                 # starts its own broker
    .venv/bin/python -m bench rebuild --customers 500 --days 7 --bootstrap 127.0.0.1:9092
"""
from __future__ import annotations

import argparse
import json
import time
import uuid

from bench.common import broker_or
from detectors.engine import Engine
from detectors.synthetic import SimConfig, simulate
from streams.kafka.admin import create_topics
from streams.offline.history import PartitionHistory
from streams.pipeline.processor import Processor
from streams.state.rebuild import RebuildProgress


def produce(bootstrap: str, topic: str, customers: int, days: float) -> int:
    from kafka import KafkaProducer

    sim = simulate(SimConfig(customers=customers, duration_s=days * 86400, interval_s=300, seed=7,
                             incidents=max(1, customers // 10)))
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    n = 0
    for e in sim.events():
        p.send(topic, key=e["customer_id"].encode(), value=json.dumps(e).encode(), partition=0)
        n += 1
    p.flush()
    p.close()
    return n


def bench(bootstrap: str, customers: int, days: float) -> dict:
    topic = f"bench-rebuild-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: 1}, timeout=30)
    t0 = time.monotonic()
    n = produce(bootstrap, topic, customers, days)
    produce_s = time.monotonic() - t0
    history = PartitionHistory(topic, bootstrap, Processor(Engine(), partitions=1))
    t0 = time.monotonic()
    start, stop = history.plan(0, time.time() - 7 * 86400)
    plan_s = time.monotonic() - t0
    pr = RebuildProgress(0, start, stop)
    t1 = time.monotonic()
    states = history.replay(0, time.time() - 7 * 86400, stop, pr)
    replay_s = time.monotonic() - t1
    live = Engine()
    t2 = time.monotonic()
    for cid, blob in states.items():
        live.load_customer(cid, blob)
    load_s = time.monotonic() - t2
    warming = live.series_counts()[1]
    return {"events": n, "customers": len(states), "produce_s": round(produce_s, 1),
            "plan_s": round(plan_s, 2), "replay_s": round(replay_s, 2),
            "replay_events_per_s": round(pr.events / replay_s), "load_s": round(load_s, 3),
            "rebuild_total_s": round(plan_s + replay_s + load_s, 2),
            "rebuild_events_per_s": round(pr.events / (plan_s + replay_s + load_s)),
            "series_warming_after": warming}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench rebuild", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="an existing broker (default: start a throwaway local one)")
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--days", type=float, default=7.0)
    args = ap.parse_args(argv)
    with broker_or(args.bootstrap) as bootstrap:
        res = bench(bootstrap, args.customers, args.days)
    for k, v in res.items():
        print(f"{k:<24} {v}")
    return 0


if __name__ == "__main__":
    main()
