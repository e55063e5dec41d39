"""Small, dependency-free statistics used by the detectors (tail probabilities).

Scores everywhere in Lookout are *calibrated*: ``score = 1 - p`` where ``p`` is the tail
probability of the observation under the model, so the same score means the same rarity on
every series and one threshold serves customers of every size.

>>> round(normal_sf(0.0), 3), round(normal_sf(3.0), 5)
(0.5, 0.00135)
>>> round(poisson_sf(3, 0.2), 5)   # P(K >= 3) for K ~ Poisson(0.2)
0.00115
>>> poisson_sf(0, 5.0)
1.0

Heavy tails: the two-sided tail of a Student-t with 3 degrees of freedom at 10 is about 0.2 %,
where a normal would say 1e-23; :func:`score_from_surprise` keeps the ranking of rare points:

>>> round(student_t_sf2(10.0, 3), 5), round(-math.log10(student_t_sf2(1e6, 3)), 2)
(0.00213, 17.66)
>>> score_from_surprise(4.0), score_from_surprise(40.0) < score_from_surprise(41.0) < 1.0
(0.9999, True)
"""
from __future__ import annotations

import math

_SQRT2 = math.sqrt(2.0)
#: above this expected count the Poisson tail is replaced by its normal approximation
POISSON_EXACT_MAX_K = 40


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z (accurate far into the tail)."""
    return 0.5 * math.erfc(z / _SQRT2)


def poisson_sf(k: int, lam: float) -> float:
    """P(K >= k) for K ~ Poisson(lam), exact for small ``k``."""
    if k <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    if k > POISSON_EXACT_MAX_K:
        # normal approximation with continuity correction
        return normal_sf((k - 0.5 - lam) / math.sqrt(lam))
    term = math.exp(-lam)
    cdf = term
    for i in range(1, k):
        term *= lam / i
        cdf += term
    return max(0.0, 1.0 - cdf)


#: below this angle (far tail) the Student-t tail uses its asymptotic form (no cancellation)
_T_ASYMPTOTIC_PHI = 1e-3
_2_PI = 2.0 / math.pi
#: surprises up to this are exact in the score (``score = 1 - 10**-surprise``) ...
SURPRISE_EXACT_MAX = 6.0
#: ... beyond, they are compressed towards this many decades, so the score stays below 1.0
#: (double precision resolves about 1e-16 next to 1) and rare points are not tied
SURPRISE_COMPRESS = 8.0


def student_t_sf2(t: float, nu: int) -> float:
    """Two-sided tail P(|T| >= |t|) of a Student-t with an odd number ``nu`` of degrees of freedom.

    Closed form for odd ``nu`` (a short trigonometric series: cheap enough for every point),
    computed from the angle to the asymptote so that far tails keep their precision.

    >>> round(student_t_sf2(0.0, 5), 6), round(student_t_sf2(12.706, 1), 4)
    (1.0, 0.05)
    """
    t = abs(t)
    if t == 0.0:
        return 1.0
    rn = math.sqrt(nu)
    phi = math.atan2(rn, t)  # pi/2 - atan(t / sqrt(nu))
    if phi < _T_ASYMPTOTIC_PHI:
        # P(|T| > t) ~ 2 f(t) t / nu for large t
        logf = (math.lgamma((nu + 1) / 2.0) - math.lgamma(nu / 2.0) - 0.5 * math.log(nu * math.pi)
                - (nu + 1) / 2.0 * math.log1p(t * t / nu))
        return 2.0 * math.exp(logf) * t / nu
    if nu == 1:
        return 2.0 * phi / math.pi
    x = nu + t * t
    u = nu / x  # sin(phi) ** 2; sin(phi) cos(phi) = sqrt(nu) t / x
    term = 1.0
    series = 1.0
    for k in range(1, (nu - 1) // 2):
        term *= u * (2 * k) / (2 * k + 1)
        series += term
    q = _2_PI * (phi - rn * t / x * series)
    return q if q > 0.0 else 0.0


def score_from_surprise(s: float) -> float:
    """Score in [0, 1) from a surprise (``-log10`` tail probability), monotone in the surprise.

    Exact (``1 - 10**-s``) up to :data:`SURPRISE_EXACT_MAX`, compressed beyond it so that two
    different surprises up to about 60 never round to the same score.
    """
    if s <= 0.0:
        return 0.0
    if s > SURPRISE_EXACT_MAX:
        s = SURPRISE_EXACT_MAX + SURPRISE_COMPRESS * (
            1.0 - math.exp(-(s - SURPRISE_EXACT_MAX) / SURPRISE_COMPRESS)
        )
    return 1.0 - 10.0**-s


#: terms of a binomial tail below this fraction of the running sum end the summation
_BINOM_REL_EPS = 1e-17


def _log_binom_pmf(i: int, n: int, lp: float, lq: float, lgn: float) -> float:
    return lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq


def binomial_surprise(k: int, n: int, p: float) -> float:
    """``-log10 P(X >= k)`` for ``X ~ Binomial(n, p)``: how surprising ``k`` successes are.

    Summed in log space from ``k`` up, so far tails (1e-300 and beyond) keep their precision;
    0 when ``k`` is at most the mean's neighbourhood (the tail is not small).

    >>> round(binomial_surprise(3, 10, 0.5), 4)   # P(X >= 3) = 0.9453
    0.0244
    >>> round(binomial_surprise(5, 200, 1e-3), 2), binomial_surprise(0, 5, 0.1)
    (5.67, 0.0)
    >>> round(binomial_surprise(180, 180, 1e-3), 1)
    540.0
    """
    if k <= 0:
        return 0.0
    if k > n or p <= 0.0:
        return math.inf
    if p >= 1.0:
        return 0.0
    lp, lq, lgn = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    if k <= n * p:
        # the tail holds at least about half the mass: 1 - P(X < k), summed directly
        below = sum(math.exp(_log_binom_pmf(i, n, lp, lq, lgn)) for i in range(k))
        return -math.log10(max(1.0 - below, 1e-300)) if below < 1.0 else 0.0
    first = _log_binom_pmf(k, n, lp, lq, lgn)
    total, i = 1.0, k + 1
    while i <= n:
        rel = math.exp(_log_binom_pmf(i, n, lp, lq, lgn) - first)
        total += rel
        if rel < _BINOM_REL_EPS * total:
            break
        i += 1
    return max(0.0, -(first + math.log(total)) / math.log(10.0))


def binomial_llr(k: int, n: int, p: float) -> float:
    """Log-likelihood ratio of "this group's rate is ``k / n``" against "it is ``p``" (0 if ``k <= n p``).

    The localisation score: among groups whose counts are significant, the one that explains
    its customers best has the largest ratio; a larger group with the same customers has a
    smaller one (more customers that stayed well), a smaller group that leaves customers out
    has a smaller one too.

    >>> round(binomial_llr(45, 45, 0.001), 1), round(binomial_llr(45, 180, 0.001), 1)
    (310.8, 209.8)
    >>> binomial_llr(1, 1000, 0.01)
    0.0
    """
    if n <= 0 or k <= n * p or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 0.0
    q = k / n
    out = k * math.log(q / p)
    if k < n:
        out += (n - k) * math.log((1.0 - q) / (1.0 - p))
    return out
