"""The detectors' arithmetic, once: compiled step functions over state rows, and their declaration.

Both users run these functions: the River detectors (:mod:`detectors.univariate`) on one
series' state row, point by point, and the fleet engine (:mod:`detectors.fleet`) on the rows of
every customer's series in per-fleet arrays, a batch at a time (:func:`run_batch`). Each model
family is declared once here (a :class:`~detectors.layout.Family`): the fields of its *state
row* (name, default, how a state record writes it) and its *parameters* (the detector's
``__init__`` keyword, default, validation, and how it packs into the *parameter row* the
compiled code reads). Every index below comes from that declaration.

Layout: a seasonal series is a row of ``SEASONAL.width`` floats (``S_*`` offsets; its
hour-of-day and day-of-week profiles are ranges of the row), a ratio series one of
``RATIO.width`` (``R_*``); the fleet keeps them as ``SS[slot, j, :]`` and ``RS[slot, j, :]``.
Parameter rows: ``P_*`` (seasonal) and ``Q_*`` (ratio). "None" is NaN in a row. Each model
component is a small function; a step is :func:`_seasonal_score` then :func:`_seasonal_learn`
(ratios alike), and what passes between them is a named structure (:class:`SeasonalPoint`).

Rules that keep the results exact and reproducible:

* every constant arrives in the array :data:`CONSTANTS` (``C``) computed by Python (numba would
  fold ``math.log(10.0)`` or ``x ** 2.0`` at compile time, which can differ in the last bit);
* powers use a base or exponent that is not a compile-time constant (``C[C_HALF] ** x``) so
  LLVM keeps libm's ``pow``;
* the Student-t tail's ``lgamma`` terms come precomputed per degree of freedom (CPython's
  ``math.lgamma`` is its own implementation, not libm's);
* all but the step functions are inlined by numba (``inline="always"``): as calls that pass
  the rows (arrays: reference counts) and return named structures, they made the kernel a
  quarter slower (compiling takes longer: ~20 s of CPU once per installation);
* numba caches the compiled code keyed on *this file* alone, and freezes the ints and named
  structures it reads from other modules (:mod:`detectors.layout`'s offsets, the outcome codes
  of :mod:`detectors.verdict`): :func:`_check_cache` drops the cache when any of them changed.
"""
from __future__ import annotations

import functools
import hashlib
import math
from statistics import NormalDist
from typing import Any, Mapping, NamedTuple

import numpy as np
from numba import njit
from numba.core.dispatcher import Dispatcher

from .layout import Family, Kind
from .verdict import Outcome

# -- constants (the array C) ------------------------------------------------------------------
_CONSTANTS: list[float] = []


def _constant(value: float) -> int:
    """Declare a constant the compiled code reads from ``C``; return its index."""
    _CONSTANTS.append(float(value))
    return len(_CONSTANTS) - 1


DAY = 86400.0
HOUR = 3600.0
#: largest gap between two points that still counts as one step for the learning rates
MAX_STEP_S = 7 * DAY
#: every residual updates the noise scale, clipped to this many standard deviations: a new
#: regime grows the scale at a bounded rate, one outlier moves it little
SCALE_CLIP_SIGMAS = 3.0
#: the calibrated tail (peaks over threshold): |z| above this many (model) standard deviations
#: is an exceedance; below it the normal body, rescaled to meet the learned exceedance rate
TAIL_THRESHOLD = 2.0
#: the tail's shape is estimated from the first two moments of the log-excess ``log(|z| / u)``
#: over the exceedances (Dekkers, Einmahl & de Haan's moment estimator: a Pareto tail of index
#: ``xi`` when the tail is heavy, an exponential one when it is as light as a normal's); its prior
#: is a Pareto tail of this shape ...
TAIL_SHAPE_PRIOR = 0.15
#: ... with this weight, in exceedances
TAIL_PRIOR_WEIGHT = 5.0

#: memory of the exceedance rate, in points, and of the shape, in exceedances
TAIL_RATE_MEMORY = 5000.0
TAIL_SHAPE_MEMORY = 500.0
#: a pending change (seasonal): cancelled once the baseline explains this many points in a row
#: (a spike is not a shift) ...
CHANGE_CANCEL_POINTS = 3
#: ... each within this many standard deviations of it, and closer to it than to the shadow
CHANGE_CANCEL_SIGMAS = 2.0
#: its shadow level is a running (then exponential, over this many points) Huber mean ...
CHANGE_SHADOW_MEMORY = 12.0
#: ... of the residuals clipped at this many standard deviations from it
CHANGE_SHADOW_CLIP = 4.0
#: Newton steps of the inverse normal tail, at most (quadratic convergence: a few suffice) ...
ISF_STEPS = 8
#: ... until a step is this small
ISF_TOLERANCE = 1e-12
#: the normal score of a probability that underflowed to 0 (beyond the smallest double's, 37.5)
ISF_MAX = 40.0
#: pseudo-days at offset 0 behind every day-of-week bin (slows the first weeks' learning)
DOW_PRIOR_DAYS = 1.0
#: how fast the shadow level follows an ongoing shift (per point)
SHIFT_TRACK_RATE = 0.3
#: the Student-t tail (:func:`student_t_sf2`, for :mod:`detectors.stats`) has tables up to this
#: many degrees of freedom
NORMAL_DOF = 30
#: surprise reported for a tail probability that underflows to 0, and the largest one
MAX_SURPRISE = 1e6
#: standardised residuals are clipped here before they feed the sequential test, so that one
#: heavy-tailed outlier adds a bounded amount of evidence
SEQ_Z_CLIP = 4.0
#: the sequential evidence is capped at this many decades above its penalty, so that it
#: forgets a long incident within a few intervals once the series is back to normal
SEQ_MAX_DECADES = 5.0
#: the most one interval can add to a ratio's sequential evidence, in decades
SEQ_STEP_MAX_DECADES = 3.0
#: a ratio's ongoing sequential run (evidence carried from earlier intervals) whose own evidence
#: reaches this many decades (1 in 10,000, the default alert threshold) is what the point reports
#: (its counts and window, with the point's surprise when that is larger), even when the point
#: alone says more: the alert lifecycle opens on a run that spans two intervals at once
#: (alerting._self_confirming_run), and a point reported alone hid that run (a 5xx rate 4.9
#: times its usual level for two intervals at 100k requests waited for a third)
RUN_REPORT_DECADES = 4.0
#: the largest plausible day-of-week effect (``dow_low``/``dow_high``) is this many standard
#: deviations of the prior on an unseen weekday's offset
DOW_RANGE_SIGMAS = 2.5
#: tail probabilities at least this large give ``score = 1 - p`` directly (the same number
#: score_from_surprise would give: its exact range)
EXACT_P_MIN = 1e-6
#: above this expected count the Poisson tail is replaced by its normal approximation
POISSON_EXACT_MAX_K = 40
#: below this angle (far tail) the Student-t tail uses its asymptotic form (no cancellation)
T_ASYMPTOTIC_PHI = 1e-3
#: surprises up to this are exact in the score (``score = 1 - 10**-surprise``) ...
SURPRISE_EXACT_MAX = 6.0
#: ... beyond, they are compressed towards this many decades, so the score stays below 1.0
#: (double precision resolves about 1e-16 next to 1) and rare points are not tied
SURPRISE_COMPRESS = 8.0

C_HALF, C_TEN, C_TWO = _constant(0.5), _constant(10.0), _constant(2.0)
C_LN10 = _constant(math.log(10.0))
C_LN2 = _constant(math.log(2.0))
C_SEQ_STEP_MAX = _constant(SEQ_STEP_MAX_DECADES * math.log(10.0))
C_2_PI, C_SQRT2, C_PI = _constant(2.0 / math.pi), _constant(math.sqrt(2.0)), _constant(math.pi)
C_DAY, C_HOUR, C_MAX_STEP = _constant(DAY), _constant(HOUR), _constant(MAX_STEP_S)
C_SCALE_CLIP = _constant(SCALE_CLIP_SIGMAS)
C_DOW_PRIOR = _constant(DOW_PRIOR_DAYS)
C_SHIFT_RATE = _constant(SHIFT_TRACK_RATE)
C_MAX_SURPRISE = _constant(MAX_SURPRISE)
C_SEQ_Z_CLIP = _constant(SEQ_Z_CLIP)
C_SEQ_MAX_DECADES = _constant(SEQ_MAX_DECADES)
C_RUN_REPORT = _constant(RUN_REPORT_DECADES)
C_DOW_RANGE = _constant(DOW_RANGE_SIGMAS)
C_EXACT_P_MIN = _constant(EXACT_P_MIN)
C_POISSON_MAX_K = _constant(POISSON_EXACT_MAX_K)
C_T_ASYMPT_PHI = _constant(T_ASYMPTOTIC_PHI)
C_SURPRISE_EXACT_MAX = _constant(SURPRISE_EXACT_MAX)
C_SURPRISE_COMPRESS = _constant(SURPRISE_COMPRESS)
C_TAIL_U = _constant(TAIL_THRESHOLD)
C_TAIL_LOG_U = _constant(math.log(TAIL_THRESHOLD))
#: the normal body's share below the threshold, 1 - P(|Z| > u)
C_TAIL_BODY = _constant(1.0 - math.erfc(TAIL_THRESHOLD / math.sqrt(2.0)))
C_TAIL_RATE_MIN = _constant(1.0 / TAIL_RATE_MEMORY)
C_TAIL_SHAPE_MIN_RATE = _constant(1.0 / TAIL_SHAPE_MEMORY)
C_SQRT_2PI = _constant(math.sqrt(2.0 * math.pi))
C_ISF_TOL = _constant(ISF_TOLERANCE)
C_ISF_MAX = _constant(ISF_MAX)
C_CHG_CANCEL_N = _constant(CHANGE_CANCEL_POINTS)
C_CHG_CANCEL_Z = _constant(CHANGE_CANCEL_SIGMAS)
C_CHG_MEMORY = _constant(CHANGE_SHADOW_MEMORY)
C_CHG_CLIP = _constant(CHANGE_SHADOW_CLIP)
#: the short-term term (``ar_memory_points``): the lag-1 autocorrelation it uses is clipped to
#: [0, AR_PHI_MAX] (below 1: a burst's echo always dies out) ...
AR_PHI_MAX = 0.95
#: ... and a residual from the base model beyond this many of its standard deviations is an
#: anomaly, not short-term noise: its echo is not predicted (and it counts for the estimate as if
#: it were at this limit)
AR_CLIP_SIGMAS = 3.0
C_AR_PHI_MAX = _constant(AR_PHI_MAX)
C_AR_CLIP = _constant(AR_CLIP_SIGMAS)
#: the generic detector's extreme-value tail of the raw values (GENERIC, :func:`_peak_surprise`):
#: it scores nothing before this many points ...
EXTREME_MIN_POINTS = 100
#: ... nor on a side with fewer peaks (values beyond the running quantile) than this: fitted by
#: moments to fewer, a heavy tail often looks bounded (on daily stock returns, 1,250 points of
#: each of ten stocks, 3 peaks made 0.17 % of ordinary points score >= 0.9999, the seasonal model
#: alone 0.10 %, 30 peaks 0.11 %; the shared real series score 66.7 with 3, 67.1 with 30)
EXTREME_MIN_PEAKS = 30
#: the generalised Pareto shape of the peaks' excesses (method of moments) is kept in this
#: range: from a bounded tail (values beyond the range seen are very surprising: CPU
#: utilisation, a temperature) to one as heavy as a Pareto of index 1
EXTREME_SHAPE_MIN = -0.5
EXTREME_SHAPE_MAX = 1.0
#: a shape this close to 0 is the exponential tail (the limit of the formula)
EXTREME_SHAPE_EXP = 1e-9
#: beyond this many decades (and beyond a bounded tail's end point) the surprise grows by one
#: nat per scale of excess: it still ranks the extreme, and never is infinite
EXTREME_CAP_DECADES = 30.0
C_X_MIN_POINTS = _constant(EXTREME_MIN_POINTS)
C_X_MIN_PEAKS = _constant(EXTREME_MIN_PEAKS)
C_X_SHAPE_MIN, C_X_SHAPE_MAX = _constant(EXTREME_SHAPE_MIN), _constant(EXTREME_SHAPE_MAX)
C_X_SHAPE_EXP = _constant(EXTREME_SHAPE_EXP)
C_X_CAP = _constant(EXTREME_CAP_DECADES * math.log(10.0))
C_LOG10_2 = _constant(math.log10(2.0))
#: the fresh tail: a normal one (exceedance rate P(|Z| > u)) with the prior shape
TAIL_RATE_PRIOR = math.erfc(TAIL_THRESHOLD / math.sqrt(2.0))
#: the Student-t tables cover every odd degree of freedom up to NORMAL_DOF + 1
T_TABLE_SIZE = NORMAL_DOF + 2
#: ``C[C_T_LOG_NORM + nu]``: the lgamma part of the Student-t log density
C_T_LOG_NORM = len(_CONSTANTS)
for _nu in range(T_TABLE_SIZE):
    _constant(0.0 if _nu == 0 else math.lgamma((_nu + 1) / 2.0) - math.lgamma(_nu / 2.0)
              - 0.5 * math.log(_nu * math.pi))
