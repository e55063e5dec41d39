"""The correlator's stage agents without Faust or Kafka: their saved state, read back at start, and
the onsets topic's partition count they and the publisher use."""
from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from detectors.events import format_ts
from detectors.onsets import Onset
from streams.correlation.agents import PARENTS_STATE_KEY, Correlation, _Follower, _Stages
from streams.correlation.customers import CustomerTable
from streams.correlation.messages import encode_watermark
from streams.correlation.metrics import CorrelationMetrics
from streams.correlation.publisher import MARKS_EVERY_S, CorrelationPublisher
from streams.correlation.stages import GroupPartition, ParentsPartition
from streams.pipeline.codecs import encode_json
from streams.pipeline.processor import Output
from streams.settings import Settings

IV = 300
T0 = 1_800_000_000.0
S = Settings(app_id="t")
CFG = CorrelatorConfig()


class Topic:
    """A Faust topic's ``send``: records what was sent, already acknowledged."""

    def __init__(self):
        self.sent: list[tuple[bytes | None, bytes, int | None]] = []

    async def send(self, key=None, value=None, partition=None, **_):
        self.sent.append((key, value, partition))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Reader:
    """The broker as the correlator reads it: the state topic (partition 0 of
    ``S.correlator_state_topic_name``, counting whole reads) and topics' partition counts."""

    def __init__(self, records: list[tuple[bytes | None, bytes | None]] | None = None,
                 counts: dict[str, int] | None = None):
        self.records = list(records or [])
        self.counts = dict(counts or {})
        self.reads = 0

    async def read_partition(self, topic, partition, start=None):
        assert (topic, partition, start) == (S.correlator_state_topic_name, 0, None)
        self.reads += 1
        await asyncio.sleep(0)  # a real read yields: concurrent stages must not read twice
        return list(self.records), len(self.records)

    async def partition_count(self, topic):
        return self.counts.get(topic)

    async def ensure_topics(self, wanted):  # the broker did not say in time: no count
        return {}


def stages(reader: Reader, settings: Settings = S, now: list[float] | None = None) -> _Stages:
    """The stages as register_correlator wires them (the publisher starts with ``settings.partitions``)."""
    table = CustomerTable("customers", "unused:9092", catalogue=Catalogue({"a": {"plan": "pro"}}))
    onsets, parents = Topic(), Topic()
    clock = (lambda: now[0]) if now is not None else (lambda: 0.0)
    publisher = CorrelationPublisher(onsets_topic=onsets, parents_topic=parents, catalogue=table.catalogue,
                                     onset_partitions=settings.partitions, config=CFG, grace_s=5.0,
                                     clock=clock)
    corr = Correlation(table, publisher, Topic(), Topic(), {})

    async def dead_letter(*args):
        raise AssertionError(f"nothing should be dead-lettered: {args}")

    return _Stages(settings, CFG, corr, reader=reader, parents=parents, state=Topic(),
                   dead_letter=dead_letter, metrics=CorrelationMetrics(CollectorRegistry()), clock=clock)


def group_state(q: int, offset: int) -> bytes:
    """Stage one's state of onsets partition ``q`` after its message at ``offset``."""
    gp = GroupPartition(q, CFG, lambda g: 1, idle_s=60, clock=lambda: 0.0)
    gp.handle([(offset, encode_watermark("d0", T0))])
    return encode_json(gp.to_state())


def parents_state(offset: int) -> bytes:
    pp = ParentsPartition(CFG, Catalogue(), 3, idle_s=60, clock=lambda: 0.0)
    pp.handle([(offset, encode_watermark("d0", T0))])
    return encode_json(pp.to_state())


def tp(topic: str, partition: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition)


