"""``lookout demo``: broker + topics + worker + simulator + a live view of the alerts.

Everything the demo starts it also stops (on success, error or Ctrl-C). The simulated history
is produced fast (event time runs days ahead of wall time: the detectors only look at event
time), then the last day -- where the incidents are -- is paced so alerts appear live.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from detectors.evaluation import format_delay
from detectors.events import format_ts, parse_ts
from detectors.synthetic import INCIDENT_KINDS, SimConfig, Simulation, simulate
from streams.kafka.admin import create_topics, wait_for_kafka
from streams.kafka.security import kafka_python_kwargs, security_env
from streams.settings import Settings
from streams.sinks.alert_tail import SEVERITY_COLOURS, Console, format_alert

from .broker import LocalBroker
from .producer import EventProducer

#: the live, paced part of the demo starts this long before the first incident
LIVE_BEFORE_S = 6 * 3600
#: once the worker has processed every message, the demo waits this long for the last alerts
QUIET_END_S = 3.0
#: ... or fails after this long
TIMEOUT_S = 900.0


@dataclass
class DemoOptions:
    customers: int = 30
    days: float = 3.0
    interval_s: int = 300
    seed: int = 7
    kinds: tuple[str, ...] = INCIDENT_KINDS
    live_intervals_per_s: float = 8.0
    web_port: int = 6066
    bootstrap: str | None = None
    keep_broker: bool = False
    min_size: float = 2000.0


@dataclass
class DemoResult:
    produced: int = 0
    consumed: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    events_per_s: float = 0.0
    history_events: int = 0
    history_events_per_s: float = 0.0  # worker throughput while the history was sent unthrottled


def metrics_events(url: str) -> int:
    """Sum of lookout_events_total scraped from a worker (0 if it does not answer yet)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0
    return int(
        sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("lookout_events_total{"))
    )


