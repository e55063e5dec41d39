"""``python -m bench state-sync``: snapshot and restore of per-partition state at fleet size, real broker.

Measures what issue 8 asks of the state topic at 100,000 customers: the longest time one
snapshot holds up event processing (a concurrent task plays the agent and records how long it
waits for the processing lock), the snapshot's total time and bytes per customer, and how long
one input partition takes to be restored (state read back, customers loaded, alerts read back)
when it is assigned to a fresh worker.

Customers are clones of one customer warmed on a few simulated days (the state of every
customer has the same size and shape as a real one; building 100k by simulation would take
minutes and measure the simulator).

    .venv/bin/python -m bench state-sync                       # starts its own broker
    .venv/bin/python -m bench state-sync --bootstrap 127.0.0.1:9092 --customers 100000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from types import SimpleNamespace

from bench.common import broker_or
from detectors.engine import Engine
from detectors.synthetic import SimConfig, simulate
from streams.pipeline.processor import Processor
from streams.state.book import PartitionBook
from streams.state.reader import StateReader
from streams.worker.runtime import WorkerRuntime


class AioTopic:
    """The slice of Faust's Topic API the runtime uses, over a plain aiokafka producer."""

    def __init__(self, producer, name):
        self.producer, self.name = producer, name

    def get_topic_name(self):
        return self.name

    async def send(self, key=None, value=None, partition=None, callback=None):
        fut = await self.producer.send(self.name, value=value, key=key, partition=partition)
        if callback is not None:
            fut.add_done_callback(lambda f: callback(SimpleNamespace(result=f.result)))
        return fut


def warm_template(days: int = 3) -> bytes:
    sim = simulate(SimConfig(customers=1, duration_s=days * 86400, interval_s=300, seed=1, incidents=0,
                             size_min=2000, tiny_fraction=0.0))
    proc = Processor(Engine())
    proc.handle_many((None, json.dumps(e), "sim", None, None) for e in sim.events())
    (cid,) = proc.engine.customers
    return proc.engine.dump_customer(cid)


async def bench(bootstrap: str, customers: int, partitions: int) -> dict:
    from aiokafka import AIOKafkaProducer

    from streams.kafka.security import aiokafka_kwargs
    from streams.settings import Settings

    security = aiokafka_kwargs(Settings.from_env())  # LOOKOUT_KAFKA_* TLS/SASL, as the worker uses
    template = warm_template()
    names = {k: f"bench-{k}-{uuid.uuid4().hex[:6]}" for k in ("input", "alerts", "state", "dlq")}
    reader = StateReader(bootstrap, security, timeout_s=120)
    await reader.ensure_topics({names["input"]: (partitions, False), names["alerts"]: (partitions, False),
                                names["state"]: (partitions, True), names["dlq"]: (1, False)})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024,
                                max_request_size=8 * 1024 * 1024, **security)
    await producer.start()
    try:
        def runtime():
            return WorkerRuntime(
                processor=Processor(Engine()), book=PartitionBook(), reader=reader,
                input_topic=SimpleNamespace(get_topic_name=lambda: names["input"]),
                alerts_topic=AioTopic(producer, names["alerts"]), dlq_topic=AioTopic(producer, names["dlq"]),
                state_topic=AioTopic(producer, names["state"]), flush=producer.flush)

        rt = runtime()
        await rt.on_assigned(range(partitions))
        for p in range(partitions):
            await rt.wait_ready(p)
        t0 = time.perf_counter()
        for i in range(customers):
            cid = f"cust-{i:07d}"
            rt.engine.load_customer(cid, template)
            p = i % partitions
            rt.book.processed(p, i // partitions, cid)
        rt.book.mark_dirty(rt.engine.customers)
        build_s = time.perf_counter() - t0

        waits: list[float] = []
        stop = asyncio.Event()

        async def agent():
            """Plays back-to-back batches: every 1 ms it wants the processing lock. What it waits
            beyond that (the event loop busy with a snapshot slice, or the lock held) is a stall."""
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                async with rt.lock:
                    waits.append(max(0.0, time.perf_counter() - t - 0.001))

        task = asyncio.create_task(agent())
        t0 = time.perf_counter()
        ok = await rt.snapshot(reason="bench")
        snap_s = time.perf_counter() - t0
        stop.set()
        await task

        fresh = runtime()
        t0 = time.perf_counter()
        await fresh.on_assigned([0])
        await fresh.wait_ready(0)
        restore_s = time.perf_counter() - t0
        restored = len(fresh.engine.customers)
    finally:
        await producer.stop()
    return {
        "customers": customers, "partitions": partitions, "snapshot_ok": ok,
        "state_bytes_per_customer": len(template), "build_s": round(build_s, 2),
        "snapshot_s": round(snap_s, 2), "snapshot_customers_per_s": round(customers / snap_s),
        "agent_wait_max_ms": round(max(waits) * 1000, 1), "agent_wait_p99_ms":
            round(statistics.quantiles(waits, n=100)[98] * 1000, 1) if len(waits) > 100 else None,
        "agent_lock_acquisitions": len(waits),
        "restore_one_partition_s": round(restore_s, 2), "restored_customers": restored,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench state-sync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="an existing broker (default: start a throwaway local one)")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args(argv)
    with broker_or(args.bootstrap) as bootstrap:
        res = asyncio.run(bench(bootstrap, args.customers, args.partitions))
    for k, v in res.items():
        print(f"{k:<28} {v}")
    return 0


if __name__ == "__main__":
    main()
