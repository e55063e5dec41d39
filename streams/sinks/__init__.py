"""Where alerts go to people: Alertmanager, a webhook (ticketing), the terminal.

* :mod:`.alertmanager` -- :class:`~streams.sinks.alertmanager.AlertmanagerSink`: open alerts
  posted and re-sent until resolved, with labels, annotations and a Grafana link;
* :mod:`.webhook` -- :class:`~streams.sinks.webhook.WebhookSink`: a JSON POST per alert state,
  retried with backoff, idempotency keys, bounded, never lost (the rest is dead-lettered).

Plain asyncio, no Faust: the worker wires them to the alerts topic
(:mod:`streams.worker.sinks`). May import :mod:`detectors`, :mod:`streams.settings`,
:mod:`streams.kafka` and :mod:`streams.pipeline`; never the worker, state, offline tools or
commands.
"""
from __future__ import annotations

from .alertmanager import AlertmanagerSink
from .webhook import WebhookSink

__all__ = ["AlertmanagerSink", "WebhookSink"]
