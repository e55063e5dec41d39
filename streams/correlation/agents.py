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
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import faust

from detectors.config import CorrelatorConfig
from streams.kafka.partitions import latest_by_key
from streams.kafka.retry import until_reachable
from streams.kafka.supervision import AgentFailed, stop_on_failure
from streams.pipeline.codecs import dlq_record, encode_json
from streams.settings import Settings

from .chunks import join, parts_of, split
from .customers import CustomerTable
from .messages import encode_record
from .metrics import CorrelationMetrics
from .publisher import PARENTS_KEY, CorrelationPublisher
from .stages import GroupPartition, ParentsPartition, StageOutput

log = logging.getLogger("lookout.correlation")

__all__ = ["Correlation", "StagesWatch", "register_correlator"]

PARENTS_STATE_KEY = "parents"
#: the correlator's agents: stage one (group counts) and stage two (parents)
GROUPS_AGENT, PARENTS_AGENT = "lookout.correlate.groups", "lookout.correlate.parents"
#: how often idle sources are re-checked and live watermarks advanced
TICK_S = 1.0
#: how often a worker that leaves the stages apart counts the processes that run them
WATCH_S = 15.0
#: a stage agent takes a batch at most this often (unless 500 records wait): each batch ends with
#: the stage's whole state written and acknowledged, and with the detection agent's 0.1 s a warm
#: fleet's onsets and alerts (a record per chunk) made that ten writes a second per partition
STAGE_WITHIN_S = 1.0


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
    #: wall clock minus the event time stage two closed up to (None: no stage two here, or nothing yet)
    watermark_lag: Callable[[], float | None] = lambda: None


