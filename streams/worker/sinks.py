"""The sinks wired into the worker's Faust app: one agent per configured sink on the alerts topic.

:func:`register_sinks` adds an agent per sink (concurrency 1) on the ``alerts`` topic, plus a
timer that re-sends open alerts to Alertmanager, and parks what a sink cannot deliver on the
sink dead-letter topic. The sink logic itself is plain asyncio in :mod:`streams.sinks`,
testable without Faust.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import faust

from streams.pipeline.codecs import encode_json
from streams.pipeline.metrics import WorkerMetrics
from streams.settings import Settings
from streams.sinks.alertmanager import AlertmanagerSink
from streams.sinks.webhook import WebhookSink

log = logging.getLogger("lookout.sinks")

__all__ = ["register_sinks"]


def register_sinks(s: Settings, app: faust.App, metrics: WorkerMetrics, alerts_topic: Any) -> list[str]:
    """Add an agent for every sink configured in settings; return their names."""
    sink_dlq = app.topic(s.sink_dlq_topic, partitions=1, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    async def dead_letter(alert: Any, reason: str, sink: str) -> None:
        key = alert.get("customer_id", "").encode() if isinstance(alert, dict) else None
        record = {"reason": reason, "sink": sink, "alert": alert, "failed_at": time.time()}
        await sink_dlq.send(key=key, value=encode_json(record))
        metrics.dlq.labels(s.sink_dlq_topic, sink).inc()

    def decode(value: bytes) -> dict[str, Any] | None:
        try:
            alert = json.loads(value)
            if isinstance(alert, dict) and {"alert_id", "status", "customer_id"} <= alert.keys():
                return alert
        except ValueError:
            pass
        return None

    names: list[str] = []
    if s.alertmanager_url:
        # open alerts per customer, changelog-backed: they survive a worker restart
        table = app.Table("alertmanager-open", default=None, partitions=s.partitions,
                          key_type=str, value_type=dict)
        auth = (s.alertmanager_user, s.alertmanager_password or "") if s.alertmanager_user else None
        am = AlertmanagerSink(s.alertmanager_url, table, grafana_url=s.grafana_url,
                              resend_every_s=s.alertmanager_resend_s, auth=auth, metrics=metrics,
                              api_url=s.api_url)

        @app.agent(alerts_topic, name="lookout.sink.alertmanager", concurrency=1)
        async def to_alertmanager(stream):
            async for value in stream:
                alert = decode(value)
                if alert is None:
                    await dead_letter(value.decode("utf-8", "replace"), "not a Lookout alert", "alertmanager")
                    continue
                await am.handle(alert)

        @app.timer(s.alertmanager_resend_s)
        async def resend_to_alertmanager():
            await am.resend()

        @app.on_before_shutdown.connect
        async def close_alertmanager(app, **kwargs):
            await am.close()

        names.append("alertmanager")

    if s.webhook_url:
        async def webhook_dead_letter(alert, reason):
            await dead_letter(alert, reason, "webhook")

        wh = WebhookSink(s.webhook_url, token=s.webhook_token, max_attempts=s.webhook_max_attempts,
                         max_in_flight=s.webhook_max_in_flight, on_dead_letter=webhook_dead_letter,
                         metrics=metrics, base_delay_s=s.webhook_base_delay_s, api_url=s.api_url)

        @app.agent(alerts_topic, name="lookout.sink.webhook", concurrency=1)
        async def to_webhook(stream):
            # a batch is acked only once every alert in it is delivered or dead-lettered:
            # a crash mid-way redelivers, and the idempotency key makes that harmless
            async for batch in stream.take_events(s.webhook_max_in_flight, within=1.0):
                alerts = []
                for e in batch:
                    alert = decode(e.value)
                    if alert is None:
                        await dead_letter(
                            e.value.decode("utf-8", "replace"), "not a Lookout alert", "webhook"
                        )
                    else:
                        alerts.append(alert)
                await wh.deliver_all(alerts)

        @app.on_before_shutdown.connect
        async def close_webhook(app, **kwargs):
            await wh.close()

        names.append("webhook")
    metrics.expect_dlq(s.sink_dlq_topic, names)
    return names
