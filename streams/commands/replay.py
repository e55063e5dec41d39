"""``lookout replay``: run the live detection code path over history ("would it have fired?")."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def load_labels(path: str | None) -> list:
    if not path:
        return []
    from detectors.synthetic import read_labels

    try:
        return read_labels(path)
    except FileNotFoundError:
        raise click.ClickException(f"labels file not found: {path}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"labels: {exc}") from None


def load_detector_config(path: str | None, what: str = "config"):
    from detectors.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"--{what}: {exc}") from None


def open_source_or_fail(spec: str, maps, fmt: str, bootstrap: str | None):
    from streams.replay import KafkaSource, SourceError, open_source, parse_mapping
    from streams.settings import Settings

    try:
        mapping = parse_mapping(maps)
        src = open_source(spec, mapping=mapping, fmt=fmt,
                          default_bootstrap=bootstrap or Settings.from_env().bootstrap)
        if isinstance(src, KafkaSource):
            src.prepare()
        return src
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None


@click.command(context_settings=CONTEXT)
@click.argument("source")
@click.option("--config", "config_path", metavar="FILE",
              help="Detector config (YAML/TOML/JSON, the format the worker reads). Default: built-in defaults.")
@click.option("--baseline", "baseline_path", metavar="FILE",
              help="A second config to compare against: alerts gained/lost/changed (diff.json) in one pass.")
@click.option("--labels", "labels_path", metavar="FILE",
              help="Known incidents (JSON lines or CSV customer_id,start,end[,kind]): adds recall, precision, "
                   "time to detect, false alerts per customer-week.")
@click.option("--out", "out_dir", default="replay-out", show_default=True, metavar="DIR",
              help="Output directory (created).")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN[,...]",
              help="CSV only: which column holds each contract field, e.g. --map requests=req_count,ts=time.")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv"]), default="auto", show_default=True,
              help="File format (auto: .csv/.csv.gz or --map = CSV, otherwise JSON lines; gzip is detected).")
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
@click.option("--json", "as_json", is_flag=True, help="Print the summary (metrics) as JSON on stdout.")
@click.option("--no-report", is_flag=True, help="Skip report.html and the plots (faster).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no terminal summary.")
def replay(source, config_path, baseline_path, labels_path, out_dir, maps, fmt, bootstrap, trace, max_plots,
           grace, save_state, as_json, no_report, quiet):
    """Replay history through the detectors: which alerts would have fired?

    SOURCE is a JSON-lines file (gzip ok), a CSV file, or a Kafka topic time range
    kafka://TOPIC?from=TIME&to=TIME&bootstrap=HOST:PORT (TIME = RFC 3339 or epoch seconds of
    the Kafka message timestamps; both optional; timeout=SECONDS, default 10). Kafka is read
    without a consumer group and never commits, so the live worker is not disturbed.

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
    """
    from detectors.evaluation import evaluate, metric_deltas
    from detectors.events import format_ts
    from streams.replay import SourceError, diff_alerts, format_diff, run_replay, trace_customers

    out = Path(out_dir)
    config = load_detector_config(config_path)
    baseline = load_detector_config(baseline_path, "baseline") if baseline_path else None
    labels = load_labels(labels_path)
    if save_state and (Path(save_state).is_dir() or not Path(save_state).resolve().parent.is_dir()):
        # before the replay, not after minutes of it
        what = "is a directory" if Path(save_state).is_dir() else "its directory does not exist"
        raise click.ClickException(f"--save-state {save_state}: {what}")
    src = open_source_or_fail(source, maps, fmt, bootstrap)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"--out {out}: {exc.strerror or exc}") from None

    report = not no_report
    traced: list[str] = list(dict.fromkeys(trace))
    labelled: list[str] = []
    if report and labels:
        from streams.report import choose_customers

        # keep a third of the plots for customers with false alerts (traced in a second, cheap pass)
        labelled, _ = choose_customers(labels, [], limit=max(0, max_plots - len(traced)), labelled_share=2 / 3)
    progress = not quiet
    try:
        res = run_replay(src, config, baseline=baseline, out_dir=out, trace=traced + labelled, progress=progress)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None

    eng = res.engine
    run = res.runs[0]
    saved = None
    if save_state:
        from streams.checkpoint import write_atomically

        blob = eng.dump_all()
        try:
            write_atomically(Path(save_state), blob)
        except OSError as exc:
            raise click.ClickException(f"--save-state {save_state}: {exc.strerror or exc}") from None
        saved = f"saved the learned state of {len(eng.customers):,} customers to {save_state} ({len(blob):,} bytes)"
    sizes = eng.customer_sizes()
    iv = eng.interval_s or 60
    summary = {
        "source": res.source,
        "config": {"path": config_path, "fingerprint": config.fingerprint()},
        "records": res.records,
        "events": res.records - res.invalid,
        "invalid": res.invalid,
        "outcomes": dict(sorted(eng.outcomes.items())),
        "customers": len(sizes),
        "first_ts": format_ts(eng.t_min) if math.isfinite(eng.t_min) else None,
        "last_ts": format_ts(eng.t_max) if math.isfinite(eng.t_max) else None,
        "span_days": round(eng.span_s / 86400, 3),
        "interval_s": eng.interval_s,
        "alerts": run.counts(),
        "seconds": round(res.seconds, 3),
        "events_per_s": round(res.events_per_s, 1),
        "evaluation": None,
        "outputs": {"alerts": str(out / "alerts.jsonl"), "dlq": str(out / "dlq.jsonl"),
                    "summary": str(out / "summary.json")},
    }
    ev = ev_base = None
    if labels:
        ev = evaluate(run.alerts, labels, customers=sizes, span_s=eng.span_s, interval_s=iv, grace_intervals=grace)
        summary["evaluation"] = ev.to_dict()
    diff = None
    if baseline is not None:
        brun = res.runs[1]
        matched_new = matched_old = None
        if labels:
            ev_base = evaluate(brun.alerts, labels, customers=sizes, span_s=eng.span_s, interval_s=iv,
                               grace_intervals=grace)
            matched_new = {a["alert_id"] for a in run.alerts} - {r["alert_id"] for r in ev.false_alert_ids}
            matched_old = {a["alert_id"] for a in brun.alerts} - {r["alert_id"] for r in ev_base.false_alert_ids}
        diff = diff_alerts(run.alerts, brun.alerts, matched_new, matched_old)
        diff["config"] = f"{config_path or '(defaults)'} [{config.fingerprint()}]"
        diff["baseline_config"] = f"{baseline_path} [{baseline.fingerprint()}]"
        if ev is not None:
            diff["metrics"] = metric_deltas(ev.headline(), ev_base.headline())
        (out / "diff.json").write_text(json.dumps(diff, indent=2) + "\n")
        summary["baseline"] = {"path": baseline_path, "fingerprint": baseline.fingerprint(),
                               "alerts": brun.counts(), "alerts_path": str(brun.alerts_path),
                               "evaluation": ev_base.headline() if ev_base is not None else None}
        summary["diff"] = {k: len(diff[k]) for k in ("gained", "lost", "changed")} | {"unchanged": diff["unchanged"]}
        summary["outputs"]["diff"] = str(out / "diff.json")
        summary["outputs"]["baseline_alerts"] = str(brun.alerts_path)

    if report:
        from streams.report import choose_customers, write_replay_report

        false_ids = {r["alert_id"] for r in ev.false_alert_ids} if ev is not None else None
        _, extra = choose_customers(labels, run.alerts, limit=max(0, max_plots - len(traced)), false_ids=false_ids,
                                    labelled_share=2 / 3)
        extra = [c for c in extra if c not in traced]
        traces = dict(eng.traces)
        if extra:
            try:
                traces.update(trace_customers(src, config, extra, progress=progress))
            except SourceError as exc:
                raise click.ClickException(str(exc)) from None
        thresholds = {s: c.threshold for s, c in config.signals.items()}
        summary["outputs"]["report"] = str(out / "report.html")
        write_replay_report(out, summary, traces=traces, alerts=run.alerts, labels=labels, thresholds=thresholds,
                            order=traced + labelled + extra, diff=diff)

    if saved:
        summary["outputs"]["state"] = str(save_state)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    if quiet:
        return
    echo = click.echo
    echo(f"replayed {res.records:,} records from {src.name} in {res.seconds:.1f} s "
         f"({res.events_per_s:,.0f}/s): {res.invalid:,} invalid -> {out / 'dlq.jsonl'}")
    if sizes:
        echo(f"{len(sizes):,} customers, {summary['first_ts']} .. {summary['last_ts']} "
             f"({summary['span_days']:g} days, {iv} s interval)")
    else:
        echo("no valid events in the source", err=True)
    c = summary["alerts"]
    sev = ", ".join(f"{k} {v}" for k, v in c["by_severity"].items()) or "none"
    echo(f"config {config_path or '(defaults)'} [{config.fingerprint()}]: {c['opened_incidents']} incidents opened "
         f"({sev}), {c['alerts']} alerts -> {out / 'alerts.jsonl'}")
    if ev is not None:
        echo("")
        echo(ev.format_table())
    if diff is not None:
        echo("")
        echo(f"baseline {baseline_path} [{baseline.fingerprint()}]")
        echo(format_diff(diff))
        if diff.get("metrics"):
            echo("")
            echo(f"{'metric':<26}{'baseline':>10}{'new':>10}{'delta':>10}")
            for k, v in diff["metrics"].items():
                echo(f"{k:<26}{_cell(v['old']):>10}{_cell(v['new']):>10}{_cell(v['delta'], sign=True):>10}")
    echo("")
    if saved:
        echo(saved)
    echo("wrote " + ", ".join(str(p) for p in summary["outputs"].values()))


def _cell(v, sign: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.3f}" if sign else f"{v:.3f}"
    return f"{v:+d}" if sign else str(v)


if __name__ == "__main__":  # pragma: no cover
    replay(sys.argv[1:])
