"""Detector configuration: one frozen object, loadable from YAML or TOML.

The worker and ``lookout replay`` read the same file format. Every named
threshold lives here with its meaning; nothing in the detectors is a bare magic
number that a user might want to change.

>>> cfg = DetectorConfig()
>>> cfg.alerting.open_n, cfg.signals["error_5xx"].threshold
(2, 0.9999)
>>> tuned = cfg.with_overrides({"alerting.open_n": 3, "signals.error_5xx.threshold": 0.999})
>>> tuned.alerting.open_n, tuned.signals["error_5xx"].threshold, cfg.alerting.open_n
(3, 0.999, 2)
>>> DetectorConfig.from_mapping(tuned.to_mapping()) == tuned
True

Every numeric field declares its valid range next to it; a file is checked as a whole and
every problem is reported at once:

>>> DetectorConfig.from_mapping({"alerting": {"open_n": 5, "open_m": 3}, "model": {"warmup_s": -5}})
Traceback (most recent call last):
...
detectors.config.ConfigError: 2 problems:
  model.warmup_s must be >= 0, got -5
  alerting.open_n (5) must not exceed alerting.open_m (3)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .signals import SIGNALS


class ConfigError(ValueError):
    """The configuration file or an override is invalid.

    ``problems`` lists every problem found (``str(exc)`` joins them), ``paths`` the dotted
    setting each one is about (``None`` when it is about the whole file).
    """

    def __init__(self, problems: str | Sequence[str | tuple[str | None, str]], source: str | None = None):
        items = [(None, problems)] if isinstance(problems, str) else [
            p if isinstance(p, tuple) else (None, p) for p in problems]
        self.paths = [p for p, _ in items]
        self.problems = [t for _, t in items]
        self.source = source
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems:" + "".join(f"\n  {t}" for t in self.problems))
        super().__init__(f"{source}: {text}" if source else text)


@dataclass(frozen=True)
class Range:
    """Valid values of a numeric setting: ``lo``/``hi`` bounds, each inclusive or not.

    >>> str(Range(0, 1, lo_open=True)), str(Range(lo=0)), Range(0, 1, lo_open=True).contains(0)
    ('in (0, 1]', '>= 0', False)
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"


def _in(default: Any, rng: Range) -> Any:
    """A dataclass field with its valid range attached (checked on every construction)."""
    return field(default=default, metadata={"range": rng})


#: a score or probability threshold: above 0, at most 1
SCORE = Range(0, 1, lo_open=True)
NON_NEGATIVE = Range(lo=0)
POSITIVE = Range(lo=0, lo_open=True)
AT_LEAST_ONE = Range(lo=1)
#: longest N-of-M window (intervals) an incident can be opened over
MAX_OPEN_M = 64