class _Stages:
    """This worker's stage instances: created (from their saved state) on first use, their output
    sent, their state written after every batch. Faust-free apart from the topics' ``send``."""

    def __init__(self, s: Settings, config: CorrelatorConfig, corr: Correlation, *, reader: Any,
                 parents: Any, state: Any, metrics: CorrelationMetrics, dead_letter: Callable[..., Any],
                 clock: Callable[[], float]):
        self.s, self.config, self.corr, self.reader = s, config, corr, reader
        self._parts: dict[str, list[str]] = {}  # key -> the parts its latest head names
        self.parents_topic, self.state_topic, self.metrics = parents, state, metrics
        self.dead_letter, self.clock = dead_letter, clock
        self.lock1, self.lock2 = asyncio.Lock(), asyncio.Lock()  # stage one, stage two
        #: the state topic's latest value per key, read once per assignment (None: not read yet)
        self._state: dict[str, bytes | None] | None = None
        self._state_lock = asyncio.Lock()  # one read at a time; a revocation waits for it
        self.counted = False  # the onsets topic's partition count read from the broker once
        metrics.lag_from(self.watermark_lag)

    def watermark_lag(self) -> float | None:
        """Wall clock minus the event time stage two closed up to, at least 0 (None: not here, or
        nothing yet)."""
        pp = self.corr.parents
        return None if pp is None or pp.advanced is None else max(0.0, self.clock() - pp.advanced)

    def size_of(self, group: str) -> int:
        return self.corr.table.catalogue.size_of(group, self.config.group_by)

    async def _saved(self, key: str) -> bytes | None:
        """The latest value saved under ``key`` (None: nothing, or a tombstone).

        The state partition is read whole the first time a stage needs it after an assignment, and
        that read serves every other stage created until the next revocation: a worker given N
        onsets partitions and the parents partition used to read it N + 1 times. Reusing it is
        exact because, until then, a stage's key is written only by this worker, and only after
        it has created (and so loaded) that stage.
        """
        async with self._state_lock:
            if self._state is None:
                topic = self.s.correlator_state_topic_name
                records, _ = await until_reachable(lambda: self.reader.read_partition(topic, 0),
                                                   "reading the correlator's state")
                self._state = latest_by_key(records)
            self._parts[key] = parts_of(self._state.get(key), key)
            try:
                return join(key, self._state)
            except ValueError as exc:
                log.warning("correlator state %r: starting afresh (%s)", key, exc)
                return None

    @staticmethod
    def _load(stage: Any, value: bytes | None, what: str) -> None:
        if value is None:
            return
        try:
            stage.load_state(json.loads(value))
        except ValueError as exc:
            log.warning("%s: starting afresh (%s)", what, exc)

    async def group_stage(self, q: int) -> GroupPartition:
        gp = self.corr.groups.get(q)
        if gp is None:
            gp = GroupPartition(q, self.config, self.size_of, idle_s=self.s.correlator_idle_s,
                                clock=self.clock)
            self._load(gp, await self._saved(_group_key(q)), f"correlator stage one, partition {q}")
            self.corr.groups[q] = gp
        return gp

    async def parent_stage(self) -> ParentsPartition:
        if self.corr.parents is None:
            pp = ParentsPartition(self.config, self.corr.table.catalogue,
                                  self.corr.publisher.onset_partitions,  # the topic's (assigned())
                                  idle_s=self.s.correlator_idle_s, clock=self.clock)
            self._load(pp, await self._saved(PARENTS_STATE_KEY), "correlator stage two")
            self.corr.parents = pp
        return self.corr.parents

    async def _park(self, out: StageOutput, topic: str) -> None:
        for value, reason in out.dead:
            await self.dead_letter(None, value, reason, topic)

    async def _save(self, key: str, stage: Any) -> None:
        """The state, acknowledged by the broker before Faust may commit what it covers."""
        await (await self._send_state(key, stage))

    async def _send_state(self, key: str, stage: Any) -> Any:
        """Hand the state to the producer; the returned future is its acknowledgement. A state
        over ``Settings.correlator_state_chunk_bytes`` goes in parts, then its head
        (:mod:`streams.correlation.chunks`)."""
        value = encode_record(stage.to_state())
        records = split(key, value, uuid.uuid4().hex[:12], self.s.correlator_state_chunk_bytes)
        if len(records) == 1 and not self._parts.get(key):
            return await self.state_topic.send(key=key.encode(), value=value, partition=0)
        return asyncio.ensure_future(self._send_parts(key, records))

    async def _send_parts(self, key: str, records: list[tuple[str, bytes]]) -> None:
        """The parts, acknowledged; then the head, acknowledged; then the previous head's parts
        deleted (a crash before that leaves records that no head names, nothing worse)."""
        *parts, (_, head) = records
        for ack in [await self.state_topic.send(key=k.encode(), value=v, partition=0) for k, v in parts]:
            await ack
        await (await self.state_topic.send(key=key.encode(), value=head, partition=0))
        old, self._parts[key] = self._parts.get(key, []), [k for k, _ in parts]
        for ack in [await self.state_topic.send(key=k.encode(), value=None, partition=0) for k in old]:
            await ack

    async def emit_groups(self, outs: list[tuple[int, GroupPartition, StageOutput]]) -> None:
        """Send every partition's tests, then write the states and wait for them. Tests first, all
        of them: stage two closes an interval once every partition's tests are in, and while some
        were still waiting behind the state writes of others, a stage-two batch that fell between
        them wrote the rest to its state -- in a replayed backlog hundreds of intervals' tests (a
        1.3 MB state was refused by the producer, and the worker stopped)."""
        for _, _, out in outs:
            for m in out.messages:
                await self.parents_topic.send(key=PARENTS_KEY, value=m, partition=0)
            await self._park(out, self.s.onsets_topic_name)
        acks = [await self._send_state(_group_key(q), gp) for q, gp, out in outs if out.changed]
        for ack in acks:
            await ack

    async def emit_parents(self, pp: ParentsPartition, out: StageOutput) -> None:
        for r in out.incidents:  # keyed by parent: in order per parent
            await self.corr.incidents_topic.send(key=r["parent_id"].encode(), value=encode_json(r))
        for a in out.alerts:
            await self.corr.routed_topic.send(key=a["customer_id"].encode(), value=encode_json(a))
        await self._park(out, self.s.parents_topic_name)
        self.metrics.observe(out.incidents, out.alerts)
        self.metrics.state(pp.open_parents(), pp.stage.book.held())
        if out.changed:
            await self._save(PARENTS_STATE_KEY, pp)

    async def groups_batch(self, batch: list[Any]) -> None:
        by_partition: dict[int, list[tuple[int, bytes]]] = {}
        for e in batch:
            by_partition.setdefault(e.message.partition, []).append((e.message.offset, e.value))
        async with self.lock1:
            outs = []
            for q, records in sorted(by_partition.items()):
                gp = await self.group_stage(q)
                outs.append((q, gp, gp.handle(records)))
            await self.emit_groups(outs)

    async def parents_batch(self, batch: list[Any]) -> None:
        async with self.lock2:
            pp = await self.parent_stage()
            await self.emit_parents(pp, pp.handle([(e.message.offset, e.value) for e in batch]))

    async def tick(self) -> None:
        async with self.lock1:
            await self.emit_groups([(q, gp, gp.tick()) for q, gp in list(self.corr.groups.items())])
        async with self.lock2:
            if self.corr.parents is not None:
                await self.emit_parents(self.corr.parents, self.corr.parents.tick())

    async def assigned(self) -> None:
        """Take the onsets topic's partition count from the broker, before any message of an
        assignment: where the publisher sends each group and every watermark, and which stage-one
        partitions stage two waits for. ``Settings.partitions`` is only what the topic is created
        with: when it said more than the topic has (raised after the input topic grew), a send
        beyond them stopped the worker (aiokafka: "Unrecognized partition") and stage two would
        have waited for ever for stage-one partitions that do not exist, holding every alert;
        when it said fewer, part of the topic went unused, and any change of the setting moved
        groups away from their saved stage-one state. Read at every assignment: growing the topic
        triggers one, so the workers move to the new count together.
        """
        topic = self.s.onsets_topic_name
        try:
            n = await self.reader.partition_count(topic)
            if n is None:
                raise RuntimeError(f"the correlator's onsets topic {topic!r} does not exist")
        except Exception as exc:
            if not self.counted:
                raise  # nothing to go on: the worker stops (Faust crashes the app on a failed assignment)
            log.warning("could not read the partition count of %s (%s); still using %d", topic, exc,
                        self.corr.publisher.onset_partitions)
            return
        if n != self.corr.publisher.onset_partitions or not self.counted:
            log.info("correlator: onsets topic %s has %d partitions", topic, n)
        self.counted = True
        self.corr.publisher.use_partitions(n)
        async with self.lock2:
            if self.corr.parents is not None:
                self.corr.parents.wait_for(n)

    async def revoked(self, tps: Any) -> None:
        async with self.lock1:
            for tp in tps:
                if tp.topic == self.s.onsets_topic_name:
                    self.corr.groups.pop(tp.partition, None)  # its state is in the topic (every batch)
        async with self.lock2:
            if any(tp.topic == self.s.parents_topic_name for tp in tps):
                self.corr.parents = None
        for tp in tps:
            if tp.topic == self.s.input_topic:
                self.corr.publisher.forget(tp.partition)
        async with self._state_lock:  # another worker may write the state before we own it again
            self._state = None


