"""Signals derived from one event, and the per-signal model each gets.

>>> from detectors.events import parse_event
>>> e = parse_event({"customer_id": "c1", "ts": 0, "requests": 200, "status_4xx": 4,
...                  "status_5xx": 2, "cache_hits": 150, "latency_p99_ms": 90.0})
>>> sorted(derive(e))
['cache_hit', 'error_4xx', 'error_5xx', 'latency_p99', 'origin_errors', 'requests']
>>> derive(e)["error_5xx"]
{'ts': 0.0, 'num': 2.0, 'den': 200.0}
"""
from __future__ import annotations

from typing import Any, Callable

from .config import SIGNALS, ModelConfig
from .events import Event
from .univariate import RatioDetector, SeasonalDetector

#: display unit of each signal's observed/expected values
UNITS = {
    "requests": "requests",
    "error_5xx": "ratio",
    "error_4xx": "ratio",
    "origin_errors": "ratio",
    "latency_p99": "ms",
    "cache_hit": "ratio",
    "bytes": "bytes",
}

LABELS = {
    "requests": "traffic",
    "error_5xx": "5xx rate",
    "error_4xx": "4xx rate",
    "origin_errors": "origin error rate",
    "latency_p99": "p99 latency",
    "cache_hit": "cache-hit ratio",
    "bytes": "bytes served",
}


#: signal -> the model's positional inputs for one event (``step(*args)``), or None if absent
ARGS: dict[str, Callable[[Event], tuple | None]] = {
    "requests": lambda e: (e.ts, float(e.requests), None),
    "error_5xx": lambda e: (e.ts, float(e.status_5xx), float(e.requests)),
    "error_4xx": lambda e: (e.ts, float(e.status_4xx), float(e.requests)),
    "origin_errors": lambda e: (e.ts, float(e.origin_errors_total), float(e.requests)),
    "latency_p99": lambda e: (
        None if e.latency_p99_ms is None or e.requests == 0 else (e.ts, e.latency_p99_ms, float(e.requests))
    ),
    "cache_hit": lambda e: None if e.cache_hits is None else (e.ts, float(e.cache_hits), float(e.requests)),
    "bytes": lambda e: None if e.bytes_out is None else (e.ts, float(e.bytes_out), None),
}


def derive(e: Event) -> dict[str, dict[str, Any]]:
    """The model input of every signal this event carries, as River-style ``x`` dicts."""
    out: dict[str, dict[str, Any]] = {}
    for name, fn in ARGS.items():
        args = fn(e)
        if args is None:
            continue
        ts, a, b = args
        if SIGNALS[name][0] == "ratio":
            out[name] = {"ts": ts, "num": a, "den": b}
        else:
            out[name] = {"ts": ts, "value": a} if b is None else {"ts": ts, "value": a, "n": b}
    return out


def build_models(model: ModelConfig, enabled: set[str] | None = None) -> dict[str, Any]:
    """Fresh per-signal detectors for one customer, configured from ``model``."""
    common = dict(
        warmup_s=model.warmup_s,
        warmup_points=model.warmup_points,
        learn_threshold=model.learn_threshold,
        accept_shift_after_s=model.accept_shift_after_s,
    )
    seasonal = dict(
        common,
        level_half_life_s=model.level_half_life_s,
        season_half_life_visits=model.season_half_life_visits,
        scale_half_life_s=model.scale_half_life_s,
        weekly=model.weekly,
    )
    models: dict[str, Any] = {}
    for name, (kind, direction) in SIGNALS.items():
        if enabled is not None and name not in enabled:
            continue
        if kind == "ratio":
            models[name] = RatioDetector(direction=direction, half_life_s=model.ratio_half_life_s, **common)
        elif kind == "latency":
            models[name] = SeasonalDetector(
                transform="log", direction=direction, min_rel_scale=0.05, support_noise=2.0, **seasonal
            )
        else:
            models[name] = SeasonalDetector(transform="log", direction=direction, count_noise=True, **seasonal)
    return models
