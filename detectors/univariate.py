"""River-style univariate anomaly detectors with calibrated scores.

Two model families cover every Lookout signal:

* :class:`SeasonalDetector` -- a level + time-of-day + day-of-week model of one series
  (optionally on a log scale for counts), with a learned noise scale. Used for traffic volume,
  bytes, latency and as the ``generic`` detector for any series.
* :class:`RatioDetector` -- a rate ``num / den`` scored from numerator *and* denominator, so that
  3 errors out of 10 requests is unremarkable while 2 % -> 8 % at a million requests is not.

Both follow River's :class:`~river.base.AnomalyDetector` contract (``learn_one`` /
``score_one``; hyper-parameters only in ``__init__``) and return a score in [0, 1] which is
``1 - tail probability``: the same score means the same rarity on every series. The tail is
*calibrated* per series: the model's standardised residual is scored against a
peaks-over-threshold tail (exceedance rate and Hill shape above 2 standard deviations) that
each series learns from its own residuals, so 0.9999 means about 1 in 10,000 on that series,
whatever its units, cycle or noise (:func:`detectors.kernel.calibrated_tail`). Seasonality is
keyed on *event time* (``x["ts"]``), never on the number of points seen, so the same defaults
work at any interval length.

Each also offers :meth:`update` -- score first, then learn, in one pass -- which is what the
engine calls: the score of a point never includes the point itself, and points judged anomalous
are kept out of the baseline (an incident must not become the new normal) until they have
persisted for ``accept_shift_after_s``, at which point the level shift is accepted.

The arithmetic is :mod:`detectors.kernel`'s, compiled and shared with the fleet engine: a
detector holds its parameters (declared, with their defaults and checks, by its family in the
kernel), the parameter row they pack into, and one *state row* (:attr:`state`, the fleet keeps
the same rows per customer); each point is one call of the kernel's step on that row.

>>> det = SeasonalDetector(transform="log", direction="both", warmup_s=0, warmup_points=5)
>>> for i in range(50):
...     det.learn_one({"ts": i * 60.0, "value": 1000.0 + (i % 3)})
>>> normal = det.score_one({"ts": 50 * 60.0, "value": 1001.0})
>>> outage = det.score_one({"ts": 50 * 60.0, "value": 40.0})
>>> normal < 0.9 < 0.9999 < outage
True
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, TypeGuard

import numpy as np
from river import base

from . import kernel as K
from .kernel import Assessment
from .layout import Family

__all__ = ["NO_ASSESSMENT", "Assessment", "GenericDetector", "RatioDetector", "SeasonalDetector",
           "make_detector"]

#: builds an Assessment from a full list of its fields without the generated ``__new__``
#: (three times cheaper, and every scored point builds one)
_new = tuple.__new__
_C = K.CONSTANTS
_ratio_update, _ratio_assess = K.ratio_update, K.ratio_assess

#: ``change_decades`` of the presets
GENERIC_CHANGE_DECADES = 3.0
#: ``ar_memory_points`` of the generic preset (on the real series 1,000-8,000 score alike). The
#: customer presets leave the term off: on the simulator's held-out seed 99 it cost recall
#: (93.0 % -> 92.4 %, customers under 100 requests per interval 88.0 % -> 87.5 %)
GENERIC_AR_MEMORY = 2000.0
#: customer volume and latency: a lasting change is accepted after this long (on the simulator's
#: tuning seed 11, 1 h added false alerts -- the end of an outage accepted after 1 h is a
#: change back --, 4 h removed some: unlabelled level shifts no longer wait 24 h)
CUSTOMER_ADAPT_S = 4 * 3600.0
#: customer signals' ``tail_learn_max_sigmas``
CUSTOMER_TAIL_LEARN_MAX = 10.0

#: what customer signals' presets change of the defaults
_CUSTOMER = {"tail_learn_max_sigmas": CUSTOMER_TAIL_LEARN_MAX, "scale_from_anomalies": False}
_CUSTOMER_SEASONAL = {**_CUSTOMER, "seq_calibrated": False, "change_decades": GENERIC_CHANGE_DECADES,
                      "novelty": False, "adapt_s": CUSTOMER_ADAPT_S}

NO_ASSESSMENT = Assessment(0.0, float("nan"), float("nan"), float("nan"), float("nan"), 0.0)


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parameter(name: str) -> property:
    """A read-only attribute for a parameter (River reads them, e.g. to clone a detector)."""
    return property(lambda self: self._params[name])


def _restore(cls: type[_OnlineDetector], params: dict[str, Any], state: np.ndarray) -> _OnlineDetector:
    det = cls(**params)
    det.state[:] = state
    return det


class _OnlineDetector(base.AnomalyDetector):
    """River plumbing shared by the detectors: parameters from the family's declaration, one
    state row, ``x`` dicts -> validated inputs -> the kernel.

    Subclasses set :attr:`family` and the offsets ``_n_at``/``_warm_at`` of its row, and
    provide ``_inputs(x)`` (the numbers ``step`` takes, or None when ``x`` lacks them),
    ``step(*inputs)`` (score, then learn) and ``_score(*inputs)`` (score only).
    """

    #: the declaration of the model family: state row and parameters (in :mod:`detectors.kernel`)
    family: ClassVar[Family]
    _n_at: ClassVar[int]
    _warm_at: ClassVar[int]
    __slots__ = ("_params", "_packed", "state", "_out")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``__init__`` (its signature, defaults and checks) and a read-only attribute per
        parameter, from the family's declaration."""
        super().__init_subclass__(**kwargs)
        signature = cls.family.signature()

        def __init__(self: _OnlineDetector, *args: Any, **params: Any) -> None:
            if args:  # (positional parameters, in declaration order)
                params = signature.bind(self, *args, **params).arguments
                del params["self"]
            self._setup(params)

        __init__.__qualname__ = f"{cls.__name__}.__init__"
        # (setattr: the type checker knows neither a function's __signature__ nor method assignment)
        setattr(__init__, "__signature__", signature)  # noqa: B010  (what River's clone() and help() read)
        setattr(cls, "__init__", __init__)  # noqa: B010
        for p in cls.family.keywords:
            setattr(cls, p.name, _parameter(p.name))

    def _setup(self, params: dict[str, Any]) -> None:
        configured = self.family.configure(params)
        self._params = configured.params
        self._packed = configured.packed
        #: the learned state: one row of :attr:`family`'s layout, as the fleet keeps it
        self.state = self.family.fresh_row()
        self._out = np.empty(K.ASSESSMENT_WIDTH)

    def __reduce__(self) -> tuple:
        """Pickles (and copies) as the parameters and the state row."""
        return _restore, (type(self), dict(self._params), self.state.copy())

    # provided by each subclass (see above); declared here for the type checker only
    def _inputs(self, x: dict) -> tuple | None:
        raise NotImplementedError

    def step(self, *inputs: Any) -> Assessment:
        raise NotImplementedError

    def _score(self, *inputs: Any) -> Assessment:
        raise NotImplementedError

    @property
    def parameter_row(self) -> np.ndarray:
        """The parameters as the kernel reads them (shared by detectors configured alike)."""
        return self._packed

    @property
    def warm(self) -> bool:
        """True once the model has seen ``warmup_points`` points spanning ``warmup_s``."""
        return bool(self.state[self._warm_at] != 0.0)

    @property
    def n_seen(self) -> int:
        return int(self.state[self._n_at])

    def score_one(self, x: dict) -> float:
        return self.assess(x).score

    def learn_one(self, x: dict) -> None:
        self.update(x)

    def assess(self, x: dict) -> Assessment:
        """Score ``x`` against the model (does not learn)."""
        args = self._inputs(x)
        return NO_ASSESSMENT if args is None else self._score(*args)

    def update(self, x: dict) -> Assessment:
        """Score ``x`` first, then learn from it; returns the pre-learning assessment.

        Points with a timestamp not after the last learned one (duplicates, late arrivals) are
        scored but not learned, so at-least-once redelivery cannot distort the model.
        """
        args = self._inputs(x)
        return NO_ASSESSMENT if args is None else self.step(*args)


