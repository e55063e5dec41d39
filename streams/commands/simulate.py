"""``lookout simulate``: realistic synthetic traffic with labelled incidents, to a file or Kafka."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import click

from ._common import aliased, deprecated_alias, parse_duration, require_kafka
from .kafka_options import kafka_security_options, pop_security

DEFAULT_START = "2026-01-05T00:00:00Z"  # a Monday, so weekly patterns line up run to run
def default_labels_path(out: str) -> str:
    """``sim.jsonl.gz`` -> ``sim.labels.jsonl`` (next to the events file).

    >>> default_labels_path("out/sim.jsonl.gz"), default_labels_path("events.json"), default_labels_path("x")
    ('out/sim.labels.jsonl', 'events.labels.jsonl', 'x.labels.jsonl')
    """
    base = out[:-3] if out.endswith(".gz") else out
    for ext in (".jsonl", ".json", ".ndjson"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base + ".labels.jsonl"


class _Throttle:
    """Keep the average rate at or below ``rate`` events/s (checked every few events)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.step = max(1, int(rate / 50))
        self.t0 = time.monotonic()

    def tick(self, n: int) -> None:
        if n % self.step == 0:
            ahead = self.t0 + n / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def _fail(msg: str) -> None:
    raise click.ClickException(msg)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--customers", default=20, show_default=True, type=click.IntRange(min=1), help="Number of customers."
)
@click.option("--days", type=float, help="Simulated time span in days (default 14).")
@click.option("--duration", help="Simulated time span, e.g. 2d, 6h, 1d12h (instead of --days).")
@click.option(
    "--interval",
    "interval_s",
    default=300,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds per event interval.",
)
@click.option("--start", help=f"First interval start, RFC 3339 [default: {DEFAULT_START}, a Monday].")
@click.option(
    "--end-now", is_flag=True, help="End at the current time (rounded down to the interval) instead."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Same seed and options -> identical events and incidents.",
)
@click.option("--incidents", type=click.IntRange(min=0), help="Total incidents to inject (kinds balanced).")
@click.option(
    "--incident-rate",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Incidents per customer per week (used when --incidents is not given).",
)
@click.option("--kinds", help="Comma-separated incident kinds [default: all except error_creep].")
@click.option(
    "--min-size",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Smallest customer: peak requests per minute.",
)
@click.option(
    "--max-size",
    default=2_000_000.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest customer: peak requests per minute.",
)
@click.option(
    "--holidays/--no-holidays", default=True, show_default=True, help="Regional holidays (-20..-40%)."
)
@click.option(
    "--growth/--no-growth", default=True, show_default=True, help="Slow per-customer growth/decline."
)
@click.option(
    "--level-shifts/--no-level-shifts",
    default=True,
    show_default=True,
    help="Some customers permanently move traffic up/down (not labelled).",
)
@click.option(
    "--weekly/--no-weekly", default=True, show_default=True, help="Weekend traffic differs from weekdays."
)
@click.option("--out", "out", metavar="FILE", help="Write JSON lines here (.gz = gzip, - = stdout).")
@click.option(
    "--bootstrap",
    "bootstrap",
    metavar="HOST:PORT",
    help="Produce to the Kafka at HOST:PORT instead, e.g. 127.0.0.1:9092.",
)
@deprecated_alias("--kafka", "--bootstrap", metavar="HOST:PORT")
@click.option("--topic", default="request-metrics", show_default=True, help="Kafka topic (with --bootstrap).")
@click.option(
    "--labels-out",
    "labels_path",
    metavar="FILE",
    help="Write the injected incidents (JSON lines) here [default with --out: <out>.labels.jsonl].",
)
@deprecated_alias("--labels", "--labels-out", metavar="FILE")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="EVENTS_PER_S",
    help="Throttle output to this many events per second (live demos). Default: as fast as possible.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1, max=5000),
    metavar="N",
    help='With --bootstrap: send envelopes {"events": [...]} of up to N events of one partition '
    "(murmur2 of the customer id, as Kafka's default partitioner), flushed every interval, "
    "like an aggregation tier. Default: one event per message.",
)
@click.option("--shared-causes", "shared_causes", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N", help="Also inject N shared causes: a provider or region outage touching 5-100 %% "
              "of its customers (uneven onset), with unrelated single-customer incidents during each; "
              "their customers' labels carry the cause id and scope.")
