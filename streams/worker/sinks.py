"""The sinks wired into the worker's Faust app: one agent per configured sink on the alerts topic.

:func:`register_sinks` adds an agent per sink (concurrency 1) on the ``alerts`` topic (with the
correlator: its routed alerts and its parent incidents), plus a timer that re-sends open alerts
to Alertmanager (kept per partition in a compacted topic: :mod:`streams.sinks.open_store`),
and parks what a sink cannot deliver on the sink dead-letter topic. The sink logic itself is
plain asyncio in :mod:`streams.sinks`, testable without Faust.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from streams.kafka.retry import until_reachable
from streams.kafka.security import aiokafka_kwargs
from streams.kafka.supervision import AgentFailed, stop_on_failure
from streams.pipeline.codecs import encode_json, partition_of
from streams.pipeline.metrics import WorkerMetrics
from streams.settings import Settings
from streams.sinks.alertmanager import INCIDENT_SCHEMA, AlertmanagerSink, decode, ident
from streams.sinks.open_store import OpenStore
from streams.sinks.webhook import WebhookSink
from streams.state.reader import StateReader

log = logging.getLogger("lookout.sinks")

__all__ = ["register_sinks"]


def register_sinks(s: Settings, app: faust.App, metrics: WorkerMetrics, alerts_topic: Any,
                   incidents_topic: Any = None, *, fail: AgentFailed) -> list[str]:
    """Add an agent for every sink configured in settings; return their names.

    With the correlator, ``alerts_topic`` is its routed alerts (each with ``parent_id``) and
    ``incidents_topic`` its parent incidents: Alertmanager gets both (children labelled with
    their parent, which an inhibition rule mutes), the webhook the alerts that page on their
    own and one POST per parent update. A sink agent that raises stops the worker through
    ``fail`` (:mod:`streams.kafka.supervision`): Faust would restart it past the alert.
    """
    sink_dlq = app.topic(s.sink_dlq_topic, partitions=1, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    async def dead_letter(alert: Any, reason: str, sink: str) -> None:
        key = alert.get("customer_id", "").encode() if isinstance(alert, dict) else None
        record = {"reason": reason, "sink": sink, "alert": alert, "failed_at": time.time()}
        await sink_dlq.send(key=key, value=encode_json(record))
        metrics.dlq.labels(s.sink_dlq_topic, sink).inc()

    # one agent per input topic and sink: "" for the alerts (or routed alerts), ".incidents" for parents
    inputs = [("", alerts_topic)] + ([(".incidents", incidents_topic)] if incidents_topic is not None else [])
    names: list[str] = []
    if s.alertmanager_url:
        _alertmanager(s, app, metrics, inputs, dead_letter, fail)
        names.append("alertmanager")
    if s.webhook_url:
        _webhook(s, app, metrics, inputs, dead_letter, fail)
        names.append("webhook")
    metrics.expect_dlq(s.sink_dlq_topic, names)
    return names


class OpenLayout:
    """Where the Alertmanager sink's sources place their records, and its store laid out to match.

    A record of a source is in the partition its key hashes to under a partition count: the
    input topic's for ``alerts`` (an alert goes to its event's input partition), the topic's own
    for the correlator's routed alerts and incidents (keyed by customer and parent). The store
    topic gets at least as many partitions as any source has -- it was made with
    ``LOOKOUT_PARTITIONS``, which says nothing about the topics' counts after a repartition --
    and an alert read from another partition than its key's is a *stray*, written before the
    topic grew (:meth:`streams.sinks.alertmanager.AlertmanagerSink.handle_stray`).
    """

    def __init__(self, reader: StateReader, store_topic: str, placed_by: dict[str, str], fallback: int):
        self.reader = reader
        self.store_topic = store_topic
        self.placed_by = placed_by  # source -> the topic whose partition count places its records
        self.fallback = fallback
        self.placing: dict[str, int] = {}  # source -> that count
        self.store_partitions = 0
        self._lock = asyncio.Lock()  # the agents and the assignment's reads ask at the same time

    async def ensure(self, partition: int = 0) -> None:
        """Read the counts and create or grow the store (once; again for a partition beyond it)."""
        if self.placing and partition < self.store_partitions:
            return
        async with self._lock:
            if not (self.placing and partition < self.store_partitions):
                await until_reachable(lambda: self._ensure(partition), f"laying out {self.store_topic}")

    async def _ensure(self, partition: int) -> None:
        topics = set(self.placed_by) | set(self.placed_by.values())
        counts = {t: await self.reader.partition_count(t) or self.fallback for t in topics}
        wanted = max(max(counts[src] for src in self.placed_by), partition + 1)
        have = await self.reader.ensure_partitions(self.store_topic, wanted, True)
        if have < wanted:
            log.warning("open alerts topic %s had %d partitions, the topics it follows %d: grown",
                        self.store_topic, have, wanted)
        self.store_partitions = max(have, wanted)
        self.placing = {src: counts[by] for src, by in self.placed_by.items()}

    def stray(self, source: str, partition: int, key: bytes | None) -> bool:
        """Whether a record of ``source``'s ``partition`` with ``key`` was placed under an older count."""
        n = self.placing.get(source)
        if not key or n is None:
            return False
        return partition_of(key.decode("utf-8", "replace"), n) != partition


