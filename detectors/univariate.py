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

from .stats import POISSON_EXACT_MAX_K, normal_sf, poisson_sf, score_from_surprise, student_t_sf2

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
#: above this many effective degrees of freedom the Student-t tail is replaced by the normal one
NORMAL_DOF = 30
#: surprise reported for a tail probability that underflows to 0
MAX_SURPRISE = 300.0
#: standardised residuals are clipped here before they feed the sequential test, so that one
#: heavy-tailed outlier adds a bounded amount of evidence
SEQ_Z_CLIP = 4.0
#: the sequential evidence is capped at this many decades above its penalty, so that it
#: forgets a long incident within a few intervals once the series is back to normal
SEQ_MAX_DECADES = 5.0
#: the most one interval can add to a ratio's sequential evidence, in decades
SEQ_STEP_MAX_DECADES = 3.0
_SEQ_STEP_MAX = SEQ_STEP_MAX_DECADES * math.log(10.0)
#: the largest plausible day-of-week effect (``dow_low``/``dow_high``) is this many standard
#: deviations of the prior on an unseen weekday's offset
DOW_RANGE_SIGMAS = 2.5
_LN10 = math.log(10.0)


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


#: builds an Assessment from a full tuple of its fields without the generated ``__new__``
#: (three times cheaper, and every scored point builds one)
_new = tuple.__new__

NO_ASSESSMENT = Assessment(0.0, float("nan"), float("nan"), float("nan"), float("nan"), 0.0)


