"""``lookout simulate`` without click: simulated traffic with labelled incidents, to a file or Kafka.

:func:`simulate_traffic` takes the command's options (:class:`TrafficOptions`), checks them, writes
the labels first (they are known up front and useful even if the stream is interrupted), then
streams the events of :func:`detectors.synthetic.simulate` to JSON lines
(:func:`streams.offline.simfiles.write_jsonl`) or to a Kafka topic
(:class:`~streams.devtools.producer.EventProducer`), at most ``rate`` events per second.
Every problem is one line: :class:`TrafficError`.

>>> default_labels_path("out/sim.jsonl.gz"), default_labels_path("events.json"), default_labels_path("x")
('out/sim.labels.jsonl', 'events.labels.jsonl', 'x.labels.jsonl')
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from tqdm import tqdm

from detectors.events import InvalidEvent, format_ts, parse_ts
from detectors.synthetic import ALL_KINDS, DEFAULT_START, INCIDENT_KINDS, SimConfig, Simulation, simulate
from streams.kafka.admin import BrokerError, wait_for_kafka
from streams.kafka.security import kafka_python_kwargs
from streams.offline.catalogue_files import write_catalogue
from streams.offline.simfiles import write_jsonl, write_labels
from streams.settings import Settings, SettingsError

from .producer import EventProducer, ProduceError

__all__ = ["TrafficError", "TrafficOptions", "TrafficResult", "default_labels_path", "simulate_traffic"]

#: simulated days when neither ``days`` nor ``duration`` is given (the simulator's default)
DEFAULT_DAYS = SimConfig.duration_s / 86400
#: the throttle checks its pace this many times per second of events
THROTTLE_CHECKS_PER_S = 50


class TrafficError(Exception):
    """The options do not work together, or the events cannot be written; one line for the user."""


@dataclass
class TrafficOptions:
    """What ``lookout simulate`` is asked for (its options, same names; defaults: the simulator's)."""

    customers: int = SimConfig.customers
    days: float | None = None
    duration_s: float | None = None  # instead of ``days``
    interval_s: int = SimConfig.interval_s
    start: str | None = None  # RFC 3339; default :data:`detectors.synthetic.DEFAULT_START`
    end_now: bool = False
    seed: int = SimConfig.seed
    incidents: int | None = SimConfig.incidents
    incident_rate: float = SimConfig.incidents_per_customer_week
    kinds: str | None = None  # comma-separated; default :data:`detectors.synthetic.INCIDENT_KINDS`
    min_size: float = SimConfig.size_min
    max_size: float = SimConfig.size_max
    holidays: bool = SimConfig.holidays
    growth: bool = SimConfig.growth
    level_shifts: bool = SimConfig.level_shifts
    weekly: bool = SimConfig.weekly
    out: str | None = None  # a JSON-lines file, ``-`` = stdout
    bootstrap: str | None = None  # ... or this Kafka
    topic: str = Settings.input_topic  # the worker's default input topic
    labels_out: str | None = None  # default with ``out``: <out>.labels.jsonl
    rate: float | None = None
    batch: int | None = None  # envelopes of up to this many events (Kafka only)
    shared_causes: int = 0  # provider/region outages across customers (labels carry cause and scope)
    customers_out: str | None = None  # the catalogue; default with ``out``: <out>.customers.jsonl
    kafka: Mapping[str, Any] = field(default_factory=dict)  # --kafka-* Settings overrides


@dataclass
class TrafficResult:
    """What was simulated and where it went."""

    sim: Simulation
    options: TrafficOptions
    where: str
    labels_path: str | None
    customers_path: str | None = None
    seconds: float = 0.0
    sent: int = 0
    interrupted: bool = False

    def labels_text(self) -> str:
        text = (f"labels -> {self.labels_path}" if self.labels_path
                else "labels not written (use --labels-out FILE)")
        if self.customers_path:
            text += f"; customers -> {self.customers_path}"
        return text

    def interruption(self) -> str:
        """The one line of an interrupted run: how far it got."""
        return (f"interrupted after {self.sent:,} of {self.sim.n_events:,} events ({self.where}); "
                f"{self.labels_text()}")

    def to_json(self) -> dict[str, Any]:
        sim, o = self.sim, self.options
        return {
            "events": sim.n_events,
            "customers": o.customers,
            "intervals": sim.n_intervals,
            "interval_s": o.interval_s,
            "start": format_ts(sim.start),
            "end": format_ts(sim.end),
            "incidents": len(sim.incidents),
            "incidents_by_kind": dict(sorted(sim.incidents_by_kind().items())),
            "level_shifts": len(sim.level_shifts),
            "out": o.out,
            "bootstrap": o.bootstrap,
            "topic": o.topic if o.bootstrap else None,
            "labels": self.labels_path,
            "customers_file": self.customers_path,
            "shared_causes": [c.to_json() for c in sim.shared_causes],
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        sim, o = self.sim, self.options
        by_kind = sim.incidents_by_kind()
        kinds = ", ".join(f"{k} {by_kind[k]}" for k in sorted(by_kind)) or "none"
        placed = len(sim.incidents)
        short = (f" (asked for {sim.requested_incidents}; the window after warm-up is too short for more)"
                 if o.incidents is not None and placed < o.incidents else "")
        speed = sim.n_events / self.seconds if self.seconds > 0 else 0
        if sim.shared_causes:
            kinds += f"; {len(sim.shared_causes)} shared causes touching " + ", ".join(
                str(len(c.customers)) for c in sim.shared_causes) + " customers"
        return (f"{sim.n_events:,} events ({o.customers} customers x {sim.n_intervals} intervals of "
                f"{o.interval_s} s, {format_ts(sim.start)} .. {format_ts(sim.end)}), {placed} incidents "
                f"({kinds}){short}, {len(sim.level_shifts)} unlabelled level shifts -> {self.where}; "
                f"{self.labels_text()}; {self.seconds:.1f} s ({speed:,.0f} events/s)")


def default_labels_path(out: str) -> str:
    """``sim.jsonl.gz`` -> ``sim.labels.jsonl`` (next to the events file)."""
    base = out[:-3] if out.endswith(".gz") else out
    for ext in (".jsonl", ".json", ".ndjson"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base + ".labels.jsonl"


class _Throttle:
    """Keep the average rate at or below ``rate`` events/s (checked every few events)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.step = max(1, int(rate / THROTTLE_CHECKS_PER_S))
        self.clock = clock
        self.t0 = clock()

    def tick(self, n: int) -> None:
        if n % self.step == 0:
            ahead = self.t0 + n / self.rate - self.clock()
            if ahead > 0:
                time.sleep(ahead)


def check(o: TrafficOptions) -> None:
    """The options that cannot work together, in one line each (:class:`TrafficError`)."""
    if o.days is not None and o.duration_s is not None:
        raise TrafficError("give either --days or --duration, not both")
    duration_s = _duration_s(o)
    if not math.isfinite(duration_s) or duration_s < o.interval_s:
        raise TrafficError(f"the duration ({duration_s:g} s) must be at least one interval "
                           f"({o.interval_s} s)")
    if o.start is not None and o.end_now:
        raise TrafficError("give either --start or --end-now, not both")
    if (o.out is None) == (o.bootstrap is None):
        raise TrafficError("give exactly one of --out FILE or --bootstrap HOST:PORT")
    if o.batch is not None and o.bootstrap is None:
        raise TrafficError("--batch needs --bootstrap (envelopes are per Kafka partition)")


def _duration_s(o: TrafficOptions) -> float:
    return o.duration_s if o.duration_s is not None else (DEFAULT_DAYS if o.days is None else o.days) * 86400


def sim_config(o: TrafficOptions, now: float) -> SimConfig:
    """The simulator's configuration for ``o`` (``now``: the wall clock, for ``end_now``)."""
    duration_s = _duration_s(o)
    if o.end_now:
        end = math.floor(now / o.interval_s) * o.interval_s
        start = float(end - int(duration_s // o.interval_s) * o.interval_s)
    elif o.start is None:
        start = DEFAULT_START
    else:
        try:
            start = parse_ts(o.start)
        except InvalidEvent as exc:
            raise TrafficError(f"--start: {str(exc).replace('ts ', '', 1)}") from None
    kinds = INCIDENT_KINDS if o.kinds is None else tuple(k.strip() for k in o.kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad:
        raise TrafficError(f"unknown incident kind(s) {', '.join(bad)}; choose from {', '.join(ALL_KINDS)}")
    if o.min_size > o.max_size:
        raise TrafficError("--min-size must not exceed --max-size")
    try:
        return SimConfig(customers=o.customers, start=start, duration_s=duration_s, interval_s=o.interval_s,
                         seed=o.seed, incidents_per_customer_week=o.incident_rate, incidents=o.incidents,
                         kinds=kinds, size_min=o.min_size, size_max=o.max_size, holidays=o.holidays,
                         growth=o.growth, level_shifts=o.level_shifts, weekly=o.weekly,
                         shared_causes=o.shared_causes)
    except ValueError as exc:
        raise TrafficError(str(exc)) from None


def kafka_security(o: TrafficOptions) -> dict[str, Any]:
    """kafka-python's TLS/SASL arguments for ``o.bootstrap``, once the broker answers and accepts them."""
    try:
        settings = Settings.from_env(bootstrap=o.bootstrap, **o.kafka)
        security = kafka_python_kwargs(settings)
        wait_for_kafka(settings.bootstrap, timeout=settings.kafka_timeout_s, security=security)
    except (SettingsError, BrokerError) as exc:
        raise TrafficError(str(exc)) from None
    return security


def _write_beside(write: Callable[[str], Any], what: str, path: str) -> None:
    """``write(path)`` (labels, the catalogue) after making its directory; one line if it fails."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as exc:
        raise TrafficError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None


def _to_file(events: Iterator[dict[str, Any]], out: str) -> None:
    if out != "-":
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrafficError(f"cannot create the directory for {out}: {exc.strerror or exc}") from None
    try:
        write_jsonl(events, out)
    except OSError as exc:
        raise TrafficError(f"cannot write {out}: {exc.strerror or exc}") from None


def _to_kafka(events: Iterator[dict[str, Any]], o: TrafficOptions, security: Mapping[str, Any]) -> None:
    assert o.bootstrap is not None
    try:
        with EventProducer(o.bootstrap, o.topic, security, envelope=o.batch) as producer:
            producer.send_all(events)
    except ProduceError as exc:
        raise TrafficError(str(exc)) from None


def simulate_traffic(o: TrafficOptions, *, progress: bool = False,
                     now: Callable[[], float] = time.time) -> TrafficResult:
    """Simulate what ``o`` asks for and write it: labels, then the events (see the module docstring).

    A Ctrl-C while streaming ends the run early: the result says ``interrupted`` and how many
    events were sent.
    """
    check(o)
    cfg = sim_config(o, now())
    security = kafka_security(o) if o.bootstrap is not None else {}
    labels_path = o.labels_out
    if labels_path is None and o.out is not None and o.out != "-":
        labels_path = default_labels_path(o.out)
    customers_path = o.customers_out
    if customers_path is None and o.out is not None and o.out != "-":
        customers_path = default_labels_path(o.out).replace(".labels.jsonl", ".customers.jsonl")
    sim = simulate(cfg)
    if labels_path is not None:
        _write_beside(lambda p: write_labels(sim.incidents, p), "labels", labels_path)
    if customers_path is not None:
        _write_beside(lambda p: write_catalogue(sim.catalogue, p), "the customer catalogue", customers_path)
    kafka = f"kafka {o.bootstrap} topic {o.topic}"
    res = TrafficResult(sim, o, kafka if o.out is None else "stdout" if o.out == "-" else o.out, labels_path,
                        customers_path)
    bar = tqdm(total=sim.n_events, unit="ev", unit_scale=True, file=sys.stderr, disable=not progress,
               mininterval=0.5, dynamic_ncols=True, desc="simulate")
    throttle = _Throttle(o.rate) if o.rate else None

    def stream() -> Iterator[dict[str, Any]]:
        for _ts, batch in sim.intervals():
            if throttle is None:
                yield from batch
                res.sent += len(batch)
            else:
                for ev in batch:
                    yield ev
                    res.sent += 1
                    throttle.tick(res.sent)
            bar.update(len(batch))

    t0 = time.monotonic()
    try:
        if o.out is not None:
            _to_file(stream(), o.out)
        else:
            _to_kafka(stream(), o, security)
    except KeyboardInterrupt:
        res.interrupted = True
        res.where = o.out or kafka
    finally:
        bar.close()
    res.seconds = time.monotonic() - t0
    return res
