"""``lookout simulate``: realistic synthetic traffic with labelled incidents, to a file or Kafka."""
from __future__ import annotations

import json
import sys

import click

from detectors.events import format_ts
from detectors.synthetic import DEFAULT_START

from ..devtools.traffic import DEFAULT_DAYS, TrafficError, TrafficOptions, simulate_traffic
from ..pipeline.codecs import MAX_ENVELOPE_EVENTS
from ._common import CONTEXT, aliased, deprecated_alias, parse_duration
from .kafka_options import kafka_security_options, pop_security

#: the options' defaults are the library's
DEFAULTS = TrafficOptions()


@click.command(context_settings=CONTEXT)
@click.option(
    "--customers", default=DEFAULTS.customers, show_default=True, type=click.IntRange(min=1),
    help="Number of customers."
)
@click.option("--days", type=float, help=f"Simulated time span in days (default {DEFAULT_DAYS:g}).")
@click.option("--duration", help="Simulated time span, e.g. 2d, 6h, 1d12h (instead of --days).")
@click.option(
    "--interval",
    "interval_s",
    default=DEFAULTS.interval_s,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds per event interval.",
)
@click.option("--start", help=f"First interval start, RFC 3339 [default: {format_ts(DEFAULT_START)}, "
                               "a Monday].")
@click.option(
    "--end-now", is_flag=True, help="End at the current time (rounded down to the interval) instead."
)
@click.option(
    "--seed",
    default=DEFAULTS.seed,
    show_default=True,
    type=click.IntRange(min=0),
    help="Same seed and options -> identical events and incidents.",
)
@click.option("--incidents", type=click.IntRange(min=0), help="Total incidents to inject (kinds balanced).")
@click.option(
    "--incident-rate",
    default=DEFAULTS.incident_rate,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Incidents per customer per week (used when --incidents is not given).",
)
@click.option("--kinds", help="Comma-separated incident kinds [default: all except error_creep].")
@click.option(
    "--min-size",
    default=DEFAULTS.min_size,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Smallest customer: peak requests per minute.",
)
@click.option(
    "--max-size",
    default=DEFAULTS.max_size,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest customer: peak requests per minute.",
)
@click.option(
    "--holidays/--no-holidays", default=DEFAULTS.holidays, show_default=True,
    help="Regional holidays (-20..-40%)."
)
@click.option(
    "--growth/--no-growth", default=DEFAULTS.growth, show_default=True,
    help="Slow per-customer growth/decline."
)
@click.option(
    "--level-shifts/--no-level-shifts",
    default=DEFAULTS.level_shifts,
    show_default=True,
    help="Some customers permanently move traffic up/down (not labelled).",
)
@click.option(
    "--weekly/--no-weekly", default=DEFAULTS.weekly, show_default=True,
    help="Weekend traffic differs from weekdays."
)
@click.option("--out", metavar="FILE", help="Write JSON lines here (.gz = gzip, - = stdout).")
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Produce to the Kafka at HOST:PORT instead, e.g. 127.0.0.1:9092.",
)
@deprecated_alias("--kafka", "--bootstrap", metavar="HOST:PORT")
@click.option("--topic", default=DEFAULTS.topic, show_default=True, help="Kafka topic (with --bootstrap).")
@click.option(
    "--labels-out",
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
    type=click.IntRange(min=1, max=MAX_ENVELOPE_EVENTS),
    metavar="N",
    help='With --bootstrap: send envelopes {"events": [...]} of up to N events of one partition '
    "(murmur2 of the customer id, as Kafka's default partitioner), flushed every interval, "
    "like an aggregation tier. Default: one event per message.",
)
@click.option("--shared-causes", "shared_causes", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N", help="Also inject N shared causes: a provider or region outage touching 5-100 %% "
              "of its customers (uneven onset), with unrelated single-customer incidents during each; "
              "their customers' labels carry the cause id and scope.")
@click.option("--customers-out", "customers_out", metavar="FILE",
              help="Write the customer catalogue (plan, origin provider/region/ASN, account team; JSON "
              "lines) here [default with --out: <out>.customers.jsonl] (then: lookout customers load FILE).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (events, incidents, where) as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@kafka_security_options
def simulate(duration, as_json, quiet, **opts):
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
    opts.update(bootstrap=aliased("--bootstrap", opts["bootstrap"]),
                labels_out=aliased("--labels-out", opts["labels_out"]), kafka=pop_security(opts))
    if duration is not None:
        try:
            opts["duration_s"] = parse_duration(duration)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json and opts["out"] == "-":
        raise click.ClickException(
            "--json prints to stdout, which --out - already fills with events; write the events to a file")
    try:
        res = simulate_traffic(TrafficOptions(**opts), progress=not quiet)
    except TrafficError as exc:
        raise click.ClickException(str(exc)) from None
    if res.interrupted:
        raise click.ClickException(res.interruption())
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
    else:
        click.echo(res.text(), file=sys.stderr if opts["out"] == "-" else sys.stdout)


if __name__ == "__main__":
    simulate()
