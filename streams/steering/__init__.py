"""Engineers steer Lookout: verdicts on alerts and maintenance windows, moved between Kafka, HTTP and files.

What a verdict or a window *does* is :mod:`detectors.steering` (and the records themselves are
:mod:`detectors.feedback` and :mod:`detectors.silences`); this package only moves them:

* :mod:`.records` -- message bytes -> records -> a :class:`~detectors.steering.Steering`, a
  dead letter with the reason for anything else (no I/O);
* :mod:`.store` -- the compacted topics ``feedback`` (key = alert id) and ``silences`` (key =
  window id): write one record, read them all, find an alert on the ``alerts`` topic;
* :mod:`.service` -- what ``lookout feedback``, ``lookout silence`` and the worker's HTTP
  endpoints call: validate, look up, write, in one function each;
* :mod:`.follower` -- the worker's reader of both topics, from the beginning and then as they grow;
* :mod:`.http` -- ``POST /feedback``, ``POST /silences``, ``GET /silences`` behind a bearer token.

May import :mod:`detectors`, :mod:`streams.settings`, :mod:`streams.kafka` and
:mod:`streams.pipeline`; never the worker, offline tools or commands.
"""
