"""The replay runner: one pass over a source through a :class:`~streams.pipeline.processor.Processor`
per config.

Nothing here decides whether to alert: every record goes through the live decode -> contract ->
:class:`~detectors.engine.Engine` path. Memory is bounded by the number of customers, not by the
source length: sources stream, and the runner keeps per customer a few counters plus the (rare) alerts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from detectors.config import DetectorConfig
from detectors.correlator import Correlator, CorrelatorOutput, correlate
from detectors.engine import Engine
from detectors.evaluation import incidents
from detectors.events import Event, EventBatch
from detectors.feedback import RESOLVING
from detectors.gcpause import cyclic_gc_paused
from detectors.history import MemoryHistory
from detectors.steering import SteeredEngine, Steering
from streams.pipeline.codecs import dlq_record, encode_json
from streams.pipeline.processor import Output, Processor

from .files import BadRow
from .kafka_source import KafkaSource
from .sources import Source
from .tracing import ReplayEngine, Trace, compact_alert

#: valid events handed to the engines per batch: large enough that a batched engine runs at
#: full speed, small enough that a batch's scores and alerts stay a few hundred KB
CHUNK_EVENTS = 4096


@dataclass
class EngineRun:
    """What one detector configuration produced over the source."""

    label: str
    config: DetectorConfig
    alerts: list[dict[str, Any]] = field(default_factory=list)  # compact
    alerts_path: Path | None = None
    #: with the correlator: its parent incident records and every alert with its ``parent_id``
    incidents: list[dict[str, Any]] = field(default_factory=list)
    routed: list[dict[str, Any]] = field(default_factory=list)  # compact, plus parent_id

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The notifications that reach the sinks (not muted by a maintenance window)."""
        return [a for a in self.alerts if not a.get("silenced_by")]

    def counts(self) -> dict[str, Any]:
        """Alerts by status and by what became of them (sent, silenced by a window, withdrawn by a
        verdict); opened incidents by severity (the highest each reached) and primary signal."""
        firing = [a for a in self.alerts if a["status"] == "firing"]
        opened = incidents(self.alerts).values()
        withdrawn = {a["alert_id"] for a in self.alerts if a["status"] == "resolved"
                     and (a.get("feedback") or {}).get("verdict") in RESOLVING}
        sev: dict[str, int] = {}
        sig: dict[str, int] = {}
        for inc in opened:
            sev[inc.severity] = sev.get(inc.severity, 0) + 1
            sig[str(inc.signal)] = sig.get(str(inc.signal), 0) + 1
        return {
            "alerts": len(self.alerts),
            "firing": len(firing),
            "resolved": sum(1 for a in self.alerts if a["status"] == "resolved"),
            "opened_incidents": len(opened),
            "sent": len(self.sent),
            "silenced": len(self.alerts) - len(self.sent),
            "withdrawn_by_feedback": len(withdrawn),
            "by_severity": dict(sorted(sev.items())),
            "by_primary_signal": dict(sorted(sig.items())),
            "customers_alerted": len({a["customer_id"] for a in firing}),
        }


@dataclass
class ReplayResult:
    source: dict[str, Any]
    records: int
    invalid: int
    engine: ReplayEngine
    runs: list[EngineRun]
    seconds: float
    dlq_path: Path | None = None
    #: with verdicts and windows: how many, and the effects applied (of the config's engine)
    steering: dict[str, Any] | None = None

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """A tqdm bar in the source's unit (bytes of a file, messages of a topic), or nothing when disabled."""

    def __init__(self, source: Source, enabled: bool, desc: str = "replay"):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            scale = source.unit == "B"
            self.bar = tqdm(
                total=source.total,
                desc=desc,
                unit=source.unit,
                unit_scale=scale,
                unit_divisor=1024 if scale else 1000,
                mininterval=0.5,
                leave=False,
                dynamic_ncols=True,
            )

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_replay(
    source: Source,
    config: DetectorConfig,
    *,
    baseline: DetectorConfig | None = None,
    out_dir: Path | None = None,
    trace: Iterable[str] = (),
    progress: bool = False,
    keep_alerts: bool = True,
    chunk_events: int = CHUNK_EVENTS,
    steering: Steering | None = None,
    correlator: Correlator | None = None,
) -> ReplayResult:
    """One pass over ``source``: every record goes through a :class:`Processor` per configuration.

    Records are decoded as they are read; their valid events go to each configuration's engine
    in batches of ``chunk_events`` (:meth:`~detectors.engine.Engine.process_many`), so alerts
    come out in event order, exactly as one event at a time would give them. Writes
    ``alerts.jsonl`` (and ``baseline_alerts.jsonl``) and ``dlq.jsonl`` into ``out_dir`` when given.

    A source with a ``blocks`` method (:class:`JsonlSource`) is read a block of ``chunk_events``
    lines at a time through :meth:`Processor.decode_values`: the same events and dead letters as
    record by record, with runs of plain lines checked as a whole.

    With ``steering`` (engineers' verdicts and windows) every engine applies them at their times
    as the worker does (:class:`~detectors.steering.SteeredEngine`); rebuilds find the steered
    customers' past in a :class:`~detectors.history.MemoryHistory`.

    With a ``correlator`` (:class:`detectors.correlator.Correlator`, the worker's two stages in
    one process) the configuration's onsets and alerts go through it after every batch, the
    batch's latest event time as the watermark (a source in time order, as files and topics
    are); its parent incidents go to ``incidents.jsonl`` and every alert with its ``parent_id``
    to ``alerts-routed.jsonl``.
    """
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events!r}")
    engine = ReplayEngine(config, trace)
    runs = [EngineRun("config", config)] + ([EngineRun("baseline", baseline)] if baseline is not None else [])
    bar = Progress(source, progress)
    one = _Pass(source, engine, runs, out_dir, keep_alerts, chunk_events, steering)
    one.parents = _Parents(correlator, runs[0], out_dir, one.files, keep_alerts)
    t0 = time.perf_counter()
    try:
        blocks = getattr(source, "blocks", None)
        if blocks is not None:  # lines a block at a time; runs of plain events checked as a whole
            one.read_blocks(blocks(bar, max_lines=chunk_events))
        else:
            one.read_records(source.records(bar))
        one.parents.finish()
        seconds = time.perf_counter() - t0
    finally:
        bar.close()
        one.close()
    return ReplayResult(source.describe(), one.records, one.invalid, engine, runs, seconds,
                        out_dir / "dlq.jsonl" if out_dir is not None else None, one.steering_info())


