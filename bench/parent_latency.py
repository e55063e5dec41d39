"""Produce -> parent latency of the correlator on a real broker and worker, with live data.

A simulated fleet at a short interval (default 10 s, so the run takes minutes, not hours) with one
shared cause: its history up to shortly before the cause is produced at once, then every
interval's events are produced when the interval ends, as a live aggregation tier would. The
script reports, from the production of the first child's interval, how long until the parent
incident appears on the incidents topic -- the target is at most one interval plus the hold --
and how long after the first onset's interval.

    .venv/bin/python -m bench parent-latency                 # a throw-away broker on free ports
    .venv/bin/python -m bench parent-latency --interval 20 --grace 2
    .venv/bin/python -m bench parent-latency --apart         # the stages in `lookout correlator`
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from detectors.events import format_ts, parse_ts
from detectors.synthetic import SimConfig, simulate
from streams.correlation.customers import publish_catalogue
from streams.devtools.broker import LocalBroker
from streams.kafka.admin import create_topics
from streams.settings import Settings
from tests.conftest import free_ports

#: intervals of live data before the cause starts (the worker is caught up and live by then)
LEAD_INTERVALS = 12


def find_sim(args) -> tuple:
    """A simulation whose one shared cause is an origin outage of >= 20 customers after the warm-up."""
    iv = args.interval
    for seed in range(args.seed, args.seed + 500):
        cfg = SimConfig(customers=args.customers, duration_s=args.hours * 3600, interval_s=iv, seed=seed,
                        shared_causes=1, warmup_s=args.warm_hours * 3600, incidents_per_customer_week=0.5)
        sim = simulate(cfg)
        c = sim.shared_causes[0] if sim.shared_causes else None
        if c is not None and c.kind == "origin_outage" and len(c.customers) >= 20:
            return sim, c
    raise SystemExit("no suitable simulation found")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench parent-latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=150)
    p.add_argument("--interval", type=int, default=10, help="seconds per interval")
    p.add_argument("--hours", type=float, default=2.5, help="simulated hours in all")
    p.add_argument("--warm-hours", type=float, default=1.5, help="hours before any incident")
    p.add_argument("--grace", type=float, default=5.0, help="LOOKOUT_CORRELATOR_GRACE_S")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--apart", action="store_true",
                   help="the worker leaves the correlator's stages to a `lookout correlator` process")
    args = p.parse_args(argv)
    iv = args.interval
    sim0, cause = find_sim(args)
    start_i = int((cause.start - sim0.start) // iv)
    live_from = start_i - LEAD_INTERVALS
    # shift the simulation so that the live part starts now
    wall0 = math.floor(time.time() / iv) * iv - live_from * iv
    cfg = SimConfig(**{**sim0.config.__dict__, "start": float(wall0)})
    sim = simulate(cfg)
    cause = sim.shared_causes[0]
    hit = set(cause.customers)
    print(f"seed {cfg.seed}: {args.customers} customers, {iv} s intervals, cause {cause.scope} touching "
          f"{len(hit)} customers from {format_ts(cause.start)}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="lookout-latency-"))
    port, cport, web, web2 = free_ports(4)
    broker = LocalBroker(Settings.from_env(broker_port=port, broker_controller_port=cport,
                                           broker_data_dir=work / "kafka"))
    broker.start(timeout=120)
    bootstrap = broker.bootstrap
    app = "latency"
    topics = {"input": "lat-input", "alerts": "lat-alerts", "customers": "lat-customers",
              "incidents": "lat-incidents", "routed": "lat-routed"}
    create_topics(bootstrap, {topics["input"]: 2, topics["alerts"]: 2}, timeout=30)
    create_topics(bootstrap, {topics["customers"]: 2}, timeout=30, compacted=[topics["customers"]])
    publish_catalogue(sim.catalogue, topics["customers"], bootstrap, {})
    config = work / "detectors.yaml"
    config.write_text(f"model:\n  warmup_s: {args.warm_hours * 3600 * 0.6:.0f}\n")
    env = dict(os.environ, LOOKOUT_BOOTSTRAP=bootstrap, LOOKOUT_APP_ID=app, LOOKOUT_PARTITIONS="2",
               LOOKOUT_INPUT_TOPIC=topics["input"], LOOKOUT_ALERTS_TOPIC=topics["alerts"],
               LOOKOUT_CUSTOMERS_TOPIC=topics["customers"], LOOKOUT_INCIDENTS_TOPIC=topics["incidents"],
               LOOKOUT_ROUTED_TOPIC=topics["routed"], LOOKOUT_WEB_PORT=str(web),
               LOOKOUT_DATA_DIR=str(work / "worker"), LOOKOUT_CORRELATOR_GRACE_S=str(args.grace),
               LOOKOUT_DETECTOR_CONFIG=str(config), LOOKOUT_MAX_FUTURE_S="600",
               LOOKOUT_CORRELATOR_STAGES="apart" if args.apart else "here")
    procs = [subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                              stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)]
    if args.apart:
        procs.append(subprocess.Popen([sys.executable, "-m", "streams.cli", "correlator"],
                                      env=dict(env, LOOKOUT_WEB_PORT=str(web2),
                                               LOOKOUT_DATA_DIR=str(work / "correlator")),
                                      stdout=open(work / "correlator.log", "wb"), stderr=subprocess.STDOUT,
                                      start_new_session=True))
    try:
        return run(sim, cause, hit, bootstrap, topics, live_from, iv, args, procs)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        broker.stop()


def run(sim, cause, hit, bootstrap, topics, live_from, iv, args, procs) -> int:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    consumer = KafkaConsumer(topics["incidents"], topics["routed"], bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", group_id=None, consumer_timeout_ms=100)
    produced: dict[float, float] = {}
    parent_at = first_child = None

    def watch(until: float) -> None:
        """Read the routed alerts and incidents until ``until`` (wall clock), noting when the parent came."""
        nonlocal parent_at, first_child
        while True:
            for m in consumer:
                rec = json.loads(m.value)
                mine = rec.get("customer_id") in hit and rec.get("status") == "firing"
                if m.topic == topics["routed"] and mine:
                    t = parse_ts(rec["event_ts"])
                    first_child = t if first_child is None else min(first_child, t)
                elif (m.topic == topics["incidents"] and parent_at is None
                      and hit & set(rec.get("customers", ()))):
                    parent_at = time.time()
                    print(f"parent {rec['parent_id']}: {rec['cause']}", flush=True)
            if time.time() >= until:
                return

    for i, (ts, batch) in enumerate(sim.intervals()):
        if i >= live_from:  # live: an interval's events when it ends (reading the outputs meanwhile)
            watch(ts + iv)
        for e in batch:
            producer.send(topics["input"], key=e["customer_id"].encode(), value=json.dumps(e).encode())
        if i >= live_from - 1:
            producer.flush()
        produced[ts] = time.time()
        if i < live_from:
            continue
        if parent_at is not None and first_child is not None:
            break
        if ts > cause.start + 40 * iv or any(proc.poll() is not None for proc in procs):
            print("no parent in time (or the worker or correlator exited)", file=sys.stderr)
            return 1
    onset = min(produced[t] for t in produced if t >= cause.start)
    child = produced[first_child]
    print(f"produce of the first child's interval -> parent: {parent_at - child:.1f} s "
          f"(target <= 1 interval + the hold = {2 * iv} s)")
    print(f"produce of the cause's first interval -> parent: {parent_at - onset:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
