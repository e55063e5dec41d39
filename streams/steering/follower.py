"""The worker's reader of the ``feedback`` and ``silences`` topics.

Every worker reads both topics whole (they are small and compacted; one partition each), from
the beginning and then as they grow, into its :class:`~detectors.steering.Steering` through a
:class:`~streams.steering.records.SteeringFeed`: the worker that owns a customer applies its
records, the others hold them unused. :attr:`SteeringFollower.caught_up` is set once the records
that were on the topics when it started have been read: the worker processes no event before
that (or before ``catch_up_timeout_s``), so a restarted worker applies every verdict at the same
event as before the restart. Bad records go to ``dead_letter`` with their reason; the follower
never stops on them.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from .records import FEEDBACK, SILENCES, SteeringFeed
from .service import TOPICS, Topics

log = logging.getLogger("lookout.steering")

#: how long one fetch waits for new records (they take effect within one interval: plenty)
POLL_MS = 500


class SteeringFollower:
    """Reads ``topics`` into ``feed``; see the module docstring."""

    def __init__(self, bootstrap: str, feed: SteeringFeed, topics: Topics = TOPICS, *,
                 client_kwargs: dict[str, Any] | None = None,
                 dead_letter: Callable[[dict[str, Any]], Awaitable[Any]] | None = None):
        self.bootstrap = bootstrap
        self.feed = feed
        self.topics = topics
        self.client_kwargs = client_kwargs or {}
        self.dead_letter = dead_letter
        self.caught_up = asyncio.Event()
        self._gave_up = False
        self.records = 0

    async def run(self) -> None:
        """Follow the topics until cancelled (retrying when Kafka is unreachable)."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: the outage filter says so once; try again
                log.warning("reading the %s/%s topics failed (%s: %s); retrying in 2 s",
                            self.topics.feedback, self.topics.silences, type(exc).__name__, exc)
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=POLL_MS,
                                    **self.client_kwargs)
        await consumer.start()
        try:
            kinds = {self.topics.feedback: FEEDBACK, self.topics.silences: SILENCES}
            # partitions of topics not subscribed to: from the cluster's metadata (what topics() reads)
            cluster = await consumer._client.fetch_all_metadata()
            tps = []
            for topic in kinds:
                for p in sorted(cluster.partitions_for_topic(topic) or ()):
                    tps.append(TopicPartition(topic, p))
            if not tps:
                await asyncio.sleep(2.0)
                raise RuntimeError("the topics do not exist yet")
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                if not self.caught_up.is_set() and await self._at(consumer, ends):
                    self.caught_up.set()
                    log.info("read %d verdict and window records; %d customers steered", self.records,
                             len(self.feed.steering.customers))
                batch = await consumer.getmany(timeout_ms=POLL_MS)
                for tp, msgs in batch.items():
                    for m in msgs:
                        self.records += 1
                        dead = self.feed.apply(kinds[tp.topic], m.key, m.value, source=tp.topic,
                                               partition=tp.partition, offset=m.offset)
                        if dead is not None and self.dead_letter is not None:
                            await self.dead_letter(dead)
        finally:
            await consumer.stop()

    @staticmethod
    async def _at(consumer: Any, ends: dict) -> bool:
        """Whether every partition has been read up to ``ends``."""
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def wait(self, timeout_s: float) -> bool:
        """Wait until caught up (at most ``timeout_s``, once: later calls return at once); False if
        it took longer (logged once)."""
        if self.caught_up.is_set() or self._gave_up:
            return self.caught_up.is_set()
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            self._gave_up = True
            log.warning("the %s/%s topics were not read within %.0f s; processing events without the "
                        "verdicts and windows not read yet", self.topics.feedback, self.topics.silences,
                        timeout_s)
            return False
