"""The commit cap: Faust commits the input topic only at snapshot markers (see :mod:`streams.state`)."""
from __future__ import annotations

from typing import Any

from .book import PartitionBook


def cap_input_commits(consumer: Any, input_topic: str, book: PartitionBook) -> None:
    """Make the Faust consumer commit the input topic only at snapshot markers.

    Faust commits the highest contiguous offset its streams have acknowledged. For the input
    topic that would run ahead of the detector state in Kafka: after a crash the models would be
    restored older than the offset the consumer resumes at, and events in between would never be
    learned. So for the input topic the commit offset is the one :class:`PartitionBook` says the
    last written snapshot covers; every other topic (the sinks' ``alerts`` consumers) keeps
    Faust's own acknowledgement-based offsets. Idempotent.
    """
    if getattr(consumer, "_lookout_commit_cap", None) is book:
        return
    original = type(consumer)._new_offset

    def _new_offset(tp):  # same signature as faust.transport.consumer.Consumer._new_offset
        if tp.topic != input_topic:
            return original(consumer, tp)
        consumer._acked[tp].clear()  # Faust's own acks of the input topic are not used
        consumer._acked_index[tp].clear()
        if tp not in consumer.assignment():
            # revoked: an event of it acknowledged after the revocation puts it back in Faust's
            # acks, and the book keeps a held partition's marker; committing that would move the
            # new owner's consumer past the position its book and /healthz lag start from
            return None
        return book.commit_offset(tp.partition)

    consumer._new_offset = _new_offset
    consumer._lookout_commit_cap = book
