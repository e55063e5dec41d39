"""Where alerts go to people: Alertmanager, a webhook (ticketing), the terminal.

* :mod:`.alertmanager` -- :class:`~streams.sinks.alertmanager.AlertmanagerSink`: open alerts
  posted and re-sent until resolved, with labels, annotations and a Grafana link;
* :mod:`.webhook` -- :class:`~streams.sinks.webhook.WebhookSink`: a JSON POST per alert state,
  retried with backoff, idempotency keys, bounded, never lost (the rest is dead-lettered);
* :mod:`.alert_tail` -- :class:`~streams.sinks.alert_tail.AlertTail`, what ``lookout alerts
  tail`` prints: the alerts topic followed without a consumer group, one readable line per
  alert (:func:`~streams.sinks.alert_tail.format_alert`, also the demo's live view) or JSON.

Plain asyncio and kafka-python, no Faust: the worker wires the first two to the alerts topic
(:mod:`streams.worker.sinks`). Import the modules themselves (this file imports none, so
``alerts tail`` does not load the HTTP client). May import :mod:`detectors`,
:mod:`streams.settings`, :mod:`streams.kafka` and :mod:`streams.pipeline`; never the worker,
state, offline tools or commands.
"""