class SeasonalDetector(_OnlineDetector):
    """Level + time-of-day + day-of-week model of a series, scored by a calibrated tail probability.

    Parameters
    ----------
    transform
        ``"log"`` models ``log1p(value)`` (counts, latencies: multiplicative seasonality),
        ``"identity"`` models the raw value.
    direction
        ``"up"``, ``"down"`` or ``"both"``: which deviations count as anomalous.
    level_half_life_s
        Event-time half-life of the baseline level.
    season_half_life_visits
        Half-life of each hour-of-day bin in days (and day-of-week bin in weeks).
    scale_half_life_s
        Event-time half-life of the learned noise variance.
    weekly
        Learn a day-of-week component (after the first day).
    warmup_s, warmup_points
        The series is *warm* (see :attr:`warm`) once it has seen this much event time and
        this many points. Scores are computed before that, but callers should not alert.
    learn_threshold
        Points scoring at or above this start the level-shift clock (every point, clipped,
        teaches the noise scale: a new regime is followed, not excluded).
    learn_clip_sigmas
        Residuals are clipped at this many standard deviations before they move the level and
        the seasonal profile, so an anomaly weighs no more than an ordinary extreme point.
    accept_shift_after_s
        An anomaly in one direction that lasts this long is accepted as a level shift.
    min_rel_scale, min_abs_scale
        Noise floor: relative (in log units for ``"log"``, times ``|expected|`` otherwise) and
        absolute. A flat series scores as normal instead of endlessly surprising.
    count_noise
        Add Poisson noise of the expected count (``"log"`` transform on counts), so a series
        that is mostly 0 or tiny is not scored as a Gaussian.
    support_noise
        Extra variance ``support_noise / x["n"]`` when the point carries its support (e.g. a
        p99 latency computed from ``n`` requests is noisier when ``n`` is small).
    band_sigmas
        Width of the reported expected band.
    dow_low, dow_high
        The range of an unseen weekday's effect (``0 < dow_low <= 1 <= dow_high``, as factors
        of the value): a weekday seen fewer than ``dow_seen_days`` times may lie that far from
        the others without being anomalous.
    dow_seen_days
        Days of a weekday after which its offset is known.
    seq_shift, seq_penalty
        The sequential test: a CUSUM for a shift of ``seq_shift`` standard deviations, whose
        evidence competes with the single point's surprise after ``seq_penalty`` decades.
    seq_calibrated
        The CUSUM accumulates the *calibrated* normal score of each point (so a heavy-tailed
        series does not build evidence faster than a normal one); False: the model's own
        standardised residual (customer signals, whose noise scale excludes anomalies).
    scale_min_points
        The noise scale is never learned from fewer than this many points.
    change_decades, adapt_s
        Change handling: a point's surprise or the sequential evidence reaching
        ``change_decades`` opens a *pending change* of level, whose shadow level follows the
        points; while it is pending a point scores the likelier of "baseline" and "the change"
        (a lasting shift is one detection, at the change). It is cancelled when the baseline
        explains 3 points in a row, and accepted (the level moves) after ``adapt_s`` of event
        time. Default: off (``inf``); ``accept_shift_after_s`` stays the ceiling.
    novelty
        While a change is pending, score the likelier of baseline and change (the default);
        False: keep scoring the deviation from the accepted baseline, sequential evidence
        included (customer signals: their alert lifecycle opens one incident at a lasting change
        and resolves it once the change is accepted).
    scale_from_anomalies
        Every point, clipped at 3 standard deviations, teaches the noise scale (a new regime is
        followed instead of staying "anomalous" for hours); False: points at or above
        ``learn_threshold`` are kept out of it (customer signals: an incident or a young model's
        first weekend must not widen the band for days).
    tail_learn_max_sigmas
        The calibrated tail's shape learns from an exceedance as if it were at most this many
        standard deviations (default: as it is). Customer signals use
        :data:`CUSTOMER_TAIL_LEARN_MAX`: a young model's misfit (a first weekend) or one
        incident must not make every later incident unremarkable.
    ar_memory_points
        A short-term term: the expected value adds ``phi`` times the last residual from the
        seasonal model, ``phi`` being the residuals' lag-1 autocorrelation (learned over about
        this many points, clipped to [0, 0.95]). Residuals of an hourly profile are strongly
        correlated from one interval to the next; with the term the score (and the sequential
        test) sees what is new in a point, not the echo of the last one. A residual beyond 3
        standard deviations is an anomaly: its echo is not predicted. The seasonal model
        itself learns as without it. Default: off (0); the ``generic`` preset uses
        :data:`GENERIC_AR_MEMORY`.

    Examples
    --------
    Counts that are mostly zero are not surprising:

    >>> det = SeasonalDetector(transform="log", count_noise=True, warmup_s=0, warmup_points=3)
    >>> for i in range(100):
    ...     det.learn_one({"ts": 60.0 * i, "value": 1.0 if i % 17 == 0 else 0.0})
    >>> det.score_one({"ts": 6000.0, "value": 1.0}) < 0.99
    True

    And neither is a constant:

    >>> flat = SeasonalDetector(transform="identity", warmup_s=0, warmup_points=3)
    >>> for i in range(100):
    ...     flat.learn_one({"ts": 60.0 * i, "value": 7.0})
    >>> flat.score_one({"ts": 6000.0, "value": 7.0})
    0.0
    """

    family = K.SEASONAL
    _n_at, _warm_at = K.S_N, K.S_WARM
    #: the kernel's step (score, then learn) and score-only functions for :attr:`family`'s rows
    _kernel_update = staticmethod(K.seasonal_update)
    _kernel_assess = staticmethod(K.seasonal_assess)
    __slots__ = ()

    def step(self, ts: float, v: float, n: float | None = None) -> Assessment:
        """:meth:`update` for already validated numbers (the engine's fast path)."""
        out = self._out
        n = 0.0 if n is None else float(n)
        self._kernel_update(self.state, self._packed, _C, float(ts), float(v), n, out)
        return _new(Assessment, out.tolist())

    def _score(self, ts: float, v: float, n: float | None = None) -> Assessment:
        out = self._out
        n = 0.0 if n is None else float(n)
        self._kernel_assess(self.state, self._packed, _C, float(ts), float(v), n, out)
        return _new(Assessment, out.tolist())

    @staticmethod
    def _inputs(x: dict):
        v, ts, n = x.get("value"), x.get("ts"), x.get("n")
        if not (_finite(v) and _finite(ts)):
            return None
        return float(ts), float(v), (n if _finite(n) else None)


