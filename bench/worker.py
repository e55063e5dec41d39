"""``python -m bench worker``: throughput of the live Faust worker on a real local Kafka.

Produces N simulated events to a fresh topic first, then starts `lookout worker` and times how
long it takes to consume them all (polling its /metrics). Prints events/s.

    .venv/bin/python -m bench worker                        # starts a throw-away broker
    .venv/bin/python -m bench worker --bootstrap 127.0.0.1:9092 --events 300000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import consumed, free_port
from detectors.synthetic import SimConfig, simulate
from streams.devtools.broker import LocalBroker
from streams.kafka.admin import create_topics
from streams.kafka.security import kafka_python_kwargs
from streams.settings import Settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=500)
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="lookout-bench-"))
    security = kafka_python_kwargs(Settings.from_env())  # LOOKOUT_KAFKA_* reach the worker through its env
    broker = None
    if not a.bootstrap:
        broker = LocalBroker(Settings.from_env(broker_port=free_port(), broker_controller_port=free_port(),
                                               broker_data_dir=tmp / "kafka"))
        broker.start(fresh=True)
        a.bootstrap = broker.bootstrap
    worker = None
    try:
        run = uuid.uuid4().hex[:6]
        topic = f"bench-{run}-in"
        create_topics(
            a.bootstrap, {topic: 4, f"bench-{run}-alerts": 4, f"bench-{run}-dlq": 1}, security=security
        )
        from kafka import KafkaProducer

        days = a.events / a.customers * 300 / 86400
        sim = simulate(
            SimConfig(customers=a.customers, duration_s=days * 86400 + 300, interval_s=300, seed=9)
        )
        prod = KafkaProducer(bootstrap_servers=a.bootstrap, linger_ms=20, batch_size=512 * 1024, **security)
        n = 0
        t0 = time.perf_counter()
        for ev in sim.events():
            if n >= a.events:
                break
            prod.send(topic, key=ev["customer_id"].encode(), value=json.dumps(ev).encode())
            n += 1
        prod.flush()
        print(f"produced {n:,} events in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        env = dict(os.environ, LOOKOUT_BOOTSTRAP=a.bootstrap, LOOKOUT_INPUT_TOPIC=topic,
                   LOOKOUT_ALERTS_TOPIC=f"bench-{run}-alerts", LOOKOUT_DLQ_TOPIC=f"bench-{run}-dlq",
                   LOOKOUT_APP_ID=f"bench-{run}", LOOKOUT_WEB_PORT=str(port), LOOKOUT_DATA_DIR=str(tmp / "w"),
                   LOOKOUT_BATCH_SIZE=str(a.batch_size))
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                  stdout=open(tmp / "worker.log", "wb"), stderr=subprocess.STDOUT)
        while not consumed(port):
            if worker.poll() is not None:
                raise SystemExit(f"worker died; see {tmp / 'worker.log'}")
            time.sleep(0.2)
        t1, c1 = time.perf_counter(), consumed(port) or 0.0
        while (c := consumed(port) or 0.0) < n:
            time.sleep(0.5)
        secs = time.perf_counter() - t1
        print(f"worker: {c - c1:,.0f} events in {secs:.1f} s = {(c - c1) / secs:,.0f} events/s "
              f"(batch size {a.batch_size}, measured from the first consumed batch)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
