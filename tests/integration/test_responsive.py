"""The web port always answers: ``/metrics`` and ``/healthz`` scraped every 100 ms while the worker
runs an envelope load (hundreds of thousands of events a batch) answer within 0.1 s.

The issue's measure was a scrape that waited 2.3-4.0 s for a batch to leave the event loop. What
this test measures is how long the *worker* keeps a scrape waiting, so the machine's own
scheduling delays (a shared 2-core CI machine) are measured alongside and taken out: a scrape of
an idle HTTP server in another process, made right after each worker scrape by the same client,
shows what the machine alone costs a round trip at that moment.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from detectors.synthetic import SimConfig, simulate
from streams.pipeline.codecs import ENVELOPE_KEY, partition_of

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: the issue's target for the slowest answer
SLOWEST_S = 0.1
SCRAPE_EVERY_S = 0.1


def envelopes(customers: int, intervals: int, size: int = 500) -> list[tuple[int, bytes]]:
    """(partition, envelope) of up to ``size`` events of one partition, in event-time order."""
    sim = simulate(SimConfig(customers=customers, duration_s=intervals * 300, interval_s=300, seed=5))
    pending: dict[int, list] = {}
    out = []
    for ev in sim.events():
        p = partition_of(ev["customer_id"], PARTITIONS)
        pending.setdefault(p, []).append(ev)
        if len(pending[p]) >= size:
            out.append((p, json.dumps({ENVELOPE_KEY: pending.pop(p)}).encode()))
    out += [(p, json.dumps({ENVELOPE_KEY: evs}).encode()) for p, evs in pending.items()]
    return out


class Quiet(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
    except urllib.error.HTTPError as exc:  # /healthz answers 503 while partitions restore
        body = exc.read()
    return time.perf_counter() - t0, body


def consumed(metrics: bytes) -> float:
    return sum(float(line.rsplit(b" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(b"lookout_events_total{"))


def wait_for_partitions(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if len(json.loads(get(f"{base}/healthz")[1]).get("partitions", ())) == PARTITIONS:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError("the worker did not get its partitions")


def test_metrics_and_healthz_answer_within_a_tenth_of_a_second_during_an_envelope_load(start_worker):
    from kafka import KafkaProducer

    load = envelopes(customers=2000, intervals=120)  # 240,000 events in envelopes of 500
    n = sum(len(json.loads(v)[ENVELOPE_KEY]) for _, v in load)
    w = start_worker(partitions=PARTITIONS)
    base = f"http://127.0.0.1:{w.web_port}"
    wait_for_partitions(base)
    w.stop()  # the load waits for it: a batch of 500 envelopes is 250,000 events
    prod = KafkaProducer(bootstrap_servers=w.bootstrap, linger_ms=20, batch_size=1024 * 1024,
                         max_request_size=4 * 1024 * 1024)
    for p, value in load:
        prod.send(w.input_topic, value=value, partition=p)
    prod.flush()
    prod.close()
    control = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    control_url = f"http://127.0.0.1:{control.server_address[1]}/"

    w.start()
    samples: list[tuple[str, float, float]] = []  # (path, worker answer s, the idle server's right after)
    seen = 0.0
    deadline = time.monotonic() + 300
    while seen < n and time.monotonic() < deadline:
        for path in ("/metrics", "/healthz"):
            try:
                took, body = get(base + path)
            except OSError:  # not listening yet
                break
            machine, _ = get(control_url)
            if path == "/metrics":
                seen = consumed(body)
            if seen:  # from its first event on
                samples.append((path, took, machine))
        time.sleep(SCRAPE_EVERY_S / 2)
    control.shutdown()
    assert seen >= n, f"the worker consumed {seen:.0f} of {n} events"
    for path in ("/metrics", "/healthz"):
        took = sorted(s[1] for s in samples if s[0] == path)
        p99 = took[int(0.99 * (len(took) - 1))]
        print(f"\n{path}: {len(took)} answers during the load: median {statistics.median(took) * 1000:.1f} "
              f"ms, p99 {p99 * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms")
    worst = max(samples, key=lambda s: s[1] - s[2])
    print(f"slowest answer net of the machine's round trip: {worst[0]} {worst[1] * 1000:.1f} ms "
          f"(the idle server's right after: {worst[2] * 1000:.1f} ms)")
    assert len(samples) >= 20, "the load was over too soon to measure anything"
    assert worst[1] - worst[2] < SLOWEST_S
