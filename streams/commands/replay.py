"""``lookout replay``: run the live detection code path over history ("would it have fired?")."""
from __future__ import annotations

import json
from pathlib import Path

import click

from detectors.evaluation import GRACE_INTERVALS

from ..offline.jobs import JOB_ERRORS, REPLAY_PLOTS, replay_job
from ..offline.source_spec import SourceSpec
from ..offline.summary import format_outcome, problem
from ._common import CONTEXT, load_catalogue, load_detector_config, load_labels, load_steering
from .source_options import source_options


@click.command(context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Detector config (YAML/TOML/JSON, the format the worker reads). Default: built-in defaults.",
)
@click.option("--baseline", "baseline_path", metavar="FILE",
              help="A second config to compare against: alerts gained/lost/changed (diff.json) in one pass.")
@click.option(
    "--labels",
    "labels_path",
    metavar="FILE",
    help="Known incidents (JSON lines or CSV customer_id,start,end[,kind]): adds recall, precision, "
    "time to detect, false alerts per customer-week.",
)
@click.option("--customers", "customers_path", metavar="FILE",
              help="Customer catalogue (JSON lines or CSV: customer_id plus attributes): also run the "
              "correlator, which finds parent incidents across customers (incidents.jsonl, "
              "alerts-routed.jsonl; with --labels of shared causes: parent recall, localisation, time "
              "to parent, notifications, false parents).")
@click.option("--out", "out_dir", default="replay-out", show_default=True, metavar="DIR",
              help="Output directory (created).")
@click.option("--trace", "trace", multiple=True, metavar="CUSTOMER",
              help="Also plot this customer in the report (repeatable).")
@click.option("--max-plots", default=REPLAY_PLOTS, show_default=True, type=click.IntRange(min=0),
              help="At most this many customers plotted (labelled first, then false alerts).")
@click.option("--grace", default=GRACE_INTERVALS, show_default=True, type=click.FloatRange(min=0),
              help="An alert up to this many intervals after a labelled incident's end still detects it.")
@click.option("--save-state", "save_state", metavar="FILE",
              help="Write the learned detector state after the replay (start a worker from it with "
                   "`lookout worker --initial-state FILE`).")
@click.option("--feedback", "feedback_path", metavar="FILE",
              help="Engineers' verdicts (JSON lines as on the feedback topic, e.g. `lookout feedback --json` "
              "output), applied at their times as the worker would.")
@click.option("--silences", "silences_path", metavar="FILE",
              help="Maintenance windows (JSON lines as on the silences topic, `lookout silence list --json`, "
              "or Alertmanager silences), applied likewise.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (metrics) as JSON on stdout.")
@click.option("--no-report", is_flag=True, help="Skip report.html and the plots (faster).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no terminal summary.")
@source_options
def replay(source: SourceSpec, config_path, baseline_path, labels_path, customers_path, out_dir, trace,
           max_plots, grace, save_state, feedback_path, silences_path, as_json, no_report, quiet):
    """Replay history through the detectors: which alerts would have fired?

    SOURCE is a JSON-lines file (gzip ok), a CSV file, or a Kafka topic time range
    kafka://TOPIC?from=TIME&to=TIME&bootstrap=HOST:PORT (TIME = RFC 3339 or epoch seconds of
    the Kafka message timestamps; both optional; timeout=SECONDS, default 10 or
    LOOKOUT_KAFKA_TIMEOUT_S). Kafka is read without a consumer group and never commits, so the
    live worker is not disturbed.

    Every record goes through the same Processor and Engine as the live worker, so the alerts
    in DIR/alerts.jsonl are exactly what the `alerts` topic would have carried (same ids).
    Bad records go to DIR/dlq.jsonl with their line number and reason; nothing is dropped.
    The source is streamed: memory grows with the number of customers, not the file length.

    \b
    Writes into --out DIR:
      alerts.jsonl      the alerts (schema of the alerts topic)
      dlq.jsonl         rejected records: line (or partition/offset), reason, raw text
      summary.json      counts, speed and -- with --labels -- recall, precision, time to
                        detect, false alerts per customer-week, by incident kind and size decile
      diff.json         with --baseline: incidents gained, lost, changed; metric deltas
      incidents.jsonl   with --customers: the parent incidents (lookout.incident/v1 updates)
      alerts-routed.jsonl  with --customers: every alert with its parent_id (null: pages alone)
      report.html       plots of chosen customers (plus plots/*.png); opens offline
    and with --save-state FILE the learned state (data, not code) for `lookout worker --initial-state`.

    \b
    Examples:
      lookout simulate --customers 50 --days 14 --out sim.jsonl.gz
      lookout replay sim.jsonl.gz --labels sim.labels.jsonl --out out/
      lookout replay sim.jsonl.gz --labels sim.labels.jsonl --config new.yaml --baseline old.yaml
      lookout replay export.csv --map requests=req_count,ts=time,customer_id=account --out out/
      lookout replay 'kafka://request-metrics?from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&bootstrap=127.0.0.1:9092'
      lookout replay sim.jsonl --json --no-report -q | jq .evaluation.recall
      lookout replay last-month.jsonl.gz --no-report --save-state state.lookout
      lookout simulate --customers 2000 --days 14 --shared-causes 10 --out sim.jsonl.gz
      lookout replay sim.jsonl.gz --customers sim.customers.jsonl --labels sim.labels.jsonl --out out/
      lookout replay last-week.jsonl.gz --feedback feedback.jsonl --silences silences.jsonl --out steered/

    With --feedback/--silences the summary separates the alerts sent, those silenced by windows
    (still in alerts.jsonl, with silenced_by) and the incidents withdrawn by a verdict; the
    evaluation counts what was sent.
    """
    config = load_detector_config(config_path)
    baseline = load_detector_config(baseline_path, "baseline") if baseline_path else None
    labels = load_labels(labels_path)
    steering = load_steering(config, feedback_path, silences_path)
    catalogue = load_catalogue(customers_path, "--customers")
    try:
        outcome = replay_job(source, config, Path(out_dir), config_path=config_path, baseline=baseline,
                             baseline_path=baseline_path, labels=labels, grace=grace, trace=trace,
                             max_plots=max_plots, report=not no_report,
                             save_state=Path(save_state) if save_state else None, progress=not quiet,
                             steering=steering, catalogue=catalogue)
    except JOB_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(outcome.summary, indent=2))
    elif not quiet:
        click.echo(format_outcome(outcome))
    why = problem(outcome)
    if why is not None:
        raise click.ClickException(why)
