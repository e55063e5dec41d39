"""River-style univariate anomaly detectors with calibrated scores.

Two model families cover every Lookout signal:

* :class:`SeasonalDetector` -- a level + time-of-day + day-of-week model of one series
  (optionally on a log scale for counts), with a learned noise scale. Used for traffic volume,
  bytes, latency and as the ``generic`` detector for any series.
* :class:`RatioDetector` -- a rate ``num / den`` scored from numerator *and* denominator, so that
  3 errors out of 10 requests is unremarkable while 2 % -> 8 % at a million requests is not.

Both follow River's :class:`~river.base.AnomalyDetector` contract (``learn_one`` /
``score_one``; hyper-parameters only in ``__init__``) and return a score in [0, 1] which is
``1 - tail probability``: the same score means the same rarity on every series. Seasonality is
keyed on *event time* (``x["ts"]``), never on the number of points seen, so the same defaults
work at any interval length.

Each also offers :meth:`update` -- score first, then learn, in one pass -- which is what the
engine calls: the score of a point never includes the point itself, and points judged anomalous
are kept out of the baseline (an incident must not become the new normal) until they have
persisted for ``accept_shift_after_s``, at which point the level shift is accepted.

>>> det = SeasonalDetector(transform="log", direction="both", warmup_s=0, warmup_points=5)
>>> for i in range(50):
...     det.learn_one({"ts": i * 60.0, "value": 1000.0 + (i % 3)})
>>> normal = det.score_one({"ts": 50 * 60.0, "value": 1001.0})
>>> outage = det.score_one({"ts": 50 * 60.0, "value": 40.0})
>>> normal < 0.9 < 0.9999 < outage
True
"""
from __future__ import annotations

import functools
import math
from array import array
from typing import Any, Callable, NamedTuple, TypeGuard

from river import base

from .stats import POISSON_EXACT_MAX_K, normal_sf, poisson_sf

DAY = 86400.0
HOUR = 3600.0
_UP, _DOWN, _BOTH = "up", "down", "both"
_SQRT2 = math.sqrt(2.0)
_DIRECTIONS = (_UP, _DOWN, _BOTH)
#: largest gap between two points that still counts as one step for the learning rates
MAX_STEP_S = 7 * DAY
#: residuals are clipped to this many standard deviations before they update the noise scale
SCALE_CLIP_SIGMAS = 4.0
#: pseudo-days at offset 0 behind every day-of-week bin (slows the first weeks' learning)
DOW_PRIOR_DAYS = 1.0
#: how fast the shadow level follows an ongoing shift (per point)
SHIFT_TRACK_RATE = 0.3


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


NO_ASSESSMENT = Assessment(0.0, float("nan"), float("nan"), float("nan"), float("nan"), 0.0)


