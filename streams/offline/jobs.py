"""``lookout replay`` and ``lookout tune`` from start to end, without click.

The commands parse their options and call :func:`replay_job` or :func:`tune_job`; tests call them
the same way. Both end alike, in :func:`write_outputs`: choose the customers to plot, trace those
the run did not trace yet, write ``report.html``, then ``summary.json``. Every problem they report
is one line: :data:`JOB_ERRORS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from detectors.catalogue import Catalogue
from detectors.config import DetectorConfig, dump_config
from detectors.correlator import Correlator
from detectors.evaluation import GRACE_INTERVALS, Evaluation
from detectors.steering import Steering
from streams.state.checkpoint import write_atomically

from .report import choose_customers, write_replay_report, write_tune_report
from .runner import run_replay, trace_customers
from .source_spec import SourceSpec
from .sources import Source, SourceError
from .summary import ReplayOutcome, summarize
from .tracing import Trace
from .tuning import (
    Param,
    SpaceError,
    TuneResult,
    baseline_row,
    default_jobs,
    format_tune,
    load_dataset,
    params_table,
    run_config,
    trace_config,
    tune,
    tune_summary,
)

__all__ = ["JOB_ERRORS", "JobError", "Plots", "TuneOutcome", "replay_job", "tune_job", "write_outputs"]

#: customers a replay report plots at most (besides those asked for by name)
REPLAY_PLOTS = 12
#: customers a tuning report plots with the best config
TUNE_PLOTS = 8
#: trials of a search
TUNE_TRIALS = 30
#: false alerts per customer-week a search may spend
FALSE_ALERT_BUDGET = 0.2
#: share of a report's plots that goes to labelled customers once alerts are known (the rest:
#: customers with false alerts)
LABELLED_SHARE = 2 / 3


class JobError(Exception):
    """Why a job cannot run, or cannot answer its question, in one line."""


#: the errors a job reports in one line (the commands print them and exit 1)
JOB_ERRORS = (JobError, SourceError, SpaceError)


@dataclass(frozen=True)
class Plots:
    """Which customers a report plots: ``first`` (asked for by name), then up to ``limit`` more --
    labelled customers round-robin over incident kinds, then customers with false alerts.

    >>> labels = [{"customer_id": c, "kind": k, "start": 0} for c, k in (("a", "latency"), ("b", "latency"))]
    >>> plots = Plots(labels, limit=4, first=("z",))
    >>> plots.labelled()
    ['a', 'b']
    >>> plots.order([{"customer_id": "x", "alert_id": "1", "status": "firing"}], false_ids={"1"})
    ['z', 'a', 'b', 'x']
    """

    labels: Sequence[Any]
    limit: int
    first: tuple[str, ...] = ()

    @property
    def room(self) -> int:
        return max(0, self.limit - len(self.first))

    def labelled(self) -> list[str]:
        """The labelled customers plotted: known before any alert, so a replay traces them in its pass."""
        return choose_customers(self.labels, [], limit=self.room, labelled_share=LABELLED_SHARE)[0]

    def order(self, alerts: Sequence[Mapping[str, Any]], false_ids: set[str] | None) -> list[str]:
        """Every customer plotted, in the report's order, once each."""
        labelled, extra = choose_customers(self.labels, alerts, limit=self.room, false_ids=false_ids,
                                           labelled_share=LABELLED_SHARE)
        return list(dict.fromkeys([*self.first, *labelled, *extra]))


def write_outputs(
    out: Path,
    summary: dict[str, Any],
    *,
    plots: Plots | None,
    alerts: Sequence[Mapping[str, Any]],
    evaluation: Evaluation | None,
    trace: Callable[[list[str]], Mapping[str, Trace]],
    write_report: Callable[[Mapping[str, Trace], list[str]], Path],
    traces: Mapping[str, Trace] | None = None,
    traced: Collection[str] = (),
) -> None:
    """The end every job shares: the report (with ``plots``), then ``summary.json``.

    The customers to plot are chosen from the run's ``alerts`` and ``evaluation`` (its false
    alerts); those not ``traced`` by the run already (their ``traces``) are traced by
    ``trace(customers)``; ``write_report(traces, order)`` writes the page, listed in the summary's
    outputs.
    """
    if plots is not None:
        false_ids = {r["alert_id"] for r in evaluation.false_alert_ids} if evaluation is not None else None
        order = plots.order(alerts, false_ids)
        done = set(traced)
        more = [c for c in order if c not in done]
        every = dict(traces or {})
        if more:
            every.update(trace(more))
        summary["outputs"]["report"] = str(out / "report.html")
        write_report(every, order)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _thresholds(config: DetectorConfig) -> dict[str, float]:
    return {s: c.threshold for s, c in config.signals.items()}


