"""What a replay found, as data (``summary.json``, ``diff.json``) and as text for a terminal.

:func:`summarize` turns a :class:`~streams.offline.runner.ReplayResult` (plus labels and an
optional baseline) into a :class:`ReplayOutcome`; :func:`format_outcome` renders it.
:func:`streams.offline.jobs.replay_job` calls these and writes the files.

>>> format_cell(0.12345), format_cell(-3, sign=True), format_cell(None)
('0.123', '-3', 'n/a')
>>> plural(1, "interval"), plural(2, "interval")
('1 interval', '2 intervals')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from detectors.catalogue import Catalogue
from detectors.config import DetectorConfig
from detectors.correlation_eval import ParentEvaluation, evaluate_parents
from detectors.evaluation import GRACE_INTERVALS, Evaluation, evaluate, metric_deltas
from detectors.events import DEFAULT_INTERVAL_S, format_ts

from .diff import diff_alerts, format_diff
from .runner import EngineRun, ReplayResult


@dataclass
class ReplayOutcome:
    """Everything a replay's outputs and terminal text are made of."""

    summary: dict[str, Any]
    evaluation: Evaluation | None = None
    #: with the correlator and labels of shared causes: how its parents did
    parent_evaluation: ParentEvaluation | None = None
    baseline_evaluation: Evaluation | None = None
    diff: dict[str, Any] | None = None
    #: lines printed before the list of files written (e.g. where the learned state went)
    notes: list[str] = field(default_factory=list)
    #: the source as the user named it (a path, ``kafka://TOPIC``)
    source_name: str = ""

    @property
    def interval_s(self) -> int:
        return self.summary["interval_s"] or DEFAULT_INTERVAL_S


def _fingerprinted(path: str | None, config: DetectorConfig) -> str:
    return f"{path or '(defaults)'} [{config.fingerprint()}]"


def summarize(res: ReplayResult, out: Path, *, config: DetectorConfig, config_path: str | None = None,
              labels: Sequence[Any] = (), grace: float = GRACE_INTERVALS,
              baseline: DetectorConfig | None = None, baseline_path: str | None = None,
              catalogue: Catalogue | None = None) -> ReplayOutcome:
    """The summary of one replay (``summary.json``), its evaluation against ``labels`` and the
    diff against the ``baseline`` run when there is one."""
    eng = res.engine
    run = res.runs[0]
    sizes = eng.customer_sizes()
    summary: dict[str, Any] = {
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
        "steering": res.steering,
        "outputs": {"alerts": str(out / "alerts.jsonl"), "dlq": str(out / "dlq.jsonl"),
                    "summary": str(out / "summary.json")},
    }
    outcome = ReplayOutcome(summary)
    iv = outcome.interval_s
    if labels:
        labelled = {str(_field(lab, "customer_id")) for lab in labels}
        summary["labels"] = {"labels": len(labels), "customers": len(labelled),
                             "customers_in_data": len(labelled & sizes.keys())}
    if labels:  # what reached people: notifications a maintenance window muted do not count
        outcome.evaluation = evaluate(run.sent, labels, customers=sizes, span_s=eng.span_s, interval_s=iv,
                                      grace_intervals=grace)
        summary["evaluation"] = outcome.evaluation.to_dict()
    if catalogue is not None:
        _parents(outcome, run, labels, catalogue, span_s=eng.span_s, interval_s=iv, grace=grace, out=out)
    if baseline is not None:
        brun = res.runs[1]
        ev = outcome.evaluation
        matched_new = matched_old = None
        ev_base = None
        if ev is not None:
            ev_base = evaluate(brun.sent, labels, customers=sizes, span_s=eng.span_s, interval_s=iv,
                               grace_intervals=grace)
            matched_new = {a["alert_id"] for a in run.alerts} - {r["alert_id"] for r in ev.false_alert_ids}
            matched_old = {a["alert_id"] for a in brun.alerts} - {
                r["alert_id"] for r in ev_base.false_alert_ids
            }
        diff = diff_alerts(run.alerts, brun.alerts, matched_new, matched_old)
        diff["config"] = _fingerprinted(config_path, config)
        diff["baseline_config"] = _fingerprinted(baseline_path, baseline)
        if ev is not None and ev_base is not None:
            diff["metrics"] = metric_deltas(ev.headline(), ev_base.headline())
        summary["baseline"] = {"path": baseline_path, "fingerprint": baseline.fingerprint(),
                               "alerts": brun.counts(), "alerts_path": str(brun.alerts_path),
                               "evaluation": ev_base.headline() if ev_base is not None else None}
        summary["diff"] = {k: len(diff[k]) for k in ("gained", "lost", "changed")} | {
            "unchanged": diff["unchanged"]
        }
        summary["outputs"]["diff"] = str(out / "diff.json")
        summary["outputs"]["baseline_alerts"] = str(brun.alerts_path)
        outcome.diff, outcome.baseline_evaluation = diff, ev_base
    return outcome


