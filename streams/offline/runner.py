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
    """
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events!r}")
    engine = ReplayEngine(config, trace)
    engines: list[Any] = [engine] + ([Engine(baseline)] if baseline is not None else [])
    histories: list[MemoryHistory] = []
    if steering is not None:
        keep = steering.fb.max_backdate_s + 7 * 86400.0  # an incident's start, however long it lasted
        histories = [MemoryHistory(keep_s=keep) for _ in engines]
        engines = [SteeredEngine(e, steering, h) for e, h in zip(engines, histories)]
    procs: list[tuple[Processor, EngineRun]] = [
        (Processor(engines[0], dlq_topic="dlq.jsonl"), EngineRun("config", config))
    ]
    if baseline is not None:
        procs.append((Processor(engines[1], dlq_topic="dlq.jsonl"), EngineRun("baseline", baseline)))
    files = []
    writers: list[Any] = []
    dlq_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for _, run in procs:
            run.alerts_path = out_dir / ("alerts.jsonl" if run.label == "config" else "baseline_alerts.jsonl")
            f = open(run.alerts_path, "wb", buffering=1 << 16)
            files.append(f)
            writers.append(f.write)
        dlq_file = open(out_dir / "dlq.jsonl", "wb", buffering=1 << 16)
        files.append(dlq_file)
    else:
        writers = [None] * len(procs)
    is_file = not isinstance(source, KafkaSource)
    src_name = source.name
    bar = Progress(source, progress)
    outs = [Output() for _ in procs]
    records = invalid = 0
    t0 = time.perf_counter()
    try:
        main_proc = procs[0][0]
        main_out = outs[0]
        decode = main_proc.decode_events
        sinks = [(p.process_events, o, w, run.alerts.append) for (p, run), o, w in zip(procs, outs, writers)]
        chunk: list[Event] = []

        def run_chunk(parts: list[Sequence[Event]] | None = None) -> None:
            # decoded once; every configuration's processor sees the same events, as one batch
            events: Sequence[Event] = chunk
            if parts is not None:
                one = len(parts) == 1 and isinstance(parts[0], EventBatch)
                events = parts[0] if one else EventBatch.of(parts)
                parts.clear()
            for i, (process, o, w, keep) in enumerate(sinks):
                process(events, o)
                if histories:
                    assert steering is not None
                    histories[i].observe(engines[i].engine, events, steering.customers)
                for a in o.alerts:
                    if w is not None:
                        w(encode_json(a) + b"\n")
                    if keep_alerts:
                        keep(compact_alert(a))
                o.alerts.clear()
            chunk.clear()

        def park(dlq: list[dict[str, Any]]) -> None:
            nonlocal invalid
            for d in dlq:
                invalid += 1
                if is_file:
                    d["line"] = d["offset"]
                    d["offset"] = None
                    if isinstance(d.get("raw"), str):
                        d["raw"] = d["raw"].rstrip("\r\n")
                if dlq_file is not None:
                    dlq_file.write(encode_json(d) + b"\n")
            dlq.clear()

        blocks = getattr(source, "blocks", None)
        if blocks is not None:  # lines a block at a time; runs of plain events checked as a whole
            decode_values = main_proc.decode_values
            parts: list[Sequence[Event]] = []
            pending = 0
            for values, lines in blocks(bar, max_lines=chunk_events):
                records += len(values)
                with cyclic_gc_paused():
                    for part in decode_values(values, lines, source=src_name, out=main_out):
                        if main_out.dlq:
                            park(main_out.dlq)
                        if part:
                            parts.append(part)
                            pending += len(part)
                            if pending >= chunk_events:
                                run_chunk(parts)
                                pending = 0
                    if pending:
                        run_chunk(parts)
                        pending = 0
            return _result(source, records, invalid, engine, procs, t0, out_dir, steering, engines[0])

        recs = iter(source.records(bar))
        more = True
        while more:
            # one chunk at a time, so that the collector runs between chunks (cyclic_gc_paused)
            with cyclic_gc_paused():
                more = False
                for value, key, partition, offset in recs:
                    records += 1
                    if isinstance(value, BadRow):  # a CSV row that cannot become an object: park it as is
                        main_out.dlq.append(csv_dlq(value, src_name, offset))
                    else:
                        chunk += decode(
                            value, key=key, source=src_name, partition=partition, offset=offset, out=main_out
                        )
                    if main_out.dlq:
                        park(main_out.dlq)
                    if len(chunk) >= chunk_events or not records % chunk_events:
                        more = True
                        break
                run_chunk()
    finally:
        bar.close()
        for f in files:
            f.close()
    return _result(source, records, invalid, engine, procs, t0, out_dir, steering, engines[0])


def _result(source: Source, records: int, invalid: int, engine: ReplayEngine, procs: list, t0: float,
            out_dir: Path | None, steering: Steering | None = None, steered: Any = None) -> ReplayResult:
    info = None
    if steering is not None:
        info = {"verdicts": len(steering.verdicts), "windows": len(steering.windows),
                "customers": len(steering.customers), "effects": dict(sorted(steered.applied.items()))}
    return ReplayResult(
        source.describe(),
        records,
        invalid,
        engine,
        [r for _, r in procs],
        time.perf_counter() - t0,
        out_dir / "dlq.jsonl" if out_dir is not None else None,
        info,
    )


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