def test_the_state_partition_is_read_once_per_assignment_and_again_after_a_revocation(caplog):
    reader = Reader([(b"groups-0", group_state(0, 4)), (b"groups-1", group_state(1, 2)),
                     (b"parents", parents_state(9)), (b"groups-0", group_state(0, 7)),  # the later one wins
                     (b"groups-1", b"{not json"), (None, b"ignored"), (b"groups-2", group_state(2, 5)),
                     (b"groups-2", None)])  # a tombstone: nothing saved
    reader.counts[S.onsets_topic_name] = 6
    st = stages(reader)

    async def start():  # a worker given three onsets partitions and the parents partition, at once
        await st.assigned()
        return await asyncio.gather(*(st.group_stage(q) for q in range(3)), st.parent_stage())

    with caplog.at_level(logging.WARNING, logger="lookout.correlation"):
        g0, g1, g2, pp = asyncio.run(start())
    assert reader.reads == 1
    assert (g0.offset, g2.offset, pp.offset) == (7, -1, 9)
    # bad saved state: that stage starts afresh, with a warning naming it
    assert g1.offset == -1 and g1.stage.clock.iv is None
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("correlator stage one, partition 1: starting afresh")

    async def later():  # a stage first needed later in the same assignment: the same read
        return await st.group_stage(5)

    assert asyncio.run(later()).offset == -1 and reader.reads == 1

    # another worker owned onsets partition 0 and the parents partition meanwhile, and saved them
    reader.records += [(b"groups-0", group_state(0, 30)), (PARENTS_STATE_KEY.encode(), parents_state(40))]

    async def rebalance():
        await st.revoked([tp(S.onsets_topic_name, 0), tp(S.parents_topic_name, 0)])
        return await st.group_stage(0), await st.parent_stage(), await st.group_stage(1)

    g0, pp, g1_kept = asyncio.run(rebalance())
    assert reader.reads == 2
    assert (g0.offset, pp.offset) == (30, 40)
    assert g1_kept is g1  # not revoked: kept as it was


class Flow:
    """The topics between the publisher and the two stages: what was sent, delivered in offset order."""

    def __init__(self, st: _Stages, now: list[float]):
        self.st, self.now = st, now
        self.onsets: Topic = st.corr.publisher.onsets_topic
        self.parents: Topic = st.parents_topic
        self.delivered: dict[tuple[str, int], int] = {}  # (topic, partition) -> records delivered

    def _take(self, topic: str, sent: list, partitions: set[int] | None) -> list:
        """The records of ``topic`` not delivered yet, in ``partitions`` (default all), as Faust events."""
        by_partition: dict[int, list[bytes]] = {}
        for _, value, q in sent:
            by_partition.setdefault(q or 0, []).append(value)
        events = []
        for q, values in sorted(by_partition.items()):
            if partitions is None or q in partitions:
                start = self.delivered.get((topic, q), 0)
                events += [SimpleNamespace(message=SimpleNamespace(partition=q, offset=o), value=v)
                           for o, v in enumerate(values[start:], start)]
                self.delivered[(topic, q)] = len(values)
        return events

    async def chunk(self, k: int, input_partitions: int, **out) -> None:
        """The detectors' chunk whose events reached interval ``T0 + k * IV`` in every input partition."""
        self.now[0] += MARKS_EVERY_S
        et = {p: (T0 + k * IV, IV) for p in range(input_partitions)}
        await self.st.corr.publisher.publish(Output(event_time=et, **out))

    async def deliver(self, onsets_partitions: set[int] | None = None) -> None:
        """Stage one gets what is waiting in ``onsets_partitions`` (default all), stage two what it sent."""
        onsets = self._take("onsets", self.onsets.sent, onsets_partitions)
        if onsets:
            await self.st.groups_batch(onsets)
        batch = self._take("parents", self.parents.sent, None)
        if batch:
            await self.st.parents_batch(batch)


def alert(cid: str, at: float) -> dict:
    return {"alert_id": f"a-{cid}", "customer_id": cid, "status": "firing", "severity": "warning",
            "notification": 1, "started_at": format_ts(at), "event_ts": format_ts(at), "resolved_at": None,
            "interval_s": IV}


