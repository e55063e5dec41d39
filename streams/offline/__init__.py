"""Offline work on history: replay ("would it have fired?"), parameter tuning, reports, simulator files.

Replay runs historical events through the live code path: sources yield raw message values
exactly as the worker would receive them, and the runner hands them to
:class:`~streams.pipeline.processor.Processor` (decode -> contract ->
:class:`~detectors.engine.Engine` -> alerts / dead letters), the very object the Faust agent
uses. Nothing here decides whether to alert. One job per module:

* :mod:`.sources` -- what a source is: :data:`Record`, :class:`Source`, :class:`SourceError`;
* :mod:`.files` -- :class:`JsonlSource` and :class:`CsvSource` (gzip detected from the magic bytes);
* :mod:`.kafka_source` -- :class:`KafkaSource`, a time range of a topic read without a consumer group;
* :mod:`.source_spec` -- :class:`SourceSpec` (SOURCE and its options as the command line gives them),
  :func:`open_source` for a command-line spec, :func:`parse_mapping` for ``--map``;
* :mod:`.tracing` -- :class:`ReplayEngine` (counts, sizes) and per-customer :class:`Trace`;
* :mod:`.runner` -- :func:`run_replay`, one pass for one or two configurations;
* :mod:`.diff` -- incidents gained / lost / changed between two configurations;
* :mod:`.summary` -- the summary (``summary.json``) and the terminal text built from a run;
* :mod:`.tuning` -- the Optuna search: recall within a false-alert budget (``lookout tune``);
* :mod:`.report` -- the static HTML reports with matplotlib plots (``replay`` and ``tune``);
* :mod:`.simfiles` -- simulated events as JSON lines and incident labels (JSON lines or CSV);
* :mod:`.jobs` -- ``lookout replay`` and ``lookout tune`` from start to end (:func:`~.jobs.replay_job`,
  :func:`~.jobs.tune_job`), which end alike: plots chosen, traced, the report, ``summary.json``.

May import :mod:`detectors`, :mod:`streams.settings`, :mod:`streams.kafka`,
:mod:`streams.pipeline` and :mod:`streams.state`; never the worker (replay runs the pipeline, not
the Faust app), sinks or commands. Modules here import their siblings directly, never this
package's re-exports below (which are for callers outside it).
"""
from __future__ import annotations

from .diff import DIFF_FIELDS, diff_alerts, format_diff, incidents
from .files import CSV_FIELDS, REQUIRED_FIELDS, BadRow, CsvSource, JsonlSource
from .kafka_source import KafkaSource
from .runner import EngineRun, Progress, ReplayResult, run_replay, trace_customers
from .source_spec import SourceSpec, open_source, parse_mapping
from .sources import Record, Source, SourceError
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
    "SourceSpec",
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
