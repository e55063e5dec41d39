"""Simulated events onto a Kafka topic: one event per message, or envelopes like an aggregation tier.

:class:`EventProducer` sends events keyed by customer id (Kafka's default partitioner then keeps a
customer on one partition), or -- with ``envelope=N`` -- :func:`envelopes` of up to N events of
one partition (murmur2 of the customer id, as that partitioner) sent to that partition. Any
failure is one line: :class:`ProduceError`.

>>> evs = [{"customer_id": c, "ts": t} for t in (0, 300) for c in ("a", "b", "c")]
>>> [(p, [e["customer_id"] for e in batch]) for p, batch in envelopes(evs, partitions=1, size=2)]
[(0, ['a', 'b']), (0, ['c']), (0, ['a', 'b']), (0, ['c'])]
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping

from streams.pipeline.codecs import ENVELOPE_KEY, partition_of

__all__ = ["EventProducer", "ProduceError", "envelopes"]

#: the producer's settings: throughput over latency (events come from a file-like generator)
PRODUCER_SETTINGS: dict[str, Any] = dict(
    acks=1, linger_ms=20, batch_size=512 * 1024, compression_type=None, max_block_ms=30_000,
    request_timeout_ms=30_000, retries=5,
)
#: seconds to wait for the last messages to be sent, and for the producer to close
FLUSH_TIMEOUT_S, CLOSE_TIMEOUT_S = 60, 10


class ProduceError(Exception):
    """Events could not be produced; ``str(exc)`` is one line for the user."""


def envelopes(events: Iterable[Mapping[str, Any]], partitions: int,
              size: int) -> Iterator[tuple[int, list[Mapping[str, Any]]]]:
    """``(partition, events)`` envelopes of up to ``size`` events of one partition, in event order.

    An envelope is sent when full and whenever a new interval starts (events come in interval
    order: an aggregation tier flushes every interval), the rest at the end.
    """
    pending: dict[int, list[Mapping[str, Any]]] = {}
    last_ts = None
    for ev in events:
        if ev["ts"] != last_ts:
            for p in list(pending):
                yield p, pending.pop(p)
            last_ts = ev["ts"]
        p = partition_of(ev["customer_id"], partitions)
        buf = pending.setdefault(p, [])
        buf.append(ev)
        if len(buf) >= size:
            yield p, pending.pop(p)
    for p in list(pending):
        yield p, pending.pop(p)


class EventProducer:
    """Sends events to ``topic`` at ``bootstrap`` (``security``: kafka-python TLS/SASL arguments)."""

    def __init__(self, bootstrap: str, topic: str, security: Mapping[str, Any] | None = None,
                 envelope: int | None = None):
        # kafka-python is imported here, not at the top: `lookout simulate --out FILE` and every
        # `--help` that imports this module would pay for it (0.1-0.3 s) without producing anything
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.bootstrap, self.topic, self.envelope = bootstrap, topic, envelope
        try:
            self.producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_SETTINGS,
                                          **(security or {}))
        except KafkaError as exc:
            raise ProduceError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
        self.failures: list[BaseException] = []
        self.encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

    def _failed(self, exc: BaseException) -> None:
        if not self.failures:
            self.failures.append(exc)

    def send(self, ev: Mapping[str, Any]) -> None:
        """One event, keyed by its customer id (sent in the background: :meth:`flush` waits)."""
        self.send_raw(self.encode(ev).encode(), key=ev["customer_id"].encode())

    def send_raw(self, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        """A message as it is (e.g. a malformed one, to show what the worker does with it)."""
        self.producer.send(self.topic, key=key, value=value, partition=partition).add_errback(self._failed)

    def flush(self) -> None:
        """Wait until every message is sent; :class:`ProduceError` if one was not."""
        self.producer.flush(timeout=FLUSH_TIMEOUT_S)
        if self.failures:
            raise ProduceError(f"producing to {self.topic} at {self.bootstrap} failed: {self.failures[0]}")

    def send_all(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Send every event (stopping at the first failure), wait until they are sent; how many."""
        from kafka.errors import KafkaError  # see __init__

        n = 0
        try:
            if self.envelope is None:
                for ev in events:
                    self.send(ev)
                    n += 1
                    if self.failures:
                        break
            else:
                n = self._send_envelopes(events, self.envelope)
            self.flush()
        except KafkaError as exc:
            raise ProduceError(f"producing to {self.topic} at {self.bootstrap} failed after {n:,} events: "
                               f"{exc}") from None
        return n

    def _send_envelopes(self, events: Iterable[Mapping[str, Any]], size: int) -> int:
        partitions = self.producer.partitions_for(self.topic)
        if not partitions:
            raise ProduceError(f"topic {self.topic} has no partitions (does it exist?)")
        n = 0
        for p, batch in envelopes(events, len(partitions), size):
            self.send_raw(self.encode({ENVELOPE_KEY: batch}).encode(), partition=p)
            n += len(batch)
            if self.failures:
                break
        return n

    def close(self) -> None:
        try:
            self.producer.close(timeout=CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 -- closing is best effort
            pass

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