def _open(source: SourceSpec | Source) -> Source:
    return source.open() if isinstance(source, SourceSpec) else source


def _out_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"--out {out}: {exc.strerror or exc}") from None
    return out


def _check_state_path(path: Path) -> None:
    """Before the replay, not after minutes of it: can the learned state be written to ``path``?"""
    if path.is_dir() or not path.resolve().parent.is_dir():
        what = "is a directory" if path.is_dir() else "its directory does not exist"
        raise JobError(f"--save-state {path}: {what}")


def replay_job(
    source: SourceSpec | Source,
    config: DetectorConfig,
    out: Path,
    *,
    config_path: str | None = None,
    baseline: DetectorConfig | None = None,
    baseline_path: str | None = None,
    labels: Sequence[Any] = (),
    grace: float = GRACE_INTERVALS,
    trace: Sequence[str] = (),
    max_plots: int = REPLAY_PLOTS,
    report: bool = True,
    save_state: Path | None = None,
    progress: bool = False,
    steering: Steering | None = None,
    catalogue: Catalogue | None = None,
) -> ReplayOutcome:
    """Replay ``source`` through the detectors into ``out``: ``alerts.jsonl``, ``dlq.jsonl``,
    ``summary.json``, with a ``baseline`` ``diff.json``, with ``report`` ``report.html`` (the
    ``trace`` customers plotted first, then ``max_plots`` chosen ones), with ``save_state`` the
    learned state, with ``steering`` engineers' verdicts and windows applied at their times, with
    a ``catalogue`` the correlator's parent incidents too (``incidents.jsonl``,
    ``alerts-routed.jsonl``, scored against shared-cause ``labels``). The outcome's
    :func:`~streams.offline.summary.problem` says whether it answers the question (e.g. labels of
    customers that are not in the data)."""
    if save_state is not None:
        _check_state_path(save_state)
    src = _open(source)
    _out_dir(out)
    plots = Plots(labels, max_plots, tuple(dict.fromkeys(trace))) if report else None
    first_pass = [*dict.fromkeys(trace), *(plots.labelled() if plots is not None else [])]
    correlator = Correlator(config, catalogue) if catalogue is not None else None
    res = run_replay(src, config, baseline=baseline, out_dir=out, trace=first_pass, progress=progress,
                     steering=steering, correlator=correlator)
    outcome = summarize(res, out, config=config, config_path=config_path, labels=labels, grace=grace,
                        baseline=baseline, baseline_path=baseline_path, catalogue=catalogue)
    outcome.source_name = src.name
    if save_state is not None:
        blob = res.engine.dump_all()
        try:
            write_atomically(save_state, blob)
        except OSError as exc:
            raise JobError(f"--save-state {save_state}: {exc.strerror or exc}") from None
        outcome.notes.append(f"saved the learned state of {len(res.engine.customers):,} customers to "
                             f"{save_state} ({len(blob):,} bytes)")
        outcome.summary["outputs"]["state"] = str(save_state)
    if outcome.diff is not None:
        (out / "diff.json").write_text(json.dumps(outcome.diff, indent=2) + "\n")
    run = res.runs[0]
    write_outputs(
        out, outcome.summary, plots=plots, alerts=run.alerts, evaluation=outcome.evaluation,
        traces=res.engine.traces, traced=first_pass,
        trace=lambda more: trace_customers(src, config, more, progress=progress),
        write_report=lambda traces, order: write_replay_report(
            out, outcome.summary, traces=traces, alerts=run.alerts, labels=labels,
            thresholds=_thresholds(config), order=order, diff=outcome.diff, incidents=run.incidents),
    )
    return outcome


