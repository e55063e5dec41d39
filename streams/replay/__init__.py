"""Replay: historical events through the live code path, "would it have fired?".

Sources yield raw message values exactly as the worker would receive them; the runner hands
them to :class:`~streams.pipeline.processor.Processor` (decode -> contract ->
:class:`~detectors.engine.Engine` -> alerts / dead letters), the very object the Faust agent
uses. Nothing here decides whether to alert. One job per module:

* :mod:`.sources` -- the :class:`Source` interface and :func:`open_source` for a command-line spec;
* :mod:`.files` -- :class:`JsonlSource` and :class:`CsvSource` (gzip detected from the magic bytes);
* :mod:`.kafka` -- :class:`KafkaSource`, a time range of a topic read without a consumer group;
* :mod:`.tracing` -- :class:`ReplayEngine` (counts, sizes) and per-customer :class:`Trace`;
* :mod:`.runner` -- :func:`run_replay`, one pass for one or two configurations;
* :mod:`.diff` -- incidents gained / lost / changed between two configurations;
* :mod:`.summary` -- the summary (``summary.json``) and the terminal text built from a run.
"""
from __future__ import annotations

from .diff import DIFF_FIELDS, diff_alerts, format_diff, incidents
from .files import CSV_FIELDS, REQUIRED_FIELDS, BadRow, CsvSource, JsonlSource
from .kafka import KafkaSource
from .runner import EngineRun, Progress, ReplayResult, run_replay, trace_customers
from .sources import Record, Source, SourceError, open_source, parse_mapping
from .tracing import ALERT_FIELDS, ReplayEngine, Trace, compact_alert

__all__ = [
    "ALERT_FIELDS",
    "CSV_FIELDS",
    "DIFF_FIELDS",
    "REQUIRED_FIELDS",
    "BadRow",
    "CsvSource",
    "EngineRun",
    "JsonlSource",
    "Progress",
    "KafkaSource",
    "Record",
    "ReplayEngine",
    "ReplayResult",
    "Source",
    "SourceError",
    "Trace",
    "compact_alert",
    "diff_alerts",
    "format_diff",
    "incidents",
    "open_source",
    "parse_mapping",
    "run_replay",
    "trace_customers",
]