#: every constant of the arithmetic, in index order (pass it as ``C``)
CONSTANTS = np.array(_CONSTANTS)


@functools.lru_cache(maxsize=256)
def two_sided_z(threshold: float) -> float:
    """|z| at which a two-sided normal tail equals ``1 - threshold``."""
    p = min(max(1.0 - threshold, 1e-300), 1.0)
    return NormalDist().inv_cdf(1.0 - p / 2.0) if p < 1.0 else 0.0


#: directions, and their codes in parameter rows
DIRECTIONS = ("up", "down", "both")
UP, DOWN, BOTH = range(3)


def _direction(p: Mapping[str, Any]) -> str | None:
    d = p["direction"]
    return None if d in DIRECTIONS else f"direction must be one of {DIRECTIONS}, got {d!r}"


def _log_excess_max(p: Mapping[str, Any]) -> float:
    return math.log(p["tail_learn_max_sigmas"] / TAIL_THRESHOLD)


def _above_threshold(p: Mapping[str, Any]) -> str | None:
    v = p["tail_learn_max_sigmas"]
    return None if v > TAIL_THRESHOLD else f"tail_learn_max_sigmas must be > {TAIL_THRESHOLD}, got {v!r}"


def _weekday_range(p: Mapping[str, Any]) -> str | None:
    lo, hi = p["dow_low"], p["dow_high"]
    return None if 0.0 < lo <= 1.0 <= hi else f"need 0 < dow_low <= 1 <= dow_high, got {lo!r}, {hi!r}"


def _weekday_log(p: Mapping[str, Any], bound: str, sign: float) -> float:
    """How far an unseen weekday may plausibly lie below (``sign`` -1: ``dow_low``) or above
    (+1: ``dow_high``) the others, on the log scale; 0: no doubt about weekdays."""
    return sign * math.log(p[bound]) if p["transform"] == "log" and p["weekly"] else 0.0


# -- SeasonalDetector ---------------------------------------------------------------------------
SEASONAL = Family("SeasonalDetector")
# state, in the order of a state record
S_N = SEASONAL.state("_n", Kind.INT)  # points learned
S_T0 = SEASONAL.state("_t0", Kind.OPTIONAL, math.nan)  # event time of the first
S_LAST = SEASONAL.state("_last", Kind.OPTIONAL, math.nan)  # event time of the last
S_LEVEL = SEASONAL.state("_level", Kind.FLOAT)
S_HOD = SEASONAL.state("_hod", Kind.PROFILE, size=24)  # hour-of-day offsets (centres at hh:30)
S_HODW = SEASONAL.state("_hod_w", Kind.PROFILE, size=24)  # ... and hours of data in each
S_DOW = SEASONAL.state("_dow", Kind.PROFILE, size=7)  # day-of-week offsets (Monday = 0)
S_DOWW = SEASONAL.state("_dow_w", Kind.PROFILE, size=7)  # ... and days of data in each
S_S2 = SEASONAL.state("_s2", Kind.FLOAT)  # learned noise variance
S_S2_W = SEASONAL.state("_s2_w", Kind.FLOAT)  # ... and its weight
S_CENTRED = SEASONAL.state("_centred", Kind.BOOL)  # the profile's mean moved into the level
S_SHIFT = SEASONAL.state("_shift", Kind.FLOAT)  # shadow level of an ongoing shift
S_ANOM_SINCE = SEASONAL.state("_anom_since", Kind.OPTIONAL, math.nan)  # ... since when
S_ANOM_SIGN = SEASONAL.state("_anom_sign", Kind.INT)  # ... which way (-1, 0, 1)
S_WARM = SEASONAL.state("_warm", Kind.BOOL)
S_CS = SEASONAL.state("_cs", Kind.FLOAT)  # sequential test: CUSUM, > 0 upwards, < 0 downwards
S_CS_T0 = SEASONAL.state("_cs_t0", Kind.FLOAT)  # ... and when its run started
S_TAIL_PI = SEASONAL.state("_tail_pi", Kind.FLOAT, TAIL_RATE_PRIOR)  # calibrated tail: exceedance rate
S_TAIL_M1 = SEASONAL.state("_tail_m1", Kind.FLOAT, TAIL_SHAPE_PRIOR)  # ... mean log-excess
S_TAIL_M2 = SEASONAL.state("_tail_m2", Kind.FLOAT, 2 * TAIL_SHAPE_PRIOR ** 2)  # ... and its square's
S_TAIL_W = SEASONAL.state("_tail_w", Kind.FLOAT, TAIL_PRIOR_WEIGHT)  # ... and their weight
S_CHG = SEASONAL.state("_chg", Kind.BOOL)  # a change of level is pending
S_CHG_T0 = SEASONAL.state("_chg_t0", Kind.FLOAT)  # ... since (its onset)
S_CHG_OFF = SEASONAL.state("_chg_off", Kind.FLOAT)  # ... its shadow level, as an offset from the level
S_CHG_N = SEASONAL.state("_chg_n", Kind.INT)  # ... points in it
S_CHG_OK = SEASONAL.state("_chg_ok", Kind.INT)  # ... the last of which the baseline explained
S_AR_PREV = SEASONAL.state("_ar_prev", Kind.FLOAT)  # short-term term: the last residual from the base
S_AR_XY = SEASONAL.state("_ar_xy", Kind.FLOAT)  # ... mean product of successive residuals
S_AR_XX = SEASONAL.state("_ar_xx", Kind.FLOAT)  # ... and mean square (0, 0: no short-term term yet)
# caches: the step the learning rates are for, and the rates
S_DT = SEASONAL.cache("dt", -1.0)
S_RATE_LEVEL = SEASONAL.cache("rate_level", 0.0)
S_RATE_HOD = SEASONAL.cache("rate_hod", 0.0)
S_RATE_DOW = SEASONAL.cache("rate_dow", 0.0)
S_RATE_SCALE = SEASONAL.cache("rate_scale", 0.0)
# parameters, in __init__ order (documented on SeasonalDetector)
P_LOG = SEASONAL.param(
    "transform", "log", pack=lambda p: float(p["transform"] == "log"),
    check=lambda p: None if p["transform"] in ("log", "identity")
    else f"transform must be 'log' or 'identity', got {p['transform']!r}")
P_DIR = SEASONAL.param("direction", "both", pack=lambda p: DIRECTIONS.index(p["direction"]), check=_direction)
P_LEVEL_HL = SEASONAL.param("level_half_life_s", DAY)
P_SEASON_HL = SEASONAL.param("season_half_life_visits", 3.0)
P_SCALE_HL = SEASONAL.param("scale_half_life_s", 2 * DAY)
P_WEEKLY = SEASONAL.param("weekly", True)
P_WARMUP_S = SEASONAL.param("warmup_s", DAY)
P_WARMUP_N = SEASONAL.param("warmup_points", 12)
P_Z_LEARN = SEASONAL.param("learn_threshold", 0.999, pack=lambda p: two_sided_z(p["learn_threshold"]))
P_CLIP = SEASONAL.param("learn_clip_sigmas", 3.0)
P_ACCEPT = SEASONAL.param("accept_shift_after_s", DAY)
P_MIN_REL = SEASONAL.param("min_rel_scale", 0.02)
P_MIN_ABS = SEASONAL.param("min_abs_scale", 1e-9)
P_COUNT_NOISE = SEASONAL.param("count_noise", False)
P_SUPPORT_NOISE = SEASONAL.param("support_noise", 0.0)
P_BAND = SEASONAL.param("band_sigmas", 3.0)
P_DOW_DN = SEASONAL.param("dow_low", 1.0, pack=lambda p: _weekday_log(p, "dow_low", -1.0))
P_DOW_UP = SEASONAL.param("dow_high", 1.0, pack=lambda p: _weekday_log(p, "dow_high", 1.0),
                          check=_weekday_range)
P_DOW_SEEN = SEASONAL.param("dow_seen_days", 4.0)
P_SEQ_SHIFT = SEASONAL.param("seq_shift", 3.0)
P_SEQ_PENALTY = SEASONAL.param("seq_penalty", 1.0)
P_SCALE_MIN_N = SEASONAL.param("scale_min_points", 30)
P_SCALE_ALL = SEASONAL.param("scale_from_anomalies", True)
P_SEQ_CALIBRATED = SEASONAL.param("seq_calibrated", True)
P_TAIL_LEARN_MAX = SEASONAL.param("tail_learn_max_sigmas", math.inf, pack=_log_excess_max,
                                  check=_above_threshold)
P_CHANGE_DEC = SEASONAL.param("change_decades", math.inf)
P_ADAPT = SEASONAL.param("adapt_s", HOUR)
P_NOVELTY = SEASONAL.param("novelty", True)
P_AR_MEMORY = SEASONAL.param("ar_memory_points", 0.0, check=lambda p: None if p["ar_memory_points"] >= 0
                             else f"ar_memory_points must be >= 0, got {p['ar_memory_points']!r}")

