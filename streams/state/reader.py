"""The state machinery's Kafka reads: a partition of the state or alerts topic, end offsets, topics.

No consumer group, nothing committed: a restore (:mod:`streams.state.sync`) reads partition
``p`` of the state topic to its end and the alerts partition ``p`` from the marker's alerts
offset.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable, Iterable

from streams.kafka.partitions import Record, fetch_range, read_partition, unmanaged_consumer

__all__ = ["Record", "StateReader"]


def _led(topic: dict[str, Any]) -> bool:
    """Does every partition of an admin client's topic description have a leader in sync?

    >>> _led({"partitions": [{"partition": 0, "leader": 1, "isr": [1], "error_code": 0}]})
    True
    >>> _led({"partitions": [{"partition": 0, "leader": -1, "isr": [], "error_code": 5}]})
    False
    """
    parts = topic.get("partitions") or []
    return bool(parts) and all(
        not p.get("error_code") and p.get("leader", -1) >= 0 and p.get("isr") for p in parts
    )


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
        created = []
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
                    created.append(name)
                except TopicAlreadyExistsError:
                    pass
            counts: dict[str, int] = {}
            deadline = self.clock() + self.timeout_s
            while True:
                meta = await admin.describe_topics(list(wanted))
                counts = {t["topic"]: len(t.get("partitions") or []) for t in meta
                          if not t.get("error_code") and _led(t)}
                if all(counts.get(n) for n in wanted) or self.clock() > deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
        # a topic just created has leaders in the metadata a little before they answer: reading it
        # then makes the clients log NotLeaderForPartition ERRORs (a fresh app id's state topic),
        # while asking for end offsets retries quietly until every partition answers
        if created and all(counts.get(n) for n in created):
            await self.end_offsets([(n, p) for n in created for p in range(counts[n])])
        return counts

    async def end_offsets(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offset of every (topic, partition), retried until each leader answers or the timeout."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tps = [TopicPartition(t, p) for t, p in partitions]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, request_timeout_ms=int(self.timeout_s * 1000),
                                    **self.client_kwargs)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
            return {(tp.topic, tp.partition): ends[tp] for tp in tps}
        finally:
            await consumer.stop()

    async def committed_offset(self, group: str, topic: str, partition: int) -> int | None:
        """The offset consumer group ``group`` committed for ``topic``/``partition`` (None: none)."""
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        tp = TopicPartition(topic, partition)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_kwargs)
        await admin.start()
        try:
            found = await admin.list_consumer_group_offsets(group, partitions=[tp])
        finally:
            await admin.close()
        meta = found.get(tp)
        offset = getattr(meta, "offset", -1)
        return offset if isinstance(offset, int) and offset >= 0 else None

    async def group_members(self, group: str) -> int:
        """How many members consumer group ``group`` has now (0: none, or no such group)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                    request_timeout_ms=int(self.timeout_s * 1000), **self.client_kwargs)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        # DescribeGroupsResponse: groups = [(error_code, group_id, state, protocol_type, protocol,
        # members, ...)]
        return sum(len(g[5]) for g in response.groups if g[1] == group and not g[0])

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

    async def partition_count(self, topic: str) -> int | None:
        """How many partitions ``topic`` has now (None: it does not exist)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                    request_timeout_ms=int(self.timeout_s * 1000), **self.client_kwargs)
        await admin.start()
        try:
            meta = await admin.describe_topics([topic])
        finally:
            await admin.close()
        counts = [len(t.get("partitions") or []) for t in meta
                  if t.get("topic") == topic and not t.get("error_code")]
        return counts[0] if counts and counts[0] else None

    async def ensure_partitions(self, topic: str, n: int, config: bool | dict[str, str]) -> int:
        """Create ``topic`` with ``n`` partitions (``config`` as :meth:`ensure_topics`'s), or grow it
        to ``n`` if it has fewer; return the count it had (``n`` if just created)."""
        counts = await self.ensure_topics({topic: (n, config)})
        if topic not in counts:
            raise TimeoutError(f"topic {topic!r} has no leader for every partition yet")
        had = counts[topic]
        if had < n:
            await self.grow(topic, n)
        return had

    async def grow(self, topic: str, n: int) -> None:
        """Give ``topic`` ``n`` partitions (it has fewer); return once every partition answers."""
        from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_kwargs)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(n)})
        finally:
            await admin.close()
        await self.end_offsets([(topic, p) for p in range(n)])

    def _consumer(self) -> Any:
        return unmanaged_consumer(self.bootstrap, self.client_kwargs)

    async def read_partition(self, topic: str, partition: int, start: int | None = None
                             ) -> tuple[list[tuple[bytes | None, bytes | None]], int]:
        """All (key, value) records of ``topic``/``partition`` from ``start`` (default: the beginning)
        up to the end offset seen when the read started; and that end offset."""
        records: list[tuple[bytes | None, bytes | None]] = []
        last = 0
        async for chunk, end in self.iter_partition(topic, partition, start):
            records += [(k, v) for _, k, v in chunk]
            last = end
        return records, last

    async def iter_partition(self, topic: str, partition: int, start: int | None = None,
                             stop: int | None = None) -> AsyncIterator[tuple[list[Record], int]]:
        """``topic``/``partition`` from ``start`` (default: the beginning) up to ``stop``
        (default: the end offset when the read starts), in fetched chunks of (offset, key,
        value): yields (chunk, end offset); one empty chunk if there is nothing to read
        (:func:`streams.kafka.partitions.read_range`)."""
        async for chunk in read_partition(self.bootstrap, self.client_kwargs, topic, partition, start, stop,
                                          timeout_s=self.timeout_s, clock=self.clock):
            yield chunk

    async def last_values(self, topic: str, key: bytes, partitions: int | Iterable[int]
                          ) -> dict[int, bytes | None]:
        """The value of the last record with ``key`` in each of ``partitions`` of ``topic`` (a count:
        partitions 0 to ``partitions - 1``; None where there is none), read backwards from each end
        in growing windows.

        For the markers of a state topic: the last record of a partition is nearly always its
        marker, so this costs a small fetch per partition, not a read of the whole topic.
        :class:`TimeoutError` if a read makes no progress for ``timeout_s`` (as :meth:`iter_partition`):
        it runs inside a rebalance, where waiting for ever would hold every partition of the worker.
        """
        from aiokafka import TopicPartition

        wanted = range(partitions) if isinstance(partitions, int) else sorted(partitions)
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer = self._consumer()
        await consumer.start()
        found: dict[int, bytes | None] = {}
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            for tp in tps:
                hi, window, value = ends[tp], 16, None
                while hi > begins[tp] and value is None:
                    lo = max(begins[tp], hi - window)
                    async for msgs in fetch_range(consumer, tp, lo, hi, timeout_s=self.timeout_s,
                                                  clock=self.clock):
                        for m in msgs:
                            if m.key == key:
                                value = m.value
                    hi, window = lo, window * 16
                found[tp.partition] = value
            return found
        finally:
            await consumer.stop()

    async def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Commit ``offsets`` (partition -> next offset) of ``topic`` for consumer group ``group``,
        which must have no active members (as Faust commits them: the worker resumes there)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group,
                                    enable_auto_commit=False, **self.client_kwargs)
        await consumer.start()
        try:
            tps = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
            consumer.assign(list(tps))
            await consumer.commit(tps)
        finally:
            await consumer.stop()
