"""Rebuilds without Kafka: a worker whose model changed starts warm and alerts like a replay of the new model.

The in-memory log of ``test_runtime`` stands in for Kafka. A worker with the default model runs
two thirds of the input, snapshots and commits; a worker with another model (another
fingerprint: its saved state is refused) takes over. With a rebuilder it must come up with
every customer's state equal to a replay of the new model over the same history, nothing
warming, and then send exactly the alerts that replay sends for the rest of the input; without
one its customers start cold (the control: the test can fail). The history is read by the
worker's own :class:`~streams.offline.history.PartitionHistory` replay loop, over the log.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import pytest
from click.testing import CliRunner

from detectors.config import DetectorConfig
from detectors.engine import Engine
from streams.offline.history import PartitionHistory
from streams.pipeline.processor import Processor
from streams.settings import Settings, SettingsError
from streams.state.book import MARKER_KEY, Marker, alert_key
from streams.state.rebuild import Rebuilder, clip_range

from .test_runtime import PARTITIONS, Log, Worker, load_input, run, sim_events

#: a real model change: another level half-life, so another model fingerprint
NEW_MODEL = DetectorConfig().with_overrides({"model.level_half_life_s": 43200.0})


class LogSource:
    """What :class:`~streams.offline.kafka_source.KafkaSource` gives the history, over the log."""

    def __init__(self, log: Log, p: int):
        self.log, self.p = log, p

    def describe(self):
        return {"offsets": {str(self.p): [0, len(self.log.data["input"][self.p])]}}

    def records(self):
        for offset, (key, value) in enumerate(self.log.data["input"][self.p]):
            yield value, key, self.p, offset


class LogHistory(PartitionHistory):
    """The worker's history replay over the in-memory log (every message is within the duration)."""

    def __init__(self, log: Log, like: Processor, gate: threading.Event | None = None):
        super().__init__("input", "in-memory", like, chunk=64)
        self.log, self.gate, self.replays = log, gate, []

    def _source(self, partition, since):
        return LogSource(self.log, partition)

    def replay(self, partition, since, stop, progress):
        self.replays.append((partition, stop))
        if self.gate is not None:
            self.gate.wait(10)
        return super().replay(partition, since, stop, progress)


def rebuilder_over(log: Log, committed: dict, made: list, gate: threading.Event | None = None):
    async def committed_offset(p):
        return committed.get(p)

    def make(processor):
        history = LogHistory(log, processor, gate)
        made.append(history)
        return Rebuilder(history, 7 * 86400.0, committed_offset)

    return make


def split_truth(log: Log, committed: dict) -> tuple[Engine, list]:
    """The new model replayed over each partition's head (below the committed offset), and the
    alerts it sends for the tails."""
    proc = Processor(Engine(NEW_MODEL))
    for p in range(PARTITIONS):
        head = log.data["input"][p][:committed[p]]
        proc.handle_many((k, v, "input", p, i) for i, (k, v) in enumerate(head))
    head_engine = Engine(NEW_MODEL)
    for cid in proc.engine.customers:
        head_engine.load_customer(cid, proc.engine.dump_customer(cid))
    tail_alerts = []
    for p in range(PARTITIONS):
        part = log.data["input"][p]
        tail = [(k, v, "input", p, i) for i, (k, v) in enumerate(part) if i >= committed[p]]
        tail_alerts += [alert_key(a) for a in proc.handle_many(tail).alerts]
    return head_engine, tail_alerts


