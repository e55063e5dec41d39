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
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .signals import SIGNALS

class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


@dataclass(frozen=True)
class SignalConfig:
    """Per-signal alerting rules.

    threshold: score (1 - tail probability) at or above which an interval counts as anomalous.
    min_rel_change: magnitude gate -- observed must be at least ``(1 + min_rel_change)`` times
        expected (rates going down and volume drops: at most ``1 / (1 + min_rel_change)`` times);
        for ratios the change is relative to the expected rate.
    min_abs_change: magnitude gate in the signal's own unit (ratios: absolute rate difference,
        e.g. 0.02 = 2 percentage points; latency: milliseconds; volume: unused).
    min_requests: volume gate -- intervals with fewer requests are scored but never counted.
    min_events: ratio gate -- the numerator must exceed its expectation by at least this many events.
    alert: whether this signal may open an incident at all (otherwise it is scored and exported only).
    """

    enabled: bool = True
    alert: bool = True
    threshold: float = 0.9999
    min_rel_change: float = 0.5
    min_abs_change: float = 0.0
    min_requests: int = 50
    min_events: int = 10


@dataclass(frozen=True)
class ModelConfig:
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

    warmup_s: float = 86400.0
    warmup_points: int = 12
    level_half_life_s: float = 86400.0
    season_half_life_visits: float = 3.0
    scale_half_life_s: float = 2 * 86400.0
    accept_shift_after_s: float = 86400.0
    learn_threshold: float = 0.999
    ratio_half_life_s: float = 12 * 3600.0
    weekly: bool = True


@dataclass(frozen=True)
class AlertingConfig:
    """Incident lifecycle.

    open_n / open_m: an incident opens when at least ``open_n`` of the last ``open_m``
        intervals were anomalous on some signal.
    recovery_intervals: consecutive normal intervals before an incident resolves.
    sustain_threshold / sustain_factor: while an incident is open, a signal keeps it open at
        this score and at this fraction of its opening magnitude gates (hysteresis: a change
        hovering around the gate is one incident, not a flapping series of them).
    critical_*/warning_*: severity cut-offs (see :mod:`detectors.alerting`).
    major_customer_requests: expected requests per interval above which a customer counts
        as major (one severity step up).
    """

    open_n: int = 2
    open_m: int = 3
    recovery_intervals: int = 3
    sustain_threshold: float = 0.999
    sustain_factor: float = 0.5
    major_customer_requests: float = 10000.0
    critical_magnitude: float = 4.0
    warning_magnitude: float = 2.0


def _default_signals() -> dict[str, SignalConfig]:
    return {name: SignalConfig(**sig.defaults) for name, sig in SIGNALS.items()}


@dataclass(frozen=True)
class DetectorConfig:
    signals: Mapping[str, SignalConfig] = field(default_factory=_default_signals)
    model: ModelConfig = field(default_factory=ModelConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)

    # -- (de)serialisation -------------------------------------------------
    def to_mapping(self) -> dict[str, Any]:
        return {
            "model": dataclasses.asdict(self.model),
            "alerting": dataclasses.asdict(self.alerting),
            "signals": {k: dataclasses.asdict(v) for k, v in self.signals.items()},
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "DetectorConfig":
        data = dict(data or {})
        unknown = set(data) - {"model", "alerting", "signals"}
        if unknown:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        base = cls()
        signals = dict(base.signals)
        for name, over in (data.get("signals") or {}).items():
            if name not in SIGNALS:
                raise ConfigError(f"unknown signal {name!r} (known: {', '.join(SIGNALS)})")
            signals[name] = _build(SignalConfig, over, f"signals.{name}", signals[name])
        return cls(
            signals=signals,
            model=_build(ModelConfig, data.get("model"), "model", base.model),
            alerting=_build(AlertingConfig, data.get("alerting"), "alerting", base.alerting),
        )

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
        blob = json.dumps({"model": dataclasses.asdict(self.model), "enabled": enabled}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def fingerprint(self) -> str:
        """Short stable hash of the effective configuration (shown in reports and logs)."""
        import hashlib

        blob = json.dumps(self.to_mapping(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _build(klass, over: Any, where: str, base):
    if over is None:
        return base
    if not isinstance(over, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(over).__name__}")
    known = {f.name: f for f in dataclasses.fields(klass)}
    values = dataclasses.asdict(base)
    for k, v in over.items():
        if k not in known:
            raise ConfigError(f"unknown key {where}.{k} (known: {', '.join(known)})")
        want = type(values[k])
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise ConfigError(f"{where}.{k} must be {want.__name__}, got {v!r}")
        values[k] = v
    return klass(**values)


def load_config(path: str | Path | None) -> DetectorConfig:
    """Load a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON file; ``None`` gives the defaults."""
    if path is None:
        return DetectorConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{p}: unknown config format {p.suffix!r} (use .yaml, .toml or .json)")
    except ConfigError:
        raise
    except Exception as exc:  # parser errors differ per format; one line is enough for the user
        raise ConfigError(f"{p}: cannot parse: {str(exc).splitlines()[0]}") from None
    return DetectorConfig.from_mapping(data)


def dump_config(cfg: DetectorConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (or JSON for ``.json``)."""
    p = Path(path)
    if p.suffix == ".json":
        p.write_text(json.dumps(cfg.to_mapping(), indent=2) + "\n")
    else:
        import yaml

        p.write_text(yaml.safe_dump(cfg.to_mapping(), sort_keys=False))
