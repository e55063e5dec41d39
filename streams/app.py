"""The Faust app: topics, the detection agent, and the ``/metrics`` page. Wiring only.

Built by :func:`create_app` from a :class:`~streams.settings.Settings`; the engine, registry
and clock are injectable so tests control them. The agent is a few lines: take a batch of
raw messages, hand it to the :class:`~streams.processor.Processor` (which calls
:mod:`detectors`), send what comes back.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.config import load_config
from detectors.engine import Engine

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from .checkpoint import FILENAME as CHECKPOINT_FILE, Checkpoint, restore as restore_state
from .codecs import encode_json
from .metrics import WorkerMetrics
from .processor import Output, Processor
from .settings import Settings
from .sinks import register_sinks

log = logging.getLogger("lookout.worker")


@dataclass
class Lookout:
    """Everything a running worker is made of (handy for tests and sinks)."""

    settings: Settings
    app: faust.App
    processor: Processor
    metrics: WorkerMetrics
    registry: CollectorRegistry
    input_topic: Any
    alerts_topic: Any
    dlq_topic: Any
    sinks: list[str] = field(default_factory=list)

    async def publish(self, out: Output) -> None:
        """Send a batch's alerts and dead letters (at-least-once; alert ids make resends harmless)."""
        for a in out.alerts:
            await self.alerts_topic.send(key=a["customer_id"].encode(), value=encode_json(a))
        for d in out.dlq:
            key = d["key"].encode() if isinstance(d.get("key"), str) else None
            await self.dlq_topic.send(key=key, value=encode_json(d))


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> Lookout:
    registry = registry or CollectorRegistry()
    engine = engine or Engine(load_config(settings.detector_config))
    checkpoint = Checkpoint(Path(settings.data_dir) / CHECKPOINT_FILE)
    restore_state(engine, checkpoint, settings.initial_state)
    metrics = WorkerMetrics(registry)
    processor = Processor(engine, metrics, clock=clock, dlq_topic=settings.dlq_topic)
    metrics.bind_engine_gauges(engine.series_counts, processor.open_by_severity)

    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        datadir=str(settings.data_dir),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        processing_guarantee="at_least_once",
        broker_commit_every=1000,
        broker_commit_interval=2.0,
        producer_linger=0.005,
        web_in_thread=False,
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    input_topic = app.topic(settings.input_topic, partitions=settings.partitions, **raw)
    alerts_topic = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
    dlq_topic = app.topic(settings.dlq_topic, partitions=1, **raw)
    lookout = Lookout(settings, app, processor, metrics, registry, input_topic, alerts_topic, dlq_topic)
    if settings.faust_metrics:
        # Faust's own sensor metrics, on our registry (so two apps in one process never clash)
        app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    lookout.sinks = register_sinks(lookout)

    @app.agent(input_topic, name="lookout.detect", concurrency=1)
    async def detect(stream):
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            out = processor.handle_many(
                (e.key, e.value, e.message.topic, e.message.partition, e.message.offset) for e in batch
            )
            await lookout.publish(out)

    @app.timer(settings.checkpoint_interval_s)
    async def save_checkpoint():
        checkpoint.save(engine)

    @app.on_before_shutdown.connect
    async def final_checkpoint(app, **kwargs):
        checkpoint.save(engine)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def health(web, request):
        tracked, warming = engine.series_counts()
        return web.json({"status": "ok", "customers": len(engine.customers), "series": tracked, "warming": warming})

    return lookout
