"""An input partition's retained history replayed into an engine of its own: a worker's rebuild.

The worker's :class:`~streams.state.rebuild.Rebuilder` calls this (in a thread) when a partition's
saved state is refused or missing. It is ``lookout replay kafka://TOPIC?from=...`` for one
partition and an offset range: replay's :class:`~streams.offline.kafka_source.KafkaSource` reads
it without a consumer group, and a :class:`~streams.pipeline.processor.Processor` configured like
the worker's (same detector config, clock, future limit, partition count) runs it in batches,
as the worker's agent does; alerts and dead letters are dropped -- the old worker sent them
when the events were new. What comes back is each customer's state record.
"""
from __future__ import annotations

from typing import Any, Mapping

from detectors.engine import Engine
from streams.pipeline.processor import Processor

from .kafka_source import KafkaSource
from .sources import SourceError

#: messages handed to the processor at once (the worker's agent takes 500; more is faster offline)
CHUNK_MESSAGES = 4096


class PartitionHistory:
    """Replays ranges of ``topic``'s partitions (the worker's :class:`~streams.state.rebuild.History`).

    Parameters
    ----------
    topic, bootstrap, security, timeout_s
        The input topic, the broker, kafka-python TLS/SASL arguments and how long to wait for it.
    like
        The worker's processor: the replay's own processor and engine are configured like it.
    """

    def __init__(self, topic: str, bootstrap: str, like: Processor, security: Mapping[str, Any] | None = None,
                 timeout_s: float = 10.0, chunk: int = CHUNK_MESSAGES):
        self.topic = topic
        self.bootstrap = bootstrap
        self.like = like
        self.security = dict(security or {})
        self.timeout_s = timeout_s
        self.chunk = chunk
        self._planned: dict[tuple[int, float], KafkaSource] = {}

    def _source(self, partition: int, since: float) -> KafkaSource:
        src = self._planned.pop((partition, since), None)
        if src is None:
            src = KafkaSource(self.topic, self.bootstrap, since, None, self.timeout_s, self.security,
                              partitions=[partition])
            src.prepare()
        return src

    def plan(self, partition: int, since: float) -> tuple[int, int]:
        """[first offset of ``partition`` at or after message time ``since``, its end offset)."""
        src = self._source(partition, since)
        offsets = src.describe().get("offsets") or {}
        if str(partition) not in offsets:
            raise SourceError(f"{self.topic} has no partition {partition} on {self.bootstrap}")
        self._planned[(partition, since)] = src  # replay() reads this plan
        start, end = offsets[str(partition)]
        return int(start), int(end)

    def processor(self) -> Processor:
        """A processor and engine of their own, configured like the worker's."""
        like = self.like
        return Processor(Engine(like.engine.config), clock=like.clock, dlq_topic=like.dlq_topic,
                         max_future_s=like.max_future_s, partitions=like.partitions)

    def replay(self, partition: int, since: float, stop: int, progress: Any) -> dict[str, bytes]:
        """Every customer's state record after the partition's messages from message time ``since``
        up to offset ``stop``; ``progress.advance(offset, events, customers)`` after each batch."""
        proc = self.processor()
        engine = proc.engine
        records: list[tuple[Any, Any, str, int | None, int | None]] = []
        events = 0
        source = self._source(partition, since).records()
        try:
            for value, key, part, offset in source:
                if offset >= stop:
                    break
                records.append((key, value, self.topic, part, offset))
                if len(records) >= self.chunk:
                    events += proc.handle_many(records).events
                    progress.advance(offset, events, len(engine.customers))
                    records = []
        finally:
            source.close()  # its consumer, now rather than when the generator is collected
        if records:
            events += proc.handle_many(records).events
            progress.advance(records[-1][4], events, len(engine.customers))
        return {cid: engine.dump_customer(cid) for cid in engine.customers}