class _Checked:
    """Validates field types and ranges (and :meth:`_relations`) on construction."""

    def __post_init__(self) -> None:
        problems = _problems(type(self), dataclasses.asdict(self), type(self).__name__)  # type: ignore[call-overload]
        if problems:
            raise ConfigError(problems)

    @staticmethod
    def _relations(values: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
        return []


@dataclass(frozen=True)
class SignalConfig(_Checked):
    """Per-signal alerting rules.

    threshold: score (1 - tail probability) at or above which an interval counts as anomalous.
    min_rel_change: magnitude gate -- observed must be at least ``(1 + min_rel_change)`` times
        expected (rates going down and volume drops: at most ``1 / (1 + min_rel_change)`` times);
        for ratios the change is relative to the expected rate.
    min_abs_change: magnitude gate in the signal's own unit (ratios: absolute rate difference,
        e.g. 0.02 = 2 percentage points; latency: milliseconds; volume: unused).
    min_requests: volume gate -- intervals with fewer requests are scored but never counted.
    min_events: ratio gate -- the numerator must exceed its expectation by at least this many events.
    count_slack: magnitude gate of a count (traffic): the observed count is first moved this many
        Poisson standard deviations (its square root) towards the expected one, so a small
        customer's interval must clear ``min_rel_change`` by more than its own counting noise
        (4 requests where 14 are expected are not yet a drop below 0.4x). 0 = off.
    alert: whether this signal may open an incident at all (otherwise it is scored and exported only).
    """

    enabled: bool = True
    alert: bool = True
    threshold: float = _in(0.9999, SCORE)
    min_rel_change: float = _in(0.5, NON_NEGATIVE)
    min_abs_change: float = _in(0.0, NON_NEGATIVE)
    min_requests: int = _in(50, NON_NEGATIVE)
    min_events: int = _in(10, NON_NEGATIVE)
    count_slack: float = _in(0.0, NON_NEGATIVE)


@dataclass(frozen=True)
class ModelConfig(_Checked):
    """Online model hyper-parameters, in event time so they hold at any interval length.

    warmup_s / warmup_points: a series alerts only after it has seen at least this much event
        time *and* this many points.
    level_half_life_s: how fast the baseline level follows the data.
    season_half_life_visits: per time-of-day / day-of-week bin, how many visits (days / weeks)
        until an old observation weighs half.
    scale_half_life_s: how fast the noise scale adapts.
    accept_shift_after_s: a shift that persists this long is accepted as the new normal.
    learn_threshold: points scoring at or above this are kept out of the baseline
        (they still move the shadow level used for shift acceptance).
    ratio_half_life_s: baseline rate memory of ratio signals.
    """

    warmup_s: float = _in(86400.0, NON_NEGATIVE)
    warmup_points: int = _in(12, NON_NEGATIVE)
    level_half_life_s: float = _in(86400.0, POSITIVE)
    season_half_life_visits: float = _in(3.0, POSITIVE)
    scale_half_life_s: float = _in(2 * 86400.0, POSITIVE)
    accept_shift_after_s: float = _in(86400.0, NON_NEGATIVE)
    learn_threshold: float = _in(0.999, SCORE)
    ratio_half_life_s: float = _in(12 * 3600.0, POSITIVE)
    weekly: bool = True


@dataclass(frozen=True)
class AlertingConfig(_Checked):
    """Incident lifecycle.

    open_n / open_m: an incident opens when at least ``open_n`` of the last ``open_m``
        intervals were anomalous on some signal.
    recovery_intervals: consecutive normal intervals before an incident resolves (its
        ``resolved_at`` is the first of them). Long enough that a change flickering around
        its gates -- a small customer's noisy counts after a level shift, the echo of an
        incident -- stays one incident instead of resolving and opening again.
    sustain_threshold / sustain_factor: while an incident is open, a signal keeps it open at
        this score and at this fraction of its opening magnitude gates (hysteresis: a change
        hovering around the gate is one incident, not a flapping series of them).
    critical_*/warning_*: severity cut-offs (see :mod:`detectors.alerting`).
    major_customer_requests: expected requests per interval above which a customer counts
        as major (one severity step up).
    """

    open_n: int = _in(2, AT_LEAST_ONE)
    open_m: int = _in(3, Range(1, MAX_OPEN_M))
    recovery_intervals: int = _in(6, AT_LEAST_ONE)
    sustain_threshold: float = _in(0.999, SCORE)
    sustain_factor: float = _in(0.5, Range(0, 1))
    major_customer_requests: float = _in(10000.0, NON_NEGATIVE)
    critical_magnitude: float = _in(4.0, AT_LEAST_ONE)
    warning_magnitude: float = _in(2.0, AT_LEAST_ONE)

    @staticmethod
    def _relations(values: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
        out = []
        if values["open_n"] > values["open_m"]:
            out.append((f"{where}.open_n", f"{where}.open_n ({values['open_n']}) must not exceed "
                                           f"{where}.open_m ({values['open_m']})"))
        if values["warning_magnitude"] > values["critical_magnitude"]:
            out.append((f"{where}.warning_magnitude",
                        f"{where}.warning_magnitude ({values['warning_magnitude']:g}) must not exceed "
                        f"{where}.critical_magnitude ({values['critical_magnitude']:g})"))
        return out


@dataclass(frozen=True)
class FeedbackConfig(_Checked):
    """What engineers' verdicts and maintenance windows do (:mod:`detectors.steering`).

    false_alarm_decades: after a ``false_alarm`` verdict, the customer x signal (in the
        direction it moved) needs this many more decades of surprise to count as anomalous
        (10x rarer per decade); near the time of day the marked incident ran, every signal of
        the customer does.
    false_alarm_margin: ...and within ``false_alarm_window_s`` of that time of day (where a
        recurring job, crawler or purge repeats) the signal needs a change at least
        ``1 + false_alarm_margin`` times the marked alert's own magnitude: its repeats do not
        pass, larger changes do.
    false_alarm_window_s: how far from that time of day the stricter requirements reach.
    false_alarm_hold_s: the requirements hold this long after the verdict...
    false_alarm_half_life_s: ...then fade with this half-life (a new ``false_alarm`` renews
        them; ``confirmed`` removes them).
    max_window_s: longest occurrence of a maintenance window.
    max_backdate_s: how long before its creation a window may start (its events are learned
        again without it, from the state history kept this long).
    """

    false_alarm_decades: float = _in(1.0, NON_NEGATIVE)
    false_alarm_margin: float = _in(1.0, NON_NEGATIVE)
    false_alarm_window_s: float = _in(5400.0, Range(0, 43200))
    false_alarm_hold_s: float = _in(14 * 86400.0, NON_NEGATIVE)
    false_alarm_half_life_s: float = _in(14 * 86400.0, POSITIVE)
    max_window_s: float = _in(7 * 86400.0, POSITIVE)
    max_backdate_s: float = _in(86400.0, NON_NEGATIVE)


#: the catalogue attributes that form groups by default, the most specific first (the order
#: also breaks ties between groups that explain the same customers equally well)
DEFAULT_GROUP_BY = ("origin_region", "origin_provider", "origin_asn", "account_team", "plan")


@dataclass(frozen=True)
class CorrelatorConfig(_Checked):
    """Parent incidents across customers (:mod:`detectors.correlator`).

    enabled: run the correlator (it needs a customer catalogue; without one it passes every
        alert through at once).
    group_by: catalogue attributes whose values form groups, most specific first (ties go to
        the earlier attribute); ``fleet`` adds the whole fleet as a group.
    window_intervals: onsets are counted over this many intervals (the current one included):
        a shared cause whose customers go wrong one or two intervals apart is one burst.
    min_customers: fewest customers of a group with an onset in the window to open a parent.
    min_surprise: a group opens a parent when its count is at least this surprising under the
        group's background rate: ``-log10`` of the binomial tail ``P(X >= k)``, ``X ~ Bin(group
        size, window rate)``. 7 = one chance in ten million per group, family and interval:
        ~100 groups x ~15 families x 2,016 five-minute intervals a week leave well under one
        false parent a week (6 let one chance coincidence of three cache-hit collapses in one
        ASN through in the simulated tuning week; every shared cause passes 7 by far).
    prior_rate / prior_weight: before a group has history its background onset rate per
        customer and interval is ``prior_rate``, worth ``prior_weight`` customer-intervals of
        evidence; learned rates shrink towards it.
    rate_half_life_s: memory of the learned background rates (event time).
    recent_half_life_s / recent_weight: the background is also learned over the last hours
        (shrunk towards the long-term rate with ``recent_weight`` customer-intervals), and the
        larger of the two is used: a slow fleet-wide swell (weekend traffic starting in one time
        zone after another) raises the bar instead of opening parents. Counts surprising at
        ``min_surprise`` are learned as their expectation here.
    learn_max_surprise: an interval whose window count is at least this surprising is learned
        as its expectation instead, so an outage does not raise its group's background.
    join_surprise: customers of a parent's group join it while the group's window count is at
        least this surprising (and for ``expire_intervals`` after the last time it was): a
        parent grows with its burst, not with the background that follows.
    hold_intervals: a new child alert waits this many intervals for a parent before it pages
        on its own (0 = decide in the alert's own interval): what the hold costs in latency.
    join_slack_intervals: a child belongs to a parent only if its incident started at most this
        many intervals before the parent's first onset (older ones started before the cause).
    expire_intervals: a parent that no child alert joined is dropped silently after this many
        intervals without a new onset; a parent with children resolves with them.
    critical_customers: a parent over this many affected customers is critical whatever its
        children's severities.
    """

    enabled: bool = True
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    fleet: bool = True
    window_intervals: int = _in(3, Range(1, MAX_OPEN_M))
    min_customers: int = _in(3, Range(lo=2))
    min_surprise: float = _in(7.0, POSITIVE)
    prior_rate: float = _in(1e-4, Range(0, 1, lo_open=True, hi_open=True))
    prior_weight: float = _in(20000.0, NON_NEGATIVE)
    rate_half_life_s: float = _in(7 * 86400.0, POSITIVE)
    recent_half_life_s: float = _in(3 * 3600.0, POSITIVE)
    recent_weight: float = _in(5000.0, NON_NEGATIVE)
    learn_max_surprise: float = _in(3.0, POSITIVE)
    join_surprise: float = _in(3.0, POSITIVE)
    hold_intervals: int = _in(1, Range(0, MAX_OPEN_M))
    join_slack_intervals: int = _in(3, Range(0, MAX_OPEN_M))
    expire_intervals: int = _in(6, AT_LEAST_ONE)
    critical_customers: int = _in(20, AT_LEAST_ONE)


def _default_signals() -> dict[str, SignalConfig]:
    return {name: SignalConfig(**sig.defaults) for name, sig in SIGNALS.items()}


@dataclass(frozen=True)
class DetectorConfig:
    signals: Mapping[str, SignalConfig] = field(default_factory=_default_signals)
    model: ModelConfig = field(default_factory=ModelConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    correlator: CorrelatorConfig = field(default_factory=CorrelatorConfig)

    # -- (de)serialisation -------------------------------------------------
    def to_mapping(self) -> dict[str, Any]:
        correlator = dataclasses.asdict(self.correlator)
        correlator["group_by"] = list(self.correlator.group_by)
        return {
            "model": dataclasses.asdict(self.model),
            "alerting": dataclasses.asdict(self.alerting),
            "signals": {k: dataclasses.asdict(v) for k, v in self.signals.items()},
            "feedback": dataclasses.asdict(self.feedback),
            "correlator": correlator,
        }

    @classmethod
    def from_mapping(cls, data: Any) -> "DetectorConfig":
        """Build from a parsed file (sections ``model``, ``alerting``, ``signals``, ``feedback``; all
        optional).

        Raises :class:`ConfigError` listing every problem: unknown sections, signals and keys,
        wrong types, values out of range, inconsistent pairs.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"the config must be a mapping of sections ({', '.join(SECTIONS)}), "
                              f"got {_kind(data)}")
        problems: list[tuple[str | None, str]] = []
        unknown = [str(k) for k in data if k not in SECTIONS]
        if unknown:
            problems.append((unknown[0], f"unknown config section(s) {', '.join(unknown)} "
                                         f"(known: {', '.join(SECTIONS)})"))
        base = cls()
        signals = dict(base.signals)
        over_signals = data.get("signals")
        if over_signals is not None and not isinstance(over_signals, Mapping):
            problems.append(("signals", f"signals must be a mapping of signal name -> settings, "
                                        f"got {_kind(over_signals)}"))
            over_signals = None
        for name, over in (over_signals or {}).items():
            if name not in SIGNALS:
                problems.append((f"signals.{name}", f"unknown signal {name!r} (known: {', '.join(SIGNALS)})"))
                continue
            signals[name] = _build(SignalConfig, over, f"signals.{name}", signals[name], problems)
        model = _build(ModelConfig, data.get("model"), "model", base.model, problems)
        alerting = _build(AlertingConfig, data.get("alerting"), "alerting", base.alerting, problems)
        correlator = _build(CorrelatorConfig, data.get("correlator"), "correlator", base.correlator, problems)
        feedback = _build(FeedbackConfig, data.get("feedback"), "feedback", base.feedback, problems)
        if problems:
            raise ConfigError(problems)
        return cls(signals=signals, model=model, alerting=alerting, correlator=correlator, feedback=feedback)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "DetectorConfig":
        """Return a copy with dotted-path overrides, e.g. ``{"signals.requests.threshold": 0.99}``."""
        data = self.to_mapping()
        for path, value in overrides.items():
            parts = path.split(".")
            node = data
            for p in parts[:-1]:
                if not isinstance(node, dict) or p not in node:
                    raise ConfigError(f"unknown config path {path!r}")
                node = node[p]
            if parts[-1] not in node:
                raise ConfigError(f"unknown config path {path!r}")
            node[parts[-1]] = value
        return DetectorConfig.from_mapping(data)

    def model_fingerprint(self) -> str:
        """Hash of what per-series model state depends on (model section + enabled signals)."""
        import hashlib

        enabled = sorted(k for k, v in self.signals.items() if v.enabled)
        blob = json.dumps(
            {"model": dataclasses.asdict(self.model), "enabled": enabled}, sort_keys=True
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def fingerprint(self) -> str:
        """Short stable hash of the effective configuration (shown in reports and logs)."""
        import hashlib

        blob = json.dumps(self.to_mapping(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


SECTIONS = ("model", "alerting", "signals", "correlator", "feedback")
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number"}
#: the one list-valued setting type: a list of names (``correlator.group_by``)
_NAMES = "tuple[str, ...]"


def _kind(v: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(v), type(v).__name__)


def _problems(klass: type, values: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    """(path, text) of every type and range problem of a complete set of field values; if there
    are none, of the cross-field ones."""
    out = []
    for f in dataclasses.fields(klass):
        v, path = values[f.name], f"{where}.{f.name}"
        if str(f.type) == _NAMES:
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v) \
                    or len(set(v)) != len(v):
                out.append((path, f"{path} must be a list of distinct names, got {v!r}"))
            continue
        want = f.type if isinstance(f.type, type) else {"bool": bool, "int": int, "float": float}[str(f.type)]
        number = v if want is not float or isinstance(v, bool) or not isinstance(v, int) else float(v)
        if not isinstance(number, want) or (want is not bool and isinstance(v, bool)):
            out.append((path, f"{path} must be {_TYPE_NAMES[want]}, got {v!r}"))
            continue
        rng = f.metadata.get("range")
        if rng is not None and not (number == number and rng.contains(number)):  # x != x: NaN
            out.append((path, f"{path} must be {rng}, got {v!r}"))
    return out or klass._relations(values, where)  # type: ignore[attr-defined]


def _build(klass, over: Any, where: str, base, problems: list[tuple[str | None, str]]):
    """``base`` with the settings in ``over`` applied; on any problem they are appended to
    ``problems`` (unknown keys all in one) and ``base`` is returned."""
    if over is None:
        return base
    if not isinstance(over, Mapping):
        problems.append((where, f"{where} must be a mapping of settings, got {_kind(over)}"))
        return base
    values = dataclasses.asdict(base)
    unknown = [str(k) for k in over if k not in values]
    found: list[tuple[str | None, str]] = []
    if unknown:
        found.append((f"{where}.{unknown[0]}", f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)} "
                                               f"(known: {', '.join(values)})"))
    values.update((k, v) for k, v in over.items() if k in values)
    found += _problems(klass, values, where)
    if found:
        problems += found
        return base
    for k, v in values.items():
        if isinstance(getattr(base, k), float) and isinstance(v, int):
            values[k] = float(v)
        elif isinstance(v, list):
            values[k] = tuple(v)
    return klass(**values)


def load_config(path: str | Path | None) -> DetectorConfig:
    """Load a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON file; ``None`` gives the defaults.

    Errors name the file and, where the format tells, the line (and column for syntax errors).
    """
    if path is None:
        return DetectorConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(p)) from None
    lines: dict[str, int] = {}
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
            try:
                lines = _yaml_lines(yaml.compose(text, Loader=yaml.SafeLoader))
            except ConfigError as exc:
                raise ConfigError(exc.problems, source=str(p)) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            raise ConfigError(
                f"{where}cannot parse YAML: {exc.problem or exc.context}", source=str(p)
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse YAML: {str(exc).splitlines()[0]}", source=str(p)) from None
    elif p.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
            raise ConfigError(f"cannot parse TOML: {exc}", source=str(p)) from None
    elif p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"line {exc.lineno}, column {exc.colno}: cannot parse JSON: {exc.msg}",
                              source=str(p)) from None
    else:
        raise ConfigError(f"unknown config format {p.suffix!r} (use .yaml, .toml or .json)", source=str(p))
    try:
        return DetectorConfig.from_mapping(data)
    except ConfigError as exc:
        found = sorted(zip(exc.paths, exc.problems), key=lambda pt: lines.get(pt[0] or "", 0))
        problems = [(path, f"line {lines[path]}: {text}" if path in lines else text) for path, text in found]
        raise ConfigError(problems, source=str(p)) from None


def _yaml_lines(node: Any, prefix: str = "") -> dict[str, int]:
    """Dotted key path -> 1-based line of the key, for every key of a composed YAML mapping."""
    import yaml

    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            if path in out:  # PyYAML keeps the last silently; the user surely meant one of them
                raise ConfigError(
                    f"line {key.start_mark.line + 1}: duplicate key {path} (first on line {out[path]})"
                )
            out[path] = key.start_mark.line + 1
            out.update(_yaml_lines(value, path + "."))
    return out


def dump_config(cfg: DetectorConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (or JSON for ``.json``)."""
    p = Path(path)
    if p.suffix == ".json":
        p.write_text(json.dumps(cfg.to_mapping(), indent=2) + "\n")
    else:
        import yaml

        p.write_text(yaml.safe_dump(cfg.to_mapping(), sort_keys=False))
