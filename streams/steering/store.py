"""The ``feedback`` and ``silences`` topics (compacted, one partition each) and alert look-ups.

:class:`KafkaStore` is what the commands and the worker's HTTP endpoints write through (blocking
kafka-python calls: the worker runs them in a thread). :class:`MemoryStore` has the same three
methods in memory, for tests and for callers that have no broker.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol

from ..kafka.admin import BrokerError, create_topics, wait_for_kafka
from ..kafka.security import kafka_python_kwargs
from ..pipeline.codecs import encode_json

__all__ = ["KafkaStore", "MemoryStore", "RecordStore", "StoreError"]

#: the steering topics have one partition: a few thousand small records, read whole by every worker
STEERING_PARTITIONS = 1


class StoreError(Exception):
    """The topics cannot be read or written; ``str(exc)`` is one line for the user."""


class RecordStore(Protocol):
    def write(self, topic: str, key: str, value: Mapping[str, Any] | None) -> None: ...

    def read_all(self, topic: str) -> list[tuple[str, dict[str, Any] | None]]: ...

    def find_alert(self, alert_id: str, since: float) -> dict[str, Any] | None: ...


@dataclass
class MemoryStore:
    """Topics as lists of (key, value); alerts as a list (tests, and replay of files)."""

    topics: dict[str, list[tuple[str, dict[str, Any] | None]]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def write(self, topic: str, key: str, value: Mapping[str, Any] | None) -> None:
        self.topics.setdefault(topic, []).append((key, None if value is None else dict(value)))

    def read_all(self, topic: str) -> list[tuple[str, dict[str, Any] | None]]:
        return list(self.topics.get(topic, []))

    def find_alert(self, alert_id: str, since: float) -> dict[str, Any] | None:
        found = None
        for a in self.alerts:
            if a.get("alert_id") == alert_id:
                found = a
        return found


@dataclass
class KafkaStore:
    """The steering topics and the alerts topic on one broker (kafka-python, blocking)."""

    bootstrap: str
    alerts_topic: str = "alerts"
    timeout_s: float = 10.0
    #: kafka-python TLS/SASL arguments (streams.kafka.security.kafka_python_kwargs); not in repr
    security: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Any) -> "KafkaStore":
        """The store of a :class:`~streams.settings.Settings` (bootstrap, alerts topic, TLS/SASL)."""

        return cls(settings.bootstrap, settings.alerts_topic, settings.kafka_timeout_s,
                   kafka_python_kwargs(settings))

    @classmethod
    def connect(cls, settings: Any) -> "KafkaStore":
        """:meth:`from_settings` once the broker answers (``lookout feedback``/``silence``): raises
        :class:`~streams.kafka.admin.BrokerError`, one line, when it does not or rejects the
        TLS/SASL settings."""

        store = cls.from_settings(settings)
        wait_for_kafka(store.bootstrap, timeout=store.timeout_s, security=store.security)
        return store

    def _kwargs(self, client_id: str) -> dict[str, Any]:
        from kafka import KafkaConsumer

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        ms = max(int(self.timeout_s * 1000), 100)
        kw: dict[str, Any] = dict(bootstrap_servers=self.bootstrap.split(","), client_id=client_id,
                                  request_timeout_ms=max(ms, 5000) + 1000, **self.security)
        kw["bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG
           else "api_version_auto_timeout_ms"] = ms
        return kw

    def _fail(self, exc: BaseException) -> StoreError:
        return StoreError(f"Kafka at {self.bootstrap}: {type(exc).__name__}: {exc}"[:300])

    def ensure_topics(self, *topics: str) -> list[str]:
        """Create the steering topics that do not exist yet (compacted); return those created."""

        try:
            return create_topics(self.bootstrap, {t: STEERING_PARTITIONS for t in topics},
                                 connect_timeout=self.timeout_s, security=self.security, compacted=topics)
        except BrokerError as exc:
            raise StoreError(str(exc)) from None

    def write(self, topic: str, key: str, value: Mapping[str, Any] | None) -> None:
        """Write one record and wait until the broker has it."""
        import kafka.errors as kerr
        from kafka import KafkaProducer

        self.ensure_topics(topic)
        try:
            producer = KafkaProducer(acks="all", **self._kwargs("lookout-steering"))
        except (kerr.KafkaError, OSError, ValueError):
            raise StoreError(f"cannot reach Kafka at {self.bootstrap} within {self.timeout_s:g} s") from None
        try:
            fut = producer.send(topic, key=key.encode(), value=None if value is None else encode_json(value))
            fut.get(timeout=self.timeout_s)
        except kerr.KafkaError as exc:
            raise self._fail(exc) from None
        finally:
            producer.close(timeout=self.timeout_s)

    def _messages(self, topic: str, since: float | None = None) -> Iterator[Any]:
        """Every message of ``topic`` (from message time ``since``) up to its end when asked."""
        import kafka.errors as kerr
        from kafka import KafkaConsumer, TopicPartition

        try:
            consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                     **self._kwargs("lookout-steering"))
        except (kerr.KafkaError, OSError, ValueError):
            raise StoreError(f"cannot reach Kafka at {self.bootstrap} within {self.timeout_s:g} s") from None
        try:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                return
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            ends = consumer.end_offsets(tps)
            starts = consumer.beginning_offsets(tps)
            if since is not None:
                found = consumer.offsets_for_times({tp: max(0, int(since * 1000)) for tp in tps})
                starts = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
            for tp in tps:
                consumer.seek(tp, starts[tp])
            live = {tp for tp in tps if starts[tp] < ends[tp]}
            idle = 0
            while live:
                batch = consumer.poll(timeout_ms=500)
                idle = 0 if batch else idle + 1
                if idle * 0.5 > self.timeout_s:
                    raise StoreError(f"Kafka at {self.bootstrap}: no data from {topic} "
                                     f"for {self.timeout_s:g} s")
                for tp, msgs in batch.items():
                    for m in msgs:
                        if m.offset < ends[tp]:
                            yield m
                    if consumer.position(tp) >= ends[tp]:
                        live.discard(tp)
        except kerr.KafkaError as exc:
            raise self._fail(exc) from None
        finally:
            consumer.close()

    def read_all(self, topic: str) -> list[tuple[str, dict[str, Any] | None]]:
        """Every record of a steering topic, oldest first (unreadable ones skipped: the worker
        dead-letters them)."""
        out: list[tuple[str, dict[str, Any] | None]] = []
        for m in self._messages(topic):
            key = m.key.decode("utf-8", "replace") if m.key is not None else ""
            if m.value is None:
                out.append((key, None))
                continue
            try:
                value = json.loads(m.value)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append((key, value))
        return out

    def find_alert(self, alert_id: str, since: float) -> dict[str, Any] | None:
        """The latest notification of ``alert_id`` on the alerts topic since ``since``, or None."""
        needle = alert_id.encode()
        found = None
        for m in self._messages(self.alerts_topic, since):
            if m.value is None or needle not in m.value:
                continue
            try:
                alert = json.loads(m.value)
            except ValueError:
                continue
            if isinstance(alert, dict) and alert.get("alert_id") == alert_id:
                found = alert
        return found
