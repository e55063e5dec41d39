"""The correlator's stage agents without Faust or Kafka: their saved state, read back at start."""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from streams.correlation.agents import PARENTS_STATE_KEY, Correlation, _Stages
from streams.correlation.customers import CustomerTable
from streams.correlation.messages import encode_watermark
from streams.correlation.metrics import CorrelationMetrics
from streams.correlation.publisher import CorrelationPublisher
from streams.correlation.stages import GroupPartition, ParentsPartition
from streams.pipeline.codecs import encode_json
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
    """The state topic (partition 0 of ``S.correlator_state_topic_name``), counting whole reads."""

    def __init__(self, records: list[tuple[bytes | None, bytes | None]]):
        self.records = records
        self.reads = 0

    async def read_partition(self, topic, partition, start=None):
        assert (topic, partition, start) == (S.correlator_state_topic_name, 0, None)
        self.reads += 1
        await asyncio.sleep(0)  # a real read yields: concurrent stages must not read twice
        return list(self.records), len(self.records)


def stages(reader: Reader) -> _Stages:
    table = CustomerTable("customers", "unused:9092", catalogue=Catalogue({"a": {"plan": "pro"}}))
    onsets, parents = Topic(), Topic()
    publisher = CorrelationPublisher(onsets_topic=onsets, parents_topic=parents, onset_partitions=3,
                                     catalogue=table.catalogue, config=CFG, grace_s=5.0, clock=lambda: 0.0)
    corr = Correlation(table, publisher, Topic(), Topic(), {})

    async def dead_letter(*args):
        raise AssertionError(f"nothing should be dead-lettered: {args}")

    return _Stages(S, CFG, corr, reader=reader, parents=parents, state=Topic(), dead_letter=dead_letter,
                   metrics=CorrelationMetrics(CollectorRegistry()), clock=lambda: 0.0)


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
    st = stages(reader)

    async def start():  # a worker given three onsets partitions and the parents partition, at once
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