class _Pass:
    """The state of one :func:`run_replay` pass: a processor per run, their outputs, the counts."""

    def __init__(self, source: Source, engine: ReplayEngine, runs: list[EngineRun], out_dir: Path | None,
                 keep_alerts: bool, chunk_events: int, steering: Steering | None = None):
        self.name = source.name
        self.is_file = not isinstance(source, KafkaSource)
        self.keep_alerts = keep_alerts
        self.chunk_events = chunk_events
        self.records = self.invalid = 0
        self.files: list[Any] = []
        self.dlq_file = None
        self.parents: _Parents | None = None  # the correlator's feed (run_replay sets it)
        engines: list[Any] = [engine] + [Engine(r.config) for r in runs[1:]]
        self.steering = steering
        self.histories: list[MemoryHistory] = []
        if steering is not None:
            keep = steering.fb.max_backdate_s + 7 * 86400.0  # an incident's start, however long it lasted
            self.histories = [MemoryHistory(keep_s=keep) for _ in engines]
            engines = [SteeredEngine(e, steering, h) for e, h in zip(engines, self.histories)]
        self.engines = engines
        self.procs = [Processor(e, dlq_topic="dlq.jsonl") for e in engines]
        self.outs = [Output() for _ in runs]
        writers: list[Any] = [None] * len(runs)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            for i, run in enumerate(runs):
                name = "alerts.jsonl" if run.label == "config" else "baseline_alerts.jsonl"
                run.alerts_path = out_dir / name
                writers[i] = self._open(run.alerts_path).write
            self.dlq_file = self._open(out_dir / "dlq.jsonl")
        self.sinks = [(p.process_events, o, w, run.alerts.append)
                      for p, o, w, run in zip(self.procs, self.outs, writers, runs)]

    def _open(self, path: Path) -> Any:
        f = open(path, "wb", buffering=1 << 16)
        self.files.append(f)
        return f

    def steering_info(self) -> dict[str, Any] | None:
        """With verdicts and windows: how many, and the effects the config's engine applied."""
        st = self.steering
        if st is None:
            return None
        return {"verdicts": len(st.verdicts), "windows": len(st.windows), "customers": len(st.customers),
                "effects": dict(sorted(self.engines[0].applied.items()))}

    def close(self) -> None:
        for f in self.files:
            f.close()

    def run_chunk(self, events: Sequence[Event]) -> None:
        """Decoded once; every configuration's processor sees the same events, as one batch."""
        keep_alerts = self.keep_alerts
        for i, (process, o, w, keep) in enumerate(self.sinks):
            process(events, o)
            if self.histories:
                assert self.steering is not None
                self.histories[i].observe(self.engines[i].engine, events, self.steering.customers)
            for a in o.alerts:
                if w is not None:
                    w(encode_json(a) + b"\n")
                if keep_alerts:
                    keep(compact_alert(a))
            if i == 0 and self.parents is not None:
                self.parents.feed(o, events)
            o.alerts.clear()
            o.onsets.clear()

    def park(self, dlq: list[dict[str, Any]]) -> None:
        for d in dlq:
            self.invalid += 1
            if self.is_file:
                d["line"] = d["offset"]
                d["offset"] = None
                if isinstance(d.get("raw"), str):
                    d["raw"] = d["raw"].rstrip("\r\n")
            if self.dlq_file is not None:
                self.dlq_file.write(encode_json(d) + b"\n")
        dlq.clear()

    def read_blocks(self, blocks: Iterable[tuple[Sequence[Any], Sequence[int | None]]]) -> None:
        """Lines a block at a time through :meth:`Processor.decode_values`."""
        decode_values = self.procs[0].decode_values
        main_out = self.outs[0]
        chunk_events = self.chunk_events
        parts: list[Sequence[Event]] = []
        pending = 0
        for values, lines in blocks:
            self.records += len(values)
            with cyclic_gc_paused():
                for part in decode_values(values, lines, source=self.name, out=main_out):
                    if main_out.dlq:
                        self.park(main_out.dlq)
                    if part:
                        parts.append(part)
                        pending += len(part)
                        if pending >= chunk_events:
                            self._run_parts(parts)
                            pending = 0
                if pending:
                    self._run_parts(parts)
                    pending = 0

    def _run_parts(self, parts: list[Sequence[Event]]) -> None:
        one = len(parts) == 1 and isinstance(parts[0], EventBatch)
        self.run_chunk(parts[0] if one else EventBatch.of(parts))
        parts.clear()

    def read_records(self, records: Iterable[Any]) -> None:
        """Record by record through :meth:`Processor.decode_events`, a chunk of events at a time."""
        decode = self.procs[0].decode_events
        main_out = self.outs[0]
        src_name = self.name
        chunk_events = self.chunk_events
        chunk: list[Event] = []
        recs = iter(records)
        n = self.records
        more = True
        try:
            while more:
                # one chunk at a time, so that the collector runs between chunks (cyclic_gc_paused)
                with cyclic_gc_paused():
                    more = False
                    for value, key, partition, offset in recs:
                        n += 1
                        if isinstance(value, BadRow):  # a CSV row that cannot become an object: park it as is
                            main_out.dlq.append(csv_dlq(value, src_name, offset))
                        else:
                            chunk += decode(value, key=key, source=src_name, partition=partition,
                                            offset=offset, out=main_out)
                        if main_out.dlq:
                            self.park(main_out.dlq)
                        if len(chunk) >= chunk_events or not n % chunk_events:
                            more = True
                            break
                    self.run_chunk(chunk)
                    chunk.clear()
        finally:
            self.records = n