class Demo:
    def __init__(self, settings: Settings, opts: DemoOptions, out: TextIO = sys.stdout,
                 clock: Callable[[], float] = time.monotonic, stop: threading.Event | None = None):
        self.settings = settings
        #: set by Ctrl-C (the command's handler): the watch loop stops even when the interrupt
        #: itself was swallowed inside the Kafka client
        self.stop = stop
        self.opts = opts
        self.con = Console(out)
        self.clock = clock
        self.run_id = uuid.uuid4().hex[:6]
        self.topics = {
            "input": f"demo-{self.run_id}-request-metrics",
            "alerts": f"demo-{self.run_id}-alerts",
            "dlq": f"demo-{self.run_id}-request-metrics-dlq",
        }
        self.broker = None
        self.worker: subprocess.Popen | None = None
        self.workdir = Path(settings.data_dir).parent / f"demo-{self.run_id}"
        self.security = kafka_python_kwargs(settings)  # every Kafka client of the demo and its worker

    # -- lifecycle --------------------------------------------------------------------------
    def run(self) -> DemoResult:
        try:
            bootstrap = self._broker()
            self._create_topics(bootstrap)
            self._start_worker(bootstrap)
            return self._stream(bootstrap)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.con.line("stopping worker ...")
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.worker = None
        if self.broker is not None and not self.opts.keep_broker:
            self.con.line("stopping broker ...")
            self.broker.stop()
            self.broker = None

    def _broker(self) -> str:
        if self.opts.bootstrap:
            self.con.line(f"using broker at {self.opts.bootstrap}")
            wait_for_kafka(self.opts.bootstrap, timeout=self.settings.kafka_timeout_s, security=self.security)
            return self.opts.bootstrap
        broker = LocalBroker(self.settings, progress=lambda m: self.con.line(f"  {m}"))
        if broker.status().running:
            self.con.line(
                f"reusing the local broker already started by `lookout broker start` ({broker.bootstrap})"
            )
            return broker.bootstrap
        self.con.line(
            f"starting a local Kafka {self.settings.kafka_version} broker on {broker.bootstrap} ..."
        )
        t0 = self.clock()
        broker.start(fresh=True)
        self.broker = broker
        self.con.line(f"broker up in {self.clock() - t0:.1f} s")
        return broker.bootstrap

    def _create_topics(self, bootstrap: str) -> None:
        p = self.settings.partitions
        create_topics(bootstrap, {self.topics["input"]: p, self.topics["alerts"]: p, self.topics["dlq"]: 1},
                      security=self.security)
        self.con.line("topics: " + ", ".join(self.topics.values()))

    def _start_worker(self, bootstrap: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "LOOKOUT_BOOTSTRAP": bootstrap,
            "LOOKOUT_INPUT_TOPIC": self.topics["input"],
            "LOOKOUT_ALERTS_TOPIC": self.topics["alerts"],
            "LOOKOUT_DLQ_TOPIC": self.topics["dlq"],
            "LOOKOUT_APP_ID": f"lookout-demo-{self.run_id}",
            "LOOKOUT_WEB_PORT": str(self.opts.web_port),
            "LOOKOUT_DATA_DIR": str(self.workdir / "worker"),
            **security_env(self.settings),
        })
        log = open(self.workdir / "worker.log", "wb")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.con.line(f"worker started (pid {self.worker.pid}, metrics on "
                      f"http://127.0.0.1:{self.opts.web_port}/metrics, log {self.workdir / 'worker.log'})")

    # -- the show -----------------------------------------------------------------------------
    def _stream(self, bootstrap: str) -> DemoResult:
        # not at the top: `lookout demo --help` need not load kafka-python (0.1-0.3 s)
        from kafka import KafkaConsumer

        sim, res, live_from = self._simulation()
        done = threading.Event()
        error: list[BaseException] = []
        t0 = self.clock()
        consumer = KafkaConsumer(
            self.topics["alerts"],
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=500,
            **self.security,
        )
        thread = threading.Thread(target=self._produce, args=(bootstrap, sim, res, live_from, done, error),
                                  name="demo-producer", daemon=True)
        thread.start()
        self._watch(consumer, res, done, error, t0)
        consumer.close()
        res.seconds = self.clock() - t0
        res.events_per_s = res.consumed / res.seconds if res.seconds else 0.0
        self.con.clear_status()
        self._summary(res)
        return res

    def _simulation(self) -> tuple[Simulation, DemoResult, float]:
        """The simulated traffic, the result to fill, and when the live (paced) part starts."""
        o = self.opts
        sim = simulate(SimConfig(
            customers=o.customers, duration_s=o.days * 86400, interval_s=o.interval_s, seed=o.seed,
            incidents=len(o.kinds), kinds=o.kinds, size_min=o.min_size, tiny_fraction=0.0, level_shifts=False,
        ))
        res = DemoResult(incidents=sorted(sim.incidents, key=lambda i: i.start))
        live_from = min(i.start for i in res.incidents) - LIVE_BEFORE_S if res.incidents else sim.end
        res.history_events = o.customers * max(0, int((live_from - sim.start) // o.interval_s))
        self.con.line(
            f"simulating {o.customers} customers x {o.days:g} days at {o.interval_s} s intervals "
            f"({sim.n_events:,} events); incidents injected:")
        for inc in res.incidents:
            self.con.line(
                f"    {inc.kind:<15} {inc.customer_id:<10} {format_ts(inc.start)} .. {format_ts(inc.end)}"
            )
        self.con.line(f"history up to {format_ts(live_from)} is sent at full speed (models warm up), "
                      f"then {o.live_intervals_per_s:g} intervals/s so alerts appear live.\n")
        return sim, res, live_from

    def _produce(self, bootstrap: str, sim: Simulation, res: DemoResult, live_from: float,
                 done: threading.Event, error: list[BaseException]) -> None:
        """The producer thread: history at full speed, then paced intervals, then one bad message."""
        try:
            with EventProducer(bootstrap, self.topics["input"], self.security) as producer:
                last_ts = None
                for ev in sim.events():
                    ts = ev["ts"]
                    if ts != last_ts:
                        last_ts = ts
                        if parse_ts(ts) >= live_from:
                            producer.flush()
                            time.sleep(1.0 / self.opts.live_intervals_per_s)
                    producer.send(ev)
                    res.produced += 1
                producer.send_raw(b'{"customer_id": "demo", "oops": true}', key=b"demo")
                res.produced += 1
                producer.flush()
        except BaseException as exc:  # surfaced in the main thread
            error.append(exc)
        finally:
            done.set()

    def _watch(self, consumer: Any, res: DemoResult, done: threading.Event, error: list[BaseException],
               t0: float) -> None:
        """Print alerts as they arrive and the progress line, until the worker processed everything."""
        metrics_url = f"http://127.0.0.1:{self.opts.web_port}/metrics"
        quiet_since = None
        first_seen = history_done = None
        while True:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt  # everything started is stopped by run()
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(
                    f"the worker exited with code {self.worker.returncode}; see {self.workdir / 'worker.log'}"
                )
            for msg in consumer:
                a = json.loads(msg.value)
                res.alerts.append(a)
                self.con.line(format_alert(a, self.con))
            res.consumed = metrics_events(metrics_url)
            now = self.clock()
            if res.consumed and first_seen is None:
                first_seen = (now, res.consumed)
            if history_done is None and first_seen and res.consumed >= res.history_events:
                history_done = (now, res.consumed)
                span = now - first_seen[0]
                if span > 0:
                    res.history_events_per_s = (res.consumed - first_seen[1]) / span
            elapsed = now - t0
            self.con.status(
                f"  produced {res.produced:,}  processed {res.consumed:,}  alerts {len(res.alerts)}  "
                f"[{elapsed:.0f} s]"
            )
            if error:
                raise error[0]
            if done.is_set() and res.consumed >= res.produced:
                quiet_since = quiet_since or self.clock()
                if self.clock() - quiet_since > QUIET_END_S:
                    return
            if elapsed > TIMEOUT_S:
                raise RuntimeError(f"the demo did not finish within {TIMEOUT_S // 60:g} minutes")

    def _summary(self, res: DemoResult) -> None:
        firing = [a for a in res.alerts if a["status"] == "firing" and a["notification"] == 1]
        self.con.line(f"\n{res.consumed:,} events processed in {res.seconds:.0f} s; the worker sustained "
                      f"{res.history_events_per_s:,.0f} events/s on the unthrottled history "
                      f"({res.history_events:,} events); {len(firing)} incidents opened, "
                      f"{len(res.alerts)} notifications.")
        self.con.line("injected incident                      detected by")
        hits = 0
        for inc in res.incidents:
            match = next((a for a in firing if a["customer_id"] == inc.customer_id
                          and inc.start - inc_interval(a) <= parse_ts(a["started_at"]) <= inc.end), None)
            if match:
                hits += 1
                ttd = (parse_ts(match["event_ts"]) - inc.start) / match["interval_s"]
                found = (f"{match['alert_id']} {match['signal']} ({match['severity']}), "
                         f"{format_delay(round(ttd), match['interval_s'])} after onset")
            else:
                found = self.con.paint("missed", SEVERITY_COLOURS["critical"])
            self.con.line(f"  {inc.kind:<15} {inc.customer_id:<10}          {found}")
        self.con.line(f"{hits}/{len(res.incidents)} injected incidents detected.")


def inc_interval(a: dict[str, Any]) -> float:
    return float(a.get("interval_s", 60))


