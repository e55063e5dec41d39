"""The state machinery's Kafka reads: a partition of the state or alerts topic, end offsets, topics.

No consumer group, nothing committed: a restore (:mod:`streams.state.sync`) reads partition
``p`` of the state topic to its end and the alerts partition ``p`` from the marker's alerts
offset.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


class StateReader:
    """Reads one partition of the state topic and of the alerts topic (no consumer group)."""

    def __init__(self, bootstrap: str, client_kwargs: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, timeout_s: float = 30.0):
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}
        self.clock = clock
        self.timeout_s = timeout_s

    async def ensure_topics(self, wanted: dict[str, tuple[int, bool | dict[str, str]]]) -> dict[str, int]:
        """Create missing topics (``name -> (partitions, compacted or topic configs)``); return every
        one's partition count."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_kwargs)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            for name, (n, compact) in wanted.items():
                if name in existing:
                    continue
                if isinstance(compact, dict):
                    cfg = dict(compact)
                else:
                    cfg = {"cleanup.policy": "compact"} if compact else {}
                try:
                    await admin.create_topics([NewTopic(name, n, 1, topic_configs=cfg)])
                except TopicAlreadyExistsError:
                    pass
            counts: dict[str, int] = {}
            deadline = self.clock() + self.timeout_s
            while True:
                meta = await admin.describe_topics(list(wanted))
                counts = {t["topic"]: len(t.get("partitions") or []) for t in meta if not t.get("error_code")}
                if all(counts.get(n) for n in wanted) or self.clock() > deadline:
                    return counts
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next message of ``topic``/``partition`` will get."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, **self.client_kwargs)
        await consumer.start()
        try:
            return (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()

    async def read_partition(self, topic: str, partition: int, start: int | None = None
                             ) -> tuple[list[tuple[bytes | None, bytes | None]], int]:
        """All (key, value) records of ``topic``/``partition`` from ``start`` (default: the beginning)
        up to the end offset seen when the read started; and that end offset."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_bytes=64 * 1024 * 1024,
                                    max_partition_fetch_bytes=16 * 1024 * 1024,
                                    **self.client_kwargs)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            begin = (await consumer.beginning_offsets([tp]))[tp]
            first = max(begin, start or 0)
            records: list[tuple[bytes | None, bytes | None]] = []
            if first >= end:
                return records, end
            consumer.seek(tp, first)
            deadline = self.clock() + self.timeout_s
            pos = first
            while pos < end:
                if self.clock() > deadline:
                    raise TimeoutError(f"reading {topic}[{partition}] stalled at offset {pos} of {end}")
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    if msg.offset >= end:
                        break
                    records.append((msg.key, msg.value))
                pos = await consumer.position(tp)
            return records, end
        finally:
            await consumer.stop()
