"""Integration fixtures: a real worker process against the session Kafka broker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import free_ports


@dataclass
class WorkerProcess:
    """A ``lookout worker`` subprocess with its own topics, consumer group, port and data dir."""

    bootstrap: str
    input_topic: str
    alerts_topic: str
    dlq_topic: str
    web_port: int
    data_dir: Path
    log_path: Path
    extra_env: dict = field(default_factory=dict)
    app_id: str = field(default_factory=lambda: f"lookout-test-{uuid.uuid4().hex[:8]}")
    proc: subprocess.Popen | None = None
    command: str = "worker"  # or "correlator" (lookout correlator: the correlator's stages alone)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/metrics"

    def start(self) -> "WorkerProcess":
        env = dict(os.environ)
        env.update({
            "LOOKOUT_BOOTSTRAP": self.bootstrap,
            "LOOKOUT_INPUT_TOPIC": self.input_topic,
            "LOOKOUT_ALERTS_TOPIC": self.alerts_topic,
            "LOOKOUT_DLQ_TOPIC": self.dlq_topic,
            "LOOKOUT_APP_ID": self.app_id,
            "LOOKOUT_WEB_PORT": str(self.web_port),
            "LOOKOUT_DATA_DIR": str(self.data_dir),
            "LOOKOUT_PARTITIONS": "2",
            # the correlator's shared topics, per worker group like the rest
            "LOOKOUT_CUSTOMERS_TOPIC": f"{self.app_id}-customers",
            "LOOKOUT_INCIDENTS_TOPIC": f"{self.app_id}-incidents",
            "LOOKOUT_ROUTED_TOPIC": f"{self.app_id}-routed",
            **self.extra_env,
        })
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", self.command], env=env, stdin=subprocess.DEVNULL,
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=3) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def wait_for_events(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        seen = 0.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                seen = self.metric("lookout_events_total")
            except OSError:
                seen = 0.0
            if seen >= n:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker consumed {seen:.0f} of {n} events in {timeout} s:\n{self.log_tail()}")

    def healthz(self) -> tuple[int, dict]:
        """(HTTP status, body) of /healthz."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_drained(self, partitions: int, timeout: float = 120.0) -> dict:
        """Until the worker owns ``partitions`` input partitions (all of them) and has no lag left."""
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                _, body = self.healthz()
            except OSError:
                time.sleep(0.5)
                continue
            if len(body.get("partitions", ())) == partitions and body.get("lag") == 0:
                return body
            time.sleep(0.5)
        raise AssertionError(f"worker not drained in {timeout} s ({body}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, like the OOM killer or a lost machine: no shutdown code runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def dump_stacks(self, wait_s: float = 3.0) -> str:
        """What every thread and asyncio task of a running worker is doing (mode's SIGUSR1 handler
        writes them to the worker's log): for a test that failed waiting on a worker that hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return ""
        before = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(wait_s)
        with open(self.log_path, "rb") as f:
            f.seek(before)
            return f.read().decode(errors="replace")

    def digest(self) -> str:
        """The worker's health and its own counters and gauges (not histogram buckets): the last
        lines a failed test prints, where a CI log's tail still shows them."""
        try:
            status, body = self.healthz()
            lines = [f"healthz {status} {json.dumps(body)[:600]}"]
            lines += [ln for ln in self.metrics_text().splitlines()
                      if ln.startswith("lookout_") and "_bucket{" not in ln and "_created" not in ln
                      and "customer_id=" not in ln and not ln.endswith(" 0.0")]
        except OSError as exc:
            return f"(no metrics: {exc!r})"
        return "\n".join(lines)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``), for fixtures' teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def start_worker(request, kafka_bootstrap, kafka_topics, tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``start_worker(**extra_env) -> WorkerProcess`` (stopped at teardown; if the test
    failed, each worker first prints its log's tail, and one still running also what its
    threads and tasks were doing and its metrics)."""
    started: list[WorkerProcess] = []

    def make(like: WorkerProcess | None = None, partitions: int | None = None, command: str = "worker",
             **extra_env: str) -> WorkerProcess:
        """A new worker; ``like=w`` joins ``w``'s consumer group and topics (own port and data dir).

        ``partitions``: of new input and alerts topics (default 2), and LOOKOUT_PARTITIONS.
        ``command="correlator"`` (with ``like=w``): ``lookout correlator`` for ``w``'s topics.
        """
        k = len(started)
        n = partitions or 2
        if like is None and partitions is not None:
            extra_env.setdefault("LOOKOUT_PARTITIONS", str(n))
        w = WorkerProcess(
            bootstrap=like.bootstrap if like else kafka_bootstrap,
            input_topic=like.input_topic if like else kafka_topics("request-metrics", partitions=n),
            alerts_topic=like.alerts_topic if like else kafka_topics("alerts", partitions=n),
            dlq_topic=like.dlq_topic if like else kafka_topics("request-metrics-dlq"),
            web_port=free_ports(1)[0],
            data_dir=tmp_path / f"worker{k}",
            log_path=tmp_path / f"worker{k}.log",
            extra_env={**(like.extra_env if like else {}), **{key: str(v) for key, v in extra_env.items()}},
            command=command,
        )
        if like is not None:
            w.app_id = like.app_id
        started.append(w.start())
        return w

    yield make
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for k, w in enumerate(started):
            tail = w.log_tail(60)
            dump = w.dump_stacks()  # "" for a worker that is not running
            if dump:
                print(f"\n===== worker{k} ({w.log_path}): threads and tasks at the failure =====\n{dump}")
            # last, where a CI log's tail shows it; a worker that exited has its log and no metrics
            print(f"\n===== worker{k}: its log's tail{' before that' if dump else ''} =====\n{tail}")
            if dump:
                print(f"\n===== worker{k}: metrics at the failure =====\n{w.digest()}")
    for w in started:
        w.stop()


def read_topic(bootstrap: str, topic: str, timeout_ms: int = 3000, **security) -> list[dict]:
    """All JSON values on ``topic`` (from the beginning, no consumer group).

    ``security``: kafka-python TLS/SASL arguments (streams.kafka.security.kafka_python_kwargs).
    """
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, group_id=None, consumer_timeout_ms=timeout_ms, **security)
    try:
        return [json.loads(m.value) for m in c]
    finally:
        c.close()


def produce(bootstrap: str, topic: str, items, **security) -> int:
    """Send (key, value) pairs; values that are dicts are JSON-encoded, bytes sent as they are."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=128 * 1024, **security)
    n = 0
    for key, value in items:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        p.send(topic, key=key.encode() if isinstance(key, str) else key, value=raw)
        n += 1
    p.flush()
    p.close()
    return n