class GenericDetector(SeasonalDetector):
    """:class:`SeasonalDetector` plus an extreme-value tail of the raw values, for any series.

    The seasonal model says how unusual a point is *for its time and the recent level*; the tail
    says how unusual its *value* is for the series at all (peaks over threshold, as SPOT: a value
    beyond the running ``extreme_quantile`` of the values seen is a peak, and how far it lies
    beyond is scored against a generalised Pareto tail fitted to the earlier peaks, on both
    sides). A point scores by the likelier of the two: twice the smaller tail probability, so a
    score of 0.9999 still means at most 1 in 10,000. Disk writes four times as large as any
    before, CPU beyond the range a machine ever used, are rare values even where the seasonal
    model's noise scale has grown used to bursts.

    Parameters
    ----------
    extreme_quantile
        The running quantile (P-square, no points kept) above which a value is a peak, and below
        whose mirror image (``1 - extreme_quantile``) one is a low peak. 0 turns the tail off
        (the detector is then its :class:`SeasonalDetector`). The tail scores from the 100th
        point, on a side with 30 peaks (at the default, from about the 1,500th point: a tail
        fitted to fewer peaks often looks bounded when it is heavy).

    The other parameters are :class:`SeasonalDetector`'s.

    Examples
    --------
    Bursts that come and go are the series' normal; one four times as large as any is not:

    >>> det = GenericDetector(warmup_s=0, warmup_points=10)
    >>> for i in range(2000):
    ...     burst = 100.0 + 20.0 * (i % 7) if i % 50 == 0 else 0.0
    ...     det.learn_one({"ts": 300.0 * i, "value": burst + (i % 3)})
    >>> at = 2000 * 300.0
    >>> det.score_one({"ts": at, "value": 110.0}) < 0.9999 < det.score_one({"ts": at, "value": 900.0})
    True
    """

    family = K.GENERIC
    _kernel_update = staticmethod(K.generic_update)
    _kernel_assess = staticmethod(K.generic_assess)
    __slots__ = ()