@functools.lru_cache(maxsize=256)  # every model of every customer asks for the same few
def _two_sided_z(threshold: float) -> float:
    """|z| at which a two-sided normal tail equals ``1 - threshold``."""
    from statistics import NormalDist

    p = min(max(1.0 - threshold, 1e-300), 1.0)
    return NormalDist().inv_cdf(1.0 - p / 2.0) if p < 1.0 else 0.0


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _OnlineDetector(base.AnomalyDetector):
    """River plumbing shared by the detectors: ``x`` dicts -> validated inputs -> score/learn.

    Subclasses provide ``_inputs(x)`` (positional inputs, or None when ``x`` lacks them),
    ``_prepare(*inputs)`` (the assessment first) and ``step(*inputs)`` (score, then learn).
    """

    _warm = False
    _n = 0
    # provided by each subclass (see above); declared here for the type checker only
    _inputs: Callable[[dict], tuple | None]
    _prepare: Callable[..., tuple]
    step: Callable[..., Assessment]

    @property
    def warm(self) -> bool:
        """True once the model has seen ``warmup_points`` points spanning ``warmup_s``."""
        return self._warm

    @property
    def n_seen(self) -> int:
        return self._n

    def score_one(self, x: dict) -> float:
        return self.assess(x).score

    def learn_one(self, x: dict) -> None:
        self.update(x)

    def assess(self, x: dict) -> Assessment:
        """Score ``x`` against the model (does not learn)."""
        args = self._inputs(x)
        return NO_ASSESSMENT if args is None else self._prepare(*args)[0]

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
        Points scoring at or above this are kept out of the noise scale and start the
        level-shift clock.
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

    #: learned state, written by :mod:`detectors.state` (everything else is rebuilt from the
    #: hyper-parameters); ``_DERIVED``: caches computed from those, never written
    _STATE = ("_n", "_t0", "_last", "_level", "_hod", "_hod_w", "_dow", "_dow_w", "_s2", "_s2_w",
              "_centred", "_shift", "_anom_since", "_anom_sign", "_warm")
    _DERIVED = ("_log", "_z_learn", "_dt", "_rates")

    def __init__(
        self,
        transform: str = "log",
        direction: str = "both",
        level_half_life_s: float = DAY,
        season_half_life_visits: float = 3.0,
        scale_half_life_s: float = 2 * DAY,
        weekly: bool = True,
        warmup_s: float = DAY,
        warmup_points: int = 12,
        learn_threshold: float = 0.999,
        learn_clip_sigmas: float = 3.0,
        accept_shift_after_s: float = DAY,
        min_rel_scale: float = 0.02,
        min_abs_scale: float = 1e-9,
        count_noise: bool = False,
        support_noise: float = 0.0,
        band_sigmas: float = 3.0,
    ):
        if transform not in ("log", "identity"):
            raise ValueError(f"transform must be 'log' or 'identity', got {transform!r}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        self.transform = transform
        self.direction = direction
        self.level_half_life_s = level_half_life_s
        self.season_half_life_visits = season_half_life_visits
        self.scale_half_life_s = scale_half_life_s
        self.weekly = weekly
        self.warmup_s = warmup_s
        self.warmup_points = warmup_points
        self.learn_threshold = learn_threshold
        self.learn_clip_sigmas = learn_clip_sigmas
        self.accept_shift_after_s = accept_shift_after_s
        self.min_rel_scale = min_rel_scale
        self.min_abs_scale = min_abs_scale
        self.count_noise = count_noise
        self.support_noise = support_noise
        self.band_sigmas = band_sigmas
        self._log = transform == "log"
        self._n = 0
        self._t0: float | None = None
        self._last: float | None = None
        self._level = 0.0
        self._hod = array("d", bytes(8 * 24))
        self._hod_w = array("d", bytes(8 * 24))
        self._dow = array("d", bytes(8 * 7))
        self._dow_w = array("d", bytes(8 * 7))
        self._s2 = 0.0
        self._s2_w = 0.0
        self._centred = False
        self._shift = 0.0
        self._anom_since: float | None = None
        self._anom_sign = 0
        self._warm = False
        self._z_learn = _two_sided_z(learn_threshold)
        self._dt = -1.0  # step length the cached learning rates below are for
        self._rates = (0.0, 0.0, 0.0, 0.0)

    # -- public ---------------------------------------------------------------
    def step(self, ts: float, v: float, n: float | None = None) -> Assessment:
        """:meth:`update` for already validated numbers (the engine's fast path)."""
        pre = self._prepare(ts, v, n)
        if self._last is None or ts > self._last:
            a, y, mu, i, j, w, d, var = pre
            self._learn(ts, y, mu, i, j, w, d, var, a.score)
        return pre[0]

    @staticmethod
    def _inputs(x: dict):
        v, ts, n = x.get("value"), x.get("ts"), x.get("n")
        if not (_finite(v) and _finite(ts)):
            return None
        return float(ts), float(v), (n if _finite(n) else None)

    # -- internals -------------------------------------------------------------
    def _prepare(self, ts: float, v: float, n: float | None):
        y = (math.log1p(v) if v > 0 else 0.0) if self._log else v
        if self._n == 0:
            return (Assessment(0.0, v, v, v, v), y, y, 0, 1, 0.0, 0, 0.0)
        # time of day: interpolate between the two nearest hourly bins (centres at hh:30)
        h = (ts % DAY) / HOUR - 0.5
        if h < 0.0:
            h += 24.0
        i = int(h)
        w = h - i
        j = 0 if i == 23 else i + 1
        d = int((ts // DAY + 3) % 7)  # 1970-01-01 was a Thursday; Monday = 0
        hod = self._hod
        mu = self._level + hod[i] * (1.0 - w) + hod[j] * w
        if self.weekly:
            mu += self._dow[d]
        floor = self.min_rel_scale if self._log else max(self.min_abs_scale, self.min_rel_scale * abs(mu))
        var = self._s2 if self._s2 > floor * floor else floor * floor
        if self.count_noise and self._log:
            var += math.exp(-mu) if mu > 0 else 1.0
        if self.support_noise and n:
            var += self.support_noise / n
        sd = math.sqrt(var)
        z = (y - mu) / sd
        direction = self.direction
        if direction == _UP:
            p = 0.5 * math.erfc(z / _SQRT2)
        elif direction == _DOWN:
            p = 0.5 * math.erfc(-z / _SQRT2)
        else:
            p = math.erfc((z if z > 0 else -z) / _SQRT2)  # two-sided: 2 * P(Z > |z|)
        score = 1.0 - p
        k = self.band_sigmas * sd
        if self._log:
            exp_v, lo, hi = math.expm1(mu), math.expm1(mu - k), math.expm1(mu + k)
            lo = lo if lo > 0.0 else 0.0
        else:
            exp_v, lo, hi = mu, mu - k, mu + k
        return (Assessment(score, v, exp_v, lo, hi), y, mu, i, j, w, d, var)

    def _learn(self, ts, y, mu, i, j, w, d, var, score) -> None:
        if self._n == 0:
            self._n = 1
            self._t0 = self._last = ts
            self._level = y
            return
        dt = ts - self._last
        dt = 1.0 if dt < 1.0 else (MAX_STEP_S if dt > MAX_STEP_S else dt)
        if dt != self._dt:  # the step is almost always the series' interval: compute rates once
            self._dt = dt
            self._rates = (
                1.0 - 0.5 ** (dt / self.level_half_life_s),
                1.0 - 0.5 ** (dt / (self.season_half_life_visits * HOUR)),
                1.0 - 0.5 ** (dt / (self.season_half_life_visits * 7 * DAY)),
                1.0 - 0.5 ** (dt / self.scale_half_life_s),
            )
        a_l, a_s, a_w, a_v = self._rates
        self._n += 1
        warm = self._warm
        if not warm and self._n >= self.warmup_points and ts - self._t0 >= self.warmup_s:
            self._warm = True
        r = y - mu
        sd = math.sqrt(var) if var > 0 else 1.0
        clip = self.learn_clip_sigmas * sd
        # two-sided on purpose: a shift in the direction that does not alert (latency going back
        # down after an accepted rise) must be learned as fast as one that does
        anomalous = warm and (r if r > 0 else -r) >= self._z_learn * sd
        if anomalous:
            sign = 1 if r > 0 else -1
            if self._anom_since is None or sign != self._anom_sign:
                self._anom_since, self._anom_sign, self._shift = ts, sign, r
            else:
                self._shift += SHIFT_TRACK_RATE * (r - self._shift)
                if ts - self._anom_since >= self.accept_shift_after_s:
                    # the shift has lasted: it is the new normal
                    self._level += self._shift
                    self._anom_since, self._anom_sign, self._shift = None, 0, 0.0
                    self._last = ts
                    return
        else:
            self._anom_since = None
        first_day = ts - self._t0 < DAY
        if not first_day and not self._centred:
            self._recentre()
        # Every update below uses residuals clipped at learn_clip_sigmas (Huber): an anomaly
        # moves the baseline no more than an ordinary 3-sigma point would, so an incident does
        # not become the new normal, while a moderate lasting change (a holiday) is followed.
        # level: frozen during the first day, so that the time-of-day bins learn the daily shape
        # against a constant instead of against a level that is itself still moving
        if not first_day:
            rc = r if -clip < r < clip else (clip if r > 0 else -clip)
            self._level += a_l * rc
        # time of day: a kernel smoother -- bins i and j each move towards the de-levelled value,
        # weighted by their share of the point (a convex update: stable at any interval length).
        # A running mean over *visits* (hours of data in the bin) first, then an EWMA.
        u = dt / HOUR if dt < HOUR else 1.0
        hod, hw = self._hod, self._hod_w
        wk = self._dow[d] if self.weekly else 0.0
        target = y - self._level - wk
        if not warm:
            clip = math.inf  # nothing to be robust against yet: learn the shape as it is
        bw = 1.0 - w  # bin i's share (unrolled loop over bins i and j)
        if bw > 0.0:
            hw[i] += bw * u
            g = bw * u / hw[i]
            if g < a_s * bw:
                g = a_s * bw
            e = target - hod[i]
            hod[i] += g * (e if -clip < e < clip else (clip if e > 0 else -clip))
        if w > 0.0:
            hw[j] += w * u
            g = w * u / hw[j]
            if g < a_s * w:
                g = a_s * w
            e = target - hod[j]
            hod[j] += g * (e if -clip < e < clip else (clip if e > 0 else -clip))
        if self.weekly and not first_day:
            ud = dt / DAY
            self._dow_w[d] += ud
            # a prior of DOW_PRIOR_DAYS days at 0: one unusual first Friday (a holiday) must
            # not become "what Fridays look like"
            g = ud / (self._dow_w[d] + DOW_PRIOR_DAYS)
            if g < a_w:
                g = a_w
            e = y - self._level - (hod[i] * (1.0 - w) + hod[j] * w) - self._dow[d]
            self._dow[d] += g * (e if -clip < e < clip else (clip if e > 0 else -clip))
        if anomalous:  # keep anomalies out of the noise scale
            self._last = ts
            return
        # noise scale (robust: clipped residual, Poisson/support part removed)
        rr = y - mu
        e2 = rr * rr
        cap = SCALE_CLIP_SIGMAS * SCALE_CLIP_SIGMAS * var if var > 0 else e2
        if e2 > cap:
            e2 = cap
        if self.count_noise and self._log:
            e2 -= math.exp(-mu) if mu > 0 else 1.0
        self._s2_w += 1.0
        g = 1.0 / self._s2_w
        if g < a_v:
            g = a_v
        self._s2 += g * (e2 - self._s2)
        self._last = ts


    def _recentre(self) -> None:
        """After the first day: move the mean of the time-of-day profile into the level."""
        visited = [h for h, wt in zip(self._hod, self._hod_w) if wt > 0]
        m = sum(visited) / len(visited) if visited else 0.0
        self._level += m
        for b in range(24):
            if self._hod_w[b] > 0:
                self._hod[b] -= m
        self._centred = True


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

    #: learned state and derived caches, as for :class:`SeasonalDetector`
    _STATE = ("_n", "_t0", "_last", "_a", "_b", "_tau2", "_tau_w", "_anom_since", "_anom_sign",
              "_anom_a", "_anom_b", "_warm")
    _DERIVED = ("_z_learn", "_dt", "_dec")

    def __init__(
        self,
        direction: str = "up",
        half_life_s: float = 12 * HOUR,
        warmup_s: float = DAY,
        warmup_points: int = 12,
        learn_threshold: float = 0.999,
        learn_clip_sigmas: float = 3.0,
        accept_shift_after_s: float = DAY,
        min_rel_scale: float = 0.1,
        prior_events: float = 0.5,
        band_sigmas: float = 3.0,
    ):
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        self.direction = direction
        self.half_life_s = half_life_s
        self.warmup_s = warmup_s
        self.warmup_points = warmup_points
        self.learn_threshold = learn_threshold
        self.learn_clip_sigmas = learn_clip_sigmas
        self.accept_shift_after_s = accept_shift_after_s
        self.min_rel_scale = min_rel_scale
        self.prior_events = prior_events
        self.band_sigmas = band_sigmas
        self._n = 0
        self._t0: float | None = None
        self._last: float | None = None
        self._a = 0.0  # decayed numerator sum
        self._b = 0.0  # decayed denominator sum
        self._tau2 = 0.0
        self._tau_w = 0.0
        self._anom_since: float | None = None
        self._anom_sign = 0
        self._anom_a = 0.0
        self._anom_b = 0.0
        self._warm = False
        self._z_learn = _two_sided_z(learn_threshold)
        self._dt = -1.0
        self._dec = 1.0

    @property
    def rate(self) -> float:
        """Current baseline rate."""
        return (self._a + self.prior_events) / (self._b + 2.0 * self.prior_events)

    def step(self, ts: float, num: float, den: float) -> Assessment:
        """:meth:`update` for already validated counts (the engine's fast path)."""
        pre = self._prepare(ts, num, den)
        if den > 0 and (self._last is None or ts > self._last):
            a, _, _, p0, var_rate = pre
            self._learn(ts, num, den, p0, var_rate, a.score)
        return pre[0]

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

    def _prepare(self, ts: float, num: float, den: float):
        prior = self.prior_events
        p0 = (self._a + prior) / (self._b + 2.0 * prior)
        if den <= 0:
            return (Assessment(0.0, float("nan"), p0, p0, p0), num, den, p0, 0.0)
        rate = num / den
        if rate > 1.0:
            rate = 1.0
        spread = self.min_rel_scale * (p0 if p0 < 0.5 else 1.0 - p0)
        tau2 = self._tau2 if self._tau2 > spread * spread else spread * spread
        var_rate = p0 * (1.0 - p0) / den + tau2
        score = 0.0 if self._n == 0 else 1.0 - self._tail(num, den, p0, tau2)
        k = self.band_sigmas * math.sqrt(var_rate)
        excess = num - den * p0
        if self.direction == _DOWN:
            excess = -excess
        lo, hi = p0 - k, p0 + k
        a = Assessment(score, rate, p0, lo if lo > 0.0 else 0.0, hi if hi < 1.0 else 1.0, excess)
        return (a, num, den, p0, var_rate)

    def _tail(self, num: float, den: float, p0: float, tau2: float) -> float:
        if self.direction == _BOTH:
            up = self._one_tail(num, den, p0, tau2)
            down = self._one_tail(den - num, den, 1.0 - p0, tau2)
            return min(1.0, 2.0 * min(up, down))
        if self.direction == _DOWN:
            num, p0 = den - num, 1.0 - p0
        return self._one_tail(num, den, p0, tau2)

    @staticmethod
    def _one_tail(num: float, den: float, p0: float, tau2: float) -> float:
        """P(count >= num) for count ~ overdispersed Binomial(den, p0)."""
        lam = den * p0
        if num <= lam:
            return 1.0 if num <= 0 else min(1.0, 0.5 + 0.5 * (lam - num + 1.0) / (lam + 1.0))
        over = den * den * tau2
        if num <= POISSON_EXACT_MAX_K and over < lam:
            return poisson_sf(int(math.ceil(num)), lam + over)
        var = lam * (1.0 - p0) + over
        return normal_sf((num - 0.5 - lam) / math.sqrt(var if var > 0 else 1e-12))

    def _learn(self, ts, num, den, p0, var_rate, score) -> None:
        if self._n == 0:
            self._t0 = ts
        dt = 1.0 if self._last is None else ts - self._last
        dt = 1.0 if dt < 1.0 else (MAX_STEP_S if dt > MAX_STEP_S else dt)
        if dt != self._dt:
            self._dt, self._dec = dt, 0.5 ** (dt / self.half_life_s)
        self._n += 1
        warm = self._warm
        if not warm and self._n >= self.warmup_points and ts - self._t0 >= self.warmup_s:
            self._warm = True
        rate = num / den
        dev = rate - p0
        sd = math.sqrt(var_rate)
        # two-sided (normal approximation), as for SeasonalDetector
        if warm and (dev if dev > 0 else -dev) >= self._z_learn * sd:
            sign = 1 if rate > p0 else -1
            if self._anom_since is None or sign != self._anom_sign:
                self._anom_since, self._anom_sign = ts, sign
                self._anom_a, self._anom_b = 0.0, 0.0
            self._anom_a += num
            self._anom_b += den
            if ts - self._anom_since >= self.accept_shift_after_s:
                # the new rate has held long enough: accept it as the baseline
                keep = self._b and min(1.0, self._anom_b / self._b)
                self._a, self._b = self._anom_a, self._anom_b
                self._tau2 *= keep or 1.0
                self._anom_since, self._anom_sign = None, 0
            self._last = ts
            return
        self._anom_since = None
        dec = self._dec
        first = self._b == 0.0
        if not first:
            # Huber: the baseline moves as if the rate were at most learn_clip_sigmas away from
            # it, so a slow creep towards an incident is not absorbed on the way up
            lim = self.learn_clip_sigmas * sd
            if dev > lim or dev < -lim:
                num = den * (p0 + (lim if dev > 0 else -lim))
        self._a = self._a * dec + num
        self._b = self._b * dec + den
        if first:  # p0 was only the prior: nothing to learn about the spread yet
            self._last = ts
            return
        e = dev * dev - p0 * (1.0 - p0) / den
        cap = self.learn_clip_sigmas * self.learn_clip_sigmas * var_rate
        if e > cap:
            e = cap
        self._tau_w += 1.0
        g = 1.0 / self._tau_w
        a_v = 1.0 - dec
        if g < a_v:
            g = a_v
        self._tau2 += g * (e - self._tau2)
        if self._tau2 < 0.0:
            self._tau2 = 0.0
        self._last = ts


def make_detector(kind: str, **params: Any) -> base.AnomalyDetector:
    """Build a detector by kind: ``volume``, ``ratio``, ``latency`` or ``generic``.

    ``volume``: log-scale seasonal model of a count with Poisson noise, both directions.
    ``latency``: log-scale seasonal model, increases are bad, noisier at low support.
    ``ratio``: :class:`RatioDetector`, increases are bad.
    ``generic``: seasonal model of a raw value, both directions.
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
        "volume": (SeasonalDetector, {"transform": "log", "direction": "both", "count_noise": True}),
        "latency": (SeasonalDetector, {"transform": "log", "direction": "up", "min_rel_scale": 0.05,
                                       "support_noise": 2.0}),
        "ratio": (RatioDetector, {"direction": "up"}),
        "generic": (SeasonalDetector, {"transform": "identity", "direction": "both"}),
    }
    if kind not in presets:
        raise ValueError(f"unknown detector kind {kind!r} (known: {', '.join(sorted(presets))})")
    klass, defaults = presets[kind]
    return klass(**{**defaults, **params})
