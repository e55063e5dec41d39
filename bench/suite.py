"""``python -m bench`` without a benchmark name: Lookout's throughput, latency, memory and replay
speed, in one run.

Starts a throw-away Kafka 4 broker (:class:`streams.devtools.broker.LocalBroker`, free ports), produces
the same simulated events once as single-event messages and once as envelopes of up to
``--batch`` events per partition, then measures in alternating rounds (the machine is shared:
alternating spreads the noise over every contender):

* ``ceiling``        a plain aiokafka consumer + ``json.loads`` (in this process);
* ``naive_noop``     a Faust agent that decodes and counts (:mod:`bench.naive`);
* ``naive_gauss``    the same + five River ``GaussianScorer``s per customer;
* ``worker_single``  ``lookout worker`` on single-event messages;
* ``worker_batched`` ``lookout worker`` on envelopes;
* ``worker_single_off``, ``worker_batched_off``: the same with the correlator off
  (``LOOKOUT_CORRELATOR=false``). The workers with it on read the simulated fleet's customer
  catalogue from their own customers topic;
* ``ceiling_dense``, ``worker_dense``  the ceiling (single-event messages) and the worker
  (envelopes) on the *incident-dense fleet* (:mod:`bench.dense`: warm models started from
  ``--initial-state``, the simulator's evaluation incident density; the share of its events that
  reach Python is shown).

Each contender's events/s is counted from its first to its last message (start-up excluded).
The worker is watched through its ``/metrics`` page, polled at intervals growing from 0.1 s to
1 s (each scrape costs the worker ~5-10 ms of its event loop: at a fixed 0.1 s that was ~7 % of
a single-event run, a cost the naive agents never pay), and its rate runs from the first scrape
that saw events to the last scrape *before* it finished, so the idle tail after the last event
does not count. The no-op agent and the single-event worker (the pair of the issue's 0.9 ×
target) get ``--single-rounds`` alternating rounds, the others ``--rounds``; every round's
figure is printed and kept in ``runs``, the table shows medians (min – max), and for that pair
and the correlator's on/off pairs also events per CPU-second of the whole process (all
threads), which a shared machine disturbs less than events per wall-clock second.
Then: produce-to-output latency of a worker at half its measured single-event maximum,
resident and serialised bytes per customer (:mod:`bench.memory`), and replay events/s of a
600k-event JSONL file (``lookout replay --no-report``, whole process). Prints a table and
writes ``bench/results/latest.json``.

    .venv/bin/python -m bench                 # ~7 minutes on 2 cores
    .venv/bin/python -m bench --events 40000 --rounds 1 --replay-events 100000   # a quick look
    .venv/bin/python -m bench --only replay --rounds 3                            # the replay round alone
    .venv/bin/python -m bench --only dense --rounds 3      # ceiling and worker on the incident-dense fleet
    .venv/bin/python -m bench --only correlator --paired --rounds 5 --events 600000   # on and off at once
    .venv/bin/python -m bench --only correlator --paired --apart --rounds 2 --events 2400000
        # ...with the worker's stages in a `lookout correlator` beside it (its CPU reported too)

Every worker round also times the answers of ``/metrics`` and ``/healthz`` while it consumes
(p99 and max per contender: the web port must answer within 0.1 s under load).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

from bench import listing
from bench.common import consumed, free_port, metric_sum
from detectors.synthetic import SimConfig, simulate
from streams.correlation.customers import publish_catalogue
from streams.devtools.broker import LocalBroker
from streams.devtools.producer import envelopes
from streams.kafka.admin import create_topics
from streams.pipeline.codecs import ENVELOPE_KEY, partition_of
from streams.settings import Settings

PARTITIONS = 4
#: customers of the throughput runs: 2,000 over 4 partitions fill envelopes of 500 every interval
CUSTOMERS = 2000
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
#: the issue's targets, as ratios and absolute figures
TARGETS = {"single_vs_noop": 0.9, "batched_vs_ceiling": 0.5, "latency_p99_s": 0.5, "replay_eps": 100_000,
           "rss_bytes_per_customer": 20_000, "scrape_s": 0.1,
           "correlator_on_vs_off": 0.95}
#: latency probes (dead letters: they take the worker's batch -> publish path, like alerts) per second
PROBES_PER_S = 20
#: the worker's /metrics is polled every FIRST_POLL_S at first, the interval doubling up to MAX_POLL_S
FIRST_POLL_S, MAX_POLL_S = 0.1, 1.0
#: a scrape that takes longer counts as this long (and its sample is skipped)
SCRAPE_TIMEOUT_S = 10.0


def busy_rate(samples: list[tuple[float, float, float | None]], n_events: int) -> tuple[float, float | None]:
    """Events per second and per CPU-second from ``(time, events consumed, process CPU s)`` samples.

    The span runs from the first sample to the last one taken while events were still arriving
    (fewer than ``n_events`` consumed), so the wait after the last event does not count; with
    no such second sample it runs to the last sample.

    >>> busy_rate([(10.0, 500, 1.0), (11.0, 9500, 1.75), (12.0, 18500, 2.5), (13.5, 20000, 2.6)], 20000)
    (9000.0, 12000.0)
    """
    t0, c0, cpu0 = samples[0]
    t1, c1, cpu1 = samples[busy_end(samples, n_events)]
    if t1 <= t0:
        raise ValueError("need two samples at different times")
    per_cpu = (c1 - c0) / (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None and cpu1 > cpu0 else None
    return (c1 - c0) / (t1 - t0), per_cpu


def busy_end(samples: list[tuple[float, float, float | None]], n_events: int) -> int:
    """Index of the last sample after the first taken while events were still arriving (fewer
    than ``n_events`` consumed); with none, the last sample: where :func:`busy_rate`'s span ends.

    >>> busy_end([(10.0, 500, 1.0), (11.0, 9500, 1.75), (12.0, 20000, 2.5)], 20000)
    1
    """
    busy = [i for i, x in enumerate(samples) if i and x[1] < n_events]
    return busy[-1] if busy else len(samples) - 1


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and all its threads (Linux ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def machine(load_before: tuple, load_after: tuple) -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "note": "shared machine: a 1-minute load above the cpu count means other work competed",
    }


class Bench:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.tmp = Path(tempfile.mkdtemp(prefix="lookout-bench-"))
        self.run = uuid.uuid4().hex[:6]
        self.broker: LocalBroker | None = None
        self.bootstrap = ""
        self.procs: list[subprocess.Popen] = []
        #: contender -> seconds of every /metrics and /healthz answer while it consumed
        self.scrapes: dict[str, list[float]] = {}
        #: per contender run with the correlator apart: its events, the worker's and the correlator's CPU s
        self.apart: dict[str, list[dict]] = {}

    # ---- setup
    def start_broker(self) -> None:
        self.broker = LocalBroker(
            Settings.from_env(
                {},
                broker_port=free_port(),
                broker_controller_port=free_port(),
                broker_data_dir=self.tmp / "kafka",
            )
        )
        self.broker.start(fresh=True)
        self.bootstrap = self.broker.bootstrap

    def topic(self, name: str, partitions: int = PARTITIONS) -> str:
        t = f"bench-{self.run}-{name}"
        create_topics(self.bootstrap, {t: partitions})
        return t

    def produce(self, single: str | None, batched: str) -> int:
        """``--events`` simulated events to ``single`` one per message (None: not needed), and to
        ``batched`` in envelopes of up to ``--batch`` events of one partition (as an aggregation tier
        sends them)."""
        from kafka import KafkaProducer

        n_intervals = -(-self.a.events // CUSTOMERS)
        sim = simulate(SimConfig(customers=CUSTOMERS, duration_s=n_intervals * 300, interval_s=300, seed=9))
        events = list(itertools.islice(sim.events(), self.a.events))
        self.customers_topic = self.topic("customers")
        publish_catalogue(sim.catalogue, self.customers_topic, self.bootstrap, {})
        prod = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=20,
            batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
        )
        enc = json.JSONEncoder(separators=(",", ":")).encode
        for ev in events if single is not None else ():
            cid = ev["customer_id"]
            p = partition_of(cid, PARTITIONS)
            prod.send(single, key=cid.encode(), value=enc(ev).encode(), partition=p)
        for p, batch in envelopes(events, PARTITIONS, self.a.batch):
            prod.send(batched, value=enc({ENVELOPE_KEY: batch}).encode(), partition=p)
        prod.flush()
        prod.close()
        return len(events)

    def produce_dense(self, single: str, topic: str, events_file: Path) -> int:
        """The incident-dense fleet's measured events, singly (for its ceiling) and as envelopes (as
        :meth:`produce` makes them)."""
        from kafka import KafkaProducer

        prod = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20, batch_size=1024 * 1024,
                             max_request_size=4 * 1024 * 1024)
        enc = json.JSONEncoder(separators=(",", ":")).encode
        pending: dict[int, list] = {}
        n, ts = 0, None

        def flush(p: int) -> None:
            prod.send(topic, value=enc({ENVELOPE_KEY: pending.pop(p)}).encode(), partition=p)

        with open(events_file) as f:
            for line in f:
                ev = json.loads(line)
                if ev["ts"] != ts:  # a new interval: every partition's envelope goes
                    for p in list(pending):
                        flush(p)
                    ts = ev["ts"]
                p = partition_of(ev["customer_id"], PARTITIONS)
                prod.send(single, key=ev["customer_id"].encode(), value=enc(ev).encode(), partition=p)
                pending.setdefault(p, []).append(ev)
                if len(pending[p]) >= self.a.batch:
                    flush(p)
                n += 1
        for p in list(pending):
            flush(p)
        prod.flush()
        prod.close()
        return n

    # ---- contenders
    def ceiling(self, topic: str, n: int) -> float:
        from aiokafka import AIOKafkaConsumer

        async def consume() -> float:
            c = AIOKafkaConsumer(
                topic,
                bootstrap_servers=self.bootstrap,
                group_id=f"ceil-{uuid.uuid4().hex[:6]}",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await c.start()
            seen, t0 = 0, 0.0
            deadline = time.monotonic() + self.a.timeout
            try:
                while seen < n:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the plain consumer read {seen:,} of {n:,} messages in {self.a.timeout} s")
                    batches = await c.getmany(timeout_ms=1000, max_records=5000)
                    for msgs in batches.values():
                        if seen == 0 and msgs:
                            t0 = time.perf_counter()
                        for m in msgs:
                            json.loads(m.value)
                        seen += len(msgs)
                return n / (time.perf_counter() - t0)
            finally:
                await c.stop()

        return asyncio.run(consume())

    def naive(self, topic: str, n: int, mode: str) -> tuple[float, float | None]:
        result = self.tmp / f"naive-{uuid.uuid4().hex[:6]}.json"
        log = open(self.tmp / f"naive-{mode}.log", "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.naive",
                "--bootstrap",
                self.bootstrap,
                "--topic",
                topic,
                "--events",
                str(n),
                "--mode",
                mode,
                "--result",
                str(result),
                "--data-dir",
                str(self.tmp / f"naive-{result.stem}"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        try:
            proc.wait(timeout=self.a.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit(f"naive {mode} agent did not finish in {self.a.timeout} s; see {log.name}") from None
        if not result.exists():
            raise SystemExit(
                f"naive {mode} agent exited ({proc.returncode}) without a result; see {log.name}"
            )
        r = json.loads(result.read_text())
        cpu = r.get("cpu_seconds")
        return r["events"] / r["seconds"], (r["events"] / cpu if cpu else None)

    def worker(
        self, topic: str, n_events: int, label: str = "", correlator: bool = True, apart: bool = False,
        **env: str
    ) -> tuple[float, float | None, subprocess.Popen, int]:
        """One worker's run over ``n_events`` of ``topic``: (events/s, per CPU-second, process, port).

        ``apart``: the worker leaves the correlator's stages to a ``lookout correlator`` process
        started beside it; that process's CPU seconds over the same span go to ``self.apart``."""
        port = free_port()
        name = f"w-{uuid.uuid4().hex[:6]}"
        alerts, dlq = self.topic(f"{name}-alerts"), self.topic(f"{name}-dlq", 1)
        env = {"LOOKOUT_CORRELATOR": "true" if correlator else "false",
               "LOOKOUT_CUSTOMERS_TOPIC": getattr(self, "customers_topic", f"{name}-customers"),
               "LOOKOUT_INCIDENTS_TOPIC": f"{name}-incidents", "LOOKOUT_ROUTED_TOPIC": f"{name}-routed",
               **({"LOOKOUT_CORRELATOR_STAGES": "apart"} if apart else {}), **env}
        e = dict(
            os.environ,
            LOOKOUT_BOOTSTRAP=self.bootstrap,
            LOOKOUT_INPUT_TOPIC=topic,
            LOOKOUT_ALERTS_TOPIC=alerts,
            LOOKOUT_DLQ_TOPIC=dlq,
            LOOKOUT_APP_ID=f"bench-{name}",
            LOOKOUT_WEB_PORT=str(port),
            LOOKOUT_DATA_DIR=str(self.tmp / name),
            LOOKOUT_PARTITIONS=str(PARTITIONS),
            **env,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=e,
            stdout=open(self.tmp / f"{name}.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        proc.dlq_topic = dlq  # type: ignore[attr-defined]
        stages = self._correlator(e, name) if apart else None
        if n_events == 0:
            return 0.0, None, proc, port
        deadline = time.monotonic() + self.a.timeout
        while not (c := consumed(port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start; see {self.tmp / name}.log")
            time.sleep(0.05)
        samples = [(time.perf_counter(), c, process_cpu_s(proc.pid))]
        stage_cpu = [process_cpu_s(stages[0].pid) if stages else None]  # at each sample
        poll = FIRST_POLL_S
        scrapes = self.scrapes.setdefault(label, [])
        while c < n_events:
            if proc.poll() is not None:  # it stopped: say so now, not after the timeout
                raise SystemExit(f"worker exited with code {proc.returncode} after consuming {c:.0f} of "
                                 f"{n_events}; see {self.tmp / name}.log:\n{_tail(self.tmp / f'{name}.log')}")
            if time.monotonic() > deadline:
                raise SystemExit(f"worker consumed {c:.0f} of {n_events} in {self.a.timeout} s")
            time.sleep(poll)
            poll = min(MAX_POLL_S, 2 * poll)
            t0 = time.perf_counter()
            got = consumed(port, timeout=SCRAPE_TIMEOUT_S)
            t1 = time.perf_counter()
            _healthz_partitions(port, timeout=SCRAPE_TIMEOUT_S)
            if got is None or got < n_events:  # answers while it consumed (or none in time)
                scrapes += [t1 - t0, time.perf_counter() - t1]
            if got is None:
                continue
            c = got
            samples.append((t1, c, process_cpu_s(proc.pid)))
            stage_cpu.append(process_cpu_s(stages[0].pid) if stages else None)
        stop(proc)
        if samples[0][1] >= n_events:
            raise SystemExit(f"the worker consumed all {n_events} events of {topic} before its first scrape: "
                             "too few to measure, use more --events")
        eps, per_cpu = busy_rate(samples, n_events)
        if stages is not None:
            self._correlator_done(label, samples, stage_cpu, n_events, *stages)
        return eps, per_cpu, proc, port

    def _correlator(self, env: dict, name: str) -> tuple[subprocess.Popen, int, Path]:
        """``lookout correlator`` for a worker's topics (its env), its own port and data dir."""
        port, log = free_port(), self.tmp / f"{name}-correlator.log"
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "correlator"],
                                env=dict(env, LOOKOUT_WEB_PORT=str(port),
                                         LOOKOUT_DATA_DIR=str(self.tmp / f"{name}-correlator")),
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc, port, log

    def _correlator_done(self, label: str, samples: list, stage_cpu: list, n_events: int,
                         proc: subprocess.Popen, port: int, log: Path) -> None:
        """Keep the correlator process's CPU seconds over the worker's busy span (busy_rate's) and
        what it routed; stop it."""
        last = busy_end(samples, n_events)
        cpu0, cpu1 = stage_cpu[0], stage_cpu[last]
        if proc.poll() is not None:
            raise SystemExit(f"lookout correlator exited with code {proc.returncode}; see {log}:\n{_tail(log)}")
        routed = metric_sum(port, "lookout_alerts_routed_total")
        stop(proc)
        events = samples[last][1] - samples[0][1]
        worker_cpu = samples[last][2] - samples[0][2]
        self.apart.setdefault(label, []).append(
            {"events": events, "worker_cpu_s": worker_cpu, "correlator_cpu_s": (cpu1 or 0.0) - (cpu0 or 0.0),
             "routed_alerts": routed})

    # ---- latency
    def latency(self, rate: float) -> tuple[float, float, int]:
        from kafka import KafkaConsumer, KafkaProducer

        topic = self.topic(f"latency-{uuid.uuid4().hex[:6]}")  # each run its own: no backlog of the last
        _, _, proc, port = self.worker(topic, 0)
        deadline = time.monotonic() + self.a.timeout
        while not _healthz_partitions(port) == PARTITIONS:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("latency worker did not get its partitions")
            time.sleep(0.2)
        lat: list[float] = []
        done = threading.Event()

        def consume() -> None:
            c = KafkaConsumer(
                proc.dlq_topic,
                bootstrap_servers=self.bootstrap,
                auto_offset_reset="earliest",
                group_id=None,
                consumer_timeout_ms=500,
            )
            while not done.is_set():
                for m in c:
                    now = time.time()
                    try:
                        lat.append(now - json.loads(json.loads(m.value)["raw"])["probe"])
                    except (ValueError, KeyError, TypeError):
                        pass
                    if done.is_set():
                        break
            c.close()

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        prod = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        enc = json.JSONEncoder(separators=(",", ":")).encode
        start = time.time()
        base = (int(start) // 300 - 2000) * 300  # past intervals: no "future" dead letters
        i = probes = 0
        next_probe = start
        while (now := time.time()) < start + self.a.latency_s:
            target = int((now - start) * rate)
            while i < target:
                cid = f"lat-{i % CUSTOMERS:05d}"
                ev = {
                    "customer_id": cid,
                    "ts": base + 300 * (i // CUSTOMERS),
                    "interval_s": 300,
                    "requests": 1000,
                    "status_4xx": 10,
                    "status_5xx": 1,
                    "latency_p50_ms": 20.0,
                    "latency_p99_ms": 200.0,
                }
                prod.send(topic, key=cid.encode(), value=enc(ev).encode())
                i += 1
            if now >= next_probe:
                prod.send(topic, key=b"probe", value=enc({"probe": time.time()}).encode())
                probes += 1
                next_probe += 1 / PROBES_PER_S
            time.sleep(0.002)
        prod.flush()
        time.sleep(3)
        done.set()
        t.join(5)
        stop(proc)
        lat.sort()
        if not lat:
            raise SystemExit("no latency probe came back")
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return statistics.median(lat), p99, len(lat)

    # ---- memory and replay
    def memory(self, customers: int) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--customers", str(customers)],
            capture_output=True,
            text=True,
            timeout=self.a.timeout,
            check=True,
        )
        return json.loads(out.stdout)

    def replay(self) -> float:
        """Events/s of ``lookout replay --no-report`` over the replay file, the whole process timed."""
        f = self.replay_file()
        lines = sum(1 for _ in open(f, "rb"))
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "replay",
                str(f),
                "--out",
                str(self.tmp / "replay-out"),
                "--no-report",
                "-q",
            ],
            check=True,
            capture_output=True,
            timeout=self.a.timeout,
        )
        return lines / (time.perf_counter() - t0)

    def replay_file(self) -> Path:
        """``--replay-events`` simulated events (500 customers, 5-minute intervals) as JSONL, made once."""
        f = self.tmp / "replay.jsonl"
        if f.exists():
            return f
        customers = 500
        days = self.a.replay_events / customers * 300 / 86400
        subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "simulate",
                "--customers",
                str(customers),
                "--days",
                f"{days:.6f}",
                "--out",
                str(f),
                "-q",
            ],
            check=True,
            capture_output=True,
            timeout=self.a.timeout,
        )
        return f

    def close(self) -> None:
        for p in self.procs:
            stop(p)
        if self.broker is not None:
            self.broker.stop()