# -- RatioDetector --------------------------------------------------------------------------------
RATIO = Family("RatioDetector")
R_N = RATIO.state("_n", Kind.INT)
R_T0 = RATIO.state("_t0", Kind.OPTIONAL, math.nan)
R_LAST = RATIO.state("_last", Kind.OPTIONAL, math.nan)
R_A = RATIO.state("_a", Kind.FLOAT)  # decayed numerator sum
R_B = RATIO.state("_b", Kind.FLOAT)  # decayed denominator sum
R_TAU2 = RATIO.state("_tau2", Kind.FLOAT)  # extra-binomial variance of the rate
R_TAU_W = RATIO.state("_tau_w", Kind.FLOAT)  # ... and its weight
R_ANOM_SINCE = RATIO.state("_anom_since", Kind.OPTIONAL, math.nan)  # an anomalous run: since when
R_ANOM_SIGN = RATIO.state("_anom_sign", Kind.INT)  # ... which way
R_ANOM_A = RATIO.state("_anom_a", Kind.FLOAT)  # ... its numerator
R_ANOM_B = RATIO.state("_anom_b", Kind.FLOAT)  # ... and denominator
R_WARM = RATIO.state("_warm", Kind.BOOL)
R_CS = RATIO.state("_cs", Kind.FLOAT)  # sequential test: CUSUM of "rate x seq_ratio" vs the baseline
R_CS_T0 = RATIO.state("_cs_t0", Kind.FLOAT)  # ... its run: start,
R_CS_NUM = RATIO.state("_cs_num", Kind.FLOAT)  # events
R_CS_DEN = RATIO.state("_cs_den", Kind.FLOAT)  # and requests
R_TAIL_PI = RATIO.state("_tail_pi", Kind.FLOAT, TAIL_RATE_PRIOR)  # calibrated tail, as S_TAIL_*
R_TAIL_M1 = RATIO.state("_tail_m1", Kind.FLOAT, TAIL_SHAPE_PRIOR)
R_TAIL_M2 = RATIO.state("_tail_m2", Kind.FLOAT, 2 * TAIL_SHAPE_PRIOR ** 2)
R_TAIL_W = RATIO.state("_tail_w", Kind.FLOAT, TAIL_PRIOR_WEIGHT)
# caches: the step the decay is for, and the decay
R_DT = RATIO.cache("dt", -1.0)
R_DEC = RATIO.cache("dec", 1.0)
# parameters, in __init__ order (documented on RatioDetector)
Q_DIR = RATIO.param("direction", "up", pack=lambda p: DIRECTIONS.index(p["direction"]), check=_direction)
Q_HL = RATIO.param("half_life_s", 12 * HOUR)
Q_WARMUP_S = RATIO.param("warmup_s", DAY)
Q_WARMUP_N = RATIO.param("warmup_points", 12)
Q_LEARN_THR = RATIO.param("learn_threshold", 0.999)
Q_CLIP = RATIO.param("learn_clip_sigmas", 3.0)
Q_ACCEPT = RATIO.param("accept_shift_after_s", DAY)
Q_MIN_REL = RATIO.param("min_rel_scale", 0.1)
Q_PRIOR = RATIO.param("prior_events", 0.5)
Q_BAND = RATIO.param("band_sigmas", 3.0)
Q_SEQ_RATIO = RATIO.param("seq_ratio", 3.0, check=lambda p: None if p["seq_ratio"] > 1.0
                          else f"seq_ratio must be > 1, got {p['seq_ratio']!r}")
Q_SEQ_PENALTY = RATIO.param("seq_penalty", 1.0)
Q_SEQ_WINDOW = RATIO.param("seq_window_s", 2 * HOUR)
Q_SEQ_ABS = RATIO.param("seq_abs", 0.01)
Q_SEQ_EVENTS = RATIO.param("seq_events", 10.0)
Q_SCALE_ALL = RATIO.param("scale_from_anomalies", True)
Q_TAIL_LEARN_MAX = RATIO.param("tail_learn_max_sigmas", math.inf, pack=_log_excess_max,
                               check=_above_threshold)
Q_Z_LEARN = RATIO.derived(lambda p: two_sided_z(p["learn_threshold"]))


# -- GenericDetector: the seasonal model and an extreme-value tail of the raw values -------------
GENERIC = SEASONAL.extended("GenericDetector")
XT_N = GENERIC.state("_x_n", Kind.INT)  # points the tail has learned


def _peaks_side(side: str) -> int:
    """One side's fields (the upper side of the values, or of their negatives), from the offset
    returned: the P-square markers' heights and positions, then the peaks' count and the mean
    and mean square of their excess over the quantile (X_* below)."""
    at = GENERIC.state(f"_x_{side}_h", Kind.PROFILE, size=5)
    GENERIC.state(f"_x_{side}_at", Kind.PROFILE, size=5)
    GENERIC.state(f"_x_{side}_k", Kind.INT)
    GENERIC.state(f"_x_{side}_m1", Kind.FLOAT)
    GENERIC.state(f"_x_{side}_m2", Kind.FLOAT)
    return at


XT_UP, XT_DN = _peaks_side("up"), _peaks_side("down")
X_H, X_AT, X_K, X_M1, X_M2 = 0, 5, 10, 11, 12  # (offsets within a side)
XT_Q = GENERIC.param("extreme_quantile", 0.98, check=lambda p: None if 0.0 <= p["extreme_quantile"] < 1.0
                    else f"extreme_quantile must be in [0, 1), got {p['extreme_quantile']!r}")


# -- what a step returns ------------------------------------------------------------------------
class Assessment(NamedTuple):
    """One scored point, in the signal's own units.

    ``excess`` is, for ratios, the number of numerator events above expectation (else 0).
    """

    score: float
    value: float
    expected: float
    lo: float
    hi: float
    excess: float = 0.0
    #: ``-log10`` of the tail probability (or of the sequential test's evidence): unbounded,
    #: so two rare points are never tied; ``score`` is monotone in it
    surprise: float = 0.0
    #: event time the evidence covers: 0 = this interval alone; else the sequential test's run
    #: (``value``/``excess`` of ratios then cover the whole run)
    window_s: float = 0.0
    #: ratios over a run: numerator events and denominator (requests) in the window
    count: float = 0.0  # type: ignore[assignment]  # a field named like tuple.count, by design
    support: float = 0.0


#: an assessment's fields in an output row (``out[SCORE]``, ...), and its width
SCORE = Assessment._fields.index("score")
EXPECTED = Assessment._fields.index("expected")
ASSESSMENT_WIDTH = len(Assessment._fields)


class TimeBins(NamedTuple):
    """Where an event time falls: hour position ``h``, the two nearest hour-of-day bins ``i``
    and ``j`` (weight ``w`` on ``j``), and the day of the week ``d`` (Monday = 0)."""

    h: float
    i: int
    j: int
    w: float
    d: int


class WeekdayDoubt(NamedTuple):
    """The range ``[lo, hi]`` of plausible errors of the day-of-week offset, and its variance."""

    lo: float
    hi: float
    var: float


class SeasonalPoint(NamedTuple):
    """A scored seasonal point and what learning from it needs."""

    assessment: Assessment
    y: float  # the value on the model's scale
    mu: float  # its expectation
    bins: TimeBins
    var: float  # its variance
    cs: float  # the sequential test's evidence after it
    r_eff: float  # the residual beyond a plausible day-of-week error (only it is noise)
    z: float  # the standardised residual (vs the pending change's shadow if that explains it better)
    evidence: float  # no change pending: the point's surprise or the sequential evidence, in decades
    ar: float  # the short-term term in ``mu`` (what the base model expects is ``mu - ar``)
    var0: float  # the variance of the residual from the base model (``var`` is the short-term one's)


class RatioPoint(NamedTuple):
    """A scored ratio point and what learning from it needs."""

    assessment: Assessment
    p0: float  # the baseline rate
    var_rate: float  # the variance of the observed rate
    cs: float  # the sequential test's evidence after it (< 0: a new run, the old one expired)
    z: float  # the model's normal score of the point (what the calibrated tail learns from)


class TailP(NamedTuple):
    """A calibrated tail probability and its surprise (``-log10 p``, also where ``p`` underflows)."""

    p: float
    surprise: float


class ModelTail(NamedTuple):
    """A count's tail under the model (no calibration): its normal score, and for small counts
    the least two-sided tail calibration may give it (2 x the exact Poisson tail; else 0)."""

    z: float
    floor: float


class Evidence(NamedTuple):
    """A ratio's sequential evidence after a point, and what was carried over into it."""

    cs: float
    carry: float


class EventScores(NamedTuple):
    """What :func:`run_batch` needs to know of one event's signals."""

    warm: bool  # some signal is warm
    candidate: bool  # some warm signal reached its gate
    expected_requests: float


# -- tail probabilities -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def normal_sf(z, C):
    """P(Z > z) for a standard normal Z (accurate far into the tail)."""
    return 0.5 * math.erfc(z / C[C_SQRT2])


@njit(cache=True, nogil=True)
def poisson_sf(k, lam, C):
    """P(K >= k) for K ~ Poisson(lam), exact for small ``k``."""
    if k <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    if k > C[C_POISSON_MAX_K]:
        # normal approximation with continuity correction
        return normal_sf((k - 0.5 - lam) / math.sqrt(lam), C)
    term = math.exp(-lam)
    cdf = term
    for i in range(1, k):
        term *= lam / i
        cdf += term
    x = 1.0 - cdf
    return x if x > 0.0 else 0.0


