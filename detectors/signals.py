"""The signal registry: every per-signal fact in one place.

A *signal* is one series derived from each event of a customer (traffic, 5xx rate, ...). Its
:class:`Signal` entry says how to read it from an :class:`~detectors.events.Event`, which
model scores it, which way is bad, how it is named and formatted, whether its impact on end
users is indirect, and its default alerting rules. Configuration, models, alerting, metrics
and reports all read :data:`SIGNALS`; adding a signal means adding one entry here.

>>> SIGNALS["error_5xx"].label, SIGNALS["error_5xx"].unit, SIGNALS["error_5xx"].direction
('5xx rate', 'ratio', 'up')
>>> [s.name for s in SIGNALS.values() if s.indirect]
['error_4xx', 'cache_hit', 'bytes']

>>> from detectors.events import parse_event
>>> e = parse_event({"customer_id": "c1", "ts": 0, "requests": 200, "status_4xx": 4,
...                  "status_5xx": 2, "cache_hits": 150, "latency_p99_ms": 90.0})
>>> sorted(derive(e))
['cache_hit', 'error_4xx', 'error_5xx', 'latency_p99', 'origin_errors', 'requests']
>>> derive(e)["error_5xx"]
{'ts': 0.0, 'num': 2.0, 'den': 200.0}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .events import Event
from .univariate import make_detector

if TYPE_CHECKING:  # config imports this module for the signal names and defaults
    from .config import ModelConfig

#: model inputs of one event for one signal: ``(ts, value_or_numerator, support_or_denominator)``
Args = tuple[float, float, "float | None"]

#: model kinds (presets of :func:`detectors.univariate.make_detector`) used by signals
KINDS = ("volume", "ratio", "latency")
DIRECTIONS = ("up", "down", "both")
#: values at least this large are shown without decimals (smaller ones with 3 significant digits)
WHOLE_NUMBER_FROM = 100.0
#: ratios at least this large (0.01 %) are shown as percentages with 2 decimals
PERCENT_DECIMALS_FROM = 0.0001
#: smaller ratios get 2 significant digits, but no more decimals than alerts carry (6 as a fraction)
MAX_PERCENT_DECIMALS = 4
BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


@dataclass(frozen=True, slots=True)
class Signal:
    """Everything the detectors, alerting and displays need to know about one signal.

    Parameters
    ----------
    name : str
        Identifier used in configs, alerts (``signal``, ``details``) and metric labels.
    label : str
        Human name used in summaries and explanations ("5xx rate").
    unit : str
        Display unit of observed/expected values: ``ratio``, ``ms``, ``requests`` or ``bytes``.
    axis_label : str
        Plot axis label (name plus unit where the unit is not obvious).
    kind : str
        Model preset: ``volume`` (log-scale seasonal count), ``ratio`` (rate of events among
        requests) or ``latency`` (log-scale seasonal value, noisier at low support).
    direction : str
        Which change is bad: ``up``, ``down`` or ``both``.
    args : callable
        ``args(event)`` -> the model's positional inputs ``(ts, a, b)`` for ``step(ts, a, b)``,
        or ``None`` when the event does not carry the signal.
    indirect : bool
        Impact on end users is indirect: severity is capped at warning unless the customer is major.
    events : str
        Ratios: what the numerator counts, in explanations ("57 errors in 480 requests").
    defaults : mapping
        Default :class:`~detectors.config.SignalConfig` values that differ from the class defaults.
    inputs : tuple
        ``args`` in declarative form, for the fleet engine (which reads whole columns of events):
        ``(value attribute, support attribute or None, absent when the support is 0)``; the
        signal is absent from an event whose value attribute is None. ``tests/detectors`` checks
        that it agrees with ``args`` on random events.
    """

    name: str
    label: str
    unit: str
    axis_label: str
    kind: str
    direction: str
    args: Callable[[Event], Args | None]
    indirect: bool = False
    events: str = "events"
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    inputs: tuple[str, str | None, bool] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"signal {self.name}: unknown model kind {self.kind!r} (known: {', '.join(KINDS)})"
            )
        if self.direction not in DIRECTIONS:
            raise ValueError(f"signal {self.name}: unknown direction {self.direction!r}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


def _latency_args(e: Event) -> Args | None:
    if e.latency_p99_ms is None or e.requests == 0:
        return None
    return (e.ts, e.latency_p99_ms, float(e.requests))


def _register(*signals: Signal) -> dict[str, Signal]:
    return {s.name: s for s in signals}


#: signal name -> :class:`Signal`, in the order models are built and scored
SIGNALS: Mapping[str, Signal] = MappingProxyType(_register(
    Signal(
        "requests", "traffic", "requests", "requests / interval", "volume", "both",
        lambda e: (e.ts, float(e.requests), None),
        # 2.5x up or 0.4x down: weekends, holidays, campaigns and lasting level changes of
        # ordinary traffic stay within that; outages and attacks go beyond it
        defaults={"min_rel_change": 1.5, "min_requests": 8, "count_slack": 0.5},
        inputs=("requests", None, False),
    ),
    Signal(
        "error_5xx", "5xx rate", "ratio", "5xx rate", "ratio", "up",
        lambda e: (e.ts, float(e.status_5xx), float(e.requests)),
        events="errors",
        inputs=("status_5xx", "requests", False),
        # no gate in percentage points: 5 excess errors already ask a customer under 1,000
        # requests for 0.5 points or more, and above that a rise from 0.08 % to 0.4 % is
        # hundreds of failed requests per interval
        defaults={"min_rel_change": 1.0, "min_events": 5},
    ),
    Signal(
        "error_4xx", "4xx rate", "ratio", "4xx rate", "ratio", "up",
        lambda e: (e.ts, float(e.status_4xx), float(e.requests)),
        indirect=True,
        inputs=("status_4xx", "requests", False),
        events="4xx responses",
        defaults={"min_rel_change": 1.0, "min_abs_change": 0.05},
    ),
    Signal(
        "origin_errors", "origin error rate", "ratio", "origin error rate", "ratio", "up",
        lambda e: (e.ts, float(e.origin_errors_total), float(e.requests)),
        events="origin errors",
        inputs=("origin_errors_total", "requests", False),
        defaults={"min_rel_change": 1.0, "min_events": 5},
    ),
    Signal(
        "latency_p99", "p99 latency", "ms", "p99 latency (ms)", "latency", "up",
        _latency_args,
        inputs=("latency_p99_ms", "requests", True),
        # 1.8x: a heavy-tailed p99 of one interval easily reaches 1.5x of its usual value
        defaults={"min_rel_change": 0.8, "min_abs_change": 50.0, "min_requests": 20},
    ),
    Signal(
        "cache_hit", "cache-hit ratio", "ratio", "cache-hit ratio", "ratio", "down",
        lambda e: None if e.cache_hits is None else (e.ts, float(e.cache_hits), float(e.requests)),
        indirect=True,
        events="cache hits",
        inputs=("cache_hits", "requests", False),
        # 0.999: with its learned spread a cache-hit ratio falling from 54 % to 17 % at 350,000
        # requests is only ~1e-3.4 under heavy tails; the magnitude gates carry the precision
        defaults={"threshold": 0.999, "min_rel_change": 0.25, "min_abs_change": 0.1},
    ),
    Signal(
        "bytes", "bytes served", "bytes", "bytes served", "volume", "both",
        lambda e: None if e.bytes_out is None else (e.ts, float(e.bytes_out), None),
        indirect=True,
        inputs=("bytes_out", None, False),
        defaults={"alert": False, "min_rel_change": 1.0},
    ),
))


def derive(e: Event) -> dict[str, dict[str, Any]]:
    """The model input of every signal this event carries, as River-style ``x`` dicts."""
    out: dict[str, dict[str, Any]] = {}
    for name, sig in SIGNALS.items():
        args = sig.args(e)
        if args is None:
            continue
        ts, a, b = args
        if sig.kind == "ratio":
            out[name] = {"ts": ts, "num": a, "den": b}
        else:
            out[name] = {"ts": ts, "value": a} if b is None else {"ts": ts, "value": a, "n": b}
    return out


def model_params(kind: str, model: ModelConfig) -> dict[str, Any]:
    """The hyper-parameters from ``model`` that a detector of ``kind`` takes."""
    params: dict[str, Any] = dict(
        warmup_s=model.warmup_s,
        warmup_points=model.warmup_points,
        learn_threshold=model.learn_threshold,
        accept_shift_after_s=model.accept_shift_after_s,
    )
    if kind == "ratio":
        params["half_life_s"] = model.ratio_half_life_s
    else:
        params.update(
            level_half_life_s=model.level_half_life_s,
            season_half_life_visits=model.season_half_life_visits,
            scale_half_life_s=model.scale_half_life_s,
            weekly=model.weekly,
        )
    return params


def build_models(model: ModelConfig, enabled: set[str] | None = None) -> dict[str, Any]:
    """Fresh per-signal detectors for one customer, configured from ``model``."""
    params = {kind: model_params(kind, model) for kind in KINDS}
    return {
        name: make_detector(sig.kind, direction=sig.direction, **params[sig.kind])
        for name, sig in SIGNALS.items()
        if enabled is None or name in enabled
    }


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= WHOLE_NUMBER_FROM else f"{v:.3g}"


def format_value(v: Any, unit: str) -> str:
    """A signal value for people, in its unit: the one formatter of explanations, sinks and pages.

    Ratios are percentages with 2 decimals (3 significant digits when tiny); other values are
    whole numbers from 100 up (3 significant digits below) followed by the unit; bytes are
    scaled to kB, MB, ... (powers of 1000). Missing or non-finite values are ``n/a``.

    >>> format_value(0.2429, "ratio"), format_value(4.3e-05, "ratio"), format_value(0.0, "ratio")
    ('24.29%', '0.0043%', '0.00%')
    >>> format_value(2.7e-07, "ratio"), format_value(2e-09, "ratio")
    ('0.0000%', '0.0000%')
    >>> format_value(2866.4, "ms"), format_value(12.5, "requests"), format_value(9.8e9, "bytes")
    ('2,866 ms', '12.5 requests', '9.8 GB')
    >>> format_value(None, "ms"), format_value(float("nan"), "ratio")
    ('n/a', 'n/a')
    """
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    if unit == "ratio":
        if v == 0 or abs(v) >= PERCENT_DECIMALS_FROM:
            return f"{v:.2%}"
        decimals = min(MAX_PERCENT_DECIMALS, 1 - math.floor(math.log10(abs(v * 100))))
        return f"{v * 100:.{decimals}f}%"
    if unit == "bytes":
        for prefix in BYTE_UNITS[:-1]:
            if abs(v) < 1000:
                return f"{_number(v)} {prefix}"
            v /= 1000.0
        return f"{_number(v)} {BYTE_UNITS[-1]}"
    return f"{_number(v)} {unit}".strip()


def format_band(lo: Any, hi: Any, unit: str) -> str:
    """An expected range, naming a shared unit once.

    >>> format_band(0.0005, 0.0026, "ratio"), format_band(150, 210.4, "ms"), format_band(800, 2e6, "bytes")
    ('0.05%-0.26%', '150-210 ms', '800 B-2 MB')
    """
    a, b = format_value(lo, unit), format_value(hi, unit)
    head, sep, tail = a.rpartition(" ")
    if sep and b.endswith(" " + tail):
        return f"{head}-{b}"
    return f"{a}-{b}"