def _alertmanager(s: Settings, app: faust.App, metrics: WorkerMetrics, inputs: list[tuple[str, Any]],
                  dead_letter: Any, fail: AgentFailed) -> None:
    # open alerts per customer (and open parents), durable per source partition: they survive a
    # worker restart and follow the partitions (streams.sinks.open_store)
    store_topic = app.topic(s.alertmanager_open_topic_name, partitions=s.partitions, compacting=True,
                            internal=True, key_type=bytes, value_type=bytes, key_serializer="raw",
                            value_serializer="raw")

    async def store_send(key: bytes, value: bytes | None, partition: int) -> None:
        await (await store_topic.send(key=key, value=value, partition=partition))

    store = OpenStore(store_topic.get_topic_name(), s.bootstrap, aiokafka_kwargs(s), store_send)
    sources = {topic.get_topic_name() for _, topic in inputs}
    placed_by = {src: s.input_topic if src == s.alerts_topic else src for src in sources}
    layout = OpenLayout(StateReader(s.bootstrap, aiokafka_kwargs(s)), store.topic, placed_by, s.partitions)
    auth = (s.alertmanager_user, s.alertmanager_password or "") if s.alertmanager_user else None
    am = AlertmanagerSink(s.alertmanager_url or "", store.open, grafana_url=s.grafana_url,
                          resend_every_s=s.alertmanager_resend_s, auth=auth, metrics=metrics,
                          api_url=s.api_url)
    loading: list[asyncio.Future] = []

    def sink_to_alertmanager(source: str):
        async def to_alertmanager(stream):
            async for event in stream.events():
                q = event.message.partition
                await layout.ensure(q)
                alert = decode(event.value)
                if alert is None:
                    await dead_letter(event.value.decode("utf-8", "replace"), "not a Lookout alert",
                                      "alertmanager")
                elif layout.stray(source, q, event.key):  # its customer's open alerts live elsewhere now
                    await am.handle_stray(alert)
                else:
                    await store.load(source, q)
                    await am.handle(alert)
                    await store.persist(source, q, ident(alert)[0])
        return to_alertmanager

    for suffix, topic in inputs:
        name = f"lookout.sink.alertmanager{suffix}"
        app.agent(topic, name=name, concurrency=1)(
            stop_on_failure(name, fail)(sink_to_alertmanager(topic.get_topic_name())))

    async def load_open(claims: list[tuple[str, int, int]]) -> None:
        await layout.ensure(max(p for _, p, _ in claims))
        await store.load_assignment(claims)

    @app.on_partitions_assigned.connect
    async def alertmanager_assigned(app, assigned, **kwargs):
        # what the previous owner still had open, re-sent from now on (read in the background:
        # a rebalance must not wait for it; the agent reads a partition before its first alert)
        mine = [tp for tp in assigned if tp.topic in sources]
        if mine:
            # (claimed now: a revocation before the read reaches a partition cancels its read)
            claims = store.assignment((tp.topic, tp.partition) for tp in mine)
            loading.append(asyncio.ensure_future(load_open(claims)))
            loading[:] = [t for t in loading if not t.done()]

    @app.on_partitions_revoked.connect
    async def alertmanager_revoked(app, revoked, **kwargs):
        for tp in revoked:
            if tp.topic in sources:
                store.drop(tp.topic, tp.partition)

    @app.timer(s.alertmanager_resend_s)
    async def resend_to_alertmanager():
        await am.resend()

    @app.on_before_shutdown.connect
    async def close_alertmanager(app, **kwargs):
        await am.close()


def _webhook(s: Settings, app: faust.App, metrics: WorkerMetrics, inputs: list[tuple[str, Any]],
             dead_letter: Any, fail: AgentFailed) -> None:
    async def webhook_dead_letter(alert, reason):
        await dead_letter(alert, reason, "webhook")

    wh = WebhookSink(s.webhook_url or "", token=s.webhook_token, max_attempts=s.webhook_max_attempts,
                     max_in_flight=s.webhook_max_in_flight, on_dead_letter=webhook_dead_letter,
                     metrics=metrics, base_delay_s=s.webhook_base_delay_s, api_url=s.api_url)

    async def to_webhook(stream):
        # a batch is acked only once every alert in it is delivered or dead-lettered:
        # a crash mid-way redelivers, and the idempotency key makes that harmless
        async for batch in stream.take_events(s.webhook_max_in_flight, within=1.0):
            alerts = []
            for e in batch:
                alert = decode(e.value)
                if alert is None:
                    await dead_letter(e.value.decode("utf-8", "replace"), "not a Lookout alert", "webhook")
                elif not alert.get("parent_id") or alert.get("schema") == INCIDENT_SCHEMA:
                    alerts.append(alert)  # (a child folded under a parent is in the parent's POSTs)
            await wh.deliver_all(alerts)

    for suffix, topic in inputs:
        name = f"lookout.sink.webhook{suffix}"
        app.agent(topic, name=name, concurrency=1)(stop_on_failure(name, fail)(to_webhook))

    @app.on_before_shutdown.connect
    async def close_webhook(app, **kwargs):
        await wh.close()
