"""The ``lookout`` sub-commands (click), one module each, loaded lazily by :mod:`streams.cli`.

A command parses its options and calls one library function that does the job and that a test
can call without click (:func:`streams.offline.jobs.replay_job`, :func:`streams.offline.jobs.tune_job`,
:func:`streams.devtools.simulator.simulate_traffic`, :class:`streams.devtools.demo.Demo`, ...); it
turns that function's one-line errors into click's and prints its result. :mod:`._common`,
:mod:`.kafka_options` and :mod:`.source_options` hold what several commands share (loading
inputs with one-line errors, the ``--kafka-*`` security options, SOURCE and how to read it).
The top layer: may import every package of :mod:`streams`; nothing imports it except
:mod:`streams.cli`.
"""