def _parents(outcome: ReplayOutcome, run: EngineRun, labels: Sequence[Any], catalogue: Catalogue, *,
             span_s: float, interval_s: int, grace: float, out: Path) -> None:
    """The correlator's part of the summary: parents, folded and paging alerts; scored against
    labels of shared causes when there are any."""
    firing = [a for a in run.routed if a["status"] == "firing"]
    last = {r["parent_id"]: r for r in run.incidents}
    outcome.summary["parents"] = {
        "customers_in_catalogue": len(catalogue),
        "parents": len(last),
        "resolved": sum(1 for r in last.values() if r["status"] == "resolved"),
        "children": sum(len(r["children"]) for r in last.values()),
        "notifications_folded": sum(1 for a in firing if a.get("parent_id")),
        "notifications_alone": sum(1 for a in firing if not a.get("parent_id")),
        "parent_notifications": len({(r["parent_id"], r["notification"]) for r in run.incidents
                                     if r["status"] == "firing"}),
        "evaluation": None,
    }
    outcome.summary["outputs"]["incidents"] = str(out / "incidents.jsonl")
    outcome.summary["outputs"]["alerts_routed"] = str(out / "alerts-routed.jsonl")
    if any(_field(lab, "cause") for lab in labels):
        outcome.parent_evaluation = evaluate_parents(
            labels, run.alerts, run.routed, run.incidents, span_s=span_s, interval_s=interval_s,
            grace_intervals=grace, catalogue=catalogue)
        outcome.summary["parents"]["evaluation"] = outcome.parent_evaluation.to_dict()


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def problem(outcome: ReplayOutcome) -> str | None:
    """Why the run cannot answer the user's question, in one line, or None when it can.

    That is: no valid event at all (an empty source, every record invalid), or labels none of
    whose customers appear in the data (recall would be 0 % for a reason that has nothing to do
    with the detectors). Commands exit non-zero with this line.

    >>> problem(ReplayOutcome({"records": 0, "events": 0}))
    'no records in the source: nothing was replayed'
    >>> problem(ReplayOutcome({"records": 5, "events": 5, "labels": {"labels": 2, "customers": 1,
    ...                                                              "customers_in_data": 0}}))
    'none of the 1 labelled customer(s) appears in the data; wrong labels file?'
    """
    s = outcome.summary
    if s["events"] == 0:
        if s["records"] == 0:
            return "no records in the source: nothing was replayed"
        return (f"no valid events: all {s['records']:,} records were invalid "
                f"(reasons in {s['outputs']['dlq']})")
    lab = s.get("labels")
    if lab and lab["labels"] and not lab["customers_in_data"]:
        return (
            f"none of the {lab['customers']:,} labelled customer(s) appears in the data; wrong labels file?"
        )
    return None


def plural(n: int | float, word: str) -> str:
    """``1 interval``, ``2 intervals`` (``n`` printed with thousands separators)."""
    return f"{n:,g} {word}" if n == 1 else f"{n:,g} {word}s"


