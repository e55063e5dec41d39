"""The worker's producer for state records: its own connection, so snapshots never delay alerts.

Why: a snapshot writes every changed customer's state (~2.3 KB each). The first one after a
worker gets its partitions covers every customer: 2,000 customers are ~4.6 MB. Sent through
the Faust producer, those records sit in the same accumulator and on the same broker
connection as the alerts and dead letters (aiokafka keeps one request in flight per broker),
so an alert produced during the snapshot waited behind megabytes of state: p99
produce-to-alert 0.84 s at half load, every slow probe in the second after the snapshot
started (issue 10). A second aiokafka producer gives state records their own accumulator and
connection; the snapshot flushes both producers before it writes a partition's marker, so the
order the checkpoint relies on (customer records, then every alert and dead letter below the
marker's offset, then the marker) is unchanged.

The producer starts on first use and is stopped by the worker after its shutdown snapshot.
"""
from __future__ import annotations

import asyncio
from typing import Any

#: bytes of state records aiokafka collects per partition batch (a record is ~2.3 KB)
STATE_BATCH_BYTES = 512 * 1024
#: largest produce request (several partitions' batches travel in one request)
STATE_REQUEST_BYTES = 4 * 1024 * 1024
#: how long the producer waits to fill a batch: snapshots send hundreds of records back to back
STATE_LINGER_MS = 5


class StateProducer:
    """Writes state records to the state topic over a dedicated aiokafka producer.

    Same call shape as a Faust topic's ``send`` (``key``, ``value``, ``partition``) plus
    ``flush`` and ``stop``, so :class:`~streams.worker.runtime.WorkerRuntime` takes either.
    ``acks="all"``: a marker is only written after its customers' records are durable.
    """

    def __init__(self, topic: str, bootstrap: str, client_kwargs: dict[str, Any] | None = None):
        self.topic = topic
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}
        self._producer: Any = None
        self._starting: asyncio.Lock | None = None
        self._pending: list[asyncio.Future] = []
        self._connecting: asyncio.Future | None = None

    def get_topic_name(self) -> str:
        return self.topic

    async def _started(self) -> Any:
        if self._producer is not None:
            return self._producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    acks="all",
                    linger_ms=STATE_LINGER_MS,
                    max_batch_size=STATE_BATCH_BYTES,
                    max_request_size=STATE_REQUEST_BYTES,
                    **self.client_kwargs,
                )
                await producer.start()
                self._producer = producer
        return self._producer

    def connect_soon(self) -> None:
        """Start connecting in the background (the worker calls this on assignment), so the first
        snapshot does not also pay for the connection and metadata requests. A failure here is
        left to :meth:`send`, which tries again and fails that snapshot (retried by the next one)."""
        if self._producer is None and self._connecting is None:
            self._connecting = asyncio.ensure_future(self._started())
            self._connecting.add_done_callback(self._connected)

    def _connected(self, fut: asyncio.Future) -> None:
        self._connecting = None
        if not fut.cancelled():
            fut.exception()  # retrieved: a failed background start is not an unhandled error

    async def send(self, key: bytes, value: bytes, partition: int, timestamp_ms: int | None = None) -> None:
        """Queue one record (returns once it is in the producer's buffer; :meth:`flush` waits for it).

        ``timestamp_ms``: the record's Kafka timestamp (default: now), e.g. the event time a state
        history checkpoint covers, so it can be found by that time."""
        producer = await self._started()
        self._pending.append(await producer.send(self.topic, value=value, key=key, partition=partition,
                                                 timestamp_ms=timestamp_ms))

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged; raise if any failed."""
        if self._producer is None:
            return
        pending, self._pending = self._pending, []
        await self._producer.flush()
        for fut in pending:
            fut.result()  # a record the producer gave up on fails the snapshot (retried by the next one)

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        producer, self._producer = self._producer, None
        self._pending = []
        if producer is not None:
            await producer.stop()
