"""Read one partition of a topic from an offset to an end, with no consumer group.

What a restore reads (the state and alerts topics: :mod:`streams.state.reader`) and what the
Alertmanager sink reads back (its open alerts: :mod:`streams.sinks.open_store`) is the same
operation: assign one partition, find where it begins and ends, fetch until the position reaches
the end. :func:`read_range` is that operation, once (:func:`read_partition` with a consumer of
its own); a read that makes no progress for
``timeout_s`` raises :class:`TimeoutError` (an :class:`OSError`, so
:func:`streams.kafka.retry.until_reachable` retries it), rather than waiting for ever while the
broker does not answer.
"""
from __future__ import annotations

import time
from typing import Any, AsyncIterator, Callable, Iterable

from streams.kafka.retry import started

__all__ = ["Record", "fetch_range", "latest_by_key", "read_partition", "read_range", "unmanaged_consumer"]

#: (offset, key, value) of a record read from a partition
Record = tuple[int, Any, Any]

#: how much one fetch may bring back (a state partition holds big records)
FETCH_MAX_BYTES = 64 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES = 16 * 1024 * 1024


def unmanaged_consumer(bootstrap: str, client_kwargs: dict[str, Any]) -> Any:
    """An aiokafka consumer outside any group that commits nothing (start it with
    :func:`streams.kafka.retry.started`)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_bytes=FETCH_MAX_BYTES,
                            max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES, **client_kwargs)


async def read_partition(bootstrap: str, client_kwargs: dict[str, Any], topic: str, partition: int,
                         start: int | None = None, stop: int | None = None, *, timeout_s: float,
                         clock: Callable[[], float] = time.monotonic
                         ) -> AsyncIterator[tuple[list[Record], int]]:
    """:func:`read_range` with an :func:`unmanaged_consumer` of its own, started for the read and
    stopped after it (also when it fails)."""
    consumer = unmanaged_consumer(bootstrap, client_kwargs)
    await started(consumer)
    try:
        async for chunk in read_range(consumer, topic, partition, start, stop, timeout_s=timeout_s,
                                      clock=clock):
            yield chunk
    finally:
        await consumer.stop()


def latest_by_key(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[str, bytes | None]:
    """A compacted partition's (key, value) records, in offset order, as each key's latest value
    (None: a tombstone); records without a key are skipped.

    >>> latest_by_key([(b"a", b"1"), (None, b"x"), (b"b", b"2"), (b"a", None)])
    {'a': None, 'b': b'2'}
    """
    latest: dict[str, bytes | None] = {}
    for key, value in records:
        if key is not None:
            latest[key.decode("utf-8", "replace")] = value
    return latest


async def read_range(consumer: Any, topic: str, partition: int, start: int | None = None,
                     stop: int | None = None, *, timeout_s: float,
                     clock: Callable[[], float] = time.monotonic
                     ) -> AsyncIterator[tuple[list[Record], int]]:
    """``topic``/``partition`` from ``start`` (default: its beginning) up to ``stop`` (default: the
    end offset when the read starts), with a started ``consumer`` that it assigns: yields the
    records in fetched chunks with that end offset; one empty chunk if there is nothing to read."""
    from aiokafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp] if stop is None else stop
    begin = (await consumer.beginning_offsets([tp]))[tp]
    first = max(begin, start or 0)
    if first >= end:
        yield [], end
        return
    async for msgs in fetch_range(consumer, tp, first, end, timeout_s=timeout_s, clock=clock):
        yield [(m.offset, m.key, m.value) for m in msgs], end


async def fetch_range(consumer: Any, tp: Any, start: int, stop: int, *, timeout_s: float,
                      clock: Callable[[], float] = time.monotonic) -> AsyncIterator[list[Any]]:
    """The records of the assigned ``tp`` from ``start`` up to ``stop`` (exclusive), as fetched
    (non-empty lists); :class:`TimeoutError` if the position makes no progress for ``timeout_s``."""
    consumer.seek(tp, start)
    pos, deadline = start, clock() + timeout_s
    while pos < stop:
        if clock() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] stalled at offset {pos} of {stop}")
        batch = await consumer.getmany(tp, timeout_ms=1000)
        msgs = [m for m in batch.get(tp, []) if m.offset < stop]
        new_pos = await consumer.position(tp)
        if new_pos > pos:
            deadline = clock() + timeout_s  # progress: the timeout is for stalls
        pos = new_pos
        if msgs:
            yield msgs