def format_cell(v: Any, sign: bool = False) -> str:
    """A metric for a fixed-width table: floats to 3 decimals, ``n/a`` for missing."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.3f}" if sign else f"{v:.3f}"
    return f"{v:+d}" if sign else str(v)


def format_metric_deltas(metrics: dict[str, dict[str, Any]]) -> str:
    """The baseline / new / delta table of the headline metrics."""
    lines = [f"{'metric':<26}{'baseline':>10}{'new':>10}{'delta':>10}"]
    for k, v in metrics.items():
        lines.append(f"{k:<26}{format_cell(v['old']):>10}{format_cell(v['new']):>10}"
                     f"{format_cell(v['delta'], sign=True):>10}")
    return "\n".join(lines)


def format_outcome(outcome: ReplayOutcome, source_name: str | None = None) -> str:
    """The terminal summary of a replay (of ``source_name``, default the outcome's)."""
    s = outcome.summary
    source_name = source_name or outcome.source_name
    out: list[str] = []
    echo = out.append
    dlq = s["outputs"]["dlq"]
    echo(f"replayed {s['records']:,} records from {source_name} in {s['seconds']:.1f} s "
         f"({s['events_per_s']:,.0f}/s): {s['invalid']:,} invalid -> {dlq}")
    if s["customers"]:
        echo(f"{s['customers']:,} customers, {s['first_ts']} .. {s['last_ts']} "
             f"({s['span_days']:g} days, {outcome.interval_s:,} s interval)")
    src = s["source"]
    if src.get("type") == "csv" and "interval_s" not in src.get("columns", {}):
        told = src.get("inferred_interval_s")
        echo(f"note: no interval_s column; {told:,} s told from the timestamps" if told else
             f"warning: no interval_s column and no customer with two rows to tell it from: "
             f"every row counts as {DEFAULT_INTERVAL_S} s (add the column or --map interval_s=COLUMN)")
    c = s["alerts"]
    sev = ", ".join(f"{k} {v:,}" for k, v in c["by_severity"].items()) or "none"
    cfg = s["config"]
    echo(
        f"config {cfg['path'] or '(defaults)'} [{cfg['fingerprint']}]: "
        f"{plural(c['opened_incidents'], 'incident')} "
        f"opened ({sev}), {plural(c['alerts'], 'alert')} -> {s['outputs']['alerts']}"
    )
    if s.get("steering"):
        st = s["steering"]
        echo(f"steering: {plural(st['verdicts'], 'verdict')}, {plural(st['windows'], 'window')}; "
             f"{c['sent']:,} alerts sent, {c['silenced']:,} silenced by windows, "
             f"{plural(c['withdrawn_by_feedback'], 'incident')} withdrawn by feedback")
    if outcome.evaluation is not None:
        echo("")
        echo(outcome.evaluation.format_table())
    p = s.get("parents")
    if p is not None:
        echo("")
        echo(f"correlator ({p['customers_in_catalogue']:,} customers in the catalogue): "
             f"{plural(p['parents'], 'parent incident')} ({p['resolved']:,} resolved) with "
             f"{plural(p['children'], 'child alert')}; {p['notifications_folded']:,} notifications folded, "
             f"{p['notifications_alone']:,} paging on their own, {p['parent_notifications']:,} from parents")
        if outcome.parent_evaluation is not None:
            echo(outcome.parent_evaluation.format_table())
    if outcome.diff is not None:
        b = s["baseline"]
        echo("")
        echo(f"baseline {b['path']} [{b['fingerprint']}]")
        echo(format_diff(outcome.diff))
        if outcome.diff.get("metrics"):
            echo("")
            echo(format_metric_deltas(outcome.diff["metrics"]))
    echo("")
    for note in outcome.notes:
        echo(note)
    echo("wrote " + ", ".join(str(p) for p in s["outputs"].values()))
    return "\n".join(out)
