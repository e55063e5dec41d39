"""Detector parameter search with Optuna (TPE): maximise recall within a false-alert budget.

The events are decoded once (with the worker's own decoder, :func:`streams.pipeline.codecs.decode_event`)
into a list of :class:`~detectors.events.Event` held in memory; each trial builds a fresh
:class:`~detectors.engine.Engine` from the base config plus the trial's overrides and feeds it
every event -- exactly what the live Processor does after decoding. Trials run in worker
processes forked after loading (they share the events copy-on-write), so ``--jobs 2`` uses
two cores; Optuna's ask/tell interface keeps ``jobs`` trials in flight.

Search space file (YAML): dotted config paths to ranges. The type follows the config field
(float, int or bool)::

    signals.error_5xx.threshold: {low: 0.99, high: 0.99999, log: false}
    signals.requests.min_rel_change: {low: 0.3, high: 2.0}
    alerting.open_n: {choices: [1, 2, 3]}
    model.warmup_s: {low: 21600, high: 86400, step: 3600}

Objective (higher is better): within the budget, ``recall + 0.01 * (1 - false/budget)`` (ties
go to fewer false alerts); over it, ``-0.1 - (false/budget - 1) + 0.05 * recall`` -- always
below any feasible trial. The same constraint is given to TPE (``Trial.set_constraint``).

>>> objective_value(0.8, 0.1, 0.2)
0.805
>>> objective_value(1.0, 0.4, 0.2) < objective_value(0.0, 0.2, 0.2)
True
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tqdm import tqdm

from detectors.config import ConfigError, DetectorConfig
from detectors.engine import Engine
from detectors.evaluation import GRACE_INTERVALS, evaluate, format_delay
from detectors.events import DEFAULT_INTERVAL_S, Event, InvalidEvent
from detectors.history import MemoryHistory
from detectors.steering import SteeredEngine, Steering
from streams.pipeline.codecs import decode_event

from .files import BadRow
from .runner import CHUNK_EVENTS, Progress
from .sources import Source
from .tracing import ReplayEngine, compact_alert


class SpaceError(ValueError):
    """The search space file is invalid (one line for the user)."""


@dataclass(frozen=True)
class Param:
    path: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def distribution(self):
        import optuna.distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log,
                                   step=None if self.step is None else float(self.step))

    def contains(self, v: Any) -> bool:
        if self.kind == "categorical":
            return v in self.choices
        return self.low <= v <= self.high and (
            self.step is None or abs(((v - self.low) / self.step) - round((v - self.low) / self.step)) < 1e-9
        )


def _lookup(mapping: Mapping[str, Any], path: str) -> Any:
    node: Any = mapping
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise SpaceError(f"unknown config path {path!r}")
        node = node[part]
    return node


def parse_space(data: Any, base: DetectorConfig | None = None) -> list[Param]:
    """Validate a space mapping against the config; see the module docstring for the format.

    >>> [p.kind for p in parse_space({"alerting.open_n": {"low": 1, "high": 3},
    ...                               "signals.error_5xx.threshold": {"low": 0.99, "high": 0.9999}})]
    ['int', 'float']
    """
    base = base or DetectorConfig()
    if not isinstance(data, Mapping) or not data:
        raise SpaceError("the search space must be a non-empty mapping of config path -> range")
    current = base.to_mapping()
    params: list[Param] = []
    for path, spec in data.items():
        value = _lookup(current, str(path))
        if isinstance(value, Mapping):
            raise SpaceError(f"{path}: is a section, not a parameter")
        if not isinstance(spec, Mapping):
            raise SpaceError(f"{path}: expected {{low: .., high: ..}} or {{choices: [..]}}, got {spec!r}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise SpaceError(
                f"{path}: unknown key(s) {', '.join(sorted(unknown))} (use low, high, log, step or choices)"
            )
        if "choices" in spec:
            ch = spec["choices"]
            if not isinstance(ch, (list, tuple)) or not ch:
                raise SpaceError(f"{path}: choices must be a non-empty list")
            p = Param(str(path), "categorical", choices=tuple(ch))
        else:
            if isinstance(value, bool):
                p = Param(str(path), "categorical", choices=(False, True))
            else:
                lo, hi = spec.get("low"), spec.get("high")
                if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi)):
                    raise SpaceError(f"{path}: low and high must be numbers")
                if not lo < hi:
                    raise SpaceError(f"{path}: low ({lo}) must be below high ({hi})")
                log = bool(spec.get("log", False))
                if log and lo <= 0:
                    raise SpaceError(f"{path}: log scale needs low > 0")
                kind = "int" if isinstance(value, int) else "float"
                if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
                    raise SpaceError(f"{path}: is an integer setting; low/high must be integers")
                step = spec.get("step")
                if step is not None and log:
                    raise SpaceError(f"{path}: step and log cannot be combined")
                p = Param(str(path), kind, float(lo) if kind == "float" else int(lo),
                          float(hi) if kind == "float" else int(hi), log, step)
        # every candidate must make a valid config
        try:
            probe = p.choices if p.kind == "categorical" else (p.low, p.high)
            for v in probe:
                base.with_overrides({p.path: v})
        except ConfigError as exc:
            raise SpaceError(f"{path}: {exc}") from None
        params.append(p)
    return params


def load_space(path: str | Path, base: DetectorConfig | None = None) -> list[Param]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpaceError(f"search space file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"{p}: cannot parse: {str(exc).splitlines()[0]}") from None
    try:
        return parse_space(data, base)
    except SpaceError as exc:
        raise SpaceError(f"{p}: {exc}") from None


# ----------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Decoded events in source order plus what the evaluation needs."""

    events: list[Event]
    labels: list[Any]
    sizes: dict[str, float]
    span_s: float
    interval_s: int
    records: int
    invalid: int
    source: dict[str, Any] = field(default_factory=dict)
    #: engineers' verdicts and windows every trial applies (``lookout tune --feedback/--silences``)
    steering: Steering | None = None


