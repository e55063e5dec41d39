"""The Faust app: topics, the detection agent, and the ``/metrics`` page. Wiring only.

Built by :func:`create_app` from a :class:`~streams.settings.Settings`; the engine, registry
and clock are injectable so tests control them. The agent is a few lines: take a batch of
raw messages, hand it to the :class:`~streams.pipeline.processor.Processor` (which calls
:mod:`detectors`), send what comes back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.config import CorrelatorConfig, load_config
from detectors.engine import Engine
from detectors.fleet import warm_up
from detectors.steering import SteeredEngine
from streams.correlation.agents import Correlation, contract_dead_letter, register_correlator
from streams.kafka.security import aiokafka_kwargs, faust_credentials
from streams.kafka.supervision import stop_on_failure
from streams.pipeline.metrics import WorkerMetrics
from streams.pipeline.processor import Processor
from streams.settings import Settings
from streams.state.book import PartitionBook
from streams.state.checkpoint import discard_legacy, load_initial_state
from streams.state.commit_cap import cap_input_commits
from streams.state.producer import StateProducer
from streams.state.reader import StateReader
from streams.state.rebuild import History, Rebuilder

from .faust_tuning import LeanMonitor, bound_producer_requests, set_fetch_max_wait
from .layout import LayoutChanged, LayoutGuard
from .outage import OutageFilter
from .runtime import DETECTION_AGENT, Health, WorkerRuntime
from .sinks import register_sinks
from .steering import register_steering

log = logging.getLogger("lookout.app")


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
    runtime: WorkerRuntime
    sinks: list[str] = field(default_factory=list)
    correlation: Correlation | None = None  # the correlator's topics and stages, when it runs


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    history: Callable[[Processor], History] | None = None,
) -> Lookout:
    """The worker: a Faust app whose agent hands batches to the runtime, with the state that follows
    partitions, the sinks, the outage watch, ``/metrics`` and ``/healthz``.

    ``history`` makes the reader of the input's history that a rebuild (``settings.rebuild_from``)
    replays, given the worker's processor to configure it like (the command passes
    :class:`streams.offline.history.PartitionHistory`)."""
    registry = registry or CollectorRegistry()
    metrics = WorkerMetrics(registry)
    # engineers' verdicts and maintenance windows apply to the customers this worker owns
    engine = SteeredEngine(engine or Engine(load_config(settings.detector_config)),
                           on_effect=lambda kind: metrics.steering_effects.labels(kind).inc())
    # compile (or load from numba's cache) the fleet engine's kernel before consuming: the first
    # batch must not wait for it while its partitions' session clock runs
    log.info("fleet engine kernel ready in %.2f s", warm_up())
    discard_legacy(Path(settings.data_dir), settings.state_topic_name)
    load_initial_state(engine, settings.initial_state)
    processor = Processor(engine, metrics, clock=clock, dlq_topic=settings.dlq_topic,
                          max_future_s=settings.max_future_s)

    app = faust_app(settings)
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    input_topic = app.topic(settings.input_topic, partitions=settings.partitions, **raw)
    alerts_topic = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
    dlq_topic = app.topic(settings.dlq_topic, partitions=1, **raw)
    state_topic = app.topic(settings.state_topic_name, partitions=settings.partitions, compacting=True, **raw)
    security = aiokafka_kwargs(settings)
    state_producer = StateProducer(settings.state_topic_name, settings.bootstrap, security)
    reader = StateReader(settings.bootstrap, security)
    runtime = WorkerRuntime(
        processor=processor, book=PartitionBook(), reader=reader,
        rebuilder=_rebuilder(settings, processor, reader, history),
        input_topic=input_topic, alerts_topic=alerts_topic, dlq_topic=dlq_topic, state_topic=state_topic,
        flush=lambda: app.producer.flush(), highwater=lambda p: _highwater(app, settings.input_topic, p),
        metrics=metrics, health=Health(stall_after_s=settings.stall_after_s),
        state_sink=state_producer, chunk_events=settings.batch_events)
    # gauges read what the runtime last saw of the engine: a scrape never waits for a batch
    metrics.bind_engine_gauges(lambda: runtime.engine_stats()[:2],
                               lambda: runtime.engine_stats().open_by_severity)
    # the partition layout (streams.worker.layout): checked at assignments, periodically and on strays
    runtime.layout = LayoutGuard(
        reader=runtime.reader, input_topic=settings.input_topic, alerts_topic=settings.alerts_topic,
        state_topic=settings.state_topic_name, group=settings.app_id, stop=runtime.stop_for_layout)
    metrics.bind_worker_gauges(lambda: runtime.healthz()[0], runtime.lag)
    lookout = Lookout(
        settings, app, processor, metrics, registry, input_topic, alerts_topic, dlq_topic, runtime
    )
    count_received = faust_monitor(app, settings, registry)
    if settings.correlator:
        corr = lookout.correlation = _correlator(lookout, engine.config.correlator, clock)
        lookout.sinks = register_sinks(settings, app, metrics, corr.routed_topic, corr.incidents_topic,
                                       fail=runtime.fail)
    else:
        lookout.sinks = register_sinks(settings, app, metrics, alerts_topic, fail=runtime.fail)
    before_batch = register_steering(settings, app, engine, metrics, dlq_topic, runtime)
    _detection_agent(app, runtime, input_topic, settings, count_received, before_batch)
    _partition_callbacks(app, runtime, state_producer, settings)
    outage_watch(app, settings)
    _pages(app, runtime, registry)
    return lookout


def faust_app(settings: Settings, app_id: str | None = None) -> faust.App:
    """The Faust app of a Lookout process (consumer group ``app_id``, default ``settings.app_id``)."""
    app = faust.App(
        app_id or settings.app_id,
        broker=settings.kafka_url,
        broker_credentials=faust_credentials(settings),
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
        # a killed member's partitions move after the session timeout (Kafka's default would be 45-60 s)
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        producer_linger=0.005,
        web_in_thread=False,
    )
    set_fetch_max_wait(app, settings.fetch_max_wait_s)
    bound_producer_requests(app, settings.producer_request_timeout_s)
    return app


def faust_monitor(app: faust.App, settings: Settings, registry: CollectorRegistry) -> Callable[[int], None]:
    """Faust's own sensor metrics, on our registry (so two apps in one process never clash); by
    default only the dashboards' series, from hooks that do not run per message (see
    :mod:`streams.worker.faust_tuning`). Returns what the agent calls with each batch's size."""
    faust_metrics = FaustMetrics.create(registry, "faust")
    monitor = (
        PrometheusMonitor(metrics=faust_metrics) if settings.faust_metrics else LeanMonitor(faust_metrics)
    )
    app.monitor = monitor
    return monitor.received if isinstance(monitor, LeanMonitor) else (lambda n: None)