@click.option("--customers-out", "customers_path", metavar="FILE",
              help="Write the customer catalogue (plan, origin provider/region/ASN, account team; JSON "
              "lines) here [default with --out: <out>.customers.jsonl] (then: lookout customers load FILE).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (events, incidents, where) as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@kafka_security_options
def simulate(
    customers,
    days,
    duration,
    interval_s,
    start,
    end_now,
    seed,
    incidents,
    incident_rate,
    kinds,
    min_size,
    max_size,
    holidays,
    growth,
    level_shifts,
    weekly,
    out,
    bootstrap,
    topic,
    labels_path,
    rate,
    batch,
    shared_causes,
    customers_path,
    as_json,
    quiet,
    **kafka,
):
    """Generate realistic CDN request metrics with labelled incidents.

    One event per customer per interval, in timestamp order. Customer sizes span tens to
    millions of requests per minute; traffic has daily seasonality in each customer's time
    zone, weekends, holidays, growth and noise. Incidents (origin outages, 5xx bursts,
    latency, traffic drops and surges, cache collapse; error_creep on request) are injected
    after a warm-up (7 days when the run is long enough, else 2) and written as labels.
    Some customers also get an unlabelled permanent level shift (a realistic false-alarm trap).

    \b
    Examples:
      lookout simulate --customers 50 --days 14 --out sim.jsonl.gz
          (labels go to sim.labels.jsonl)
      lookout simulate --customers 200 --duration 10d --incidents 40 --seed 3 --out out/events.jsonl
      lookout simulate --kinds origin_outage,error_creep --incidents 6 --out sim.jsonl
      lookout simulate --bootstrap 127.0.0.1:9092 --customers 50 --days 3 --incidents 6 \\
          --labels-out labels.jsonl
      lookout simulate --bootstrap 127.0.0.1:9092 --end-now --days 2 --rate 500   # paced live stream
      lookout simulate --bootstrap 127.0.0.1:9092 --customers 5000 --days 1 --batch 500   # envelopes
      lookout simulate --customers 2000 --days 14 --shared-causes 10 --out sim.jsonl.gz
          (+ sim.customers.jsonl: replay --customers it, or lookout customers load it)
    """
    bootstrap = aliased("--bootstrap", bootstrap)
    labels_path = aliased("--labels-out", labels_path)
    from detectors.events import InvalidEvent, format_ts, parse_ts
    from detectors.synthetic import ALL_KINDS, INCIDENT_KINDS, SimConfig
    from detectors.synthetic import simulate as make_simulation
    from streams.offline.simfiles import write_labels

    # ---- validate options (one-line errors, exit 1)
    if days is not None and duration is not None:
        _fail("give either --days or --duration, not both")
    if duration is not None:
        try:
            duration_s = parse_duration(duration)
        except ValueError as exc:
            _fail(str(exc))
    else:
        duration_s = (14.0 if days is None else days) * 86400
    if not math.isfinite(duration_s) or duration_s < interval_s:
        _fail(f"the duration ({duration_s:g} s) must be at least one interval ({interval_s} s)")
    if start is not None and end_now:
        _fail("give either --start or --end-now, not both")
    if (out is None) == (bootstrap is None):
        _fail("give exactly one of --out FILE or --bootstrap HOST:PORT")
    if batch is not None and bootstrap is None:
        _fail("--batch needs --bootstrap (envelopes are per Kafka partition)")
    if as_json and out == "-":
        _fail("--json prints to stdout, which --out - already fills with events; write the events to a file")
    n_intervals = int(duration_s // interval_s)
    if end_now:
        end = math.floor(time.time() / interval_s) * interval_s
        start_s = float(end - n_intervals * interval_s)
    else:
        try:
            start_s = parse_ts(start or DEFAULT_START)
        except InvalidEvent as exc:
            _fail(f"--start: {str(exc).replace('ts ', '', 1)}")
    kind_list = INCIDENT_KINDS if kinds is None else tuple(k.strip() for k in kinds.split(",") if k.strip())
    bad = [k for k in kind_list if k not in ALL_KINDS]
    if bad:
        _fail(f"unknown incident kind(s) {', '.join(bad)}; choose from {', '.join(ALL_KINDS)}")
    if min_size > max_size:
        _fail("--min-size must not exceed --max-size")
    security: dict[str, Any] = {}
    if bootstrap is not None:
        from streams.kafka.security import kafka_python_kwargs

        from ..settings import Settings, SettingsError

        try:
            settings = Settings.from_env(bootstrap=bootstrap, **pop_security(kafka))
            security = kafka_python_kwargs(settings)
        except SettingsError as exc:
            _fail(str(exc))
        require_kafka(settings)  # unreachable, or rejecting the TLS/SASL settings: one line now
    if labels_path is None and out is not None and out != "-":
        labels_path = default_labels_path(out)
    if customers_path is None and out is not None and out != "-":
        customers_path = default_labels_path(out).replace(".labels.jsonl", ".customers.jsonl")
    try:
        cfg = SimConfig(
            customers=customers,
            start=start_s,
            duration_s=duration_s,
            interval_s=interval_s,
            seed=seed,
            incidents_per_customer_week=incident_rate,
            incidents=incidents,
            kinds=kind_list,
            size_min=min_size,
            size_max=max_size,
            holidays=holidays,
            growth=growth,
            level_shifts=level_shifts,
            weekly=weekly,
            shared_causes=shared_causes,
        )
    except ValueError as exc:
        _fail(str(exc))
    sim = make_simulation(cfg)

    # ---- labels first: they are known up front and useful even if the stream is interrupted
    if labels_path is not None:
        try:
            Path(labels_path).parent.mkdir(parents=True, exist_ok=True)
            write_labels(sim.incidents, labels_path)
        except OSError as exc:
            _fail(f"cannot write labels to {labels_path}: {exc.strerror or exc}")
    if customers_path is not None:
        from streams.offline.catalogue_files import write_catalogue

        try:
            Path(customers_path).parent.mkdir(parents=True, exist_ok=True)
            write_catalogue(sim.catalogue, customers_path)
        except OSError as exc:
            _fail(f"cannot write the customer catalogue to {customers_path}: {exc.strerror or exc}")

    # ---- stream
    from tqdm import tqdm

    status = sys.stderr if out == "-" else sys.stdout
    bar = tqdm(
        total=sim.n_events,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=quiet,
        mininterval=0.5,
        dynamic_ncols=True,
        desc="simulate",
    )
    throttle = _Throttle(rate) if rate else None
    t0 = time.monotonic()

    sent = [0]  # events handed to the sink so far (for the interruption message)

    def stream() -> Iterator[dict[str, Any]]:
        for _ts, batch in sim.intervals():
            if throttle is None:
                yield from batch
                sent[0] += len(batch)
            else:
                for ev in batch:
                    yield ev
                    sent[0] += 1
                    throttle.tick(sent[0])
            bar.update(len(batch))

    interrupted = False
    try:
        if out is not None:
            _to_file(stream(), out)
            where = "stdout" if out == "-" else out
        else:
            _to_kafka(stream(), bootstrap, topic, security, batch)
            where = f"kafka {bootstrap} topic {topic}"
    except KeyboardInterrupt:
        interrupted = True
        where = out or f"kafka {bootstrap} topic {topic}"
    finally:
        bar.close()
    secs = time.monotonic() - t0

    by_kind = sim.incidents_by_kind()
    kinds_txt = ", ".join(f"{k} {by_kind[k]}" for k in sorted(by_kind)) or "none"
    placed = len(sim.incidents)
    short = (
        f" (asked for {sim.requested_incidents}; the window after warm-up is too short for more)"
        if incidents is not None and placed < incidents
        else ""
    )
    labels_txt = f"labels -> {labels_path}" if labels_path else "labels not written (use --labels-out FILE)"
    if customers_path:
        labels_txt += f"; customers -> {customers_path}"
    if sim.shared_causes:
        kinds_txt += f"; {len(sim.shared_causes)} shared causes touching " + ", ".join(
            str(len(c.customers)) for c in sim.shared_causes) + " customers"
    if interrupted:
        _fail(f"interrupted after {sent[0]:,} of {sim.n_events:,} events ({where}); {labels_txt}")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "events": sim.n_events,
                    "customers": customers,
                    "intervals": sim.n_intervals,
                    "interval_s": interval_s,
                    "start": format_ts(sim.start),
                    "end": format_ts(sim.end),
                    "incidents": placed,
                    "incidents_by_kind": dict(sorted(by_kind.items())),
                    "level_shifts": len(sim.level_shifts),
                    "out": out,
                    "bootstrap": bootstrap,
                    "topic": topic if bootstrap else None,
                    "labels": labels_path,
                    "customers_file": customers_path,
                    "shared_causes": [c.to_json() for c in sim.shared_causes],
                    "seconds": round(secs, 3),
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"{sim.n_events:,} events ({customers} customers x {sim.n_intervals} intervals of {interval_s} s, "
        f"{format_ts(sim.start)} .. {format_ts(sim.end)}), {placed} incidents ({kinds_txt}){short}, "
        f"{len(sim.level_shifts)} unlabelled level shifts -> {where}; {labels_txt}; "
        f"{secs:.1f} s ({sim.n_events / secs if secs > 0 else 0:,.0f} events/s)",
        file=status,
    )


def _to_file(events: Iterator[dict[str, Any]], out: str) -> int:
    from streams.offline.simfiles import write_jsonl

    if out != "-":
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(f"cannot create the directory for {out}: {exc.strerror or exc}")
    try:
        return write_jsonl(events, out)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    return 0  # unreachable


def _to_kafka(
    events: Iterator[dict[str, Any]],
    bootstrap: str,
    topic: str,
    security: dict[str, Any] | None = None,
    batch: int | None = None,
) -> int:
    try:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError
    except ImportError as exc:  # pragma: no cover
        _fail(f"kafka-python is required for --bootstrap: {exc}")
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks=1,
            linger_ms=20,
            batch_size=512 * 1024,
            **(security or {}),
            compression_type=None,
            max_block_ms=30_000,
            request_timeout_ms=30_000,
            retries=5,
        )
    except KafkaError as exc:
        _fail(f"cannot reach Kafka at {bootstrap}: {exc}")
    failures: list[BaseException] = []

    def on_error(exc: BaseException) -> None:
        if not failures:
            failures.append(exc)

    encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
    n = 0
    try:
        if batch is None:
            for ev in events:
                producer.send(topic, key=ev["customer_id"].encode(), value=encode(ev).encode()).add_errback(
                    on_error
                )
                n += 1
                if failures:
                    break
        else:
            n = _send_envelopes(producer, events, topic, batch, encode, on_error, failures)
        producer.flush(timeout=60)
    except KafkaError as exc:
        _fail(f"producing to {topic} at {bootstrap} failed after {n:,} events: {exc}")
    finally:
        try:
            producer.close(timeout=10)
        except Exception:  # noqa: BLE001 -- closing is best effort
            pass
    if failures:
        _fail(f"producing to {topic} at {bootstrap} failed: {failures[0]}")
    return n


