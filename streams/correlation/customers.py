"""The customer catalogue on Kafka: the compacted ``customers`` topic, read whole by every worker.

Key = customer id, value = its attributes as a JSON object (``{"plan": "pro", "origin_provider":
"provider-a", ...}``), a tombstone (null value) removes the customer. ``lookout customers load
FILE`` writes it (:func:`publish_catalogue`); every worker reads every partition from the
beginning without a consumer group and keeps following it (:class:`CustomerTable`), so an update
reaches all of them within a second. A record that is not a valid customer is counted and parked
on the dead-letter topic with the reason, never applied.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Iterable

from detectors.catalogue import Catalogue, parse_attributes
from detectors.events import CUSTOMER_ID_RE

log = logging.getLogger("lookout.customers")

__all__ = ["CustomerTable", "decode_customer", "publish_catalogue"]

#: how long one poll of the customers topic waits for records
POLL_MS = 1000



def decode_customer(key: bytes | None, value: bytes | None) -> tuple[str, dict[str, str] | None]:
    """``(customer id, attributes or None for a tombstone)`` of one record; ``ValueError`` with the reason.

    >>> decode_customer(b"acme", b'{"plan": "pro"}'), decode_customer(b"acme", None)
    (('acme', {'plan': 'pro'}), ('acme', None))
    """
    try:
        cid = key.decode("utf-8") if key is not None else ""
    except UnicodeDecodeError:
        raise ValueError("key is not UTF-8") from None
    if not CUSTOMER_ID_RE.match(cid):
        raise ValueError(f"key must be a customer id (1-64 chars of [A-Za-z0-9._:-]), got {cid[:80]!r}")
    if value is None:
        return cid, None
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"value is not JSON: {exc}") from None
    return cid, parse_attributes(obj)


class CustomerTable:
    """Follows the ``customers`` topic into :attr:`catalogue` (see the module docstring).

    Parameters
    ----------
    topic, bootstrap, client_kwargs
        Where to read (``client_kwargs``: TLS/SASL, :func:`streams.kafka.security.aiokafka_kwargs`).
    on_bad : coroutine function, optional
        ``on_bad(key, value, reason)`` for a record that is not a customer (the worker parks it).
    """

    def __init__(self, topic: str, bootstrap: str, client_kwargs: dict[str, Any] | None = None, *,
                 on_bad: Callable[[bytes | None, bytes | None, str], Awaitable[None]] | None = None,
                 catalogue: Catalogue | None = None):
        self.topic = topic
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}
        self.on_bad = on_bad
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        #: set once every record that existed when reading started has been applied
        self.ready = asyncio.Event()
        self.bad = 0

    async def apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            cid, attrs = decode_customer(key, value)
        except ValueError as exc:
            self.bad += 1
            if self.on_bad is not None:
                await self.on_bad(key, value, f"not a customer record: {exc}")
            return
        if attrs is None:
            self.catalogue.remove(cid)
        else:
            self.catalogue.set(cid, attrs)

    async def run(self, partitions: int) -> None:
        """Read the topic's ``partitions`` from the beginning and follow them until cancelled."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", **self.client_kwargs)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            while True:
                if not self.ready.is_set() and all([await consumer.position(tp) >= end[tp] for tp in tps]):
                    self.ready.set()
                    log.info("customer catalogue loaded: %d customers", len(self.catalogue))
                batches = await consumer.getmany(timeout_ms=POLL_MS)
                for records in batches.values():
                    for r in records:
                        await self.apply(r.key, r.value)
        finally:
            await consumer.stop()


def publish_catalogue(catalogue: Catalogue, topic: str, bootstrap: str, security: dict[str, Any],
                      remove: Iterable[str] = (), timeout_s: float = 30.0) -> int:
    """Write every customer of ``catalogue`` (and tombstones for ``remove``) to ``topic``; return how many."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, **security)
    n = 0
    try:
        for cid in catalogue:
            producer.send(topic, key=cid.encode(), value=json.dumps(dict(catalogue.get(cid))).encode())
            n += 1
        for cid in remove:
            producer.send(topic, key=cid.encode(), value=None)
            n += 1
        producer.flush(timeout=timeout_s)
    finally:
        producer.close(timeout=timeout_s)
    return n