#: Student-t quantile scale to unit variance, sqrt(nu / (nu - 2)), by (odd) degrees of freedom
_T_UNIT = tuple(math.sqrt(n / (n - 2.0)) if n > 2 else 0.0 for n in range(NORMAL_DOF + 2))
#: tail probabilities at least this large give ``score = 1 - p`` directly (the same number
#: score_from_surprise would give: its exact range)
EXACT_P_MIN = 1e-6


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
              "_centred", "_shift", "_anom_since", "_anom_sign", "_warm", "_cs", "_cs_t0")
    _DERIVED = ("_log", "_z_learn", "_dt", "_rates", "_dow_dn", "_dow_up")
    #: every attribute, as slots: thousands of customers x 7 models, and an instance dict of
    #: more than ~30 keys costs 1.3 kB more than slots (issue 9 added the sequential test's)
    __slots__ = ("transform", "_log", "direction", "level_half_life_s", "season_half_life_visits",
                 "scale_half_life_s", "weekly", "warmup_s", "warmup_points", "learn_threshold",
                 "learn_clip_sigmas", "accept_shift_after_s", "min_rel_scale", "min_abs_scale",
                 "count_noise", "support_noise", "band_sigmas", "tail_dof", "dow_low", "dow_high",
                 "_dow_dn", "_dow_up", "dow_seen_days", "seq_shift", "seq_penalty",
                 "scale_min_points", "_n", "_t0", "_last", "_level", "_hod", "_hod_w", "_dow",
                 "_dow_w", "_s2", "_s2_w", "_centred", "_shift", "_anom_since", "_anom_sign",
                 "_warm", "_z_learn", "_dt", "_rates", "_cs", "_cs_t0")

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
        tail_dof: int = 3,
        dow_low: float = 1.0,
        dow_high: float = 1.0,
        dow_seen_days: float = 4.0,
        seq_shift: float = 3.0,
        seq_penalty: float = 1.0,
        scale_min_points: int = 30,
    ):
        if transform not in ("log", "identity"):
            raise ValueError(f"transform must be 'log' or 'identity', got {transform!r}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        self.transform = transform
        self._log = transform == "log"
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
        if not (isinstance(tail_dof, int) and tail_dof >= 3 and tail_dof % 2 == 1):
            raise ValueError(f"tail_dof must be an odd integer >= 3, got {tail_dof!r}")
        self.tail_dof = tail_dof
        if not (0.0 < dow_low <= 1.0 <= dow_high):
            raise ValueError(f"need 0 < dow_low <= 1 <= dow_high, got {dow_low!r}, {dow_high!r}")
        self.dow_low = dow_low
        self.dow_high = dow_high
        # log-scale offsets: how far an unseen weekday may plausibly lie below / above the others
        self._dow_dn = -math.log(dow_low) if self._log and weekly else 0.0
        self._dow_up = math.log(dow_high) if self._log and weekly else 0.0
        self.dow_seen_days = dow_seen_days
        self.seq_shift = seq_shift
        self.seq_penalty = seq_penalty
        self.scale_min_points = scale_min_points
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
        # sequential test: CUSUM log-likelihood ratio, > 0 for a run upwards, < 0 downwards,
        # and the event time the run started
        self._cs = 0.0
        self._cs_t0 = 0.0

    # -- public ---------------------------------------------------------------
    def step(self, ts: float, v: float, n: float | None = None) -> Assessment:
        """:meth:`update` for already validated numbers (the engine's fast path)."""
        pre = self._prepare(ts, v, n)
        if self._last is None or ts > self._last:
            a, y, mu, i, j, w, d, var, _, r_eff = pre
            self._learn(ts, y, mu, i, j, w, d, var, r_eff)
            if self._warm:
                cs = pre[8]
                if cs == 0.0 or (cs > 0.0) != (self._cs > 0.0) or self._cs == 0.0:
                    self._cs_t0 = ts
                self._cs = cs
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
            return (Assessment(0.0, v, v, v, v), y, y, 0, 1, 0.0, 0, 0.0, 0.0, 0.0)
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
        # heavy-tailed part of the variance (learned noise, low-support percentiles) ...
        heavy = self._s2 if self._s2 > floor * floor else floor * floor
        if self.support_noise and n:
            heavy += self.support_noise / n
        var = heavy
        # ... and parts that are not: Poisson noise of a count, and the day-of-week effect of a
        # weekday not seen dow_seen_days times yet (an unseen weekend is not an anomaly)
        if self.count_noise and self._log:
            var += math.exp(-mu) if mu > 0 else 1.0
        # The day-of-week offset is uncertain in two ways: a weekday not seen dow_seen_days
        # times has an unknown effect (up to dow_low..dow_high), and near midnight UTC the
        # customer's own day (time zone unknown) may still / already be the adjacent one.
        # [b_lo, b_hi] is the range of plausible offset errors; its side of the residual adds
        # variance (prior sd = range / DOW_RANGE_SIGMAS) and is forgiven by the sequential test.
        b_lo = b_hi = dow_var = 0.0
        if self._dow_up or self._dow_dn:
            seen = self._dow_w[d]
            if seen < self.dow_seen_days:  # (inlined _unseen)
                unseen = DOW_PRIOR_DAYS / (seen + DOW_PRIOR_DAYS)
                b_lo, b_hi = -unseen * self._dow_dn, unseen * self._dow_up
            hd = h + 0.5
            adj = d - 1 if hd < 12.0 else d + 1
            adj = 6 if adj < 0 else (0 if adj > 6 else adj)
            if self._dow_w[adj] > 0.0:
                tr = (1.0 - hd / 12.0 if hd < 12.0 else hd / 12.0 - 1.0) * (self._dow[adj] - self._dow[d])
                if tr > 0.0:
                    b_hi += tr
                else:
                    b_lo += tr
            b = b_hi if y > mu else -b_lo
            dow_var = (b / DOW_RANGE_SIGMAS) ** 2
            var += dow_var
        # the residual beyond the plausible day-of-week error (what is left to noise or anomaly)
        r_eff = y - mu
        if dow_var > 0.0:
            r_eff = r_eff - b_hi if r_eff > b_hi else (r_eff - b_lo if r_eff < b_lo else 0.0)
        sd = math.sqrt(var)
        z = (y - mu) / sd
        # Student-t tail; its degrees of freedom grow with the light-tailed share of the variance
        nu = self.tail_dof * (var / heavy) ** 2
        za = z if z > 0 else -z
        if nu > NORMAL_DOF:
            q = math.erfc(za / _SQRT2)  # two-sided: 2 * P(Z > |z|)
        else:
            nu = int(nu) | 1
            q = student_t_sf2(za * _T_UNIT[nu], nu)
        direction = self.direction
        if direction == _BOTH:
            p = q
        elif (z > 0) == (direction == _UP):
            p = 0.5 * q
        else:
            p = 1.0 - 0.5 * q
        surprise = -math.log10(p) if p > 0.0 else MAX_SURPRISE
        # sequential test (CUSUM for a shift of seq_shift standard deviations): evidence that
        # builds up over several moderately unusual intervals in a row
        cs = 0.0
        delta = self.seq_shift
        # (nothing to add or carry: the common case skips the test, whose result would be 0)
        if self._warm and (self._cs != 0.0 or dow_var > 0.0 or za > 0.5 * delta):
            zc = z
            if dow_var > 0.0:
                # a day-of-week error is one persistent offset, not independent noise: forgive
                # the plausible range, or a whole unseen weekend adds up to an alert
                zc = r_eff / math.sqrt(var - dow_var)
            zc = SEQ_Z_CLIP * math.tanh(zc / SEQ_Z_CLIP)  # soft clip: bounded, still no ties
            half = 0.5 * delta * delta
            cap = (self.seq_penalty + SEQ_MAX_DECADES) * _LN10
            # the evidence carried over is capped (so a long incident is forgotten quickly)
            up = (min(self._cs, cap) if self._cs > 0.0 else 0.0) + delta * zc - half
            dn = (min(-self._cs, cap) if self._cs < 0.0 else 0.0) - delta * zc - half
            if direction == _UP:
                dn = 0.0
            elif direction == _DOWN:
                up = 0.0
            cs = up if up > 0.0 and up >= dn else (-dn if dn > 0.0 else 0.0)
        window = 0.0
        seq_won = False
        if cs != 0.0:
            # (one outlier adds at most seq_shift * SEQ_Z_CLIP - seq_shift**2 / 2 nats, less than
            # an alert needs: one noisy interval cannot open an incident)
            seq = (cs if cs > 0.0 else -cs) / _LN10 - self.seq_penalty
            if seq > surprise:
                surprise, seq_won = seq, True
                same = (cs > 0.0) == (self._cs > 0.0) and self._cs != 0.0
                window = (ts - self._cs_t0 if same else 0.0) + (self._dt if self._dt > 0.0 else 0.0)
        # (score = 1 - p exactly where that is representable: the common case, and cheap)
        score = 1.0 - p if not seq_won and p >= EXACT_P_MIN else score_from_surprise(surprise)
        k = self.band_sigmas * sd
        if self._log:
            exp_v, lo, hi = math.expm1(mu), math.expm1(mu - k), math.expm1(mu + k)
            lo = lo if lo > 0.0 else 0.0
        else:
            exp_v, lo, hi = mu, mu - k, mu + k
        a = _new(Assessment, (score, v, exp_v, lo, hi, 0.0, surprise, window, 0.0, 0.0))
        return (a, y, mu, i, j, w, d, var, cs, r_eff)

    def _learn(self, ts, y, mu, i, j, w, d, var, r_eff) -> None:
        # r_eff: the residual beyond a plausible day-of-week error (only it is noise)
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
                # a noise scale is never estimated from fewer than scale_min_points points,
                # however long the interval (daily series: half-lives of days are a few points)
                min(1.0 - 0.5 ** (dt / self.scale_half_life_s), 1.0 / self.scale_min_points),
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
            if self._dow_up or self._dow_dn:
                # what a weekday not seen yet does is its own offset's to learn, not the level's
                # (else the first weekends pull the level down and the next Monday 'surges')
                rc *= 1.0 - self._unseen(d)
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
        e2 = r_eff * r_eff
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


    def _unseen(self, d: int) -> float:
        """Share of weekday ``d``'s effect not learned yet (the running mean starts from a
        prior of DOW_PRIOR_DAYS days at 0); 0 once the weekday was seen dow_seen_days times."""
        w = self._dow_w[d]
        return 0.0 if w >= self.dow_seen_days else DOW_PRIOR_DAYS / (w + DOW_PRIOR_DAYS)

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
              "_anom_a", "_anom_b", "_warm", "_cs", "_cs_t0", "_cs_num", "_cs_den")
    _DERIVED = ("_z_learn", "_dt", "_dec")
    #: every attribute, as slots (see SeasonalDetector)
    __slots__ = ("direction", "half_life_s", "warmup_s", "warmup_points", "learn_threshold",
                 "learn_clip_sigmas", "accept_shift_after_s", "min_rel_scale", "prior_events",
                 "band_sigmas", "seq_ratio", "seq_window_s", "seq_abs", "seq_penalty", "tail_dof",
                 "_n", "_t0", "_last", "_a", "_b", "_tau2", "_tau_w", "_anom_since", "_anom_sign",
                 "_anom_a", "_anom_b", "_warm", "_z_learn", "_dt", "_dec", "_cs", "_cs_t0",
                 "_cs_num", "_cs_den")

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
        seq_ratio: float = 3.0,
        seq_penalty: float = 1.0,
        seq_window_s: float = 2 * HOUR,
        seq_abs: float = 0.01,
        tail_dof: int = 3,
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
        if not seq_ratio > 1.0:
            raise ValueError(f"seq_ratio must be > 1, got {seq_ratio!r}")
        self.seq_ratio = seq_ratio
        self.seq_window_s = seq_window_s
        self.seq_abs = seq_abs
        self.seq_penalty = seq_penalty
        if not (isinstance(tail_dof, int) and tail_dof >= 3 and tail_dof % 2 == 1):
            raise ValueError(f"tail_dof must be an odd integer >= 3, got {tail_dof!r}")
        self.tail_dof = tail_dof
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
        # sequential test: CUSUM log-likelihood ratio of "rate x seq_ratio" against the baseline
        # (in the alerting direction), and the run it covers: start, events, requests
        self._cs = 0.0
        self._cs_t0 = 0.0
        self._cs_num = 0.0
        self._cs_den = 0.0

    @property
    def rate(self) -> float:
        """Current baseline rate."""
        return (self._a + self.prior_events) / (self._b + 2.0 * self.prior_events)

    def step(self, ts: float, num: float, den: float) -> Assessment:
        """:meth:`update` for already validated counts (the engine's fast path)."""
        pre = self._prepare(ts, num, den)
        if den > 0 and (self._last is None or ts > self._last):
            a, _, _, p0, var_rate, cs = pre
            self._learn(ts, num, den, p0, var_rate, a.score)
            if self._warm:
                if cs == 0.0:
                    self._cs_num = self._cs_den = 0.0
                elif self._cs == 0.0 or cs < 0.0:  # a new run (cs < 0: the old one expired)
                    cs = -cs if cs < 0.0 else cs
                    self._cs_t0, self._cs_num, self._cs_den = ts, num, den
                else:
                    self._cs_num += num
                    self._cs_den += den
                self._cs = cs
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
            return (Assessment(0.0, float("nan"), p0, p0, p0), num, den, p0, 0.0, self._cs)
        rate = num / den
        if rate > 1.0:
            rate = 1.0
        spread = self.min_rel_scale * (p0 if p0 < 0.5 else 1.0 - p0)
        tau2 = self._tau2 if self._tau2 > spread * spread else spread * spread
        var_rate = p0 * (1.0 - p0) / den + tau2
        p = 1.0 if self._n == 0 else self._tail(num, den, p0, tau2)
        surprise = -math.log10(p) if p > 0.0 else MAX_SURPRISE
        k = self.band_sigmas * math.sqrt(var_rate)
        excess = num - den * p0
        if self.direction == _DOWN:
            excess = -excess
        lo, hi = p0 - k, p0 + k
        lo, hi = lo if lo > 0.0 else 0.0, hi if hi < 1.0 else 1.0
        # sequential test: Poisson CUSUM of the events in the bad direction (for "down", the
        # complement: cache misses), "seq_ratio times the baseline rate" against the baseline
        cs = 0.0
        carry = self._cs
        if carry > 0.0 and ts - self._cs_t0 >= self.seq_window_s:
            # evidence must build up within seq_window_s: with a tiny baseline, quiet intervals
            # are weak counter-evidence, and one old burst must not keep a run open for hours
            carry = 0.0
        if self._warm:
            q0 = (1.0 - p0) if self.direction == _DOWN else p0
            kk = (den - num) if self.direction == _DOWN else num
            if q0 > 0.0:
                # the alternative: seq_ratio times the baseline, and at least seq_abs above it
                q1 = q0 * self.seq_ratio
                if q1 < q0 + self.seq_abs:
                    q1 = q0 + self.seq_abs
                cap = (self.seq_penalty + SEQ_MAX_DECADES) * _LN10
                # one interval adds at most SEQ_STEP_MAX_DECADES: a single burst of errors cannot
                # make a run on its own, it takes at least two bad intervals in seq_window_s
                llr = (kk * math.log(q1 / q0) if kk else 0.0) - den * (q1 - q0)
                if llr > _SEQ_STEP_MAX:
                    llr = _SEQ_STEP_MAX
                # the evidence carried over is capped (so a long incident is forgotten quickly)
                cs = (carry if carry < cap else cap) + llr
                cs = 0.0 if cs < 0.0 else cs
        # with sparse events most intervals of a real change have none: the run stays evidence
        # while it lasts (quiet intervals lower it a little), unlike SeasonalDetector's test
        seq = cs / _LN10 - self.seq_penalty
        if seq > surprise:
            # the evidence of the whole run: report its rate and counts
            run_num, run_den = (self._cs_num + num, self._cs_den + den) if carry > 0.0 else (num, den)
            window = (ts - self._cs_t0 if carry > 0.0 else 0.0) + (self._dt if self._dt > 0.0 else 0.0)
            run_excess = run_num - run_den * p0
            excess = -run_excess if self.direction == _DOWN else run_excess
            a = _new(Assessment, (score_from_surprise(seq), run_num / run_den, p0, lo, hi,
                                  excess, seq, window, run_num, run_den))
        else:
            score = 1.0 - p if p >= EXACT_P_MIN else score_from_surprise(surprise)
            a = _new(Assessment, (score, rate, p0, lo, hi, excess, surprise, 0.0, num, den))
        return (a, num, den, p0, var_rate, cs if carry == self._cs or cs == 0.0 else -cs)

    def _tail(self, num: float, den: float, p0: float, tau2: float) -> float:
        nu = self.tail_dof
        if self.direction == _BOTH:
            up = self._one_tail(num, den, p0, tau2, nu)
            down = self._one_tail(den - num, den, 1.0 - p0, tau2, nu)
            return min(1.0, 2.0 * min(up, down))
        if self.direction == _DOWN:
            num, p0 = den - num, 1.0 - p0
        return self._one_tail(num, den, p0, tau2, nu)

    @staticmethod
    def _one_tail(num: float, den: float, p0: float, tau2: float, nu: int) -> float:
        """P(count >= num) for count ~ overdispersed Binomial(den, p0).

        The binomial part is light-tailed; the overdispersion (the rate itself wandering) is
        Student-t with ``nu`` degrees of freedom, more of them the smaller its share.
        """
        lam = den * p0
        if num <= lam:
            return 1.0 if num <= 0 else min(1.0, 0.5 + 0.5 * (lam - num + 1.0) / (lam + 1.0))
        over = den * den * tau2
        if num <= POISSON_EXACT_MAX_K and over < lam:
            return poisson_sf(int(math.ceil(num)), lam + over)
        var = lam * (1.0 - p0) + over
        z = (num - 0.5 - lam) / math.sqrt(var if var > 0 else 1e-12)
        nu_eff = nu * (var / over) ** 2 if over > 0.0 else math.inf
        if nu_eff > NORMAL_DOF:
            return normal_sf(z)
        nu_eff = int(nu_eff) | 1
        return 0.5 * student_t_sf2(z * math.sqrt(nu_eff / (nu_eff - 2.0)), nu_eff)

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
        # In the alerting direction the score decides (exact Poisson tail for small counts: one
        # error among 40 requests at a 0.01 % baseline is not an anomaly to keep out -- else a
        # rare-event rate is only ever learned downwards); the other way a normal approximation,
        # two-sided as for SeasonalDetector.
        bad = self.direction == _BOTH or (dev > 0) == (self.direction == _UP)
        if warm and (
            score >= self.learn_threshold if bad else (dev if dev > 0 else -dev) >= self._z_learn * sd
        ):
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
            # (in counts, and never less than one event: counts are discrete)
            lim = self.learn_clip_sigmas * sd
            if dev > lim or dev < -lim:
                clipped = den * (p0 + (lim if dev > 0 else -lim)) + (1.0 if dev > 0 else -1.0)
                if (num > clipped) if dev > 0 else (num < clipped):
                    num = clipped if clipped > 0.0 else 0.0
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
        "volume": (
            SeasonalDetector,
            {"transform": "log", "direction": "both", "count_noise": True, "dow_low": 0.35, "dow_high": 2.5},
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
            },
        ),
        "ratio": (RatioDetector, {"direction": "up"}),
        "generic": (SeasonalDetector, {"transform": "identity", "direction": "both"}),
    }
    if kind not in presets:
        raise ValueError(f"unknown detector kind {kind!r} (known: {', '.join(sorted(presets))})")
    klass, defaults = presets[kind]
    return klass(**{**defaults, **params})
