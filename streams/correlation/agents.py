"""The correlator's Faust wiring: topics, the two stage agents, their state, the 1 s tick.

Called by :func:`streams.worker.app.create_app` when ``Settings.correlator`` is on. Each stage
agent takes a batch, hands it to its stage (:mod:`streams.correlation.stages`), sends what comes
back, then writes the stage's state (with the offset it covers) to the compacted correlator
state topic and waits for the broker to acknowledge it -- before Faust may commit the batch.
A restart (or another worker taking the partition) reads that state back before the first
message and skips what it covers: nothing lost, and what is sent twice is the same (ids are
deterministic), which the sinks' idempotency absorbs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import faust

from detectors.config import CorrelatorConfig
from streams.pipeline.codecs import dlq_record, encode_json
from streams.settings import Settings

from .customers import CustomerTable
from .metrics import CorrelationMetrics
from .publisher import PARENTS_KEY, CorrelationPublisher
from .stages import GroupPartition, ParentsPartition, StageOutput

log = logging.getLogger("lookout.correlation")

__all__ = ["Correlation", "register_correlator"]

PARENTS_STATE_KEY = "parents"
#: how often idle sources are re-checked and live watermarks advanced
TICK_S = 1.0


def _group_key(q: int) -> str:
    return f"groups-{q}"


@dataclass
class Correlation:
    """What the worker keeps of the correlator (the sinks read ``routed_topic`` and ``incidents_topic``)."""

    table: CustomerTable
    publisher: CorrelationPublisher
    routed_topic: Any
    incidents_topic: Any
    topics: dict[str, tuple[int, bool]]  # name -> (partitions, compacted), created at start
    groups: dict[int, GroupPartition] = field(default_factory=dict)
    parents: ParentsPartition | None = None


def register_correlator(s: Settings, app: faust.App, config: CorrelatorConfig, *, registry: Any, reader: Any,
                        client_kwargs: dict[str, Any], caught_up: Callable[[int], bool],
                        dead_letter: Callable[[bytes | None, bytes | None, str, str], Any],
                        clock: Callable[[], float] = time.time) -> Correlation:
    """Add the correlator's topics, agents and timer to ``app``; return what the worker wires to it."""
    # internal: Faust creates them (when missing) before it subscribes, with these partitions
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", internal=True)
    onsets = app.topic(s.onsets_topic_name, partitions=s.partitions, **raw)
    parents = app.topic(s.parents_topic_name, partitions=1, **raw)
    incidents = app.topic(s.incidents_topic, partitions=s.partitions, **raw)  # keyed by parent_id
    routed = app.topic(s.routed_topic, partitions=s.partitions, **raw)
    state = app.topic(s.correlator_state_topic_name, partitions=1, compacting=True, **raw)
    metrics = CorrelationMetrics(registry)

    async def bad_customer(key: bytes | None, value: bytes | None, reason: str) -> None:
        await dead_letter(key, value, reason, s.customers_topic)

    table = CustomerTable(s.customers_topic, s.bootstrap, client_kwargs, on_bad=bad_customer)
    publisher = CorrelationPublisher(onsets_topic=onsets, parents_topic=parents,
                                     onset_partitions=s.partitions, catalogue=table.catalogue, config=config,
                                     grace_s=s.correlator_grace_s, clock=clock)
    topics = {s.customers_topic: (s.partitions, True), s.onsets_topic_name: (s.partitions, False),
              s.parents_topic_name: (1, False), s.incidents_topic: (s.partitions, False),
              s.routed_topic: (s.partitions, False), s.correlator_state_topic_name: (1, True)}
    corr = Correlation(table, publisher, routed, incidents, topics)
    lock1, lock2 = asyncio.Lock(), asyncio.Lock()

    def size_of(group: str) -> int:
        return table.catalogue.size_of(group, config.group_by)

    async def saved() -> dict[str, Any]:
        records, _ = await reader.read_partition(s.correlator_state_topic_name, 0)
        latest: dict[str, Any] = {}
        for key, value in records:
            if key is not None:
                latest[key.decode("utf-8", "replace")] = value
        return latest

    def load(stage: Any, value: bytes | None, what: str) -> None:
        if value is None:
            return
        try:
            stage.load_state(json.loads(value))
        except ValueError as exc:
            log.warning("%s: starting afresh (%s)", what, exc)

    async def group_stage(q: int) -> GroupPartition:
        gp = corr.groups.get(q)
        if gp is None:
            gp = GroupPartition(q, config, size_of, idle_s=s.correlator_idle_s, clock=clock)
            load(gp, (await saved()).get(_group_key(q)), f"correlator stage one, partition {q}")
            corr.groups[q] = gp
        return gp

    async def parent_stage() -> ParentsPartition:
        if corr.parents is None:
            pp = ParentsPartition(config, table.catalogue, s.partitions, idle_s=s.correlator_idle_s,
                                  clock=clock)
            load(pp, (await saved()).get(PARENTS_STATE_KEY), "correlator stage two")
            corr.parents = pp
        return corr.parents

    async def park(out: StageOutput, topic: str) -> None:
        for value, reason in out.dead:
            await dead_letter(None, value, reason, topic)

    async def emit_groups(q: int, gp: GroupPartition, out: StageOutput) -> None:
        for m in out.messages:
            await parents.send(key=PARENTS_KEY, value=m, partition=0)
        await park(out, s.onsets_topic_name)
        if out.changed:
            key = _group_key(q).encode()
            await (await state.send(key=key, value=encode_json(gp.to_state()), partition=0))

    async def emit_parents(pp: ParentsPartition, out: StageOutput) -> None:
        for r in out.incidents:
            await incidents.send(key=r["parent_id"].encode(), value=encode_json(r))  # (in order per parent)
        for a in out.alerts:
            await routed.send(key=a["customer_id"].encode(), value=encode_json(a))
        await park(out, s.parents_topic_name)
        metrics.observe(out.incidents, out.alerts)
        adv = pp.advanced
        metrics.state(pp.open_parents(), pp.stage.book.held(), None if adv is None else clock() - adv)
        if out.changed:
            await (await state.send(key=PARENTS_STATE_KEY.encode(), value=encode_json(pp.to_state()),
                                    partition=0))

    @app.agent(onsets, name="lookout.correlate.groups", concurrency=1)
    async def correlate_groups(stream):
        await table.ready.wait()
        async for batch in stream.take_events(s.batch_size, within=s.batch_within_s):
            by_partition: dict[int, list[tuple[int, bytes]]] = {}
            for e in batch:
                by_partition.setdefault(e.message.partition, []).append((e.message.offset, e.value))
            async with lock1:
                for q, records in sorted(by_partition.items()):
                    gp = await group_stage(q)
                    await emit_groups(q, gp, gp.handle(records))

    @app.agent(parents, name="lookout.correlate.parents", concurrency=1)
    async def correlate_parents(stream):
        await table.ready.wait()
        async for batch in stream.take_events(s.batch_size, within=s.batch_within_s):
            async with lock2:
                pp = await parent_stage()
                await emit_parents(pp, pp.handle([(e.message.offset, e.value) for e in batch]))

    follower: list[asyncio.Task] = []

    async def follow_customers() -> None:
        counts = await reader.ensure_topics({s.customers_topic: (s.partitions, True)})
        await table.run(counts.get(s.customers_topic) or s.partitions)

    def keep_following() -> None:
        """The customers topic follower runs for the worker's life (restarted if it ever fails)."""
        if follower and not follower[0].done():
            return
        if follower and not follower[0].cancelled() and follower[0].exception() is not None:
            log.error("following %s failed, restarting: %r", s.customers_topic, follower[0].exception())
        follower[:] = [asyncio.ensure_future(follow_customers())]

    @app.timer(TICK_S)
    async def correlation_tick():
        keep_following()
        metrics.customers.set(len(table.catalogue))
        if not table.ready.is_set():
            return
        await publisher.watermarks(caught_up)
        async with lock1:
            for q, gp in list(corr.groups.items()):
                await emit_groups(q, gp, gp.tick())
        async with lock2:
            if corr.parents is not None:
                await emit_parents(corr.parents, corr.parents.tick())

    @app.on_before_shutdown.connect
    async def stop_following(app, **kwargs):
        for task in follower:
            task.cancel()

    @app.on_partitions_revoked.connect
    async def correlator_revoked(app, revoked, **kwargs):
        async with lock1:
            for tp in revoked:
                if tp.topic == s.onsets_topic_name:
                    corr.groups.pop(tp.partition, None)  # its state is in the topic (every batch)
        async with lock2:
            if any(tp.topic == s.parents_topic_name for tp in revoked):
                corr.parents = None
        for tp in revoked:
            if tp.topic == s.input_topic:
                publisher.forget(tp.partition)

    return corr


def dead_letter_record(key: bytes | None, value: bytes | None, reason: str, topic: str) -> dict[str, Any]:
    """The dead-letter record of a correlator-topic message it could not use."""
    return dlq_record(value, reason, kind="contract", key=key, source=topic, now=time.time())
