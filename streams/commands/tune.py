"""``lookout tune``: search detector parameters against labelled history (Optuna TPE)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from detectors.evaluation import GRACE_INTERVALS

from ..offline.jobs import FALSE_ALERT_BUDGET, JOB_ERRORS, TUNE_PLOTS, TUNE_TRIALS, tune_job
from ..offline.source_spec import SourceSpec
from ..offline.tuning import load_space
from ._common import CONTEXT, load_detector_config, load_labels, load_steering
from .source_options import source_options


@click.command(context_settings=CONTEXT)
@click.option("--labels", "labels_path", required=True, metavar="FILE",
              help="Known incidents (JSON lines or CSV customer_id,start,end[,kind]).")
@click.option("--space", "space_path", required=True, metavar="FILE",
              help="Search space YAML: dotted config path -> {low, high[, log, step]} or {choices: [...]}.")
@click.option(
    "--config", "config_path", metavar="FILE", help="Base config; the space overrides it. Default: defaults."
)
@click.option("--trials", default=TUNE_TRIALS, show_default=True, type=click.IntRange(min=1),
              help="Number of trials.")
@click.option("--budget", default=FALSE_ALERT_BUDGET, show_default=True, type=click.FloatRange(min=0),
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
@click.option("--grace", default=GRACE_INTERVALS, show_default=True, type=click.FloatRange(min=0),
              help="Intervals after a labelled incident's end an alert still counts.")
@click.option("--max-plots", default=TUNE_PLOTS, show_default=True, type=click.IntRange(min=0),
              help="Customers plotted with the best config.")
@click.option("--feedback", "feedback_path", metavar="FILE",
              help="Engineers' verdicts (JSON lines, as replay): every trial applies them.")
@click.option("--silences", "silences_path", metavar="FILE",
              help="Maintenance windows (JSON lines, as replay): every trial applies them; muted alerts "
              "do not count.")
@click.option("--json", "as_json", is_flag=True, help="Print the result summary as JSON on stdout.")
@click.option("--no-report", is_flag=True, help="Skip report.html and plots.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no terminal summary.")
@source_options
def tune(source: SourceSpec, labels_path, space_path, config_path, trials, budget, jobs, seed, timeout_s,
         out_dir, grace, max_plots, feedback_path, silences_path, as_json, no_report, quiet):
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
    base = load_detector_config(config_path)
    steering = load_steering(base, feedback_path, silences_path)
    try:
        space = load_space(space_path, base)
        labels = load_labels(labels_path)
        outcome = tune_job(source, labels, space, base, Path(out_dir), config_path=config_path,
                           labels_name=labels_path, trials=trials, budget=budget, jobs=jobs, seed=seed,
                           timeout_s=timeout_s, grace=grace, max_plots=max_plots, report=not no_report,
                           progress=not quiet, steering=steering)
    except JOB_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(outcome.headline(), indent=2))
    elif not quiet:
        click.echo(outcome.text())
        click.echo(f"try it: lookout replay {source.spec} --labels {labels_path} --config {outcome.best_path}"
                   + (f" --baseline {config_path}" if config_path else ""))