def test_the_correlator_uses_the_onsets_topics_own_partition_count_not_the_setting():
    """LOOKOUT_PARTITIONS raised to 6 after the input topic grew to 4 (say): the onsets topic still
    has the 2 partitions it was created with. Before, the publisher sent to partitions up to 5 (a
    real producer refuses: "Unrecognized partition", and the worker stopped) and stage two waited
    for stage-one partitions 2-5 that never report: every alert held for ever. Fewer onsets
    partitions than input partitions is fine: every onsets partition gets every input's watermark."""
    now = [0.0]
    reader = Reader(counts={S.onsets_topic_name: 2})
    st = stages(reader, Settings(app_id="t", partitions=6), now)
    flow = Flow(st, now)

    async def run():
        await st.assigned()
        await flow.chunk(0, 4, onsets=[Onset("a", T0, IV, "origin:522")], alerts=[alert("a", T0)])
        await flow.deliver()
        for k in range(1, 5):
            await flow.chunk(k, 4)
            await flow.deliver()

    asyncio.run(run())
    assert {q for *_, q in flow.onsets.sent} <= {0, 1}
    assert flow.delivered[("onsets", 0)] > 0 and flow.delivered[("onsets", 1)] > 0
    assert st.corr.parents is not None and st.corr.parents.advanced == T0 + 4 * IV
    # the alert was held for a parent that did not form, then paged on its own
    [(_, routed, _)] = st.corr.routed_topic.sent
    assert json.loads(routed)["alert_id"] == "a-a" and json.loads(routed)["parent_id"] is None


def test_when_the_onsets_topic_grows_stage_two_waits_for_its_new_partitions_too():
    now = [0.0]
    reader = Reader(counts={S.onsets_topic_name: 2})
    st = stages(reader, Settings(app_id="t", partitions=2), now)
    flow = Flow(st, now)

    async def run():
        await st.assigned()
        for k in range(3):
            await flow.chunk(k, 2)
            await flow.deliver()
        assert st.corr.parents is not None and st.corr.parents.advanced == T0 + 2 * IV
        reader.counts[S.onsets_topic_name] = 3  # grown: the rebalance it causes keeps us the parents
        await st.assigned()
        await flow.chunk(3, 2)
        assert {q for *_, q in flow.onsets.sent} == {0, 1, 2}  # the watermarks reach the new partition
        await flow.deliver({0, 1})
        # groups that now hash to partition 2 have their tests there: not closed without them
        assert st.corr.parents.advanced == T0 + 2 * IV
        await flow.deliver({2})
        assert st.corr.parents.advanced == T0 + 3 * IV

    asyncio.run(run())


def test_an_onsets_topic_that_cannot_be_counted_stops_the_first_assignment_and_is_kept_later(caplog):
    reader = Reader()
    st = stages(reader, Settings(app_id="t", partitions=6))
    with pytest.raises(RuntimeError, match="onsets topic 't-onsets' does not exist"):
        asyncio.run(st.assigned())
    reader.counts[S.onsets_topic_name] = 2
    asyncio.run(st.assigned())
    del reader.counts[S.onsets_topic_name]  # the broker did not answer at a later rebalance
    with caplog.at_level(logging.WARNING, logger="lookout.correlation"):
        asyncio.run(st.assigned())
    assert st.corr.publisher.onset_partitions == 2
    assert "still using 2" in caplog.text


def test_the_customers_topic_is_followed_on_all_of_its_partitions():
    """The catalogue is read from every partition of the customers topic, however many the
    settings say: when the broker had not given its count in time, the follower read
    ``Settings.partitions`` of them (here half the catalogue)."""
    ran: list[int] = []

    async def run(n):
        ran.append(n)

    reader = Reader(counts={S.customers_topic: 8})
    follower = _Follower(Settings(app_id="t", partitions=4), SimpleNamespace(run=run), reader)
    asyncio.run(follower._follow())
    assert ran == [8]
    reader.counts.clear()  # not known at all: fail, and keep() tries again at the next tick
    with pytest.raises(RuntimeError, match="not known yet"):
        asyncio.run(follower._follow())
    assert ran == [8]