class RatioDetector(_OnlineDetector):
    """A rate ``num / den`` scored from both counts (binomial/Poisson surprise with overdispersion).

    ``x`` is ``{"ts": ..., "num": k, "den": n}``, or ``{"ts": ..., "value": rate, "n": n}``.

    Parameters
    ----------
    direction
        ``"up"`` (error rates), ``"down"`` (cache-hit ratio) or ``"both"``.
    half_life_s
        Event-time half-life of the baseline numerator and denominator sums.
    warmup_s, warmup_points, learn_threshold, learn_clip_sigmas, accept_shift_after_s, band_sigmas
        As for :class:`SeasonalDetector`.
    min_rel_scale
        Floor on the extra-binomial spread of the rate, relative to the rate itself.
    prior_events
        Pseudo-count that keeps a rate with no events so far from being exactly 0.
    seq_ratio, seq_abs, seq_events, seq_penalty, seq_window_s
        The sequential test: a Poisson CUSUM of "the rate is ``seq_ratio`` times the baseline,
        and at least ``seq_abs`` above it -- or ``seq_events`` more events per interval, where
        that is less", whose evidence (less ``seq_penalty`` decades) competes with the single
        interval's surprise; it must build up within ``seq_window_s``. One interval adds no more
        than its own calibrated surprise (the Poisson likelihood ignores the rate's heavy-tailed
        wander, which at high volume dwarfs the counting noise).
    scale_from_anomalies, tail_learn_max_sigmas
        As for :class:`SeasonalDetector` (for the rate's extra-binomial spread).

    Examples
    --------
    >>> det = RatioDetector(direction="up", warmup_s=0, warmup_points=5)
    >>> for i in range(100):
    ...     det.learn_one({"ts": 60.0 * i, "num": 20_000, "den": 1_000_000})   # 2 %
    >>> det.score_one({"ts": 6000.0, "num": 3, "den": 10}) < 0.9999        # 3 of 10: not an incident
    True
    >>> det.score_one({"ts": 6000.0, "num": 80_000, "den": 1_000_000}) > 0.9999   # 2 % -> 8 %
    True
    """

    family = K.RATIO
    _n_at, _warm_at = K.R_N, K.R_WARM
    __slots__ = ()

    @property
    def rate(self) -> float:
        """Current baseline rate."""
        return float(K.ratio_rate(self.state, self._packed))

    def step(self, ts: float, num: float, den: float) -> Assessment:
        """:meth:`update` for already validated counts (the engine's fast path)."""
        out = self._out
        _ratio_update(self.state, self._packed, _C, float(ts), float(num), float(den), out)
        return _new(Assessment, out.tolist())

    def _score(self, ts: float, num: float, den: float) -> Assessment:
        out = self._out
        _ratio_assess(self.state, self._packed, _C, float(ts), float(num), float(den), out)
        return _new(Assessment, out.tolist())

    @staticmethod
    def _inputs(x: dict):
        ts = x.get("ts")
        if not _finite(ts):
            return None
        if "num" in x or "den" in x:
            num, den = x.get("num"), x.get("den")
        else:
            v, n = x.get("value"), x.get("n")
            if not (_finite(v) and _finite(n)):
                return None
            num, den = v * n, n
        if not (_finite(num) and _finite(den)) or den < 0 or num < 0:
            return None
        return float(ts), float(num), float(den)


