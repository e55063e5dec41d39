"""An upgrade across a model change on the real broker: the new worker starts warm, nothing lost.

(The second test covers a worker without any snapshot: the rebuild ends at the group's committed offset.)

How the model changes: the new worker runs with a detector config whose model section differs
(``model.level_half_life_s`` 12 h instead of 24 h), as an upgrade whose model changed does. Its
model fingerprint differs, so every record the old worker saved is refused by the state format
(one WARNING), exactly what a new Lookout version sees. No test-only switch is involved.

The old worker (default model) runs the first 75 % of five simulated days -- two incidents are
open then, their FIRING alerts sent -- and is stopped cleanly; the new one starts with
``LOOKOUT_REBUILD_FROM=7d``, rebuilds both partitions from the input topic's history, and then
gets the remaining 25 % (with more incidents). Ground truth is the replay code path with the new
model over the same messages: its alerts for the last 25 % must be on the alerts topic exactly
once (0 lost, 0 duplicate, 0 extra), the incidents open across the upgrade are resolved by the
new worker, and no event of the new worker may meet a warming model. A restart of the new
version then restores its own snapshot and rebuilds nothing.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest

from detectors.config import load_config
from detectors.engine import Engine
from streams.pipeline.processor import Processor
from streams.state.book import alert_key

from .conftest import produce, read_topic
from .test_faults import PARTITIONS, tally, wait_until, workload

pytestmark = pytest.mark.integration

NEW_MODEL_YAML = "model:\n  level_half_life_s: 43200\n"


def new_model_truth(config_path, head, tail) -> list[tuple]:
    """The new model replayed over every message: the alerts it sends for ``tail``."""
    proc = Processor(Engine(load_config(config_path)))
    proc.handle_many((None, v, "file", None, None) for _, v in head)
    return [alert_key(a) for a in proc.handle_many((None, v, "file", None, None) for _, v in tail).alerts]


def test_a_worker_upgraded_across_a_model_change_rebuilds_and_no_customer_warms_again(start_worker, tmp_path):
    messages = workload(seed=41)
    cut = int(0.75 * len(messages))
    head, tail = messages[:cut], messages[cut:]
    config = tmp_path / "new-model.yaml"
    config.write_text(NEW_MODEL_YAML)
    truth = new_model_truth(config, head, tail)
    assert truth, "the last 25 % of the simulation should alert"

    old = start_worker(LOOKOUT_PARTITIONS=PARTITIONS, LOOKOUT_SNAPSHOT_INTERVAL_S=2)
    produce(old.bootstrap, old.input_topic, head)
    old.wait_drained(PARTITIONS, timeout=180)
    old.stop()  # a clean stop writes the final snapshot: the upgrade's starting point
    before = Counter(alert_key(a) for a in read_topic(old.bootstrap, old.alerts_topic))
    statuses = {(alert_id, status) for alert_id, status, _ in before}
    open_at_upgrade = {i for i, st in statuses if st == "firing" and (i, "resolved") not in statuses}
    assert open_at_upgrade, "the upgrade should happen with incidents open"

    new = start_worker(like=old, LOOKOUT_DETECTOR_CONFIG=config, LOOKOUT_REBUILD_FROM="7d")
    t0 = time.monotonic()
    seen_rebuilding = wait_for_live(new)
    live_after_s = time.monotonic() - t0
    new.wait_drained(PARTITIONS, timeout=180)
    log = new.log_path.read_text(errors="replace")
    assert "written with other model settings" in log, new.log_tail()
    assert log.count(": rebuilt ") == PARTITIONS, new.log_tail()
    body = every_customer_known(new)
    assert body["warming"] == 0, body

    produce(new.bootstrap, new.input_topic, tail)
    new.wait_for_events(len(tail), timeout=180)
    new.wait_drained(PARTITIONS, timeout=180)
    after = Counter(alert_key(a) for a in read_topic(new.bootstrap, new.alerts_topic))
    counts = tally(truth, list((after - before).elements()))
    warming = new.metric("lookout_events_total", outcome="warming")
    polled = "503 'rebuilding' seen" if seen_rebuilding else "rebuild too fast to poll"
    print(f"\nupgrade across a model change: {counts}, warming events {warming:.0f}, "
          f"live {live_after_s:.1f} s after start ({polled})\n"
          + "\n".join(line for line in log.splitlines() if "rebuil" in line))
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0}, counts
    assert warming == 0, "a customer of the upgraded worker started cold"
    resolved = {alert_id for alert_id, status, _ in after - before if status == "resolved"}
    assert open_at_upgrade <= resolved, "an incident open across the upgrade was never resolved"

    new.stop()  # the new version restarts: its own snapshot is complete, nothing is rebuilt
    again = start_worker(like=new)
    again.wait_drained(PARTITIONS, timeout=180)
    assert "rebuilding it from" not in again.log_path.read_text(errors="replace"), again.log_tail()
    assert again.metric("lookout_state_restored_customers_total") == 24


def every_customer_known(worker, customers: int = 24) -> dict:
    """``/healthz`` once it counts every customer (its engine figures are refreshed every second)."""
    return wait_until(lambda: (lambda b: b if b.get("customers") == customers else None)(worker.healthz()[1]),
                      30, f"{customers} customers in /healthz", poll=0.2)


def wait_for_live(worker, timeout: float = 120.0) -> bool:
    """Until ``/healthz`` answers 200 with every partition; whether it was seen saying "rebuilding"."""
    seen = False

    def live():
        nonlocal seen
        try:
            status, body = worker.healthz()
        except OSError:
            return False
        if str(body.get("reason", "")).startswith("rebuilding partition"):
            assert status == 503, body
            seen = True
        return status == 200 and len(body.get("partitions", ())) == PARTITIONS

    wait_until(live, timeout, "the upgraded worker to go live", poll=0.05)
    return seen


def test_a_worker_whose_state_topic_is_gone_rebuilds_up_to_the_groups_committed_offset(start_worker):
    """No snapshot at all (here: a new state topic name, as after losing the old topic): the range
    ends at the consumer group's committed offset, and the worker comes up warm there."""
    messages = workload(seed=42)
    cut = int(0.6 * len(messages))
    old = start_worker(LOOKOUT_PARTITIONS=PARTITIONS, LOOKOUT_SNAPSHOT_INTERVAL_S=2)
    produce(old.bootstrap, old.input_topic, messages[:cut])
    old.wait_drained(PARTITIONS, timeout=180)
    old.stop()

    new = start_worker(like=old, LOOKOUT_STATE_TOPIC=f"{old.app_id}-state-new", LOOKOUT_REBUILD_FROM="36h")
    wait_for_live(new)
    new.wait_drained(PARTITIONS, timeout=180)
    log = new.log_path.read_text(errors="replace")
    assert log.count("saved state missing; rebuilding") == PARTITIONS, new.log_tail()
    body = every_customer_known(new)
    assert body["warming"] == 0, body
    produce(new.bootstrap, new.input_topic, messages[cut:])
    new.wait_for_events(len(messages) - cut, timeout=180)
    assert new.metric("lookout_events_total", outcome="warming") == 0
