"""Faust knobs Lookout sets for latency and per-message cost. Wiring only.

* :func:`set_fetch_max_wait` -- Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``
  for the worker's consumer (no setting reaches it). The broker holds a fetch of an idle
  partition that long, and under light load a new event waited for it: p50 produce-to-alert
  1.4 s (issue 10). The hook wraps the app's consumer factory and sets the aiokafka consumer's
  value before it starts.
* :class:`LeanMonitor` -- Faust's :class:`~faust.sensors.prometheus.PrometheusMonitor` does
  bookkeeping and label lookups in four hooks *per message* (8 % of a busy worker; off gave
  +16..26 %). The lean monitor keeps the series the Grafana dashboards use, under the same
  names, from hooks that run per commit, per send and per rebalance, and counts received
  messages once per batch (:meth:`LeanMonitor.received`). Faust's consumer also reports each
  partition's end offset *per record* (``track_tp_end_offset``: a Prometheus label lookup per
  message, 4 % of a worker on single events); the lean monitor stores it in a dict and the
  gauge reads the dict when it is scraped.
* :func:`bound_producer_requests` -- Faust gives its producer's client one timeout, 20 minutes,
  for a request's answer and for how long a record may wait to be sent. A metadata request the
  broker never answered (seen on a loaded machine, for a topic created moments before) then held
  the producer's sender for those 20 minutes: it waits for that metadata before it sends anything
  more, so every agent awaiting an acknowledgement stopped (the correlator held its alerts and
  formed no parent). The hook shortens the wait for an answer only: an unanswered request fails
  after ``request_timeout_s``, is logged and retried, and records are still kept for Faust's
  20 minutes.
"""
from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor


class LeanMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor minus its per-message hooks.

    Kept: ``faust_messages_received_total`` (per batch, from the agent), commit latency and
    committed offsets, end offsets (read at scrape time), send counts and latency, rebalances.
    Not kept: per-event stream latency, active messages, per-topic received counters.

    >>> from prometheus_client import CollectorRegistry
    >>> from faust.types import TP
    >>> reg = CollectorRegistry()
    >>> m = LeanMonitor(FaustMetrics.create(reg, "faust"))
    >>> for offset in (7, 8, 9):  # Faust calls this once per record
    ...     m.track_tp_end_offset(TP("request-metrics", 2), offset)
    >>> reg.get_sample_value("faust_topic_partition_end_offset",
    ...                      {"topic": "request-metrics", "partition": "2"})
    9.0
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._end_offset_gauges: set = set()  # partitions whose gauge reads tp_end_offsets

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """Per record: a dict store; the partition's gauge reads it when scraped."""
        self.tp_end_offsets[tp] = offset
        if tp not in self._end_offset_gauges:
            self._end_offset_gauges.add(tp)
            gauge = self._metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition)
            gauge.set_function(lambda: self.tp_end_offsets.get(tp, 0))

    def _clear_partition_related_metrics(self) -> None:
        # a rebalance removes the gauge's partitions: the next record of a partition binds it again
        super()._clear_partition_related_metrics()
        self._end_offset_gauges.clear()

    def received(self, n: int) -> None:
        """``n`` input messages were taken by the agent (one call per batch)."""
        self._metrics.messages_received.inc(n)

    # per message/event: nothing (the base classes keep dicts, deques and label lookups here)
    def on_message_in(self, tp, offset, message) -> None:  # noqa: D102
        return None

    def on_stream_event_in(self, tp, offset, stream, event):  # noqa: D102
        return None

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:  # noqa: D102
        return None

    def on_message_out(self, tp, offset, message) -> None:  # noqa: D102
        return None


def set_fetch_max_wait(app: Any, fetch_max_wait_s: float) -> None:
    """Make ``app``'s worker consumer wait at most ``fetch_max_wait_s`` for a fetch to fill.

    Instance-level: other apps in the process keep Faust's value.
    """
    ms = int(round(fetch_max_wait_s * 1000))
    new_consumer = app._new_consumer

    def tuned_consumer():
        consumer = new_consumer()
        thread = getattr(consumer, "_thread", None)
        create = getattr(thread, "_create_consumer", None)
        if create is None:  # another driver: nothing to tune
            return consumer

        def create_tuned(*args: Any, **kwargs: Any):
            client = create(*args, **kwargs)
            if hasattr(client, "_fetch_max_wait_ms"):  # read by the aiokafka consumer's start()
                client._fetch_max_wait_ms = ms
            return client

        thread._create_consumer = create_tuned
        return consumer

    app._new_consumer = tuned_consumer


def bound_producer_requests(app: Any, request_timeout_s: float) -> None:
    """Make ``app``'s producer wait at most ``request_timeout_s`` for the broker to answer a request.

    Instance-level, like :func:`set_fetch_max_wait`: the aiokafka client's timeout is set after
    Faust builds the producer and before it connects (every connection reads it then); the
    record accumulator keeps Faust's ``producer_request_timeout`` as how long a record is retried.
    """
    ms = int(round(request_timeout_s * 1000))
    new_producer = app._new_producer

    def tuned_producer():
        producer = new_producer()
        create = getattr(producer, "_new_producer", None)
        if create is None:  # another driver: nothing to tune
            return producer

        def create_tuned(*args: Any, **kwargs: Any):
            client = create(*args, **kwargs)
            inner = getattr(client, "client", None)
            if hasattr(inner, "_request_timeout_ms"):  # read by each connection it opens
                inner._request_timeout_ms = min(inner._request_timeout_ms, ms)
            return client

        producer._new_producer = create_tuned
        return producer

    app._new_producer = tuned_producer