def _healthz_partitions(port: int, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return len(json.loads(r.read()).get("partitions", ()))
    except urllib.error.HTTPError as exc:
        try:
            return len(json.loads(exc.read()).get("partitions", ()))
        except ValueError:
            return 0
    except OSError:
        return 0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: the throughput contenders, in the order of a round
CONTENDERS = ("ceiling", "naive_noop", "naive_gauss", "worker_single", "worker_batched", "worker_single_off",
              "worker_batched_off", "ceiling_dense", "worker_dense")
#: ``--only`` groups: the pairs whose ratio is a target
GROUPS = {"single": ("naive_noop", "worker_single"), "batched": ("ceiling", "worker_batched"),
          "dense": ("ceiling_dense", "worker_dense"), "correlator": ("worker_batched_off", "worker_batched")}


def contenders_of(b: Bench, names: set[str]) -> tuple[dict, dict]:
    """Produce what ``names`` consume; return name -> round function, and what was produced."""
    a, made = b.a, {}
    if names & {"ceiling", "naive_noop", "naive_gauss", "worker_single", "worker_batched", "worker_single_off",
                "worker_batched_off"}:
        # the correlator's pair reads envelopes only: 2.4 million single-event messages took minutes
        needs_single = bool(names - {"worker_batched", "worker_batched_off", "ceiling_dense", "worker_dense"})
        single, batched = b.topic("single") if needs_single else None, b.topic("batched")
        made["events"] = n = b.produce(single, batched)
        print(f"produced {n:,} events ({CUSTOMERS:,} customers, {PARTITIONS} partitions), "
              f"{'singly and ' if needs_single else ''}in envelopes of up to {a.batch}", flush=True)
    if names & {"ceiling_dense", "worker_dense"}:
        from bench.dense import prepare

        fleet = prepare(a.events)
        dense_single, dense = b.topic("dense-single"), b.topic("dense")
        made["dense_events"] = nd = b.produce_dense(dense_single, dense, fleet.events)
        made["dense"] = fleet.meta
        print(f"produced {nd:,} events of the incident-dense fleet in envelopes of up to {a.batch}: "
              f"{fleet.meta['python_share']:.2%} of them reach Python (the alert lifecycle), "
              f"{fleet.meta['incidents_during']} labelled incidents during them", flush=True)
    all_ = {
        "ceiling": lambda: (b.ceiling(single, n), None),
        "naive_noop": lambda: b.naive(single, n, "noop"),
        "naive_gauss": lambda: b.naive(single, n, "gauss"),
        "worker_single": lambda: b.worker(single, n, "worker_single")[:2],
        "worker_batched": lambda: b.worker(batched, n, "worker_batched", apart=getattr(a, "apart", False))[:2],
        "worker_single_off": lambda: b.worker(single, n, "worker_single_off", correlator=False)[:2],
        "worker_batched_off": lambda: b.worker(batched, n, "worker_batched_off", correlator=False)[:2],
        "ceiling_dense": lambda: (b.ceiling(dense_single, nd), None),
        "worker_dense": lambda: b.worker(dense, nd, "worker_dense", LOOKOUT_INITIAL_STATE=str(fleet.state))[:2],
    }
    return {k: f for k, f in all_.items() if k in names}, made


def rounds(contenders: dict, n_rounds: int, pair_rounds: int, runs: dict, per_cpu: dict) -> None:
    """Alternating rounds, every other one in reverse order so no contender always goes first (with
    the correlator on first in every round, its pair's wall-clock ratio read 1.4-1.8 x at a load of
    ~4: the order or the load, sequential rounds cannot tell); the single-event pair gets
    ``pair_rounds`` (going first alternately)."""
    pair = [c for c in GROUPS["single"] if c in contenders]
    for r in range(max(n_rounds, pair_rounds if pair else 0)):
        if r < n_rounds:
            names = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
        else:  # extra rounds of the 0.9 x pair, which goes first alternating
            names = pair if r % 2 == 0 else pair[::-1]
        for name in names:
            eps, cpu = contenders[name]()
            runs.setdefault(name, []).append(eps)
            if name in per_cpu and cpu is not None:
                per_cpu[name].append(cpu)
            cpu_note = f"  ({cpu:,.0f} per CPU-second)" if name in per_cpu and cpu else ""
            print(f"  round {r + 1} {name:15s} {eps:10,.0f} events/s{cpu_note}", flush=True)


def paired_rounds(contenders: dict, pair: tuple[str, str], n_rounds: int, runs: dict, per_cpu: dict) -> None:
    """``n_rounds`` rounds in which both contenders of ``pair`` run at the same time, each on its
    own copy of the events (two processes on the same topic, separate consumer groups).

    On a machine shared with other work, sequential rounds each met a different load: the
    correlator pair's per-CPU ratio ranged 0.96-1.26 over five rounds at a load of ~4 on 2 CPUs,
    and 0.86-0.96 paired. Running together, each worker also competes with the other, but
    symmetrically, and events per CPU-second of each process is what that disturbs least. Short
    rounds stay noisy (600,000 events at a load of 1-2: 0.78-1.08, the starts fall inside a ~6 s
    round); 2.4 million events gave rounds within 0.03 of each other.
    """
    base, ours = pair
    for r in range(n_rounds):
        got: dict[str, tuple[float, float | None]] = {}
        load = os.getloadavg()[0]
        threads = [threading.Thread(target=_run_into, args=(got, n, contenders[n])) for n in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = {n: v for n, v in got.items() if isinstance(v, BaseException)}
        if failed or set(got) != set(pair):
            why = "; ".join(f"{n}: {v}" for n, v in failed.items()) or "see above"
            raise SystemExit(f"round {r + 1}: a worker of the pair did not finish: {why}")
        for name in pair:
            eps, cpu = got[name]
            runs.setdefault(name, []).append(eps)
            if cpu is not None:
                per_cpu[name].append(cpu)
        (b_eps, b_cpu), (o_eps, o_cpu) = got[base], got[ours]
        cpu_note = f", per CPU-second {o_cpu:,.0f} / {b_cpu:,.0f} = {o_cpu / b_cpu:.3f} x" if b_cpu and o_cpu else ""
        print(f"  round {r + 1} {ours} / {base} together: {o_eps:,.0f} / {b_eps:,.0f} events/s = "
              f"{o_eps / b_eps:.3f} x{cpu_note} (load average {load:.2f} before)", flush=True)


def _run_into(got: dict, name: str, contender: Callable[[], tuple[float, float | None]]) -> None:
    """Run one contender of a pair in its thread; what stopped it is kept (a thread drops a
    ``SystemExit`` silently, and a worker that exited left the round with no reason)."""
    try:
        got[name] = contender()
    except BaseException as exc:  # noqa: BLE001 -- SystemExit included: reported by the round
        got[name] = exc


def _tail(path: Path, lines: int = 15) -> str:
    """The last lines of a worker's log."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def scrape_summary(scrapes: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per worker contender: answers of /metrics and /healthz during its loads, p99 and max seconds."""
    out = {}
    for name, took in scrapes.items():
        if took:
            took = sorted(took)
            out[name] = {"n": len(took), "p99": took[min(len(took) - 1, int(0.99 * len(took)))], "max": took[-1]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks (python -m bench NAME --help):\n" + listing(),
    )
    p.add_argument("--events", type=int, default=120_000, help="events per throughput run")
    p.add_argument("--batch", type=int, default=500, help="events per envelope")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of the throughput contenders")
    p.add_argument("--single-rounds", type=int, default=5,
                   help="alternating rounds of the no-op agent and the single-event worker (at least --rounds)")
    p.add_argument("--latency-s", type=float, default=20.0, help="seconds of the latency run")
    p.add_argument("--latency-rate", type=float, default=None,
                   help="events/s of the latency run (default: half the worker's measured single-event rate)")
    p.add_argument("--memory-customers", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--replay-events", type=int, default=600_000)
    p.add_argument("--timeout", type=float, default=240.0, help="give up on one step after this many seconds")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--only", choices=["replay", "latency", *GROUPS],
                   help="run only this round (replay: no broker; latency: --rounds runs at --latency-rate, "
                        "default half of one single-event worker round) or pair of contenders (single, "
                        "batched, dense, correlator), --rounds times; prints, writes no results file")
    p.add_argument("--paired", action="store_true",
                   help="with --only correlator: start both workers at the same time in each round, so the "
                        "load of a shared machine falls on both alike (their ratio per round is printed)")
    p.add_argument("--apart", action="store_true",
                   help="with --only correlator: the worker with the correlator on leaves its stages to a "
                        "`lookout correlator` process (LOOKOUT_CORRELATOR_STAGES=apart); that process's CPU "
                        "is reported too, and the ratio with it counted")
    a = p.parse_args(argv)
    if a.paired and a.only != "correlator":
        p.error("--paired needs --only correlator (two workers whose CPU seconds are measured)")
    if a.apart and a.only != "correlator":
        p.error("--apart needs --only correlator")
    if a.only == "replay":
        return replay_only(a)
    if a.only == "latency":
        return latency_only(a)
    if a.only:
        return pair_only(a)
    load_before = os.getloadavg()
    t_start = time.monotonic()
    b = Bench(a)
    runs: dict[str, list[float]] = {}
    # and the correlator's pairs: per CPU-second is what a shared machine disturbs less
    per_cpu: dict[str, list[float]] = {k: [] for k in ("naive_noop", "worker_single", "worker_single_off",
                                                       "worker_batched", "worker_batched_off")}
    try:
        b.start_broker()
        contenders, made = contenders_of(b, set(CONTENDERS))
        rounds(contenders, a.rounds, a.single_rounds, runs, per_cpu)
        half = a.latency_rate or statistics.median(runs["worker_single"]) / 2
        p50, p99, probes = b.latency(half)
        print(
            f"  latency at {half:,.0f} events/s: p50 {p50:.3f} s, p99 {p99:.3f} s ({probes} probes)",
            flush=True,
        )
        mem = [b.memory(c) for c in a.memory_customers]
        for m in mem:
            print(
                f"  memory {m['customers']:,} customers: {m['rss_bytes_per_customer']:,.0f} B resident, "
                f"{m['state_bytes_per_customer']:,.0f} B serialised per customer",
                flush=True,
            )
        replay_eps = b.replay()
        print(f"  replay {a.replay_events:,} events: {replay_eps:,.0f} events/s (whole process)", flush=True)
    finally:
        b.close()
    med = {k: statistics.median(v) for k, v in runs.items()}
    biggest = mem[-1]
    result = {
        **{f"{k}_eps": v for k, v in med.items()},
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "latency_rate_eps": half,
        "latency_probes": probes,
        "rss_bytes_per_customer": biggest["rss_bytes_per_customer"],
        "state_bytes_per_customer": biggest["state_bytes_per_customer"],
        "memory": mem,
        "replay_eps": replay_eps,
        "replay_events": a.replay_events,
        "runs": runs,
        "per_cpu_second": {k: statistics.median(v) for k, v in per_cpu.items() if v},
        "per_cpu_second_runs": per_cpu,
        "single_vs_noop_per_round": [w / o for o, w in zip(runs["naive_noop"], runs["worker_single"])],
        "scrape_seconds": scrape_summary(b.scrapes),
        "dense": made["dense"],
        "events": made["events"],
        "batch": a.batch,
        "customers": CUSTOMERS,
        "partitions": PARTITIONS,
        "seconds": time.monotonic() - t_start,
        "machine": machine(load_before, os.getloadavg()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written {a.out} in {result['seconds']:.0f} s")
    return 0


def pair_only(a: argparse.Namespace) -> int:
    """``--only single|batched|dense|correlator``: that pair, ``--rounds`` alternating rounds (with
    ``--paired``: both at once, :func:`paired_rounds`), their ratio."""
    base, ours = GROUPS[a.only]
    b = Bench(a)
    runs: dict[str, list[float]] = {}
    per_cpu: dict[str, list[float]] = {base: [], ours: []}  # (the plain consumer's is not measured)
    load = os.getloadavg()[0]
    try:
        b.start_broker()
        contenders, made = contenders_of(b, {base, ours})
        if a.paired:
            paired_rounds(contenders, (base, ours), a.rounds, runs, per_cpu)
        else:
            rounds(contenders, a.rounds, 0, runs, per_cpu)
    finally:
        b.close()
        shutil.rmtree(b.tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"{ours} / {base}: {med[ours]:,.0f} / {med[base]:,.0f} events/s = {med[ours] / med[base]:.2f} x "
          f"(medians of {a.rounds}; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{os.cpu_count()} CPUs)")
    if per_cpu[base] and per_cpu[ours]:  # both workers: what a shared machine disturbs less
        cpu = {k: statistics.median(v) for k, v in per_cpu.items()}
        print(f"per CPU-second of the whole process: {cpu[ours]:,.0f} / {cpu[base]:,.0f} events = "
              f"{cpu[ours] / cpu[base]:.2f} x")
        if a.paired and len(per_cpu[base]) == len(per_cpu[ours]):
            each = [o / b for o, b in zip(per_cpu[ours], per_cpu[base])]
            print(f"per CPU-second, median of the {len(each)} rounds' ratios: {statistics.median(each):.3f} x "
                  f"(min {min(each):.3f}, max {max(each):.3f})")
    for name, sc in scrape_summary(b.scrapes).items():
        print(f"{name}: /metrics and /healthz during the load: p99 {sc['p99'] * 1000:.0f} ms, "
              f"max {sc['max'] * 1000:.0f} ms ({sc['n']} answers)")
    for line in apart_summary(b.apart.get(ours, []), per_cpu[base]):
        print(line)
    return 0


def apart_summary(runs: list[dict], base_per_cpu: list[float]) -> list[str]:
    """Lines on the runs whose correlator ran apart: its CPU seconds, what it routed, and the
    ratio per CPU-second with its CPU counted as the worker's (round by round, against the base).

    >>> for line in apart_summary([{"events": 1000.0, "worker_cpu_s": 1.0, "correlator_cpu_s": 0.25,
    ...                              "routed_alerts": 12.0}], [1100.0]):
    ...     print(line)
    round 1: the worker 1.00 CPU-s, lookout correlator 0.25 CPU-s (12 alerts routed) for 1,000 events
    per CPU-second of the worker and lookout correlator together: 800 events = 0.727 x the base (median of 1)
    """
    lines, ratios = [], []
    for r, run in enumerate(runs):
        lines.append(f"round {r + 1}: the worker {run['worker_cpu_s']:.2f} CPU-s, lookout correlator "
                     f"{run['correlator_cpu_s']:.2f} CPU-s ({run['routed_alerts'] or 0:,.0f} alerts routed) "
                     f"for {run['events']:,.0f} events")
        both = run["events"] / (run["worker_cpu_s"] + run["correlator_cpu_s"])
        if r < len(base_per_cpu):
            ratios.append(both / base_per_cpu[r])
    if runs and ratios:
        both = statistics.median(run["events"] / (run["worker_cpu_s"] + run["correlator_cpu_s"]) for run in runs)
        lines.append(f"per CPU-second of the worker and lookout correlator together: {both:,.0f} events = "
                     f"{statistics.median(ratios):.3f} x the base (median of {len(ratios)})")
    return lines


def latency_only(a: argparse.Namespace) -> int:
    """``--only latency``: ``--rounds`` latency runs, each with a fresh worker, at ``--latency-rate``
    (default: half of one single-event worker round, as the full run does); how many met p99."""
    b = Bench(a)
    p99s: list[float] = []
    try:
        b.start_broker()
        rate = a.latency_rate
        if not rate:
            contenders, _ = contenders_of(b, {"worker_single"})
            rate = contenders["worker_single"]()[0] / 2
        for r in range(a.rounds):
            load = os.getloadavg()[0]
            p50, p99, probes = b.latency(rate)
            p99s.append(p99)
            print(f"  round {r + 1} latency at {rate:,.0f} events/s: p50 {p50:.3f} s, p99 {p99:.3f} s "
                  f"({probes} probes; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after)", flush=True)
    finally:
        b.close()
        shutil.rmtree(b.tmp, ignore_errors=True)
    met = sum(p <= TARGETS["latency_p99_s"] for p in p99s)
    print(f"p99 <= {TARGETS['latency_p99_s']} s in {met} of {len(p99s)} runs (max {max(p99s):.3f} s)")
    return 0


def replay_only(a: argparse.Namespace) -> int:
    """``--only replay``: the replay round, ``--rounds`` times over one file, with the machine's load."""
    b = Bench(a)
    try:
        b.replay_file()
        for r in range(a.rounds):
            load = os.getloadavg()[0]
            eps = b.replay()
            print(f"  round {r + 1} replay {a.replay_events:,} events: {eps:,.0f} events/s (whole process; "
                  f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs)",
                  flush=True)
    finally:
        b.close()
        shutil.rmtree(b.tmp, ignore_errors=True)
    return 0


def table(r: dict) -> str:
    def rng(k: str) -> str:
        v = r["runs"][k]
        if len(v) < 3:
            return f"{min(v):,.0f} – {max(v):,.0f}" if len(v) > 1 else f"{v[0]:,.0f}"
        return f"{statistics.median(v):,.0f} ({min(v):,.0f} – {max(v):,.0f})"

    ok = lambda b: "met" if b else "MISSED"  # noqa: E731
    single_ratio = r["worker_single_eps"] / r["naive_noop_eps"]
    batched_ratio = r["worker_batched_eps"] / r["ceiling_eps"]
    m = r["machine"]
    rows = [
        "| measure | result | target |",
        "|---|---|---|",
        f"| plain aiokafka + `json.loads` (ceiling), events/s | {rng('ceiling')} | – |",
        f"| naive Faust agent, no model, events/s | {rng('naive_noop')} | – |",
        f"| naive Faust agent + 5 River `GaussianScorer`s per customer, events/s | {rng('naive_gauss')} | – |",
        f"| Lookout worker, single events, events/s | {rng('worker_single')} ({single_ratio:.2f} × no-op) | "
        f"≥ 0.9 × no-op: {ok(single_ratio >= TARGETS['single_vs_noop'])} |",
        f"| Lookout worker, envelopes of {r['batch']}, events/s | {rng('worker_batched')} ({batched_ratio:.2f} × "
        f"ceiling) | ≥ 0.5 × ceiling: {ok(batched_ratio >= TARGETS['batched_vs_ceiling'])} |",
    ]
    if "worker_dense_eps" in r:
        dense_ratio = r["worker_dense_eps"] / r["ceiling_dense_eps"]
        d = r["dense"]
        rows += [
            f"| incident-dense fleet (evaluation density, warm; {d['python_share']:.1%} of events reach Python): "
            f"ceiling, events/s | {rng('ceiling_dense')} | – |",
            f"| Lookout worker, envelopes of {r['batch']}, incident-dense fleet, events/s | {rng('worker_dense')} "
            f"({dense_ratio:.2f} × its ceiling) | ≥ 0.5 × ceiling: {ok(dense_ratio >= TARGETS['batched_vs_ceiling'])} |",
        ]
    rows.append(
        f"| produce-to-output p50 / p99 at {r['latency_rate_eps']:,.0f} events/s | {r['latency_p50_s']:.3f} s / "
        f"{r['latency_p99_s']:.3f} s | p99 ≤ 0.5 s: {ok(r['latency_p99_s'] <= TARGETS['latency_p99_s'])} |")
    for name, what in (("worker_single", "single events"), ("worker_batched", "envelopes"),
                       ("worker_dense", "envelopes, incident-dense")):
        sc = (r.get("scrape_seconds") or {}).get(name)
        if sc:
            rows.append(f"| `/metrics` and `/healthz` answers during the worker's loads ({what}): p99 / max "
                        f"({sc['n']} answers) | {sc['p99'] * 1000:.0f} ms / {sc['max'] * 1000:.0f} ms | "
                        f"< 100 ms: {ok(sc['max'] < TARGETS['scrape_s'])} |")
    for mm in r["memory"]:
        rows.append(
            f"| resident / serialised per customer at {mm['customers']:,} customers | "
            f"{mm['rss_bytes_per_customer'] / 1000:.1f} KB / {mm['state_bytes_per_customer'] / 1000:.1f} KB | "
            f"≤ 20 KB resident: {ok(mm['rss_bytes_per_customer'] <= TARGETS['rss_bytes_per_customer'])} |"
        )
    pc = r.get("per_cpu_second") or {}
    if "naive_noop" in pc and "worker_single" in pc:
        rows.insert(
            6,
            f"| single events per CPU-second: no-op agent / Lookout worker | {pc['naive_noop']:,.0f} / "
            f"{pc['worker_single']:,.0f} ({pc['worker_single'] / pc['naive_noop']:.2f} ×) | – |",
        )
    for kind, what in (("single", "single events"), ("batched", f"envelopes of {r['batch']}")):
        on, off_ = r.get(f"worker_{kind}_eps"), r.get(f"worker_{kind}_off_eps")
        if on and off_:
            rows.append(f"| correlator on / off, {what}, events/s | {on:,.0f} / {off_:,.0f} ({on / off_:.2f} ×) "
                        f"| within 5 %: {ok(on / off_ >= TARGETS['correlator_on_vs_off'])} |")
        on_c, off_c = pc.get(f"worker_{kind}"), pc.get(f"worker_{kind}_off")
        if on_c and off_c:
            rows.append(f"| correlator on / off, {what}, events per CPU-second | {on_c:,.0f} / {off_c:,.0f} "
                        f"({on_c / off_c:.2f} ×) | within 5 %: {ok(on_c / off_c >= TARGETS['correlator_on_vs_off'])} |")
    rows.append(
        f"| replay of {r.get('replay_events', 600_000):,}-event JSONL, whole process, events/s | "
        f"{r['replay_eps']:,.0f} | ≥ 100k/s per core: {ok(r['replay_eps'] >= TARGETS['replay_eps'])} |"
    )
    rows.append(
        f"\n{r['events']:,} events per run, {r['customers']:,} customers, {r['partitions']} partitions, "
        f"{len(r['runs']['ceiling'])} alternating rounds, {len(r['runs']['naive_noop'])} of the no-op agent and the "
        f"single-event worker (with 3 or more: median (min – max)); {m['cpus']} CPUs, load average "
        f"{m['loadavg_before'][0]} before / {m['loadavg_after'][0]} after (shared machine); "
        f"{r['seconds']:.0f} s in all."
    )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