def _detection_agent(app: faust.App, runtime: WorkerRuntime, input_topic: Any, settings: Settings,
                     count_received: Callable[[int], None],
                     before_batch: Callable[[], Awaitable[None]]) -> None:
    @app.agent(input_topic, name=DETECTION_AGENT, concurrency=1)
    @stop_on_failure(DETECTION_AGENT, runtime.fail)
    async def detect(stream):
        runtime.health.agent_running = True
        try:
            async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
                await before_batch()  # verdicts and windows known, a rebuild's history read ahead
                count_received(len(batch))
                await runtime.handle_batch(
                    [(e.key, e.value, e.message.topic, e.message.partition, e.message.offset) for e in batch]
                )
        finally:
            runtime.health.agent_running = False


def _partition_callbacks(app: faust.App, runtime: WorkerRuntime, state_producer: StateProducer,
                         settings: Settings) -> None:
    """State follows partitions: restored when assigned, snapshotted when revoked, periodically and
    on shutdown; input commits capped at the markers."""

    @app.on_partitions_assigned.connect
    async def assigned(app, assigned, **kwargs):
        cap_input_commits(app.consumer, settings.input_topic, runtime.book)
        await runtime.on_assigned(tp.partition for tp in assigned if tp.topic == settings.input_topic)
        state_producer.connect_soon()

    @app.on_partitions_revoked.connect
    async def revoked(app, revoked, **kwargs):
        await runtime.on_revoked(tp.partition for tp in revoked if tp.topic == settings.input_topic)

    @app.timer(settings.partition_check_s)
    async def partition_check():
        # the consumer refreshes its metadata every 5 minutes: a grown input topic is noticed here
        try:
            await runtime.layout.verify()
        except LayoutChanged:
            raise
        except Exception as exc:  # the broker is away: the outage filter says so, try again later
            log.debug("partition check failed: %s", exc)

    @app.timer(settings.snapshot_interval_s)
    async def periodic_snapshot():
        await runtime.snapshot()

    @app.on_before_shutdown.connect
    async def final_snapshot(app, **kwargs):
        try:
            await runtime.snapshot(reason="shutdown")
        finally:
            await state_producer.stop()


def outage_watch(app: faust.App, settings: Settings) -> None:
    outage = OutageFilter(settings.bootstrap)

    @app.task
    async def quiet_outages():
        outage.install()  # Faust configured logging by now

    @app.timer(1.0)
    async def outage_over():
        if outage.down_since is not None:
            outage.check_recovered(await asyncio.to_thread(outage.probe))


def _pages(app: faust.App, runtime: WorkerRuntime, registry: CollectorRegistry) -> None:
    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def health(web, request):
        ok, body = runtime.healthz()
        return web.json(body, status=200 if ok else 503)


def _rebuilder(settings: Settings, processor: Processor, reader: StateReader,
               history: Callable[[Processor], History] | None) -> Rebuilder | None:
    """The rebuilds ``settings.rebuild_from`` asks for (None: partitions without usable state start cold)."""
    duration_s = settings.rebuild_from_s
    if duration_s is None:
        return None
    if history is None:
        raise ValueError("rebuild_from is set but no history reader was given (create_app(history=...))")

    async def committed(p: int) -> int | None:
        return await reader.committed_offset(settings.app_id, settings.input_topic, p)

    return Rebuilder(history(processor), duration_s, committed)


def _correlator(lk: Lookout, config: CorrelatorConfig, clock: Callable[[], float]) -> Correlation:
    """The correlator's agents (streams.correlation), fed by the runtime after every batch."""
    settings, runtime = lk.settings, lk.runtime
    dead_letter = contract_dead_letter(lk.dlq_topic, lk.metrics.dlq, settings.dlq_topic, clock)
    corr = register_correlator(settings, lk.app, config, registry=lk.registry, reader=runtime.reader,
                               client_kwargs=aiokafka_kwargs(settings), caught_up=runtime.caught_up,
                               dead_letter=dead_letter, fail=runtime.fail, clock=clock,
                               stages=settings.correlator_stages == "here")
    runtime.correlation = corr.publisher
    if runtime.layout is not None:  # created with the alerts and state topics, at the first assignment
        runtime.layout.extra_topics = dict(corr.topics)
    return corr


def _highwater(app: faust.App, topic: str, partition: int) -> int | None:
    try:
        hw = app.consumer.highwater(TP(topic, partition))
    except Exception:  # consumer not started, or partition not (yet) assigned
        return None
    return hw if isinstance(hw, int) and hw >= 0 else None
