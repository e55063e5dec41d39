"""``lookout tune``: search detector parameters against labelled history (Optuna TPE)."""
from __future__ import annotations

import json
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
@click.option("--labels", "labels_path", required=True, metavar="FILE",
              help="Known incidents (JSON lines or CSV customer_id,start,end[,kind]).")
@click.option("--space", "space_path", required=True, metavar="FILE",
              help="Search space YAML: dotted config path -> {low, high[, log, step]} or {choices: [...]}.")
@click.option(
    "--config", "config_path", metavar="FILE", help="Base config; the space overrides it. Default: defaults."
)
@click.option("--trials", default=30, show_default=True, type=click.IntRange(min=1), help="Number of trials.")
@click.option("--budget", default=0.2, show_default=True, type=click.FloatRange(min=0),
              help="Allowed false alerts per customer-week.")
@click.option(
    "--jobs", type=click.IntRange(min=1), help="Trials in parallel (processes) [default: min(2, cores)]."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Sampler seed (same seed + data + --jobs 1 = same search).",
)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Stop asking for new trials after this long.")
@click.option(
    "--out", "out_dir", default="tune-out", show_default=True, metavar="DIR", help="Output directory."
)
@click.option(
    "--map", "maps", multiple=True, metavar="FIELD=COLUMN[,...]", help="CSV column mapping (as replay)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="File format (as replay).",
)
@click.option(
    "--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap for kafka:// sources [env LOOKOUT_BOOTSTRAP]."
)
@click.option("--grace", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Intervals after a labelled incident's end an alert still counts.")
@click.option("--max-plots", default=8, show_default=True, type=click.IntRange(min=0),
              help="Customers plotted with the best config.")
@click.option("--feedback", "feedback_path", metavar="FILE",
              help="Engineers' verdicts (JSON lines, as replay): every trial applies them.")
@click.option("--silences", "silences_path", metavar="FILE",
              help="Maintenance windows (JSON lines, as replay): every trial applies them; muted alerts "
              "do not count.")
@click.option("--json", "as_json", is_flag=True, help="Print the result summary as JSON on stdout.")
@click.option("--no-report", is_flag=True, help="Skip report.html and plots.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no terminal summary.")
@kafka_security_options
def tune(
    source,
    labels_path,
    space_path,
    config_path,
    trials,
    budget,
    jobs,
    seed,
    timeout_s,
    out_dir,
    maps,
    fmt,
    bootstrap,
    grace,
    max_plots,
    feedback_path,
    silences_path,
    as_json,
    no_report,
    quiet,
    **kafka,
):
    """Search detector parameters: maximise incident recall within a false-alert budget.

    SOURCE is read like `lookout replay` reads it (JSON lines, CSV, kafka://...), but
    tune holds all decoded events in memory (roughly 0.5 KB per event) because every trial
    replays them: use a representative slice, e.g. a few weeks of the customers you care about.
    Each trial builds an Engine from the base config plus the sampled values and runs the
    events through it (the worker's decoder and Engine); Optuna's TPE proposes the values.
    The first trial is the base config (when it lies inside the space), so you see where
    you started. Trials run in --jobs processes.

    \b
    Objective: recall, as long as false alerts per customer-week <= --budget; over budget
    a trial is penalised below every trial within budget (ties: fewer false alerts win).

    \b
    Search space (YAML), see examples/space.yaml:
      signals.error_5xx.threshold: {low: 0.99, high: 0.99999}
      signals.requests.min_rel_change: {low: 0.3, high: 2.0}
      alerting.open_n: {choices: [1, 2, 3]}
      model.warmup_s: {low: 21600, high: 86400, step: 3600}

    \b
    Writes into --out DIR:
      best.yaml      full detector config of the best trial (use with --config)
      trials.json    every trial: parameters, recall, precision, false alerts, time to detect
      summary.json   the search and the best trial's evaluation
      report.html    trade-off curve (recall vs false alerts, Pareto front), parameters,
                     per-customer plots for the best config (PNGs in plots/)

    \b
    Examples:
      lookout simulate --customers 40 --days 10 --out sim.jsonl.gz
      lookout tune sim.jsonl.gz --labels sim.labels.jsonl --space examples/space.yaml --trials 40 --out tune/
      lookout replay sim.jsonl.gz --labels sim.labels.jsonl --config tune/best.yaml \\
          --baseline examples/config.yaml
    """
    from detectors.config import dump_config
    from streams.offline import SourceError
    from streams.offline.tuning import (
        SpaceError,
        baseline_row,
        default_jobs,
        format_tune,
        load_dataset,
        load_space,
        params_table,
        run_config,
        trace_config,
        tune_summary,
    )
    from streams.offline.tuning import tune as run_tune

    out = Path(out_dir)
    base = load_detector_config(config_path)
    try:
        space = load_space(space_path, base)
    except SpaceError as exc:
        raise click.ClickException(str(exc)) from None
    labels = load_labels(labels_path)
    steering = load_steering(base, feedback_path, silences_path)
    if not labels:
        raise click.ClickException(
            f"{labels_path}: no labelled incidents; tuning needs some to measure recall"
        )
    src = open_source_or_fail(source, maps, fmt, bootstrap, pop_security(kafka))
    make_out_dir(out)
    jobs = jobs or default_jobs()
    progress = not quiet
    try:
        data = load_dataset(src, labels, progress=progress)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    data.steering = steering
    if not data.events:
        raise click.ClickException(
            f"{src.name}: no valid events to tune on ({data.invalid:,} invalid records)"
        )
    labelled = {lab.customer_id for lab in labels}
    if not labelled & data.sizes.keys():
        raise click.ClickException(
            f"none of the {len(labelled):,} labelled customer(s) in {labels_path} appears in "
            f"{src.name}; wrong labels file?"
        )

    result = run_tune(data, base, space, trials=trials, budget=budget, jobs=jobs, seed=seed, grace=grace,
                      progress=progress, timeout_s=timeout_s)
    if result.best is None:
        errors = {t.get("error") for t in result.trials if t.get("error")}
        raise click.ClickException("every trial failed: " + "; ".join(sorted(e for e in errors if e))[:300])

    best_path = out / "best.yaml"
    dump_config(result.best_config, best_path)
    (out / "trials.json").write_text(json.dumps(result.trials, indent=2) + "\n")
    best_alerts, best_ev = run_config(data, result.best_config, grace)
    summary = tune_summary(data, result, base=base, base_path=config_path, space=space, best_eval=best_ev,
                           best_path=best_path, out=out, trials=trials, jobs=jobs, seed=seed)
    rows = params_table(base, result.best_config, space)
    if not no_report:
        from streams.offline.report import choose_customers, write_tune_report

        false_ids = {r["alert_id"] for r in best_ev.false_alert_ids}
        a, b = choose_customers(
            labels, best_alerts, limit=max_plots, false_ids=false_ids, labelled_share=2 / 3
        )
        traces = trace_config(data, result.best_config, a + b)
        summary["outputs"]["report"] = str(out / "report.html")
        write_tune_report(
            out,
            summary=summary,
            trials=[t for t in result.trials if "recall" in t],
            params_rows=rows,
            best_eval=best_ev.to_dict(),
            base_eval=baseline_row(result),
            traces=traces,
            alerts=best_alerts,
            labels=labels,
            thresholds={s: c.threshold for s, c in result.best_config.signals.items()},
            order=a + b,
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    if as_json:
        click.echo(json.dumps({k: v for k, v in summary.items() if k != "best_evaluation"}
                              | {"best_evaluation": best_ev.headline()}, indent=2))
        return
    if quiet:
        return
    click.echo(format_tune(summary, result, rows, best_ev))
    click.echo(f"try it: lookout replay {source} --labels {labels_path} --config {best_path}"
               + (f" --baseline {config_path}" if config_path else ""))