def test_a_state_larger_than_a_record_is_written_in_parts_and_read_back_whole():
    """A replayed backlog grew stage two's state past Kafka's 1 MB record limit: the producer
    refused it and the worker stopped, on the same backlog after every restart. A state over
    ``correlator_state_chunk_bytes`` goes in parts, then a head naming them; a later write
    deletes the old parts."""
    reader = Reader()
    small = S.replace(correlator_state_chunk_bytes=64)  # stage two's state with a watermark: a few times that
    st = stages(reader, small)
    pp = asyncio.run(st.parent_stage())
    pp.handle([(11, encode_watermark("d0", T0))])
    whole = json.loads(json.dumps(pp.to_state()))

    asyncio.run(st._save(PARENTS_STATE_KEY, pp))
    sent = st.state_topic.sent
    assert len(sent) > 2 and all(v is None or len(v) <= 64 for _, v, _ in sent)
    assert sent[-1][0] == PARENTS_STATE_KEY.encode()  # the head last, after every part
    first_parts = {k for k, _, _ in sent[:-1]}

    # another worker reads it back whole
    again = stages(Reader([(k, v) for k, v, _ in sent]))
    restored = asyncio.run(again.parent_stage())
    assert restored.offset == 11 and json.loads(json.dumps(restored.to_state())) == whole

    # the next write replaces the parts and deletes the old ones
    pp.handle([(12, encode_watermark("d0", T0 + IV))])
    n = len(sent)
    asyncio.run(st._save(PARENTS_STATE_KEY, pp))
    deleted = {k for k, v, _ in sent[n:] if v is None}
    assert deleted == first_parts
    latest = stages(Reader([(k, v) for k, v, _ in sent]))
    assert asyncio.run(latest.parent_stage()).offset == 12


def test_a_state_whose_parts_are_missing_starts_afresh_with_a_warning(caplog):
    st = stages(Reader(), S.replace(correlator_state_chunk_bytes=64))
    pp = asyncio.run(st.parent_stage())
    pp.handle([(11, encode_watermark("d0", T0))])
    asyncio.run(st._save(PARENTS_STATE_KEY, pp))
    head_only = [(k, v) for k, v, _ in st.state_topic.sent if k == PARENTS_STATE_KEY.encode()]
    with caplog.at_level(logging.WARNING, logger="lookout.correlation"):
        fresh = asyncio.run(stages(Reader(head_only)).parent_stage())
    assert fresh.offset == -1
    assert any("starting afresh" in r.getMessage() and "parts" in r.getMessage() for r in caplog.records)


def test_the_watermark_lag_grows_while_stage_two_stands_still():
    """The lag is read when scraped: a stage two that stopped closing intervals (in CI, one waiting
    for ever on its producer) shows a lag that grows, not the value of its last batch."""
    now = [T0 + 10 * IV]
    reader = Reader(counts={S.onsets_topic_name: 2})
    st = stages(reader, Settings(app_id="t", partitions=2), now)
    flow = Flow(st, now)

    def lag() -> float:
        return next(s.value for m in st.metrics.watermark_lag.collect() for s in m.samples)

    assert lag() == 0.0  # no stage two on this worker yet

    async def run():
        await st.assigned()
        for k in range(0, 4):
            await flow.chunk(k, 2)
            await flow.deliver()

    asyncio.run(run())
    closed = st.corr.parents.advanced
    assert closed is not None
    first = lag()
    assert first == pytest.approx(now[0] - closed)
    now[0] += 600.0  # ten minutes without a batch or a tick
    assert lag() == pytest.approx(first + 600.0)