class _Parents:
    """Feeds the main configuration's onsets and alerts to the correlator; writes and keeps its output."""

    def __init__(self, correlator: Correlator | None, run: EngineRun, out_dir: Path | None, files: list,
                 keep: bool):
        self.correlator = correlator
        self.run = run
        self.keep = keep
        self.incidents_file = self.routed_file = None
        if correlator is not None and out_dir is not None:
            self.incidents_file = open(out_dir / "incidents.jsonl", "wb", buffering=1 << 16)
            self.routed_file = open(out_dir / "alerts-routed.jsonl", "wb", buffering=1 << 16)
            files += [self.incidents_file, self.routed_file]

    def feed(self, out: Output, events: Sequence[Event]) -> None:
        if self.correlator is None or not events:
            return
        ts = events.column("ts") if isinstance(events, EventBatch) else [e.ts for e in events]
        self._write(correlate(self.correlator, out.onsets, out.alerts, max(ts)))

    def finish(self) -> None:
        if self.correlator is not None:
            self._write(self.correlator.flush())

    def _write(self, step: CorrelatorOutput) -> None:
        for r in step.incidents:
            if self.incidents_file is not None:
                self.incidents_file.write(encode_json(r) + b"\n")
            if self.keep:
                self.run.incidents.append(r)
        for a in step.alerts:
            if self.routed_file is not None:
                self.routed_file.write(encode_json(a) + b"\n")
            if self.keep:
                self.run.routed.append(dict(compact_alert(a), parent_id=a.get("parent_id")))




def csv_dlq(value: BadRow, source: str, line: int | None) -> dict[str, Any]:
    """The dead-letter record of a CSV row that cannot become an event."""
    return dlq_record(str(value), value.reason, source=source, offset=line)


def trace_customers(
    source: Source, config: DetectorConfig, customers: Iterable[str], progress: bool = False
) -> dict[str, Trace]:
    """A second, cheap pass for customers chosen after the first one (e.g. those with false
    alerts): only records mentioning one of them go through a fresh processor."""
    want = set(customers)
    if not want:
        return {}
    tokens = [json.dumps(c).encode() for c in want]
    engine = ReplayEngine(config, want)
    proc = Processor(engine)
    out = Output()
    bar = Progress(source, progress, desc="trace")
    try:
        for value, key, _partition, _offset in source.records(bar):
            if isinstance(value, BadRow):
                continue
            if key is not None:
                k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
                if k not in want:
                    continue
            else:
                raw = value if isinstance(value, bytes) else str(value).encode()
                if not any(t in raw for t in tokens):
                    continue
            proc.handle(value, out=out)
            out.alerts.clear()
            out.dlq.clear()
    finally:
        bar.close()
    return engine.traces
