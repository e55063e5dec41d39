"""The sinks wired into the worker's Faust app: one agent per configured sink on the alerts topic.

:func:`register_sinks` adds an agent per sink (concurrency 1) on the ``alerts`` topic (with the
correlator: its routed alerts and its parent incidents), plus a timer that re-sends open alerts
to Alertmanager (kept per partition in a compacted topic: :mod:`streams.sinks.open_store`),
and parks what a sink cannot deliver on the sink dead-letter topic. The sink logic itself is
plain asyncio in :mod:`streams.sinks`, testable without Faust.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import faust

from streams.kafka.security import aiokafka_kwargs
from streams.pipeline.codecs import encode_json
from streams.pipeline.metrics import WorkerMetrics
from streams.settings import Settings
from streams.sinks.alertmanager import INCIDENT_SCHEMA, AlertmanagerSink, ident
from streams.sinks.open_store import OpenStore
from streams.sinks.webhook import WebhookSink

log = logging.getLogger("lookout.sinks")

__all__ = ["register_sinks"]


def decode(value: bytes) -> dict[str, Any] | None:
    """An alert (or a parent incident record), or None for anything else on the topic."""
    try:
        alert = json.loads(value)
        if isinstance(alert, dict) and ({"alert_id", "status", "customer_id"} <= alert.keys() or (
                alert.get("schema") == INCIDENT_SCHEMA and {"parent_id", "status"} <= alert.keys())):
            return alert
    except ValueError:
        pass
    return None


def register_sinks(s: Settings, app: faust.App, metrics: WorkerMetrics, alerts_topic: Any,
                   incidents_topic: Any = None) -> list[str]:
    """Add an agent for every sink configured in settings; return their names.

    With the correlator, ``alerts_topic`` is its routed alerts (each with ``parent_id``) and
    ``incidents_topic`` its parent incidents: Alertmanager gets both (children labelled with
    their parent, which an inhibition rule mutes), the webhook the alerts that page on their
    own and one POST per parent update.
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
        _alertmanager(s, app, metrics, inputs, dead_letter)
        names.append("alertmanager")
    if s.webhook_url:
        _webhook(s, app, metrics, inputs, dead_letter)
        names.append("webhook")
    metrics.expect_dlq(s.sink_dlq_topic, names)
    return names


def _alertmanager(s: Settings, app: faust.App, metrics: WorkerMetrics, inputs: list[tuple[str, Any]],
                  dead_letter: Any) -> None:
    # open alerts per customer (and open parents), durable per source partition: they survive a
    # worker restart and follow the partitions (streams.sinks.open_store)
    store_topic = app.topic(f"{s.app_id}-alertmanager-open", partitions=s.partitions, compacting=True,
                            internal=True, key_type=bytes, value_type=bytes, key_serializer="raw",
                            value_serializer="raw")

    async def store_send(key: bytes, value: bytes | None, partition: int) -> None:
        await (await store_topic.send(key=key, value=value, partition=partition))

    store = OpenStore(store_topic.get_topic_name(), s.bootstrap, aiokafka_kwargs(s), store_send)
    auth = (s.alertmanager_user, s.alertmanager_password or "") if s.alertmanager_user else None
    am = AlertmanagerSink(s.alertmanager_url or "", store.open, grafana_url=s.grafana_url,
                          resend_every_s=s.alertmanager_resend_s, auth=auth, metrics=metrics,
                          api_url=s.api_url)
    sources = {topic.get_topic_name() for _, topic in inputs}
    loading: list[asyncio.Future] = []

    def sink_to_alertmanager(source: str):
        async def to_alertmanager(stream):
            async for event in stream.events():
                q = event.message.partition
                await store.ensure(s.partitions)
                await store.load(source, q)
                alert = decode(event.value)
                if alert is None:
                    await dead_letter(event.value.decode("utf-8", "replace"), "not a Lookout alert",
                                      "alertmanager")
                    continue
                await am.handle(alert)
                await store.persist(source, q, ident(alert)[0])
        return to_alertmanager

    for suffix, topic in inputs:
        app.agent(topic, name=f"lookout.sink.alertmanager{suffix}", concurrency=1)(
            sink_to_alertmanager(topic.get_topic_name()))

    async def load_open(tps: list[Any]) -> None:
        await store.ensure(s.partitions)
        for tp in tps:
            await store.load(tp.topic, tp.partition)

    @app.on_partitions_assigned.connect
    async def alertmanager_assigned(app, assigned, **kwargs):
        # what the previous owner still had open, re-sent from now on (read in the background:
        # a rebalance must not wait for it; the agent reads a partition before its first alert)
        mine = [tp for tp in assigned if tp.topic in sources]
        if mine:
            loading.append(asyncio.ensure_future(load_open(mine)))
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
             dead_letter: Any) -> None:
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
        app.agent(topic, name=f"lookout.sink.webhook{suffix}", concurrency=1)(to_webhook)

    @app.on_before_shutdown.connect
    async def close_webhook(app, **kwargs):
        await wh.close()
