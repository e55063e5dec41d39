"""The steering wired into the worker: the topics' follower, the HTTP requests, the gauges, rebuilds.

:func:`register_steering` adds to the Faust app a task that reads the ``feedback`` and
``silences`` topics into the engine's :class:`~detectors.steering.Steering`
(:class:`~streams.steering.follower.SteeringFollower`; bad records go to the dead-letter topic),
the pages ``/feedback`` and ``/silences`` (:class:`~streams.steering.http.SteeringApi`), the
gauges of what is muted right now and which verdicts stand, and what rebuilds need: checkpoints
of every owned customer on the state history topic (:class:`~streams.state.history.HistoryWriter`)
and, when a verdict or window calls for a rebuild of a customer this worker owns, its past read
ahead off the event loop (:class:`~streams.offline.relearn.KafkaHistory`).
"""
from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import faust

from detectors.feedback import VERDICTS
from detectors.steering import SteeredEngine
from streams.kafka.security import aiokafka_kwargs, kafka_python_kwargs
from streams.offline.relearn import KafkaHistory
from streams.pipeline.codecs import encode_json
from streams.pipeline.metrics import WorkerMetrics
from streams.settings import Settings
from streams.state.history import HistoryWriter, ensure_history_topic
from streams.state.producer import StateProducer
from streams.steering.follower import SteeringFollower
from streams.steering.http import SteeringApi
from streams.steering.records import SteeringFeed
from streams.steering.service import Topics
from streams.steering.store import KafkaStore

__all__ = ["register_steering"]

#: the agent waits at most this long for the steering topics before it processes events anyway
CATCH_UP_TIMEOUT_S = 30.0
#: the first state history checkpoint is written this long after the start (restores are done by then)
FIRST_HISTORY_S = 60.0


class BeforeBatch:
    """What the agent awaits before each batch (at once, unless it has to wait): the steering
    topics read up to where they were at the start (the first batch only, at most
    :data:`CATCH_UP_TIMEOUT_S`), and a rebuild's history being read ahead. Inside the batch's
    loop, like a partition's restore, so Faust's stream is iterated from the start."""

    def __init__(self, follower: SteeringFollower, history: KafkaHistory):
        self.follower, self.history = follower, history

    async def __call__(self) -> None:
        await self.follower.wait(CATCH_UP_TIMEOUT_S)
        await self.history.settled()


def register_steering(s: Settings, app: faust.App, engine: SteeredEngine, metrics: WorkerMetrics,
                      dlq_topic: Any, runtime: Any) -> BeforeBatch:
    """Wire the steering into ``app``; return what the agent awaits before each batch."""
    topics = Topics(s.feedback_topic, s.silences_topic)
    steering = engine.steering
    history = _register_history(s, app, engine, runtime, metrics)

    def prefetch(cid: str) -> None:  # a record of this customer arrived: read ahead for a rebuild
        if cid in runtime.book.owner:
            last = engine.last_ts_of(cid)
            since = steering.rebuild_since(cid, -math.inf if last is None else last)
            if since is not None:
                history.prefetch(cid, since)

    async def dead_letter(record: dict[str, Any]) -> None:
        key = record["key"].encode() if isinstance(record.get("key"), str) else None
        await dlq_topic.send(key=key, value=encode_json(record))
        metrics.dlq.labels(s.dlq_topic, record.get("kind") or "contract").inc()

    feed = SteeringFeed(steering, on_change=prefetch,
                        on_count=lambda kind, res: metrics.steering_records.labels(kind, res).inc())
    follower = SteeringFollower(s.bootstrap, feed, topics, client_kwargs=aiokafka_kwargs(s),
                                dead_letter=dead_letter)
    metrics.bind_steering_gauges(lambda: steering.silenced_counts(time.time()),
                                 lambda: steering.verdict_counts(time.time()), VERDICTS)

    @app.task
    async def follow_steering():
        await runtime.reader.ensure_topics({topics.feedback: (1, True), topics.silences: (1, True)})
        await follower.run()

    api = SteeringApi(KafkaStore.from_settings(s), token=s.api_token, topics=topics)

    class Steer(faust.web.View):
        async def get(self, request):
            return await self._answer(request)

        async def post(self, request):
            return await self._answer(request)

        async def delete(self, request):
            return await self._answer(request)

        async def _answer(self, request):
            body = await request.read()
            status, payload = await api.handle(request.method, request.path, dict(request.headers),
                                               dict(request.query), body)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return self.json(payload, status=status, headers=headers)

    app.page("/feedback")(type("FeedbackView", (Steer,), {}))
    app.page("/silences")(type("SilencesView", (Steer,), {}))
    return BeforeBatch(follower, history)


def _register_history(s: Settings, app: faust.App, engine: SteeredEngine, runtime: Any,
                      metrics: WorkerMetrics) -> KafkaHistory:
    """Checkpoints to the state history topic every ``history_interval_s`` (the first a minute after
    the start), and the engine's :class:`~streams.offline.relearn.KafkaHistory`."""
    name = s.state_history_topic_name
    sink = StateProducer(name, s.bootstrap, aiokafka_kwargs(s))
    writer = HistoryWriter(engine, runtime.book, runtime.lock, sink, metrics)
    history = KafkaHistory(s.bootstrap, name, s.input_topic, runtime.book.owner.get, s.history_interval_s,
                           engine.engine, kafka_python_kwargs(s), s.kafka_timeout_s)
    engine.history = history

    @app.task
    async def write_history():
        await ensure_history_topic(runtime.reader, name, s.input_topic, s.partitions, s.history_retention_s)
        delay = min(FIRST_HISTORY_S, s.history_interval_s)
        while True:
            await asyncio.sleep(delay)
            await writer.write()
            delay = s.history_interval_s

    @app.on_before_shutdown.connect
    async def stop_history(app, **kwargs):
        await sink.stop()

    return history
