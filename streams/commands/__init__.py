"""The ``lookout`` sub-commands (click), one module each, loaded lazily by :mod:`streams.cli`.

A command parses its options, builds :class:`~streams.settings.Settings` and calls the package
that does the job (:mod:`streams.worker`, :mod:`streams.offline`, :mod:`streams.devtools`, ...);
:mod:`._common` and :mod:`.kafka_options` hold what several commands share (one-line errors,
the ``--kafka-*`` security options). The top layer: may import every package of
:mod:`streams`; nothing imports it except :mod:`streams.cli`.
"""