class StagesWatch:
    """What a worker that leaves the stages apart says about the processes that run them: a
    WARNING when there are none (alerts then wait, and nothing else would say so), once, and a
    line when they are back.

    >>> w = StagesWatch("lookout-correlator")
    >>> level, line = w.observe(0)
    >>> level == logging.WARNING, line[:73]
    (True, 'no `lookout correlator` runs (consumer group lookout-correlator is empty)')
    >>> w.observe(0), w.observe(2)
    (None, (20, '`lookout correlator` runs again: 2 processes in consumer group lookout-correlator'))
    """

    def __init__(self, group: str, gauge: Any = None):
        self.group, self.gauge = group, gauge
        self.missing: bool | None = None  # None: not counted yet

    async def check(self, reader: Any) -> None:
        """Count the group's members (``reader.group_members``), set the gauge, say what changed."""
        try:
            members = await reader.group_members(self.group)
        except Exception as exc:  # the broker is away, or its coordinator not ready: next time
            log.debug("could not count the members of %s: %r", self.group, exc)
            return
        if self.gauge is not None:
            self.gauge.set(members)
        said = self.observe(members)
        if said is not None:
            log.log(*said)

    def observe(self, members: int) -> tuple[int, str] | None:
        """(log level, line) when the answer changed, else None."""
        missing = members == 0
        if missing == self.missing or (self.missing is None and not missing):
            self.missing = missing
            return None
        self.missing = missing
        if missing:
            return logging.WARNING, (f"no `lookout correlator` runs (consumer group {self.group} is empty): "
                                     "alerts wait for it and reach no sink; this worker leaves the "
                                     "correlator's stages to it (LOOKOUT_CORRELATOR_STAGES=apart)")
        return logging.INFO, (f"`lookout correlator` runs again: {members} processes in consumer group "
                              f"{self.group}")


