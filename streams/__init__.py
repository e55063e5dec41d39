"""Lookout streams: everything that touches Kafka, HTTP or the command line.

Decisions about *whether* to alert are made in :mod:`detectors`; this package moves bytes
between Kafka, the detectors, the sinks and Prometheus. One subpackage per job, each
docstring saying what lives there and what it may import (``tests/test_layers.py`` checks it):

* :mod:`streams.settings` -- the one :class:`~streams.settings.Settings` object;
* :mod:`streams.kafka` -- client security and admin helpers;
* :mod:`streams.pipeline` -- raw message -> decode -> Engine -> alerts / dead letters (worker and replay);
* :mod:`streams.state` -- detector state that follows input partitions (snapshots, restores, commits);
* :mod:`streams.sinks` -- alerts out to people: Alertmanager, webhook, the terminal;
* :mod:`streams.worker` -- the Faust app and its runtime;
* :mod:`streams.offline` -- replay, tuning, reports, simulator files;
* :mod:`streams.devtools` -- the local broker and the demo;
* :mod:`streams.commands` and :mod:`streams.cli` -- the ``lookout`` command line.
"""