async def old_model_runs_two_thirds(log: Log, committed: dict) -> None:
    w = Worker(log, committed)
    await w.assign(range(PARTITIONS))
    for p in range(PARTITIONS):
        await w.step(p, len(log.data["input"][p]) * 2 // 3)
    await w.rt.snapshot()
    w.commit()


def alerts_on_topic_from(log: Log, start: dict) -> list:
    """The alerts sent after ``start`` (alerts partition -> offset)."""
    return [alert_key(json.loads(v)) for p, part in log.data["alerts"].items()
            for _, v in part[start.get(p, 0):]]


def test_after_a_model_change_the_rebuilt_worker_is_warm_and_alerts_like_a_replay_of_the_new_model():
    values = sim_events(seed=8, customers=6, days=4)
    log, committed = Log(), {}
    load_input(log, values)
    run(old_model_runs_two_thirds(log, committed))
    head_engine, tail_truth = split_truth(log, committed)
    alerts_before = {p: len(part) for p, part in log.data["alerts"].items()}
    made: list = []

    async def upgrade():
        w = Worker(log, committed, config=NEW_MODEL, rebuilder=rebuilder_over(log, committed, made))
        await w.assign(range(PARTITIONS))
        # warm, and every customer exactly where the new model would be after the same history
        assert w.rt.engine.series_counts()[1] == 0
        assert set(w.rt.engine.customers) == set(head_engine.customers)
        for cid in head_engine.customers:
            assert w.rt.engine.dump_customer(cid) == head_engine.dump_customer(cid), cid
        for p in range(PARTITIONS):
            while await w.step(p, 50):
                pass
        return w

    w = run(upgrade())
    assert [p for p, _ in made[0].replays] == list(range(PARTITIONS))
    assert [stop for _, stop in made[0].replays] == [committed[p] for p in range(PARTITIONS)]
    live = alerts_on_topic_from(log, alerts_before)
    assert tail_truth, "the tail of the simulation should alert"
    assert Counter(live) == Counter(tail_truth)
    # the rebuilt state was snapshotted under the new fingerprint at the resume offset
    for p in range(PARTITIONS):
        markers = [Marker.decode(v) for k, v in log.data["state"][p] if k == MARKER_KEY]
        rebuilt = [m for m in markers if m.fingerprint == NEW_MODEL.model_fingerprint()]
        assert rebuilt and rebuilt[0].input_offset == committed[p]
    w.commit()

    async def restart():  # the new version restarts: nothing to rebuild any more
        again: list = []
        w2 = Worker(log, committed, config=NEW_MODEL, rebuilder=rebuilder_over(log, committed, again))
        await w2.assign(range(PARTITIONS))
        return again[0].replays, w2.rt.engine.series_counts()[1]

    replays, warming = run(restart())
    assert replays == [] and warming == 0


def test_a_partly_refused_partition_rebuilds_only_what_was_refused_and_keeps_the_rest():
    """Customers whose saved state loads (the same model here; a migrated format alike) keep it,
    alert lifecycle included; a refused one is rebuilt; a refused record of a customer without
    history is deleted, so the next restart finds the partition complete."""
    values = sim_events(seed=9, customers=6, days=4)
    log, committed = Log(), {}
    load_input(log, values)
    run(old_model_runs_two_thirds(log, committed))
    saved = {k.decode(): v for p in range(PARTITIONS) for k, v in log.data["state"][p] if k != MARKER_KEY}
    victim = sorted(saved)[0]
    vp = next(p for p in range(PARTITIONS) for k, _ in log.data["state"][p] if k == victim.encode())
    log.append("state", vp, victim.encode(), b"LKSR garbage")
    log.append("state", vp, b"cust-ghost", b"LKSR garbage")
    truth = Processor(Engine())
    for p in range(PARTITIONS):
        head = log.data["input"][p][:committed[p]]
        truth.handle_many((k, v, "input", p, i) for i, (k, v) in enumerate(head))
    made: list = []

    async def restart():
        w = Worker(log, committed, rebuilder=rebuilder_over(log, committed, made))
        await w.assign(range(PARTITIONS))
        return w

    w = run(restart())
    assert [p for p, _ in made[0].replays] == [vp]
    assert w.rt.engine.dump_customer(victim) == truth.engine.dump_customer(victim)
    for cid, blob in saved.items():
        if cid != victim:
            assert w.rt.engine.dump_customer(cid) == blob, cid  # kept exactly as saved
    assert (b"cust-ghost", None) in log.data["state"][vp]  # deleted from the compacted topic
    again: list = []

    async def restart_again():
        w2 = Worker(log, committed, rebuilder=rebuilder_over(log, committed, again))
        await w2.assign(range(PARTITIONS))

    run(restart_again())
    assert again[0].replays == []


def test_a_history_that_cannot_be_read_leaves_the_partition_live_and_cold_with_a_warning(caplog):
    values = sim_events(seed=8, customers=6, days=4)
    log, committed = Log(), {}
    load_input(log, values)
    run(old_model_runs_two_thirds(log, committed))

    class Unreadable(LogHistory):
        def replay(self, partition, since, stop, progress):
            raise OSError("broker went away")

    def make(processor):
        async def committed_offset(p):
            return committed.get(p)
        return Rebuilder(Unreadable(log, processor), 86400.0, committed_offset)

    async def upgrade():
        w = Worker(log, committed, config=NEW_MODEL, rebuilder=make)
        await w.assign(range(PARTITIONS))  # ready: the partitions go live rather than not at all
        return w

    w = run(upgrade())
    assert w.rt.engine.customers == {} and w.rt.rebuilder.status() is None
    assert "rebuild from history failed (OSError: broker went away)" in caplog.text


def test_without_a_rebuild_the_new_model_starts_cold():
    values = sim_events(seed=8, customers=6, days=4)
    log, committed = Log(), {}
    load_input(log, values)
    run(old_model_runs_two_thirds(log, committed))

    async def upgrade():
        w = Worker(log, committed, config=NEW_MODEL)
        await w.assign(range(PARTITIONS))
        return w

    w = run(upgrade())
    assert w.rt.engine.customers == {}  # every record refused: the control the test above is measured by
    assert w.rt.book.commit_offset(0) == committed[0]  # the old marker's offsets still hold


def test_healthz_says_which_partition_is_rebuilding_and_how_far():
    values = sim_events(seed=8, customers=6, days=4)
    log, committed = Log(), {}
    load_input(log, values)
    run(old_model_runs_two_thirds(log, committed))
    gate = threading.Event()

    async def upgrade():
        w = Worker(log, committed, config=NEW_MODEL, rebuilder=rebuilder_over(log, committed, [], gate))
        w.rt.health.agent_running = True  # the agent runs; its batches of partition 0 wait for the rebuild
        await w.rt.on_assigned([0])
        for _ in range(100):
            await asyncio.sleep(0.01)
            ok, body = w.rt.healthz()
            if not ok and body["reason"].startswith("rebuilding"):
                break
        during = w.rt.healthz()
        gate.set()
        await w.rt.wait_ready(0)
        return during, w.rt.healthz()

    (ok, body), (ok_after, after) = run(upgrade())
    assert not ok and body["reason"] == "rebuilding partition 0: 0 %"
    assert ok_after, after


@pytest.mark.parametrize("planned, stop, expected", [
    ((40, 900), 500, (40, 500)),    # from the first message in the duration to where live resumes
    ((900, 900), 500, (500, 500)),  # nothing in the duration before the resume point: no rebuild
    ((0, 900), 1200, (0, 900)),     # never past the partition's end
    ((600, 900), 500, (500, 500)),  # the duration starts after the resume point: nothing to read
])
def test_the_rebuild_reads_from_the_duration_up_to_where_the_worker_resumes(planned, stop, expected):
    assert clip_range(planned, stop) == expected


@pytest.mark.parametrize("text, seconds", [("7d", 604800.0), ("36h", 129600.0), ("1d12h", 129600.0),
                                           ("90m", 5400.0), ("2w", 1209600.0), ("3600", 3600.0)])
def test_rebuild_durations(text, seconds):
    assert Settings.from_env({"LOOKOUT_REBUILD_FROM": text}).rebuild_from_s == seconds
    assert Settings.from_env({}).rebuild_from_s is None


@pytest.mark.parametrize("bad", ["7x", "7 days", "-1d", "0h", "inf", "d"])
def test_a_bad_rebuild_duration_is_one_line_and_exit_status_2(bad):
    with pytest.raises(SettingsError, match="LOOKOUT_REBUILD_FROM"):
        Settings.from_env({"LOOKOUT_REBUILD_FROM": bad})
    from streams.cli import cli

    for args, env in ((["worker", "--rebuild-from", bad], {}), (["worker"], {"LOOKOUT_REBUILD_FROM": bad})):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "--rebuild-from" in errors[0] and "duration" in errors[0], result.output