@dataclass
class TuneOutcome:
    """What a search found, for the terminal (:meth:`text`) or a script (:meth:`headline`)."""

    summary: dict[str, Any]
    result: TuneResult
    params_rows: list[list[Any]]
    best_evaluation: Evaluation
    best_path: Path

    def headline(self) -> dict[str, Any]:
        """The summary with the best trial's headline metrics instead of its full evaluation."""
        return {k: v for k, v in self.summary.items() if k != "best_evaluation"} | {
            "best_evaluation": self.best_evaluation.headline()}

    def text(self) -> str:
        return format_tune(self.summary, self.result, self.params_rows, self.best_evaluation)


def tune_job(
    source: SourceSpec | Source,
    labels: Sequence[Any],
    space: Sequence[Param],
    base: DetectorConfig,
    out: Path,
    *,
    config_path: str | None = None,
    labels_name: str = "the labels",
    trials: int = TUNE_TRIALS,
    budget: float = FALSE_ALERT_BUDGET,
    jobs: int | None = None,
    seed: int = 0,
    timeout_s: float | None = None,
    grace: float = GRACE_INTERVALS,
    max_plots: int = TUNE_PLOTS,
    report: bool = True,
    progress: bool = False,
    steering: Steering | None = None,
) -> TuneOutcome:
    """Search ``space`` around ``base`` for the config with the best recall within ``budget``
    false alerts per customer-week on ``source``; write ``best.yaml``, ``trials.json``,
    ``summary.json`` and (with ``report``) ``report.html`` into ``out``.

    ``jobs`` trials run in parallel processes (default :func:`~streams.offline.tuning.default_jobs`);
    ``labels_name`` names the labels in messages (their file). With ``steering`` (engineers'
    verdicts and windows) every trial applies them and is judged on the alerts sent.
    """
    if not labels:
        raise JobError(f"{labels_name}: no labelled incidents; tuning needs some to measure recall")
    src = _open(source)
    _out_dir(out)
    jobs = jobs or default_jobs()
    data = load_dataset(src, labels, progress=progress)
    data.steering = steering
    if not data.events:
        raise JobError(f"{src.name}: no valid events to tune on ({data.invalid:,} invalid records)")
    labelled = {lab.customer_id for lab in labels}
    if not labelled & data.sizes.keys():
        raise JobError(f"none of the {len(labelled):,} labelled customer(s) in {labels_name} appears in "
                       f"{src.name}; wrong labels file?")
    result = tune(data, base, space, trials=trials, budget=budget, jobs=jobs, seed=seed, grace=grace,
                  progress=progress, timeout_s=timeout_s)
    if result.best is None:
        errors = {t.get("error") for t in result.trials if t.get("error")}
        raise JobError("every trial failed: " + "; ".join(sorted(e for e in errors if e))[:300])

    best_path = out / "best.yaml"
    dump_config(result.best_config, best_path)
    (out / "trials.json").write_text(json.dumps(result.trials, indent=2) + "\n")
    best_alerts, best_ev = run_config(data, result.best_config, grace)
    summary = tune_summary(data, result, base=base, base_path=config_path, space=space, best_eval=best_ev,
                           best_path=best_path, out=out, trials=trials, jobs=jobs, seed=seed)
    rows = params_table(base, result.best_config, space)
    write_outputs(
        out, summary, plots=Plots(labels, max_plots) if report else None, alerts=best_alerts,
        evaluation=best_ev, trace=lambda more: trace_config(data, result.best_config, more),
        write_report=lambda traces, order: write_tune_report(
            out, summary=summary, trials=[t for t in result.trials if "recall" in t], params_rows=rows,
            best_eval=best_ev.to_dict(), base_eval=baseline_row(result), traces=traces, alerts=best_alerts,
            labels=labels, thresholds=_thresholds(result.best_config), order=order),
    )
    return TuneOutcome(summary, result, rows, best_ev, best_path)
