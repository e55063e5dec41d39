"""``lookout replay``: run the live detection code path over history ("would it have fired?")."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ._common import (
    CONTEXT,
    load_detector_config,
    load_labels,
    load_steering,
    make_out_dir,
    open_source_or_fail,
)
from .kafka_options import kafka_security_options, pop_security


@click.command(context_settings=CONTEXT)
@click.argument("source")
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
@click.option("--out", "out_dir", default="replay-out", show_default=True, metavar="DIR",
              help="Output directory (created).")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN[,...]",
              help="CSV only: which column holds each contract field, e.g. --map requests=req_count,ts=time.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="File format (auto: .csv/.csv.gz or --map = CSV, otherwise JSON lines; gzip is detected).",
)
@click.option("--bootstrap", metavar="HOST:PORT",
              help="Kafka bootstrap for kafka:// sources without bootstrap= [env LOOKOUT_BOOTSTRAP].")
@click.option("--trace", "trace", multiple=True, metavar="CUSTOMER",
              help="Also plot this customer in the report (repeatable).")
@click.option("--max-plots", default=12, show_default=True, type=click.IntRange(min=0),
              help="At most this many customers plotted (labelled first, then false alerts).")
@click.option("--grace", default=2.0, show_default=True, type=click.FloatRange(min=0),
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
@kafka_security_options
def replay(source, config_path, baseline_path, labels_path, out_dir, maps, fmt, bootstrap, trace, max_plots,
           grace, save_state, feedback_path, silences_path, as_json, no_report, quiet, **kafka):
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
      lookout replay last-week.jsonl.gz --feedback feedback.jsonl --silences silences.jsonl --out steered/

    With --feedback/--silences the summary separates the alerts sent, those silenced by windows
    (still in alerts.jsonl, with silenced_by) and the incidents withdrawn by a verdict; the
    evaluation counts what was sent.
    """
    from streams.offline import SourceError, run_replay, trace_customers
    from streams.offline.summary import format_outcome, problem, summarize

    out = Path(out_dir)
    config = load_detector_config(config_path)
    baseline = load_detector_config(baseline_path, "baseline") if baseline_path else None
    labels = load_labels(labels_path)
    steering = load_steering(config, feedback_path, silences_path)
    if save_state and (Path(save_state).is_dir() or not Path(save_state).resolve().parent.is_dir()):
        # before the replay, not after minutes of it
        what = "is a directory" if Path(save_state).is_dir() else "its directory does not exist"
        raise click.ClickException(f"--save-state {save_state}: {what}")
    src = open_source_or_fail(source, maps, fmt, bootstrap, pop_security(kafka))
    make_out_dir(out)

    report = not no_report
    traced: list[str] = list(dict.fromkeys(trace))
    labelled: list[str] = []
    if report and labels:
        from streams.offline.report import choose_customers

        # keep a third of the plots for customers with false alerts (traced in a second, cheap pass)
        labelled, _ = choose_customers(
            labels, [], limit=max(0, max_plots - len(traced)), labelled_share=2 / 3
        )
    progress = not quiet
    try:
        res = run_replay(
            src, config, baseline=baseline, out_dir=out, trace=traced + labelled, progress=progress,
            steering=steering,
        )
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    outcome = summarize(res, out, config=config, config_path=config_path, labels=labels, grace=grace,
                        baseline=baseline, baseline_path=baseline_path)
    summary, ev, run = outcome.summary, outcome.evaluation, res.runs[0]
    if save_state:
        from streams.state.checkpoint import write_atomically

        blob = res.engine.dump_all()
        try:
            write_atomically(Path(save_state), blob)
        except OSError as exc:
            raise click.ClickException(f"--save-state {save_state}: {exc.strerror or exc}") from None
        outcome.notes.append(
            f"saved the learned state of {len(res.engine.customers):,} customers to {save_state} "
            f"({len(blob):,} bytes)"
        )
    if outcome.diff is not None:
        (out / "diff.json").write_text(json.dumps(outcome.diff, indent=2) + "\n")

    if report:
        from streams.offline.report import choose_customers, write_replay_report

        false_ids = {r["alert_id"] for r in ev.false_alert_ids} if ev is not None else None
        _, extra = choose_customers(
            labels,
            run.alerts,
            limit=max(0, max_plots - len(traced)),
            false_ids=false_ids,
            labelled_share=2 / 3,
        )
        extra = [c for c in extra if c not in traced]
        traces = dict(res.engine.traces)
        if extra:
            try:
                traces.update(trace_customers(src, config, extra, progress=progress))
            except SourceError as exc:
                raise click.ClickException(str(exc)) from None
        thresholds = {s: c.threshold for s, c in config.signals.items()}
        summary["outputs"]["report"] = str(out / "report.html")
        write_replay_report(
            out,
            summary,
            traces=traces,
            alerts=run.alerts,
            labels=labels,
            thresholds=thresholds,
            order=traced + labelled + extra,
            diff=outcome.diff,
        )

    if save_state:
        summary["outputs"]["state"] = str(save_state)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(format_outcome(outcome, src.name))
    why = problem(outcome)
    if why is not None:
        raise click.ClickException(why)


if __name__ == "__main__":  # pragma: no cover
    replay(sys.argv[1:])
