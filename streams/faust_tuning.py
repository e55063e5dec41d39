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
  messages once per batch (:meth:`LeanMonitor.received`).
"""
from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor


class LeanMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor minus its per-message hooks.

    Kept: ``faust_messages_received_total`` (per batch, from the agent), commit latency and
    committed offsets, end offsets, send counts and latency, rebalances. Not kept: per-event
    stream latency, active messages, per-topic received counters.
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)

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