def _send_envelopes(
    producer: Any,
    events: Iterator[dict[str, Any]],
    topic: str,
    batch: int,
    encode: Any,
    on_error: Any,
    failures: list,
) -> int:
    """Envelopes of up to ``batch`` events per partition, flushed when full and at every new interval."""
    from streams.pipeline.codecs import ENVELOPE_KEY, partition_of

    partitions = producer.partitions_for(topic)
    if not partitions:
        _fail(f"topic {topic} has no partitions (does it exist?)")
    count = len(partitions)
    pending: dict[int, list[dict[str, Any]]] = {}
    n = 0

    def flush(p: int) -> None:
        evs = pending.pop(p)
        producer.send(topic, value=encode({ENVELOPE_KEY: evs}).encode(), partition=p).add_errback(on_error)

    last_ts = None
    for ev in events:
        if ev["ts"] != last_ts:  # events come in interval order: the tier flushes every interval
            for p in list(pending):
                flush(p)
            last_ts = ev["ts"]
        p = partition_of(ev["customer_id"], count)
        buf = pending.setdefault(p, [])
        buf.append(ev)
        n += 1
        if len(buf) >= batch:
            flush(p)
        if failures:
            return n
    for p in list(pending):
        flush(p)
    return n


if __name__ == "__main__":
    simulate()