def load_dataset(source: Source, labels: Sequence[Any], progress: bool = False) -> Dataset:
    """Read the whole source into memory (tuning replays it many times)."""
    events: list[Event] = []
    append = events.append
    records = invalid = 0
    sizes: dict[str, list] = {}
    intervals: dict[int, int] = {}
    t_min, t_max = math.inf, -math.inf
    bar = Progress(source, progress, desc="load")
    try:
        for value, _key, _p, _o in source.records(bar):
            records += 1
            if isinstance(value, BadRow):
                invalid += 1
                continue
            try:
                e = decode_event(value)
            except InvalidEvent:
                invalid += 1
                continue
            append(e)
            s = sizes.get(e.customer_id)
            if s is None:
                s = sizes[e.customer_id] = [0, 0]
            s[0] += 1
            s[1] += e.requests
            intervals[e.interval_s] = intervals.get(e.interval_s, 0) + 1
            if e.ts < t_min:
                t_min = e.ts
            if e.ts + e.interval_s > t_max:
                t_max = e.ts + e.interval_s
    finally:
        bar.close()
    return Dataset(
        events,
        list(labels),
        {c: tot / n for c, (n, tot) in sizes.items()},
        max(0.0, t_max - t_min) if events else 0.0,
        max(intervals, key=intervals.get) if intervals else 60,
        records,
        invalid,
        source.describe(),
    )


