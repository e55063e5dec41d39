"""The steering wired into the worker: the topics' follower, the HTTP requests, the gauges.

:func:`register_steering` adds to the Faust app a task that reads the ``feedback`` and
``silences`` topics into the engine's :class:`~detectors.steering.Steering`
(:class:`~streams.steering.follower.SteeringFollower`; bad records go to the dead-letter topic),
the pages ``/feedback`` and ``/silences`` (:class:`~streams.steering.http.SteeringApi`), and the
gauges of what is muted right now and which verdicts stand.
"""
from __future__ import annotations

import time
from typing import Any

import faust

from detectors.feedback import VERDICTS
from detectors.steering import Steering
from streams.kafka.security import aiokafka_kwargs
from streams.pipeline.codecs import encode_json
from streams.pipeline.metrics import WorkerMetrics
from streams.settings import Settings
from streams.steering.follower import SteeringFollower
from streams.steering.http import SteeringApi
from streams.steering.records import SteeringFeed
from streams.steering.service import Topics
from streams.steering.store import KafkaStore

__all__ = ["register_steering"]

#: the agent waits at most this long for the steering topics before it processes events anyway
CATCH_UP_TIMEOUT_S = 30.0


def register_steering(s: Settings, app: faust.App, steering: Steering, metrics: WorkerMetrics,
                      dlq_topic: Any, ensure_topics: Any) -> SteeringFollower:
    """Wire the steering into ``app``; return the follower (the agent awaits ``follower.wait``)."""
    topics = Topics(s.feedback_topic, s.silences_topic)

    async def dead_letter(record: dict[str, Any]) -> None:
        key = record["key"].encode() if isinstance(record.get("key"), str) else None
        await dlq_topic.send(key=key, value=encode_json(record))
        metrics.dlq.labels(s.dlq_topic, record.get("kind") or "contract").inc()

    feed = SteeringFeed(steering, on_count=lambda kind, res: metrics.steering_records.labels(kind, res).inc())
    follower = SteeringFollower(s.bootstrap, feed, topics, client_kwargs=aiokafka_kwargs(s),
                                dead_letter=dead_letter)
    metrics.bind_steering_gauges(lambda: steering.silenced_counts(time.time()),
                                 lambda: steering.verdict_counts(time.time()), VERDICTS)

    @app.task
    async def follow_steering():
        await ensure_topics({topics.feedback: (1, True), topics.silences: (1, True)})
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
    return follower
