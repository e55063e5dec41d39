"""The input topic grows under load: the workers stop at once, the repartition command moves the
state, the restarted workers lose, repeat and add nothing (on the real broker, against replay)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .conftest import produce
from .test_faults import events_seen, live_alerts, replay_truth, tally, wait_until, workload

pytestmark = pytest.mark.integration

BEFORE, AFTER = 8, 12
#: the issue's target: a clear stop within this many seconds of the partitions being added
STOP_WITHIN_S = 30.0


def grow(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewPartitions

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_partitions({topic: NewPartitions(partitions)})
    finally:
        admin.close()


def _partition_count(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return len(c.partitions_for_topic(topic) or ())
    finally:
        c.close()


def repartition(worker, partitions: int) -> subprocess.CompletedProcess:
    """The command, run with the workers' settings (as an operator would: the same configuration)."""
    env = dict(os.environ, **worker.extra_env, LOOKOUT_BOOTSTRAP=worker.bootstrap,
               LOOKOUT_INPUT_TOPIC=worker.input_topic, LOOKOUT_ALERTS_TOPIC=worker.alerts_topic,
               LOOKOUT_DLQ_TOPIC=worker.dlq_topic, LOOKOUT_APP_ID=worker.app_id)
    return subprocess.run([sys.executable, "-m", "streams.cli", "topics", "repartition", "--partitions",
                           str(partitions)], env=env, capture_output=True, text=True, timeout=240)


def drained(workers, partitions: int) -> bool:
    try:
        bodies = [w.healthz()[1] for w in workers]
    except OSError:
        return False
    owned = sorted(p for b in bodies for p in b.get("partitions", ()))
    return owned == list(range(partitions)) and all(b.get("lag") == 0 for b in bodies)


@pytest.mark.parametrize("snapshot_s", [2, 3600], ids=["snapshots", "no-snapshot-before-the-growth"])
def test_growing_the_input_topic_stops_every_worker_and_repartition_loses_nothing(start_worker, snapshot_s):
    """With snapshots every 2 s, and with none before the growth (the workers stop before their
    first): then the state topic holds no marker, and the repartition must still drain each moved
    customer's events in order (it took the grown input's count as the old layout, ran the new
    partitions' events first: 25 lost and 10 extra of 47 alerts whenever the growth came first)."""
    messages = workload(seed=36, customers=24, days=5)
    truth = replay_truth(messages)
    n = len(messages)
    parts = [0, int(0.5 * n), int(0.7 * n), n]  # before the growth / after it / after the repartition
    w1 = start_worker(partitions=BEFORE, LOOKOUT_SNAPSHOT_INTERVAL_S=snapshot_s)
    w2 = start_worker(like=w1)
    produce(w1.bootstrap, w1.input_topic, messages[parts[0]:parts[1]])  # keys hash to 8 partitions
    wait_until(lambda: events_seen(w1) + events_seen(w2) >= 0.3 * n, 180, "30 % of the events")

    grow(w1.bootstrap, w1.input_topic, AFTER)
    t0 = time.monotonic()
    produce(w1.bootstrap, w1.input_topic, messages[parts[1]:parts[2]])  # a new producer: 12 partitions
    for w in (w1, w2):
        w.proc.wait(timeout=STOP_WITHIN_S + 30)
    stopped_s = time.monotonic() - t0
    print(f"\nboth workers stopped {stopped_s:.1f} s after the input topic grew")
    for w in (w1, w2):
        assert w.proc.returncode == 78, w.log_tail()
        critical = [ln for ln in w.log_path.read_text(errors="replace").splitlines() if "CRITICAL" in ln]
        assert len(critical) == 1, critical
        assert f"lookout topics repartition --partitions {AFTER}" in critical[0]
    assert stopped_s <= STOP_WITHIN_S

    done = repartition(w1, AFTER)
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    # the history topic ends with the state's count (its checkpoints go to their input partition's
    # number): grown here, or already by a worker whose start (ensure_history_topic, which follows
    # the input topic's count) came after the growth -- seen once in CI, on a loaded machine
    history = f"{w1.app_id}-state-history"
    assert _partition_count(w1.bootstrap, history) == AFTER
    assert [ln for ln in done.stdout.splitlines() if ln.startswith(history + ":")] in (
        [], [f"{history}: {BEFORE} -> {AFTER} partitions"])
    for w in (w1, w2):
        w.start()
    produce(w1.bootstrap, w1.input_topic, messages[parts[2]:])
    wait_until(lambda: drained((w1, w2), AFTER), 180, "the workers to own every partition and drain it")
    counts = tally(truth, live_alerts(w1))
    warming = sum(w.metric("lookout_events_total", outcome="warming") for w in (w1, w2))
    print(f"input topic grown {BEFORE} -> {AFTER} mid-stream: {counts}, warming after restart {warming:.0f}")
    assert counts["alerts"] > 0
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
    assert warming == 0, "a customer started cold after the repartition"