def make_detector(kind: str, **params: Any) -> base.AnomalyDetector:
    """Build a detector by kind: ``volume``, ``ratio``, ``latency`` or ``generic``.

    ``volume``: log-scale seasonal model of a count with Poisson noise, both directions.
    ``latency``: log-scale seasonal model, increases are bad, noisier at low support.
    ``ratio``: :class:`RatioDetector`, increases are bad.
    ``generic``: seasonal model of a raw value with the short-term term, both directions; a
    lasting change is one detection, at the change, and accepted after ``adapt_s`` (1 h).
    Keyword ``params`` override the kind's defaults.

    >>> make_detector("latency").direction
    'up'
    >>> make_detector("ratio", direction="down").direction
    'down'
    >>> make_detector("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown detector kind 'nope' (known: generic, latency, ratio, volume)
    """
    presets: dict[str, tuple[type, dict[str, Any]]] = {
        "volume": (
            SeasonalDetector,
            {"transform": "log", "direction": "both", "count_noise": True, "dow_low": 0.35, "dow_high": 2.5,
             **_CUSTOMER_SEASONAL},
        ),
        "latency": (
            SeasonalDetector,
            {
                "transform": "log",
                "direction": "up",
                "min_rel_scale": 0.05,
                "support_noise": 2.0,
                "dow_low": 0.8,
                "dow_high": 1.25,
                **_CUSTOMER_SEASONAL,
            },
        ),
        "ratio": (RatioDetector, {"direction": "up", **_CUSTOMER}),
        "generic": (GenericDetector, {"transform": "identity", "direction": "both",
                                       "change_decades": GENERIC_CHANGE_DECADES,
                                       "ar_memory_points": GENERIC_AR_MEMORY}),
    }
    if kind not in presets:
        raise ValueError(f"unknown detector kind {kind!r} (known: {', '.join(sorted(presets))})")
    klass, defaults = presets[kind]
    return klass(**{**defaults, **params})