class _Follower:
    """Keeps the customers topic followed for the worker's life (restarted if it ever fails)."""

    def __init__(self, s: Settings, table: CustomerTable, reader: Any):
        self.s, self.table, self.reader = s, table, reader
        self.task: asyncio.Task | None = None

    async def _follow(self) -> None:
        topic = self.s.customers_topic
        counts = await self.reader.ensure_topics({topic: (self.s.partitions, True)})  # created if missing
        # the topic's own count: guessing Settings.partitions when the broker had not answered read a
        # fraction of the catalogue (more partitions) or partitions that do not exist (fewer)
        n = counts.get(topic) or await self.reader.partition_count(topic)
        if not n:
            raise RuntimeError(f"the partition count of {topic!r} is not known yet")
        await self.table.run(n)

    def keep(self) -> None:
        if self.task is not None and not self.task.done():
            return
        if self.task is not None and not self.task.cancelled() and self.task.exception() is not None:
            log.error("following %s failed, restarting: %r", self.s.customers_topic, self.task.exception())
        self.task = asyncio.ensure_future(self._follow())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def register_correlator(s: Settings, app: faust.App, config: CorrelatorConfig, *, registry: Any, reader: Any,
                        client_kwargs: dict[str, Any], caught_up: Callable[[int], bool] | None,
                        dead_letter: Callable[[bytes | None, bytes | None, str, str], Any],
                        fail: AgentFailed, clock: Callable[[], float] = time.time,
                        stages: bool = True) -> Correlation:
    """Add the correlator's topics, agents and timer to ``app``; return what the worker wires to it.
    An agent that raises stops the worker through ``fail`` (:mod:`streams.kafka.supervision`).

    The two halves can run in different processes. A detection worker publishes (its runtime
    hands each batch's onsets and alerts to ``Correlation.publisher``; the 1 s tick sends the
    watermarks of its idle input partitions: ``caught_up`` says which are caught up). The stage
    agents read what all the workers published; ``stages=False`` leaves them out (they run in
    ``lookout correlator``), and ``caught_up=None`` publishes nothing (that process has no input).
    """
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
    # the onsets topic's own partition count replaces s.partitions at every assignment (_Stages.assigned)
    publisher = CorrelationPublisher(onsets_topic=onsets, parents_topic=parents,
                                     onset_partitions=s.partitions, catalogue=table.catalogue, config=config,
                                     grace_s=s.correlator_grace_s, clock=clock)
    topics = {s.customers_topic: (s.partitions, True), s.onsets_topic_name: (s.partitions, False),
              s.parents_topic_name: (1, False), s.incidents_topic: (s.partitions, False),
              s.routed_topic: (s.partitions, False), s.correlator_state_topic_name: (1, True)}
    corr = Correlation(table, publisher, routed, incidents, topics)
    staged = _Stages(s, config, corr, reader=reader, parents=parents, state=state, metrics=metrics,
                     dead_letter=dead_letter, clock=clock)
    corr.watermark_lag = staged.watermark_lag
    follower = _Follower(s, table, reader)
    if stages:
        _stage_agents(s, app, onsets, parents, table, staged, fail)
    elif caught_up is not None:
        _watch_stages(s, app, reader, metrics)

    @app.timer(TICK_S)
    async def correlation_tick():
        follower.keep()
        metrics.customers.set(len(table.catalogue))
        if table.ready.is_set():
            if caught_up is not None:
                await publisher.watermarks(caught_up)
            if stages:
                await staged.tick()

    @app.on_before_shutdown.connect
    async def stop_following(app, **kwargs):
        follower.stop()

    @app.on_partitions_assigned.connect
    async def correlator_assigned(app, assigned, **kwargs):
        await staged.assigned()

    @app.on_partitions_revoked.connect
    async def correlator_revoked(app, revoked, **kwargs):
        await staged.revoked(revoked)

    return corr


def _watch_stages(s: Settings, app: faust.App, reader: Any, metrics: CorrelationMetrics) -> None:
    """Count the processes running the stages this worker leaves to them (lookout_correlator_processes)."""
    watch = StagesWatch(s.correlator_group, metrics.processes.labels(s.correlator_group))

    @app.timer(WATCH_S)
    async def correlator_watch():
        await watch.check(reader)


def _stage_agents(s: Settings, app: faust.App, onsets: Any, parents: Any, table: CustomerTable,
                  stages: _Stages, fail: AgentFailed) -> None:
    """Stage one (group counts, one per onsets partition) and stage two (parents, one partition)."""
    for topic, name, handle in ((onsets, GROUPS_AGENT, stages.groups_batch),
                                (parents, PARENTS_AGENT, stages.parents_batch)):
        _stage_agent(s, app, topic, name, handle, table, fail)


def _stage_agent(s: Settings, app: faust.App, topic: Any, name: str, handle: Callable[[list[Any]], Any],
                 table: CustomerTable, fail: AgentFailed) -> None:
    """One stage's agent: once the catalogue is read, batches of ``topic`` to ``handle``."""

    @app.agent(topic, name=name, concurrency=1)
    @stop_on_failure(name, fail)
    async def correlate(stream):
        await table.ready.wait()
        async for batch in stream.take_events(s.batch_size, within=STAGE_WITHIN_S):
            await handle(batch)


def contract_dead_letter(dlq_topic: Any, counter: Any, dlq_name: str,
                         clock: Callable[[], float] = time.time) -> Callable[..., Any]:
    """What a correlator-topic message it cannot use becomes: ``dead_letter(key, value, reason,
    topic)`` parks it on ``dlq_topic`` with the reason (kind ``contract``) and counts it on
    ``counter`` (``lookout_dlq_messages_total``) -- in a worker and in ``lookout correlator``."""

    async def dead_letter(key: bytes | None, value: bytes | None, reason: str, topic: str) -> None:
        await dlq_topic.send(key=key, value=encode_json(
            dlq_record(value, reason, kind="contract", key=key, source=topic, now=clock())))
        counter.labels(dlq_name, "contract").inc()

    return dead_letter
