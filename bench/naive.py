"""The naive Faust agents of the benchmark: how fast can Faust itself go on this machine?

Run as a child process by :mod:`bench.suite`::

    python -m bench.naive --bootstrap H:P --topic T --events N --mode noop|gauss --result FILE

``noop`` decodes each message with ``json.loads`` and counts it; ``gauss`` also scores and
learns five River ``GaussianScorer``s per customer (one per signal). When ``N`` events are
consumed it writes ``{"events", "seconds", "cpu_seconds"}`` (wall and process CPU time, all threads,
first to last message) to ``FILE`` and exits.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

SIGNALS = ("requests", "status_4xx", "status_5xx", "latency_p50_ms", "latency_p99_ms")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--mode", choices=("noop", "gauss"), required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--data-dir", required=True)
    a = p.parse_args()

    import faust
    from river.anomaly import GaussianScorer

    app = faust.App(
        f"bench-naive-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{a.bootstrap}",
        web_enabled=False,
        datadir=a.data_dir,
        store="memory://",
        topic_partitions=4,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(a.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    models: dict[str, list] = {}
    state = {"n": 0, "t0": 0.0, "cpu0": 0.0}

    @app.agent(topic)
    async def agent(stream):
        async for value in stream:
            ev = json.loads(value)
            if state["n"] == 0:
                state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
            if a.mode == "gauss":
                ms = models.get(ev["customer_id"])
                if ms is None:
                    ms = models[ev["customer_id"]] = [GaussianScorer() for _ in SIGNALS]
                for m, s in zip(ms, SIGNALS):
                    y = float(ev.get(s) or 0.0)
                    m.score_one(None, y)  # a GaussianScorer models y; x is unused
                    m.learn_one(None, y)
            state["n"] += 1
            if state["n"] >= a.events:
                secs = time.perf_counter() - state["t0"]
                cpu = time.process_time() - state["cpu0"]
                with open(a.result, "w") as f:
                    json.dump({"events": state["n"], "seconds": secs, "cpu_seconds": cpu}, f)
                sys.stdout.flush()
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    main()