@njit(cache=True, nogil=True)
def student_t_sf2(t, nu, C):
    """Two-sided tail P(|T| >= |t|) of a Student-t with an odd number ``nu`` of degrees of freedom.

    Closed form for odd ``nu`` (a short trigonometric series: cheap enough for every point),
    computed from the angle to the asymptote so that far tails keep their precision.
    """
    t = abs(t)
    if t == 0.0:
        return 1.0
    rn = math.sqrt(nu)
    phi = math.atan2(rn, t)  # pi/2 - atan(t / sqrt(nu))
    if phi < C[C_T_ASYMPT_PHI]:
        # P(|T| > t) ~ 2 f(t) t / nu for large t
        logf = C[C_T_LOG_NORM + nu] - (nu + 1) / 2.0 * math.log1p(t * t / nu)
        return 2.0 * math.exp(logf) * t / nu
    if nu == 1:
        return 2.0 * phi / C[C_PI]
    x = nu + t * t
    u = nu / x  # sin(phi) ** 2; sin(phi) cos(phi) = sqrt(nu) t / x
    term = 1.0
    series = 1.0
    for k in range(1, (nu - 1) // 2):
        term *= u * (2 * k) / (2 * k + 1)
        series += term
    q = C[C_2_PI] * (phi - rn * t / x * series)
    return q if q > 0.0 else 0.0


@njit(cache=True, nogil=True)
def normal_isf(p, C):
    """The ``z`` with P(Z > z) = ``p`` for a standard normal Z (Newton steps on the log tail
    from its asymptotic expansion: accurate far into the tail)."""
    if p >= 1.0:
        return -C[C_ISF_MAX]
    if p <= 0.0:
        return C[C_ISF_MAX]
    lower = p > 0.5
    lp = math.log(1.0 - p if lower else p)
    z = math.sqrt(-2.0 * lp - math.log(-C[C_TWO] * lp * C[C_PI])) if lp < -1.5 else 0.5
    for _ in range(ISF_STEPS):
        sf = normal_sf(z, C)
        step = (math.log(sf) - lp) * sf * C[C_SQRT_2PI] / math.exp(-0.5 * z * z)
        z += step
        if -C[C_ISF_TOL] < step < C[C_ISF_TOL]:
            break
    return -z if lower else z


@njit(cache=True, nogil=True, inline="always")
def _calibrated_score(z, pi, m1, m2, C):
    """The calibrated normal score of ``z``: the normal quantile of its calibrated two-sided tail,
    signed (what the sequential tests accumulate: one heavy-tailed burst adds a bounded amount)."""
    a = z if z > 0 else -z
    g = normal_isf(0.5 * calibrated_tail(a, pi, m1, m2, C), C)
    return g if z > 0 else -g


@njit(cache=True, nogil=True)
def calibrated_tail(a, pi, m1, m2, C):
    """:func:`calibrated_log_tail` as a probability."""
    return math.exp(calibrated_log_tail(a, pi, m1, m2, C))


@njit(cache=True, nogil=True)
def calibrated_log_tail(a, pi, m1, m2, C):
    """The log of P(|z| >= a) (so that far tails never underflow to ties) under a series'
    calibrated tail: above the threshold ``u`` a generalised
    Pareto tail (exceedance rate ``pi``; shape and scale from the moments ``m1``, ``m2`` of the
    log-excess); below it the normal body, rescaled to meet ``1 - pi`` at ``u``.

    A heavy (Pareto) tail of index ``xi`` has ``m1 = xi``, ``m2 = 2 xi**2``: then this is
    ``pi * (a / u) ** (-1 / xi)``; a light one gets an exponential tail (shape floored at 0:
    the surprise stays unbounded).
    """
    u = C[C_TAIL_U]
    if a <= u:
        return math.log(1.0 - (1.0 - pi) * (1.0 - math.erfc(a / C[C_SQRT2])) / C[C_TAIL_BODY])
    ratio = m1 * m1 / m2 if m2 > 0.0 else 0.5
    ratio = ratio if ratio < 0.99 else 0.99
    xi = m1 + 1.0 - 0.5 / (1.0 - ratio)
    light = xi if xi < 0.0 else 0.0
    sigma = u * m1 * (1.0 - light)
    if xi <= 0.0:
        return math.log(pi) - (a - u) / sigma
    return math.log(pi) - math.log1p(xi * (a - u) / sigma) / xi


@njit(cache=True, nogil=True, inline="always")
def _learn_tail(row, at_pi, at_m1, at_w, n, z, le_max, C):
    """The calibrated tail learns from a point's standardised residual ``z``: the exceedance
    rate over (at most) TAIL_RATE_MEMORY points, the log-excess moments (at ``at_m1`` and the
    next field) over TAIL_SHAPE_MEMORY exceedances."""
    a = z if z > 0 else -z
    rate = 1.0 / n
    if rate < C[C_TAIL_RATE_MIN]:
        rate = C[C_TAIL_RATE_MIN]
    hit = a > C[C_TAIL_U]
    row[at_pi] += rate * ((1.0 if hit else 0.0) - row[at_pi])
    if hit:
        row[at_w] += 1.0
        h = 1.0 / row[at_w]
        if h < C[C_TAIL_SHAPE_MIN_RATE]:
            h = C[C_TAIL_SHAPE_MIN_RATE]
        le = math.log(a) - C[C_TAIL_LOG_U]
        le = le if le < le_max else le_max
        row[at_m1] += h * (le - row[at_m1])
        row[at_m1 + 1] += h * (le * le - row[at_m1 + 1])


@njit(cache=True, nogil=True)
def score_from_surprise(s, C):
    """Score in [0, 1) from a surprise (``-log10`` tail probability), monotone in the surprise.

    Exact (``1 - 10**-s``) up to SURPRISE_EXACT_MAX, compressed beyond it (rationally: calibrated
    light tails give surprises in the hundreds) so that two surprises up to about a thousand
    that differ by a decade never round to the same score.
    """
    if s <= 0.0:
        return 0.0
    ex = C[C_SURPRISE_EXACT_MAX]
    if s > ex:
        comp = C[C_SURPRISE_COMPRESS]
        d = s - ex
        s = ex + comp * d / (d + comp)
    return 1.0 - C[C_TEN] ** -s


@njit(cache=True, nogil=True, inline="always")
def _clipped(e, clip):
    return e if -clip < e < clip else (clip if e > 0 else -clip)


@njit(cache=True, nogil=True, inline="always")
def _write(out, a):
    """An assessment into an output row (its fields in order; unrolled: a loop indexing the
    tuple cost about a seventh of the kernel's time. ``tests/detectors/test_kernel.py`` checks
    that every field is written)."""
    out[0] = a[0]
    out[1] = a[1]
    out[2] = a[2]
    out[3] = a[3]
    out[4] = a[4]
    out[5] = a[5]
    out[6] = a[6]
    out[7] = a[7]
    out[8] = a[8]
    out[9] = a[9]


@njit(cache=True, nogil=True, inline="always")
def _count_point(row, ts, at_n, at_t0, at_warm, warmup_points, warmup_s):
    """One more point learned; the series is warm once it has ``warmup_points`` spanning
    ``warmup_s``. Returns whether it was warm before this point."""
    row[at_n] += 1.0
    warm = row[at_warm] != 0.0
    if not warm and row[at_n] >= warmup_points and ts - row[at_t0] >= warmup_s:
        row[at_warm] = 1.0
    return warm


# -- SeasonalDetector: scoring ----------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _time_bins(ts, C):
    # time of day: interpolate between the two nearest hourly bins (centres at hh:30)
    h = (ts % C[C_DAY]) / C[C_HOUR] - 0.5
    if h < 0.0:
        h += 24.0
    i = int(h)
    w = h - i
    j = 0 if i == 23 else i + 1
    d = int((ts // C[C_DAY] + 3) % 7)  # 1970-01-01 was a Thursday; Monday = 0
    return TimeBins(h, i, j, w, d)


@njit(cache=True, nogil=True, inline="always")
def _expected(row, P, b):
    """Level + time of day (the two nearest bins) + day of week."""
    mu = row[S_LEVEL] + row[S_HOD + b.i] * (1.0 - b.w) + row[S_HOD + b.j] * b.w
    if P[P_WEEKLY] != 0.0:
        mu += row[S_DOW + b.d]
    return mu


@njit(cache=True, nogil=True, inline="always")
def _noise(row, P, mu, n):
    """The variance of a point: learned noise above its floor, low-support percentiles, the
    Poisson noise of a count."""
    log_t = P[P_LOG] != 0.0
    if log_t:
        floor = P[P_MIN_REL]
    else:
        fa = P[P_MIN_REL] * abs(mu)
        floor = fa if fa > P[P_MIN_ABS] else P[P_MIN_ABS]
    s2 = row[S_S2]
    heavy = s2 if s2 > floor * floor else floor * floor
    if P[P_SUPPORT_NOISE] != 0.0 and n != 0.0:
        heavy += P[P_SUPPORT_NOISE] / n
    var = heavy
    if P[P_COUNT_NOISE] != 0.0 and log_t:
        var += math.exp(-mu) if mu > 0 else 1.0
    return var


@njit(cache=True, nogil=True, inline="always")
def _unseen(row, P, C, d):
    """Share of weekday ``d``'s effect not learned yet (the running mean starts from a prior of
    DOW_PRIOR_DAYS days at 0); 0 once the weekday was seen ``dow_seen_days`` times."""
    seen = row[S_DOWW + d]
    return 0.0 if seen >= P[P_DOW_SEEN] else C[C_DOW_PRIOR] / (seen + C[C_DOW_PRIOR])


@njit(cache=True, nogil=True, inline="always")
def _weekday_doubt(row, P, C, b, y, mu):
    """The day-of-week offset is uncertain in two ways: a weekday not seen ``dow_seen_days``
    times has an unknown effect (up to ``dow_low``..``dow_high``), and near midnight UTC the
    customer's own day (time zone unknown) may still / already be the adjacent one. The range
    of plausible errors adds variance on its side of the residual (prior sd = range /
    DOW_RANGE_SIGMAS) and is forgiven by the sequential test. An unseen weekend is not an anomaly.
    """
    b_lo = 0.0
    b_hi = 0.0
    dow_up = P[P_DOW_UP]
    dow_dn = P[P_DOW_DN]
    if dow_up == 0.0 and dow_dn == 0.0:
        return WeekdayDoubt(b_lo, b_hi, 0.0)
    d = b.d
    if row[S_DOWW + d] < P[P_DOW_SEEN]:
        unseen = _unseen(row, P, C, d)
        b_lo = -unseen * dow_dn
        b_hi = unseen * dow_up
    hd = b.h + 0.5
    adj = d - 1 if hd < 12.0 else d + 1
    adj = 6 if adj < 0 else (0 if adj > 6 else adj)
    if row[S_DOWW + adj] > 0.0:
        tr = (1.0 - hd / 12.0 if hd < 12.0 else hd / 12.0 - 1.0) * (row[S_DOW + adj] - row[S_DOW + d])
        if tr > 0.0:
            b_hi += tr
        else:
            b_lo += tr
    edge = b_hi if y > mu else -b_lo
    return WeekdayDoubt(b_lo, b_hi, (edge / C[C_DOW_RANGE]) ** C[C_TWO])


@njit(cache=True, nogil=True, inline="always")
def _directed(lnq, z, direction, C):
    """The log of a two-sided tail probability (its log ``lnq``) of ``z``, in the alerting
    ``direction``."""
    if direction == BOTH:
        return lnq
    if (z > 0) == (direction == UP):
        return lnq - C[C_LN2]
    return math.log(1.0 - 0.5 * math.exp(lnq))


@njit(cache=True, nogil=True, inline="always")
def _calibrated(z, pi, m1, m2, direction, floor, C):
    """The calibrated tail probability of ``z`` in the alerting ``direction`` (its two-sided
    tail at least ``floor``), and its surprise. In the body (the common case) plainly, beyond
    the threshold in log space."""
    a = z if z > 0 else -z
    if a <= C[C_TAIL_U]:
        q = 1.0 - (1.0 - pi) * (1.0 - math.erfc(a / C[C_SQRT2])) / C[C_TAIL_BODY]
        q = q if q > floor else floor
        if direction == BOTH:
            p = q
        elif (z > 0) == (direction == UP):
            p = 0.5 * q
        else:
            p = 1.0 - 0.5 * q
        return TailP(p, -math.log10(p) if p < 1.0 else 0.0)
    lnq = calibrated_log_tail(a, pi, m1, m2, C)
    if floor > 0.0 and lnq < math.log(floor):
        lnq = math.log(floor)
    lnp = _directed(lnq, z, direction, C)
    return TailP(math.exp(lnp), _log_surprise(lnp, C))


@njit(cache=True, nogil=True, inline="always")
def _log_surprise(lnp, C):
    """The surprise (``-log10 p``) of a tail probability's log."""
    s = -lnp / C[C_LN10]
    return 0.0 if s <= 0.0 else (s if s < C[C_MAX_SURPRISE] else C[C_MAX_SURPRISE])


@njit(cache=True, nogil=True, inline="always")
def _seasonal_evidence(row, P, C, z, r_eff, var, dow_var):
    """The sequential test (CUSUM for a shift of ``seq_shift`` standard deviations) after this
    point: evidence that builds up over several moderately unusual intervals in a row."""
    cs_old = row[S_CS]
    delta = P[P_SEQ_SHIFT]
    za = z if z > 0 else -z
    # (nothing to add or carry: the common case skips the test, whose result would be 0)
    if not (row[S_WARM] != 0.0 and (cs_old != 0.0 or dow_var > 0.0 or za > 0.5 * delta)):
        return 0.0
    zc = z
    if dow_var > 0.0:
        # a day-of-week error is one persistent offset, not independent noise: forgive the
        # plausible range, or a whole unseen weekend adds up to an alert
        zc = r_eff / math.sqrt(var - dow_var)
    if P[P_SEQ_CALIBRATED] != 0.0:
        # on the calibrated score: a series with heavy tails does not accumulate evidence faster
        zc = _calibrated_score(zc, row[S_TAIL_PI], row[S_TAIL_M1], row[S_TAIL_M2], C)
    zc = C[C_SEQ_Z_CLIP] * math.tanh(zc / C[C_SEQ_Z_CLIP])  # soft clip: bounded, still no ties
    half = 0.5 * delta * delta
    # the evidence carried over is capped (so a long incident is forgotten quickly)
    cap = (P[P_SEQ_PENALTY] + C[C_SEQ_MAX_DECADES]) * C[C_LN10]
    up = ((cs_old if cs_old <= cap else cap) if cs_old > 0.0 else 0.0) + delta * zc - half
    mcs = -cs_old
    dn = ((mcs if mcs <= cap else cap) if cs_old < 0.0 else 0.0) - delta * zc - half
    direction = int(P[P_DIR])
    if direction == UP:
        dn = 0.0
    elif direction == DOWN:
        up = 0.0
    return up if up > 0.0 and up >= dn else (-dn if dn > 0.0 else 0.0)


@njit(cache=True, nogil=True, inline="always")
def _ar_phi(row, P, C):
    """The short-term term's coefficient: the residuals' lag-1 autocorrelation, in [0, AR_PHI_MAX]
    (0 while ``ar_memory_points`` is 0 or nothing was learned)."""
    xx = row[S_AR_XX]
    if P[P_AR_MEMORY] == 0.0 or xx <= 0.0:
        return 0.0
    phi = row[S_AR_XY] / xx
    mx = C[C_AR_PHI_MAX]
    return 0.0 if phi < 0.0 else (phi if phi < mx else mx)


@njit(cache=True, nogil=True, inline="always")
def _learn_ar(row, P, C, pt):
    """The short-term term learns from the residual from the base model: the mean products of
    successive residuals (a running mean, then an EWMA over ``ar_memory_points``), each clipped
    at AR_CLIP_SIGMAS; an anomaly's echo is not predicted (the last residual is then 0)."""
    memory = P[P_AR_MEMORY]
    if memory == 0.0:
        return
    rb = pt.y - (pt.mu - pt.ar)
    sd = math.sqrt(pt.var0) if pt.var0 > 0.0 else 0.0
    xs = math.sqrt(row[S_AR_XX])
    lim = C[C_AR_CLIP] * (sd if sd > xs else xs)
    anomaly = lim > 0.0 and (rb >= lim or rb <= -lim)
    if anomaly:
        rb = lim if rb > 0.0 else -lim
    g = 1.0 / row[S_N]
    g = g if g * memory > 1.0 else 1.0 / memory
    prev = row[S_AR_PREV]
    row[S_AR_XY] += g * (rb * prev - row[S_AR_XY])
    row[S_AR_XX] += g * (prev * prev - row[S_AR_XX])
    row[S_AR_PREV] = 0.0 if anomaly else rb


@njit(cache=True, nogil=True, inline="always")
def _seasonal_score(row, P, C, ts, v, n):
    """Score one point against the model (learns nothing)."""
    if P[P_LOG] != 0.0:
        y = math.log1p(v) if v > 0 else 0.0
    else:
        y = v
    if row[S_N] == 0.0:
        first = Assessment(0.0, v, v, v, v, 0.0, 0.0, 0.0, 0.0, 0.0)
        return SeasonalPoint(first, y, y, TimeBins(0.0, 0, 1, 0.0, 0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    b = _time_bins(ts, C)
    mu = _expected(row, P, b)
    phi = _ar_phi(row, P, C)
    ar = 0.0
    if phi != 0.0:  # (the common case in a fleet: no term, nothing to compute)
        ar = phi * row[S_AR_PREV]
        mu += ar
    doubt = _weekday_doubt(row, P, C, b, y, mu)
    var = _noise(row, P, mu, n) + doubt.var
    # the residual beyond the plausible day-of-week error (what is left to noise or anomaly)
    r_eff = y - mu
    if doubt.var > 0.0:
        r_eff = r_eff - doubt.hi if r_eff > doubt.hi else (r_eff - doubt.lo if r_eff < doubt.lo else 0.0)
    sd = math.sqrt(var)
    z = (y - mu) / sd
    zb = z
    cs = 0.0
    novelty = row[S_CHG] != 0.0 and P[P_NOVELTY] != 0.0
    if novelty:
        # a change is pending: a point is as surprising as the likelier of "baseline" and "the
        # change" say (a level shift is one detection, at the change)
        z1 = (y - mu - row[S_CHG_OFF]) / sd
        if (z1 if z1 > 0 else -z1) < (z if z > 0 else -z):
            zb = z1
    else:
        cs = _seasonal_evidence(row, P, C, z, r_eff, var, doubt.var)
    tp = _calibrated(zb, row[S_TAIL_PI], row[S_TAIL_M1], row[S_TAIL_M2], int(P[P_DIR]), 0.0, C)
    p = tp.p
    surprise = tp.surprise
    window = 0.0
    seq_won = False
    if cs != 0.0:
        # (one outlier adds at most seq_shift * SEQ_Z_CLIP - seq_shift**2 / 2 nats, less than an
        # alert needs: one noisy interval cannot open an incident)
        seq = (cs if cs > 0.0 else -cs) / C[C_LN10] - P[P_SEQ_PENALTY]
        if seq > surprise:
            surprise = seq
            seq_won = True
            same = (cs > 0.0) == (row[S_CS] > 0.0) and row[S_CS] != 0.0
            dt_old = row[S_DT]
            window = (ts - row[S_CS_T0] if same else 0.0) + (dt_old if dt_old > 0.0 else 0.0)
    # (score = 1 - p exactly where that is representable: the common case, and cheap)
    evidence = surprise if row[S_CHG] == 0.0 else 0.0
    if not seq_won and p >= C[C_EXACT_P_MIN]:
        score = 1.0 - p
    else:
        score = score_from_surprise(surprise, C)
    k = P[P_BAND] * sd
    if P[P_LOG] != 0.0:
        exp_v = math.expm1(mu)
        lo = math.expm1(mu - k)
        hi = math.expm1(mu + k)
        lo = lo if lo > 0.0 else 0.0
    else:
        exp_v = mu
        lo = mu - k
        hi = mu + k
    a = Assessment(score, v, exp_v, lo, hi, 0.0, surprise, window, 0.0, 0.0)
    var0 = var / (1.0 - phi * phi) if phi != 0.0 else var
    return SeasonalPoint(a, y, mu, b, var, cs, r_eff, zb, evidence, ar, var0)


# -- SeasonalDetector: learning -----------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _seasonal_rates(row, P, C, dt):
    """The learning rates of a step of ``dt`` seconds (cached: almost always the interval)."""
    if dt == row[S_DT]:
        return
    half = C[C_HALF]
    row[S_DT] = dt
    row[S_RATE_LEVEL] = 1.0 - half ** (dt / P[P_LEVEL_HL])
    row[S_RATE_HOD] = 1.0 - half ** (dt / (P[P_SEASON_HL] * C[C_HOUR]))
    row[S_RATE_DOW] = 1.0 - half ** (dt / (P[P_SEASON_HL] * 7 * C[C_DAY]))
    # a noise scale is never estimated from fewer than scale_min_points points, however long
    # the interval (daily series: half-lives of days are a few points)
    r3 = 1.0 - half ** (dt / P[P_SCALE_HL])
    cap_v = 1.0 / P[P_SCALE_MIN_N]
    row[S_RATE_SCALE] = cap_v if cap_v < r3 else r3


#: what a point is to the level (_track_shift)
ORDINARY, ANOMALOUS, SHIFT_ACCEPTED = range(3)


@njit(cache=True, nogil=True, inline="always")
def _track_shift(row, P, C, ts, r, sd, warm):
    """Anomalous points (two-sided on purpose: a shift in the direction that does not alert, as
    latency going back down after an accepted rise, is learned as fast as one that does) start
    the level-shift clock; a shift that lasts ``accept_shift_after_s`` is the new normal."""
    if not (warm and (r if r > 0 else -r) >= P[P_Z_LEARN] * sd):
        row[S_ANOM_SINCE] = np.nan
        return ORDINARY
    sign = 1.0 if r > 0 else -1.0
    if math.isnan(row[S_ANOM_SINCE]) or sign != row[S_ANOM_SIGN]:
        row[S_ANOM_SINCE] = ts
        row[S_ANOM_SIGN] = sign
        row[S_SHIFT] = r
        return ANOMALOUS
    row[S_SHIFT] += C[C_SHIFT_RATE] * (r - row[S_SHIFT])
    if ts - row[S_ANOM_SINCE] < P[P_ACCEPT]:
        return ANOMALOUS
    row[S_LEVEL] += row[S_SHIFT]
    row[S_ANOM_SINCE] = np.nan
    row[S_ANOM_SIGN] = 0.0
    row[S_SHIFT] = 0.0
    return SHIFT_ACCEPTED


@njit(cache=True, nogil=True)
def _recentre(row):
    """After the first day: move the mean of the visited time-of-day bins into the level."""
    total = 0.0
    count = 0
    for b in range(24):
        if row[S_HODW + b] > 0:
            total += row[S_HOD + b]
            count += 1
    m = total / count if count else 0.0
    row[S_LEVEL] += m
    for b in range(24):
        if row[S_HODW + b] > 0:
            row[S_HOD + b] -= m
    row[S_CENTRED] = 1.0


@njit(cache=True, nogil=True, inline="always")
def _learn_hour(row, at, share, u, rate, target, clip):
    """Time of day, one bin of the kernel smoother: a running mean over *visits* (hours of data
    in the bin) first, then an EWMA, weighted by the bin's ``share`` of the point."""
    row[S_HODW + at] += share * u
    g = share * u / row[S_HODW + at]
    if g < rate * share:
        g = rate * share
    e = target - row[S_HOD + at]
    row[S_HOD + at] += g * _clipped(e, clip)


@njit(cache=True, nogil=True, inline="always")
def _learn_weekday(row, C, b, y, dt, rate, clip):
    """Day of week: a running mean with a prior of DOW_PRIOR_DAYS days at 0 (one unusual first
    Friday, a holiday, must not become "what Fridays look like"), then an EWMA."""
    d = b.d
    ud = dt / C[C_DAY]
    row[S_DOWW + d] += ud
    g = ud / (row[S_DOWW + d] + C[C_DOW_PRIOR])
    if g < rate:
        g = rate
    e = y - row[S_LEVEL] - (row[S_HOD + b.i] * (1.0 - b.w) + row[S_HOD + b.j] * b.w) - row[S_DOW + d]
    row[S_DOW + d] += g * _clipped(e, clip)


@njit(cache=True, nogil=True, inline="always")
def _learn_scale(row, P, C, pt):
    """The noise scale, robustly: clipped residual beyond the weekday's doubt, Poisson part removed."""
    var = pt.var
    e2 = pt.r_eff * pt.r_eff
    sc = C[C_SCALE_CLIP]
    cap = sc * sc * var if var > 0 else e2
    if e2 > cap:
        e2 = cap
    if P[P_COUNT_NOISE] != 0.0 and P[P_LOG] != 0.0:
        mu = pt.mu
        e2 -= math.exp(-mu) if mu > 0 else 1.0
    row[S_S2_W] += 1.0
    g = 1.0 / row[S_S2_W]
    if g < row[S_RATE_SCALE]:
        g = row[S_RATE_SCALE]
    row[S_S2] += g * (e2 - row[S_S2])


@njit(cache=True, nogil=True)
def _seasonal_learn(row, P, C, ts, pt):
    """Learn from a scored point (not the first) after the last learned one.

    Every update uses residuals clipped at ``learn_clip_sigmas`` (Huber): an anomaly moves the
    baseline no more than an ordinary 3-sigma point would, so an incident does not become the
    new normal, while a moderate lasting change (a holiday) is followed.
    """
    dt = ts - row[S_LAST]
    dt = 1.0 if dt < 1.0 else (C[C_MAX_STEP] if dt > C[C_MAX_STEP] else dt)
    _seasonal_rates(row, P, C, dt)
    warm = _count_point(row, ts, S_N, S_T0, S_WARM, P[P_WARMUP_N], P[P_WARMUP_S])
    y, b = pt.y, pt.bins
    _learn_ar(row, P, C, pt)
    # the base model (level, shift, profiles) learns from its own residual; the short-term
    # term only sharpens the score
    r = y - (pt.mu - pt.ar)
    sd = math.sqrt(pt.var0) if pt.var0 > 0 else 1.0
    clip = P[P_CLIP] * sd
    shift = _track_shift(row, P, C, ts, r, sd, warm)
    if shift == SHIFT_ACCEPTED:
        row[S_AR_PREV] = 0.0
        row[S_LAST] = ts
        return
    first_day = ts - row[S_T0] < C[C_DAY]
    if not first_day and row[S_CENTRED] == 0.0:
        _recentre(row)
    # level: frozen during the first day, so that the time-of-day bins learn the daily shape
    # against a constant instead of against a level that is itself still moving
    if not first_day:
        rc = _clipped(r, clip)
        if P[P_DOW_UP] != 0.0 or P[P_DOW_DN] != 0.0:
            # what a weekday not seen yet does is its own offset's to learn, not the level's
            # (else the first weekends pull the level down and the next Monday 'surges')
            rc *= 1.0 - _unseen(row, P, C, b.d)
        row[S_LEVEL] += row[S_RATE_LEVEL] * rc
    # time of day: bins i and j each move towards the de-levelled value, by their share of the
    # point (a convex update: stable at any interval length)
    u = dt / C[C_HOUR] if dt < C[C_HOUR] else 1.0
    target = y - row[S_LEVEL] - (row[S_DOW + b.d] if P[P_WEEKLY] != 0.0 else 0.0)
    if not warm:
        clip = math.inf  # nothing to be robust against yet: learn the shape as it is
    if 1.0 - b.w > 0.0:
        _learn_hour(row, b.i, 1.0 - b.w, u, row[S_RATE_HOD], target, clip)
    if b.w > 0.0:
        _learn_hour(row, b.j, b.w, u, row[S_RATE_HOD], target, clip)
    if P[P_WEEKLY] != 0.0 and not first_day:
        _learn_weekday(row, C, b, y, dt, row[S_RATE_DOW], clip)
    # every point teaches the noise scale (clipped): a new regime is followed, not excluded
    if shift == ORDINARY or P[P_SCALE_ALL] != 0.0:
        _learn_scale(row, P, C, pt)
    if row[S_N] >= P[P_SCALE_MIN_N]:
        _learn_tail(row, S_TAIL_PI, S_TAIL_M1, S_TAIL_W, row[S_N], pt.z, P[P_TAIL_LEARN_MAX], C)
    row[S_LAST] = ts


@njit(cache=True, nogil=True, inline="always")
def _track_change(row, P, C, ts, pt):
    """Change handling: evidence of ``change_decades`` (the point's surprise or the sequential
    test's) opens a pending change of level, whose shadow follows the points; it is cancelled
    once the baseline explains CHANGE_CANCEL_POINTS points in a row, and accepted after
    ``adapt_s``: then the level moves by the shadow's offset, which is returned (else 0)."""
    if row[S_N] < P[P_SCALE_MIN_N]:
        return 0.0
    r = pt.y - pt.mu
    if row[S_CHG] == 0.0:
        if pt.evidence >= P[P_CHANGE_DEC]:
            row[S_CHG] = 1.0
            # (opened by the sequential test: the change began with its run)
            row[S_CHG_T0] = row[S_CS_T0] if pt.cs != 0.0 and row[S_CS] != 0.0 else ts
            row[S_CHG_OFF] = r
            row[S_CHG_N] = 1.0
            row[S_CHG_OK] = 0.0
        return 0.0
    sd = math.sqrt(pt.var)
    row[S_CHG_N] += 1.0
    n = row[S_CHG_N]
    off = row[S_CHG_OFF] + _clipped(r - row[S_CHG_OFF], C[C_CHG_CLIP] * sd) / (
        n if n < C[C_CHG_MEMORY] else C[C_CHG_MEMORY])
    row[S_CHG_OFF] = off
    za = r / sd if r > 0 else -r / sd
    explained = za < C[C_CHG_CANCEL_Z] and (r - off if r > off else off - r) > (r if r > 0 else -r)
    row[S_CHG_OK] = row[S_CHG_OK] + 1.0 if explained else 0.0
    if row[S_CHG_OK] >= C[C_CHG_CANCEL_N]:
        row[S_CHG] = 0.0
        return 0.0
    if ts - row[S_CHG_T0] < P[P_ADAPT]:
        return 0.0
    row[S_CHG] = 0.0
    row[S_LEVEL] += off
    row[S_ANOM_SINCE] = np.nan  # (the 24 h ceiling's clock starts again from the new level)
    row[S_ANOM_SIGN] = 0.0
    return off


@njit(cache=True, nogil=True)
def _seasonal_step(row, P, C, ts, v, n):
    """SeasonalDetector: score a point, then learn from it if it is after the last learned one."""
    pt = _seasonal_score(row, P, C, ts, v, n)
    if not (math.isnan(row[S_LAST]) or ts > row[S_LAST]):
        return pt.assessment
    if row[S_N] == 0.0:
        row[S_N] = 1.0
        row[S_T0] = ts
        row[S_LAST] = ts
        row[S_LEVEL] = pt.y
        return pt.assessment
    accepted = _track_change(row, P, C, ts, pt)
    if accepted != 0.0:  # (the point is learned as the new level sees it)
        pt = SeasonalPoint(pt.assessment, pt.y, pt.mu + accepted, pt.bins, pt.var, 0.0, pt.r_eff - accepted,
                           pt.z, pt.evidence, pt.ar, pt.var0)
        row[S_AR_PREV] = 0.0  # (the level moved: the last residual from it is gone)
    _seasonal_learn(row, P, C, ts, pt)
    if row[S_WARM] != 0.0:
        cs = pt.cs if row[S_CHG] == 0.0 or P[P_NOVELTY] == 0.0 else 0.0
        if cs == 0.0 or (cs > 0.0) != (row[S_CS] > 0.0) or row[S_CS] == 0.0:
            row[S_CS_T0] = ts
        row[S_CS] = cs
    return pt.assessment


@njit(cache=True, nogil=True)
def seasonal_update(row, P, C, ts, v, n, out):
    """:meth:`SeasonalDetector.update`: score, then learn; the assessment goes to ``out``.

    ``row``: the series' state row, ``P``: its parameter row, ``C``: :data:`CONSTANTS`; ``n``:
    the point's support (0: none).
    """
    _write(out, _seasonal_step(row, P, C, ts, v, n))


@njit(cache=True, nogil=True)
def seasonal_assess(row, P, C, ts, v, n, out):
    """:meth:`SeasonalDetector.assess`: score only (as :func:`seasonal_update`)."""
    _write(out, _seasonal_score(row, P, C, ts, v, n).assessment)


# -- GenericDetector: the extreme-value tail -------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _p2_learn(row, at, n, q, x):
    """One side's running ``q`` quantile, P-square (Jain & Chlamtac, 1985): five markers (the
    minimum, the q/2, q and (1+q)/2 quantiles, the maximum) whose heights move by piecewise
    parabolic steps as points arrive; no point is kept. ``n``: points learned before ``x``."""
    h = at + X_H
    pos = at + X_AT
    if n < 5:  # the first five: kept sorted, they are the markers
        i = int(n)
        while i > 0 and row[h + i - 1] > x:
            row[h + i] = row[h + i - 1]
            i -= 1
        row[h + i] = x
        if n == 4:
            for i in range(5):
                row[pos + i] = i + 1.0
        return
    if x < row[h]:
        row[h] = x
        k = 0
    elif x >= row[h + 4]:
        row[h + 4] = x
        k = 3
    else:
        k = 0
        while x >= row[h + k + 1]:
            k += 1
    for i in range(k + 1, 5):
        row[pos + i] += 1.0
    for i in range(1, 4):
        frac = 0.5 * q if i == 1 else (q if i == 2 else 0.5 * (1.0 + q))
        d = 1.0 + n * frac - row[pos + i]  # (the marker's desired position after n + 1 points)
        up = row[pos + i + 1] - row[pos + i]
        down = row[pos + i - 1] - row[pos + i]
        if (d >= 1.0 and up > 1.0) or (d <= -1.0 and down < -1.0):
            s = 1.0 if d > 0.0 else -1.0
            hp = row[h + i] + s / (up - down) * ((s - down) * (row[h + i + 1] - row[h + i]) / up
                                                 + (up - s) * (row[h + i] - row[h + i - 1]) / -down)
            if not (row[h + i - 1] < hp < row[h + i + 1]):  # (not monotone: the linear step)
                j = i + 1 if s > 0.0 else i - 1
                hp = row[h + i] + s * (row[h + j] - row[h + i]) / (row[pos + j] - row[pos + i])
            row[h + i] = hp
            row[pos + i] += s


@njit(cache=True, nogil=True, inline="always")
def _peak_surprise(row, at, n, x, C):
    """The surprise of ``x`` on one side (peaks over threshold, as SPOT): how often a point is a
    peak (beyond the running quantile), times the generalised Pareto tail of its excess, fitted to
    the peaks' excesses by the method of moments. 0 at or below the quantile."""
    k = row[at + X_K]
    e = x - row[at + X_H + 2]
    if e <= 0.0 or k < C[C_X_MIN_PEAKS]:
        return 0.0
    m1 = row[at + X_M1]
    var = row[at + X_M2] - m1 * m1
    xi = 0.0
    sigma = m1
    if var > 0.0:
        r = m1 * m1 / var
        xi = 0.5 * (1.0 - r)
        sigma = 0.5 * m1 * (1.0 + r)
        lo, hi = C[C_X_SHAPE_MIN], C[C_X_SHAPE_MAX]
        xi = lo if xi < lo else (hi if xi > hi else xi)
    ln_rate = math.log(k / n)
    cap = C[C_X_CAP] + ln_rate  # (the tail's nats at the cap)
    exponential = -C[C_X_SHAPE_EXP] < xi < C[C_X_SHAPE_EXP]
    t = xi * e / sigma
    if exponential:
        nats = e / sigma
    elif t > -1.0:
        nats = math.log1p(t) / xi
    else:
        nats = math.inf  # (beyond a bounded tail's end point)
    if nats > cap:
        e_cap = sigma * cap if exponential else sigma * math.expm1(xi * cap) / xi
        nats = cap + (e - e_cap) / sigma
    return (nats - ln_rate) / C[C_LN10]


@njit(cache=True, nogil=True, inline="always")
def _extreme_surprise(row, P, C, v):
    """The extreme-value tail's surprise of ``v`` in the alerting direction (both: the rarer
    side's, one-sided; the factor 2 of two models is :func:`_either`'s); 0 while a change is
    pending; -1 while the tail is off or has not seen enough points."""
    n = row[XT_N]
    if P[XT_Q] == 0.0 or n < C[C_X_MIN_POINTS]:
        return -1.0
    if row[S_CHG] != 0.0 and P[P_NOVELTY] != 0.0:
        return 0.0
    direction = int(P[P_DIR])
    up = _peak_surprise(row, XT_UP, n, v, C) if direction != DOWN else 0.0
    down = _peak_surprise(row, XT_DN, n, -v, C) if direction != UP else 0.0
    s = up if up > down else down
    return s if s > 0.0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def _learn_peak(row, at, x):
    """A peak (``x`` beyond the side's quantile) teaches the mean and mean square of the excess."""
    e = x - row[at + X_H + 2]
    if e > 0.0:
        k = row[at + X_K] + 1.0
        row[at + X_K] = k
        row[at + X_M1] += (e - row[at + X_M1]) / k
        row[at + X_M2] += (e * e - row[at + X_M2]) / k


@njit(cache=True, nogil=True, inline="always")
def _extreme_learn(row, P, v):
    """Both sides' quantiles learn ``v`` (the lower side as the upper one of ``-v``), then their
    peaks (from the sixth point: the quantile is an estimate from then on)."""
    q = P[XT_Q]
    if q == 0.0:
        return
    n = row[XT_N]
    _p2_learn(row, XT_UP, n, q, v)
    _p2_learn(row, XT_DN, n, q, -v)
    row[XT_N] = n + 1.0
    if n >= 5.0:
        _learn_peak(row, XT_UP, v)
        _learn_peak(row, XT_DN, -v)


@njit(cache=True, nogil=True, inline="always")
def _either(a, xs, C):
    """The seasonal assessment ``a`` scored by the likelier of its model and the extreme-value
    tail (surprise ``xs``; < 0: no tail yet): twice the smaller tail probability (Bonferroni), so
    a score of 0.9999 still means at most 1 in 10,000. The expectation is the seasonal model's."""
    if xs < 0.0:
        return a
    s = a.surprise
    window = a.window_s
    if xs > s:
        s = xs
        window = 0.0
    s -= C[C_LOG10_2]
    s = s if s > 0.0 else 0.0
    return Assessment(score_from_surprise(s, C), a.value, a.expected, a.lo, a.hi, a.excess, s, window,
                      a.count, a.support)


@njit(cache=True, nogil=True)
def generic_update(row, P, C, ts, v, n, out):
    """:meth:`GenericDetector.update`: score (the seasonal model and the extreme-value tail),
    then learn both (the tail only from a point the seasonal model learns: after the last)."""
    xs = _extreme_surprise(row, P, C, v)
    new = math.isnan(row[S_LAST]) or ts > row[S_LAST]
    a = _seasonal_step(row, P, C, ts, v, n)
    if new:
        _extreme_learn(row, P, v)
    _write(out, _either(a, xs, C))


@njit(cache=True, nogil=True)
def generic_assess(row, P, C, ts, v, n, out):
    """:meth:`GenericDetector.assess`: score only (as :func:`generic_update`)."""
    xs = _extreme_surprise(row, P, C, v)
    _write(out, _either(_seasonal_score(row, P, C, ts, v, n).assessment, xs, C))


# -- RatioDetector: scoring -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _one_tail(num, den, p0, tau2, C):
    """The normal score of "count >= num" for count ~ overdispersed Binomial(den, p0).

    Exact Poisson for small counts, else normal (binomial noise plus the rate's own wandering);
    how heavy the tail really is, the series' calibrated tail learns from the normal score.
    """
    lam = den * p0
    over = den * den * tau2
    var = lam * (1.0 - p0) + over
    sd = math.sqrt(var if var > 0 else 1e-12)
    if num <= 0:
        return ModelTail(-lam / sd, 0.0)
    if lam < num <= C[C_POISSON_MAX_K] and over < lam:
        p = poisson_sf(int(math.ceil(num)), lam + over, C)
        return ModelTail(normal_isf(p, C), 2.0 * p)
    return ModelTail((num - 0.5 - lam) / sd, 0.0)


@njit(cache=True, nogil=True, inline="always")
def _ratio_tail(num, den, p0, tau2, P, C):
    """The model's normal score of a point (> 0: the alerting side; "both": the rarer side's,
    signed, > 0 upwards), and its floor for small counts."""
    direction = int(P[Q_DIR])
    if direction == BOTH:
        up = _one_tail(num, den, p0, tau2, C)
        down = _one_tail(den - num, den, 1.0 - p0, tau2, C)
        if down.z > up.z:
            return ModelTail(-down.z, down.floor)
        return up
    if direction == DOWN:
        num = den - num
        p0 = 1.0 - p0
    return _one_tail(num, den, p0, tau2, C)


@njit(cache=True, nogil=True, inline="always")
def _ratio_evidence(row, P, C, ts, num, den, p0, surprise):
    """The sequential test: a Poisson CUSUM of the events in the bad direction (for "down", the
    complement: cache misses), "seq_ratio times the baseline rate" against the baseline."""
    cs = 0.0
    carry = row[R_CS]
    if carry > 0.0 and ts - row[R_CS_T0] >= P[Q_SEQ_WINDOW]:
        # evidence must build up within seq_window_s: with a tiny baseline, quiet intervals
        # are weak counter-evidence, and one old burst must not keep a run open for hours
        carry = 0.0
    if row[R_WARM] == 0.0:
        return Evidence(cs, carry)
    down = int(P[Q_DIR]) == DOWN
    q0 = (1.0 - p0) if down else p0
    kk = (den - num) if down else num
    if q0 > 0.0:
        # the alternative: seq_ratio times the baseline, and at least seq_abs above it -- or
        # seq_events more events per interval where that is less (at high volume a fraction of
        # a point is hundreds of events: the count excess, not the rate's size in points, is
        # what the test resolves); but a probability: at most 1 - (1 - q0) / seq_ratio (the
        # misses of a hit ratio of 30 % cannot triple)
        lift = P[Q_SEQ_EVENTS] / den
        lift = lift if lift < P[Q_SEQ_ABS] else P[Q_SEQ_ABS]
        q1 = q0 * P[Q_SEQ_RATIO]
        if q1 < q0 + lift:
            q1 = q0 + lift
        top = 1.0 - (1.0 - q0) / P[Q_SEQ_RATIO]
        if q1 > top:
            q1 = top
        cap = (P[Q_SEQ_PENALTY] + C[C_SEQ_MAX_DECADES]) * C[C_LN10]
        # one interval adds at most SEQ_STEP_MAX_DECADES: a single burst of errors cannot make
        # a run on its own, it takes at least two bad intervals in seq_window_s
        llr = (kk * math.log(q1 / q0) if kk != 0.0 else 0.0) - den * (q1 - q0)
        if llr > C[C_SEQ_STEP_MAX]:
            llr = C[C_SEQ_STEP_MAX]
        # ... and no more than its own calibrated surprise: the Poisson likelihood knows nothing
        # of the rate's heavy-tailed wander, which at high volume dwarfs the counting noise
        own = surprise * C[C_LN10]
        if llr > own:
            llr = own
        # the evidence carried over is capped (so a long incident is forgotten quickly)
        cs = (carry if carry < cap else cap) + llr
        cs = 0.0 if cs < 0.0 else cs
    return Evidence(cs, carry)


@njit(cache=True, nogil=True, inline="always")
def _run_assessment(row, P, C, ts, num, den, p0, lo, hi, seq, carry):
    """The evidence of the whole sequential run: its rate and counts."""
    if carry > 0.0:
        run_num = row[R_CS_NUM] + num
        run_den = row[R_CS_DEN] + den
    else:
        run_num = num
        run_den = den
    dt_old = row[R_DT]
    window = (ts - row[R_CS_T0] if carry > 0.0 else 0.0) + (dt_old if dt_old > 0.0 else 0.0)
    run_excess = run_num - run_den * p0
    excess = -run_excess if int(P[Q_DIR]) == DOWN else run_excess
    return Assessment(score_from_surprise(seq, C), run_num / run_den, p0, lo, hi, excess, seq, window,
                      run_num, run_den)


@njit(cache=True, nogil=True, inline="always")
def _ratio_score(row, P, C, ts, num, den):
    """Score one point against the model (learns nothing)."""
    prior = P[Q_PRIOR]
    p0 = (row[R_A] + prior) / (row[R_B] + 2.0 * prior)
    if den <= 0:
        none = Assessment(0.0, np.nan, p0, p0, p0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return RatioPoint(none, p0, 0.0, 0.0, 0.0)
    rate = num / den
    if rate > 1.0:
        rate = 1.0
    spread = P[Q_MIN_REL] * (p0 if p0 < 0.5 else 1.0 - p0)
    tau2 = row[R_TAU2] if row[R_TAU2] > spread * spread else spread * spread
    var_rate = p0 * (1.0 - p0) / den + tau2
    z = 0.0
    p = 1.0
    surprise = 0.0
    if row[R_N] != 0.0:
        tail = _ratio_tail(num, den, p0, tau2, P, C)
        z = tail.z
        # (small counts: the exact Poisson tail is the least it can be; a tail learned from
        # large counts must not make 3 errors in 10 requests rarer than their own model says)
        tp = _calibrated(z, row[R_TAIL_PI], row[R_TAIL_M1], row[R_TAIL_M2],
                         BOTH if int(P[Q_DIR]) == BOTH else UP, tail.floor, C)
        p = tp.p
        surprise = tp.surprise
    k = P[Q_BAND] * math.sqrt(var_rate)
    excess = num - den * p0
    if int(P[Q_DIR]) == DOWN:
        excess = -excess
    lo = p0 - k
    hi = p0 + k
    lo = lo if lo > 0.0 else 0.0
    hi = hi if hi < 1.0 else 1.0
    ev = _ratio_evidence(row, P, C, ts, num, den, p0, surprise)
    # with sparse events most intervals of a real change have none: the run stays evidence
    # while it lasts (quiet intervals lower it a little), unlike SeasonalDetector's test
    seq = ev.cs / C[C_LN10] - P[Q_SEQ_PENALTY]
    if seq > surprise or (ev.carry > 0.0 and seq >= C[C_RUN_REPORT]):
        # the run's counts and window, with the stronger evidence: a run holding an extreme
        # point is at least as surprising as that point (ranks stay; the score, and so what is
        # learned, is the one the point alone would give)
        a = _run_assessment(row, P, C, ts, num, den, p0, lo, hi, seq if seq > surprise else surprise,
                            ev.carry)
    else:
        score = 1.0 - p if p >= C[C_EXACT_P_MIN] else score_from_surprise(surprise, C)
        a = Assessment(score, rate, p0, lo, hi, excess, surprise, 0.0, num, den)
    cs = ev.cs if ev.carry == row[R_CS] or ev.cs == 0.0 else -ev.cs
    return RatioPoint(a, p0, var_rate, cs, z)


# -- RatioDetector: learning --------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _ratio_anomaly(row, P, ts, num, den, p0):
    """An anomalous point: kept out of the baseline, and a rate that holds for
    ``accept_shift_after_s`` becomes the new baseline."""
    sign = 1.0 if num / den > p0 else -1.0
    if math.isnan(row[R_ANOM_SINCE]) or sign != row[R_ANOM_SIGN]:
        row[R_ANOM_SINCE] = ts
        row[R_ANOM_SIGN] = sign
        row[R_ANOM_A] = 0.0
        row[R_ANOM_B] = 0.0
    row[R_ANOM_A] += num
    row[R_ANOM_B] += den
    if ts - row[R_ANOM_SINCE] >= P[Q_ACCEPT]:
        if row[R_B] != 0.0:
            x = row[R_ANOM_B] / row[R_B]
            keep = 1.0 if 1.0 <= x else x
        else:
            keep = 0.0
        row[R_A] = row[R_ANOM_A]
        row[R_B] = row[R_ANOM_B]
        row[R_TAU2] *= keep if keep != 0.0 else 1.0
        row[R_ANOM_SINCE] = np.nan
        row[R_ANOM_SIGN] = 0.0


@njit(cache=True, nogil=True, inline="always")
def _learn_spread(row, P, den, dev, p0, var_rate):
    """The extra-binomial variance of the rate (what the binomial noise does not explain)."""
    e = dev * dev - p0 * (1.0 - p0) / den
    cap = P[Q_CLIP] * P[Q_CLIP] * var_rate
    if e > cap:
        e = cap
    row[R_TAU_W] += 1.0
    g = 1.0 / row[R_TAU_W]
    a_v = 1.0 - row[R_DEC]
    if g < a_v:
        g = a_v
    row[R_TAU2] += g * (e - row[R_TAU2])
    if row[R_TAU2] < 0.0:
        row[R_TAU2] = 0.0


@njit(cache=True, nogil=True)
def _ratio_learn(row, P, C, ts, num, den, pt):
    """Learn from a point with requests after the last learned one."""
    if row[R_N] == 0.0:
        row[R_T0] = ts
    dt = 1.0 if math.isnan(row[R_LAST]) else ts - row[R_LAST]
    dt = 1.0 if dt < 1.0 else (C[C_MAX_STEP] if dt > C[C_MAX_STEP] else dt)
    if dt != row[R_DT]:
        row[R_DT] = dt
        row[R_DEC] = C[C_HALF] ** (dt / P[Q_HL])
    warm = _count_point(row, ts, R_N, R_T0, R_WARM, P[Q_WARMUP_N], P[Q_WARMUP_S])
    p0 = pt.p0
    dev = num / den - p0
    sd = math.sqrt(pt.var_rate)
    # In the alerting direction the score decides (exact Poisson tail for small counts: one
    # error among 40 requests at a 0.01 % baseline is not an anomaly to keep out -- else a
    # rare-event rate is only ever learned downwards); the other way a normal approximation,
    # two-sided as for SeasonalDetector.
    direction = int(P[Q_DIR])
    if direction == BOTH or (dev > 0) == (direction == UP):
        hit = pt.assessment.score >= P[Q_LEARN_THR]
    else:
        hit = (dev if dev > 0 else -dev) >= P[Q_Z_LEARN] * sd
    first = row[R_B] == 0.0
    if warm:
        _learn_tail(row, R_TAIL_PI, R_TAIL_M1, R_TAIL_W, row[R_N], pt.z, P[Q_TAIL_LEARN_MAX], C)
    if warm and hit:
        # kept out of the baseline rate, but not out of its spread (clipped): a new regime is
        # followed, not excluded
        _ratio_anomaly(row, P, ts, num, den, p0)
        if P[Q_SCALE_ALL] != 0.0:
            _learn_spread(row, P, den, dev, p0, pt.var_rate)
        row[R_LAST] = ts
        return
    row[R_ANOM_SINCE] = np.nan
    if not first:
        # Huber: the baseline moves as if the rate were at most learn_clip_sigmas away from it,
        # so a slow creep towards an incident is not absorbed on the way up (in counts, and
        # never less than one event: counts are discrete)
        lim = P[Q_CLIP] * sd
        if dev > lim or dev < -lim:
            clipped = den * (p0 + (lim if dev > 0 else -lim)) + (1.0 if dev > 0 else -1.0)
            if (num > clipped) if dev > 0 else (num < clipped):
                num = clipped if clipped > 0.0 else 0.0
    row[R_A] = row[R_A] * row[R_DEC] + num
    row[R_B] = row[R_B] * row[R_DEC] + den
    if not first:  # (first: p0 was only the prior, nothing to learn about the spread yet)
        _learn_spread(row, P, den, dev, p0, pt.var_rate)
    row[R_LAST] = ts


@njit(cache=True, nogil=True, inline="always")
def _ratio_carry(row, ts, num, den, cs):
    """Keep the sequential test's evidence and the run it covers."""
    if cs == 0.0:
        row[R_CS_NUM] = 0.0
        row[R_CS_DEN] = 0.0
    elif row[R_CS] == 0.0 or cs < 0.0:  # a new run (cs < 0: the old one expired)
        cs = -cs if cs < 0.0 else cs
        row[R_CS_T0] = ts
        row[R_CS_NUM] = num
        row[R_CS_DEN] = den
    else:
        row[R_CS_NUM] += num
        row[R_CS_DEN] += den
    row[R_CS] = cs


@njit(cache=True, nogil=True)
def _ratio_step(row, P, C, ts, num, den):
    """RatioDetector: score a point, then learn from it if it has requests and is after the
    last learned one."""
    pt = _ratio_score(row, P, C, ts, num, den)
    if den <= 0 or not (math.isnan(row[R_LAST]) or ts > row[R_LAST]):
        return pt.assessment
    _ratio_learn(row, P, C, ts, num, den, pt)
    if row[R_WARM] != 0.0:
        _ratio_carry(row, ts, num, den, pt.cs)
    return pt.assessment


@njit(cache=True, nogil=True)
def ratio_update(row, P, C, ts, num, den, out):
    """:meth:`RatioDetector.update`: score, then learn; the assessment goes to ``out``."""
    _write(out, _ratio_step(row, P, C, ts, num, den))


@njit(cache=True, nogil=True)
def ratio_assess(row, P, C, ts, num, den, out):
    """:meth:`RatioDetector.assess`: score only (as :func:`ratio_update`)."""
    _write(out, _ratio_score(row, P, C, ts, num, den).assessment)


@njit(cache=True, nogil=True)
def ratio_rate(row, P):
    """The baseline rate (the learned sums and the prior's pseudo-events)."""
    prior = P[Q_PRIOR]
    return (row[R_A] + prior) / (row[R_B] + 2.0 * prior)


# -- a batch of events (the fleet engine) -------------------------------------------------------------
#: signal spec columns SPEC[s, :]: model family (0 seasonal, 1 ratio), index in its family,
#: event column of the value / numerator, of the support / denominator (-1: none), and whether
#: the signal is absent when its support is 0
F_SEASONAL, F_RATIO = 0, 1
(G_FAMILY, G_INDEX, G_VALUE_COL, G_SUPPORT_COL, G_SKIP_ZERO, G_N) = range(6)


@njit(cache=True, nogil=True, inline="always")
def _score_event(k, slot, ts, EV, col_requests, requests_signal, SPEC, gate, SS, PS, RS, PR, C, OUT,
                 warm_out):
    """Every signal of event ``k``, in order: its assessment ``OUT[k, s]`` and ``warm_out[k, s]``
    (-1: the event lacks the signal)."""
    warm_any = False
    cand = False
    expected_requests = EV[k, col_requests]
    for s in range(SPEC.shape[0]):
        v = EV[k, SPEC[s, G_VALUE_COL]]
        scol = SPEC[s, G_SUPPORT_COL]
        n = EV[k, scol] if scol >= 0 else 0.0
        if math.isnan(v) or (SPEC[s, G_SKIP_ZERO] != 0 and n == 0.0):
            warm_out[k, s] = -1
            continue
        jj = SPEC[s, G_INDEX]
        if SPEC[s, G_FAMILY] == F_SEASONAL:
            a = _seasonal_step(SS[slot, jj], PS[jj], C, ts, v, n)
            warm = SS[slot, jj, S_WARM] != 0.0
        else:
            a = _ratio_step(RS[slot, jj], PR[jj], C, ts, v, n)
            warm = RS[slot, jj, R_WARM] != 0.0
        _write(OUT[k, s], a)
        if not warm:
            warm_out[k, s] = 0
            continue
        warm_out[k, s] = 1
        warm_any = True
        if s == requests_signal:
            expected_requests = a.expected
        if a.score >= gate[s]:
            cand = True
    return EventScores(warm_any, cand, expected_requests)


@njit(cache=True, nogil=True)
def run_batch(slots, EV, col_ts, col_interval, col_requests, requests_signal, SPEC, gate,
              last_ts, interval, dirty, active, SS, PS, RS, PR, C,
              OUT, warm_out, outcome, exp_req, need):
    """One batch of events (rows of ``EV``, customer ``slots``), in order.

    Writes per event: ``outcome`` (an :class:`~detectors.verdict.Outcome`), ``exp_req`` (the
    requests model's expectation, else the observed requests), ``need`` (1: the alert lifecycle
    must look at it: a warm signal reached its gate, or the customer's lifecycle is not idle),
    and per event and signal the assessment ``OUT[k, s, :]`` and ``warm_out[k, s]`` (-1: the
    event lacks the signal).
    """
    for k in range(slots.shape[0]):
        slot = slots[k]
        ts = EV[k, col_ts]
        lt = last_ts[slot]
        if not math.isnan(lt) and ts <= lt:
            outcome[k] = Outcome.DUPLICATE
            need[k] = 0
            warm_out[k, :] = -1
            continue
        dirty[slot] = 1
        last_ts[slot] = ts
        interval[slot] = EV[k, col_interval]
        ev = _score_event(k, slot, ts, EV, col_requests, requests_signal, SPEC, gate, SS, PS, RS, PR, C, OUT,
                          warm_out)
        exp_req[k] = ev.expected_requests
        if ev.warm:
            outcome[k] = Outcome.SCORED
            need[k] = 1 if (ev.candidate or active[slot] != 0) else 0
        else:
            outcome[k] = Outcome.WARMING
            need[k] = 0


# -- numba's cache ------------------------------------------------------------------------------
def _frozen_digest() -> int:
    """A digest of what compiled code freezes: this module's ints (offsets, codes, indices), the
    outcome codes and the fields of the named structures."""
    g = globals()
    ints = sorted((k, v) for k, v in g.items() if type(v) is int)
    structs = sorted((k, v._fields) for k, v in g.items()
                     if isinstance(v, type) and issubclass(v, tuple) and hasattr(v, "_fields"))
    blob = repr((ints, structs, [(o.name, int(o)) for o in Outcome], len(CONSTANTS))).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:7], "little")


_FROZEN = _frozen_digest()


@njit(cache=True)
def _compiled_digest():
    return _FROZEN


def _check_cache() -> None:
    """Drop numba's cache of this module if it was compiled against other offsets or codes.

    numba checks only this file's timestamp: a change in :mod:`detectors.layout` or
    :mod:`detectors.verdict` would otherwise load code with stale constants, silently.
    """
    if _compiled_digest() == _FROZEN:
        return
    for obj in list(globals().values()):
        if isinstance(obj, Dispatcher):
            obj._cache.flush()  # type: ignore[attr-defined]  # (numba's API for an outdated cache)
    _compiled_digest.recompile()


_check_cache()
