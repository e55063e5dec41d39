"""The detection worker (``lookout worker``): Faust wiring around the pipeline and the state.

* :mod:`.app` -- :func:`~streams.worker.app.create_app`: topics, the detection agent (a few
  lines), partition callbacks, timers, ``/metrics`` and ``/healthz``;
* :mod:`.runtime` -- :class:`~streams.worker.runtime.WorkerRuntime`: a batch under a lock,
  alerts and dead letters to the producer, partitions assigned and revoked, fail loudly (exit
  70), health;
* :mod:`.faust_tuning` -- the fetch-wait hook and the lean Faust monitor (per batch, not per
  message);
* :mod:`.outage` -- one WARNING per broker outage instead of thousands of client error lines;
* :mod:`.layout` -- the input partition count the alerts and state are laid out for, checked at
  assignments, periodically and on a customer that hashes elsewhere; a change stops the worker
  (exit 78);
* :mod:`.repartition` -- ``lookout topics repartition``: the state moved to a new partition
  count with the workers stopped (it runs the pipeline over the events after the markers).
* :mod:`.steering` -- engineers' verdicts and windows: the topics' follower, the HTTP requests,
  the state history and the rebuilds' reads.

May import :mod:`detectors`, :mod:`streams.settings`, :mod:`streams.kafka`,
:mod:`streams.pipeline`, :mod:`streams.state`, :mod:`streams.sinks`, :mod:`streams.steering`
and :mod:`streams.offline` (a rebuild reads a customer's past through replay's Kafka source);
nothing imports the worker except the commands (offline tools never do: replay runs the
pipeline, not the worker).
"""