def run_config(data: Dataset, config: DetectorConfig, grace: float = GRACE_INTERVALS):
    """All alerts (compact) of ``config`` over the dataset, and their evaluation (of the alerts sent:
    with the dataset's steering, those a maintenance window mutes do not count)."""
    eng: Any = Engine(config)
    history = None
    if data.steering is not None:  # the same records, judged with this trial's thresholds
        st = Steering(config)
        for v in data.steering.verdicts.values():
            st.put_verdict(v)
        for w in data.steering.windows.values():
            st.put_window(w)
        history = MemoryHistory(keep_s=config.feedback.max_backdate_s + 7 * 86400.0)
        eng = SteeredEngine(eng, st, history)
    process_many = eng.process_many
    events = data.events
    alerts: list[dict[str, Any]] = []
    for i in range(0, len(events), CHUNK_EVENTS):
        part = events[i:i + CHUNK_EVENTS]
        v = process_many(part)
        if v.alerts:
            alerts.extend(compact_alert(a) for a in v.alerts)
        if history is not None:
            history.observe(eng.engine, part, eng.steering.customers)
    sent = [a for a in alerts if not a.get("silenced_by")]
    ev = evaluate(sent, data.labels, customers=data.sizes, span_s=data.span_s, interval_s=data.interval_s,
                  grace_intervals=grace)
    return alerts, ev


def objective_value(recall: float | None, fpcw: float | None, budget: float) -> float:
    r = recall or 0.0
    f = fpcw or 0.0
    ratio = f / budget if budget > 0 else (0.0 if f == 0 else math.inf)
    if ratio <= 1.0:
        return round(r + 0.01 * (1.0 - ratio), 9)
    return round(-0.1 - min(ratio - 1.0, 1e6) + 0.05 * r, 9)


# -- worker-process side (state inherited through fork) ----------------------------------

_STATE: dict[str, Any] = {}


def _trial(overrides: dict[str, Any]) -> dict[str, Any]:
    data: Dataset = _STATE["data"]
    t0 = time.perf_counter()
    cfg = _STATE["base"].with_overrides(overrides)
    _alerts, ev = run_config(data, cfg, _STATE["grace"])
    return {"headline": ev.headline(), "by_kind": ev.by_kind, "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- search


@dataclass
class TuneResult:
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_config: DetectorConfig
    baseline_number: int | None
    seconds: float
    budget: float


def tune(
    data: Dataset,
    base: DetectorConfig,
    space: Sequence[Param],
    *,
    trials: int,
    budget: float,
    jobs: int = 1,
    seed: int = 0,
    grace: float = GRACE_INTERVALS,
    progress: bool = False,
    timeout_s: float | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Run ``trials`` Optuna trials (the first one is the base config when it lies in the space)."""
    search = _Search(base, space, budget=budget, seed=seed, trials=trials, progress=progress,
                     on_trial=on_trial)
    _STATE.update(data=data, base=base, grace=grace)
    t0 = time.perf_counter()

    def out_of_time() -> bool:
        return timeout_s is not None and time.perf_counter() - t0 > timeout_s

    try:
        if jobs <= 1:
            search.serial(trials, out_of_time)
        else:
            search.parallel(trials, jobs, out_of_time)
    finally:
        _STATE.clear()
        search.close()
    results = sorted(search.results, key=lambda r: r["number"])
    best = search.best
    best_config = base.with_overrides(best["params"]) if best is not None else base
    return TuneResult(results, best, best_config, search.baseline_number, time.perf_counter() - t0, budget)


class _Search:
    """An Optuna study of the space around ``base``, its trials' rows and the best one so far."""

    def __init__(self, base: DetectorConfig, space: Sequence[Param], *, budget: float, seed: int, trials: int,
                 progress: bool, on_trial: Callable[[dict[str, Any]], None] | None):
        # not at the top: Optuna (~0.3 s with its dependencies) only when a search runs, not for --help
        import optuna

        self.optuna = optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # the budget is also a constraint for TPE: Trial.set_constraint from Optuna 5, constraints_func before
        self.native = hasattr(optuna.trial.Trial, "set_constraint")
        extra = {} if self.native else {"constraints_func": lambda t: t.user_attrs.get("constraint", (1.0,))}
        startup = min(10, max(2, trials // 3))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, **extra)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.dists = {p.path: p.distribution() for p in space}
        base_map = base.to_mapping()
        base_params = {p.path: _lookup(base_map, p.path) for p in space}
        self.baseline_number = None
        if all(p.contains(base_params[p.path]) for p in space):
            self.study.enqueue_trial(base_params)
            self.baseline_number = 0
        self.budget = budget
        self.on_trial = on_trial
        self.results: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.bar = (tqdm(total=trials, desc="tune", unit="trial", leave=False, dynamic_ncols=True)
                    if progress else None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self, trial, res: dict[str, Any] | None, error: str | None = None) -> None:
        """Tell the study how ``trial`` did (``res``, or the ``error`` it failed with); keep its row."""
        if res is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            self.results.append({"number": trial.number, "params": trial.params, "error": error})
        else:
            h = res["headline"]
            fpcw = h["false_per_customer_week"]
            value = objective_value(h["recall"], fpcw, self.budget)
            if self.native:
                trial.set_constraint("false_alerts_over_budget", (fpcw or 0.0) - self.budget)
            else:
                trial.set_user_attr("constraint", ((fpcw or 0.0) - self.budget,))
            self.study.tell(trial, value)
            row = {"number": trial.number, "params": trial.params, "value": value,
                   "feasible": (fpcw or 0.0) <= self.budget, "seconds": round(res["seconds"], 3), **h,
                   "by_kind": res["by_kind"]}
            self.results.append(row)
            if self.best is None or value > self.best["value"]:
                self.best = row
            if self.on_trial is not None:
                self.on_trial(row)
        if self.bar is not None:
            self.bar.update(1)
            if self.best is not None:
                self.bar.set_postfix(best_recall=self.best["recall"],
                                     best_false_cw=self.best["false_per_customer_week"])

    def serial(self, trials: int, out_of_time: Callable[[], bool]) -> None:
        for _ in range(trials):
            if out_of_time():
                break
            t = self.study.ask(self.dists)
            try:
                self.finish(t, _trial(dict(t.params)))
            except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the search goes on
                self.finish(t, None, f"{type(exc).__name__}: {exc}")

    def parallel(self, trials: int, jobs: int, out_of_time: Callable[[], bool]) -> None:
        """``jobs`` trials at a time in forked processes (they inherit the dataset)."""
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
            pending: dict[Any, Any] = {}
            asked = 0
            while pending or (asked < trials and not out_of_time()):
                while len(pending) < jobs and asked < trials and not out_of_time():
                    t = self.study.ask(self.dists)
                    pending[pool.submit(_trial, dict(t.params))] = t
                    asked += 1
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    t = pending.pop(fut)
                    try:
                        self.finish(t, fut.result())
                    except Exception as exc:  # noqa: BLE001 - recorded like a failing trial above
                        self.finish(t, None, f"{type(exc).__name__}: {exc}")


def trace_config(data: Dataset, config: DetectorConfig, customers: Sequence[str]):
    """Traces (for plots) of ``config`` for a few customers: only their events are replayed."""
    want = set(customers)
    eng = ReplayEngine(config, want)
    eng.process_many([e for e in data.events if e.customer_id in want])
    return eng.traces


def params_table(base: DetectorConfig, best: DetectorConfig, space: Sequence[Param]) -> list[list[Any]]:
    bm, nm = base.to_mapping(), best.to_mapping()
    rows = []
    for p in space:
        rng = (
            f"{list(p.choices)}"
            if p.kind == "categorical"
            else f"{p.low} .. {p.high}{' (log)' if p.log else ''}"
        )
        rows.append([p.path, _lookup(bm, p.path), _lookup(nm, p.path), rng])
    return rows


def tune_summary(data: Dataset, result: TuneResult, *, base: DetectorConfig, base_path: str | None,
                 space: Sequence[Param], best_eval: Any, best_path: Path, out: Path, trials: int, jobs: int,
                 seed: int) -> dict[str, Any]:
    """The search and the best trial's evaluation, as written to ``summary.json``."""
    base_row = baseline_row(result)
    return {
        "source": data.source,
        "events": len(data.events),
        "invalid": data.invalid,
        "records": data.records,
        "customers": len(data.sizes),
        "labels": len(data.labels),
        "span_days": round(data.span_s / 86400, 3),
        "interval_s": data.interval_s,
        "base_config": base_path,
        "base_fingerprint": base.fingerprint(),
        "space": [
            {
                "path": p.path,
                "kind": p.kind,
                "low": p.low,
                "high": p.high,
                "log": p.log,
                "choices": list(p.choices) if p.choices else None,
            }
            for p in space
        ],
        "budget": result.budget,
        "trials_requested": trials,
        "trials_done": len(result.trials),
        "jobs": jobs,
        "seed": seed,
        "seconds": round(result.seconds, 2),
        "baseline_trial": result.baseline_number,
        "baseline": {
            k: base_row[k]
            for k in (
                "recall",
                "precision",
                "false_alerts",
                "false_per_customer_week",
                "ttd_median_intervals",
            )
        }
        if base_row
        else None,
        "best_trial": result.best["number"] if result.best else None,
        "best_params": result.best["params"] if result.best else None,
        "best_within_budget": result.best["feasible"] if result.best else None,
        "best_config_path": str(best_path),
        "best_fingerprint": result.best_config.fingerprint(),
        "best_evaluation": best_eval.to_dict(),
        "outputs": {
            "best": str(best_path),
            "trials": str(out / "trials.json"),
            "summary": str(out / "summary.json"),
        },
    }


def baseline_row(result: TuneResult) -> dict[str, Any] | None:
    """The trial that ran the base config, if it lay inside the space and did not fail."""
    return next((t for t in result.trials if t["number"] == result.baseline_number and "recall" in t), None)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _num(v: float | None, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def format_value(v: Any) -> str:
    """A parameter value for a terminal: no float noise, thousands separators.

    >>> format_value(0.9923463927086412), format_value(0.9999), format_value(86400), format_value(True)
    ('0.992346', '0.9999', '86,400', 'True')
    """
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:.6g}"


def format_tune(summary: Mapping[str, Any], result: TuneResult, params_rows: Sequence[Sequence[Any]],
                best_eval: Any) -> str:
    """The terminal summary of a search: base vs best trial, changed parameters, the best evaluation."""
    lines = [
        f"{len(result.trials)} trials over {summary['events']:,} events ({summary['customers']:,} customers, "
        f"{summary['labels']:,} labels) in {result.seconds:.1f} s with {summary['jobs']} process(es)"
    ]
    base_row = baseline_row(result)
    if base_row:
        lines.append(f"base config (trial {result.baseline_number}): recall {_pct(base_row['recall'])}, "
                     f"false/customer-week {_num(base_row['false_per_customer_week'])}")
    b = result.best
    verdict = "within" if b["feasible"] else "OVER"
    lines.append(
        f"best trial {b['number']}: recall {_pct(b['recall'])}, false/customer-week "
        f"{_num(b['false_per_customer_week'])} ({verdict} budget {result.budget:g}), precision "
        f"{_pct(b['precision'])}, time to detect (median) "
        f"{format_delay(b['ttd_median_intervals'], summary.get('interval_s') or DEFAULT_INTERVAL_S)}"
    )
    for path, base_v, best_v, _rng in params_rows:
        mark = "" if base_v == best_v else "   (changed)"
        lines.append(f"  {path:<40} {format_value(base_v):>12} -> {format_value(best_v):<12}{mark}".rstrip())
    lines += ["", best_eval.format_table(), "", "wrote " + ", ".join(summary["outputs"].values())]
    return "\n".join(lines)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


__all__ = [
    "Dataset",
    "Param",
    "SpaceError",
    "TuneResult",
    "baseline_row",
    "format_tune",
    "load_dataset",
    "load_space",
    "objective_value",
    "parse_space",
    "run_config",
    "trace_config",
    "tune",
    "tune_summary",
]
