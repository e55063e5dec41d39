"""Tail probabilities of the detectors, callable from Python (the kernel's compiled functions).

Scores everywhere in Lookout are *calibrated*: ``score = 1 - p`` where ``p`` is the tail
probability of the observation under the model, so the same score means the same rarity on
every series and one threshold serves customers of every size. The formulas are
:mod:`detectors.kernel`'s (the models use them there); these are the same functions for callers
in Python.

>>> round(normal_sf(0.0), 3), round(normal_sf(3.0), 5)
(0.5, 0.00135)
>>> round(poisson_sf(3, 0.2), 5)   # P(K >= 3) for K ~ Poisson(0.2)
0.00115
>>> poisson_sf(0, 5.0)
1.0

Heavy tails: the two-sided tail of a Student-t with 3 degrees of freedom at 10 is about 0.2 %,
where a normal would say 1e-23; :func:`score_from_surprise` keeps the ranking of rare points:

>>> import math
>>> round(student_t_sf2(10.0, 3), 5), round(-math.log10(student_t_sf2(1e6, 3)), 2)
(0.00213, 17.66)
>>> score_from_surprise(4.0), score_from_surprise(40.0) < score_from_surprise(41.0) < 1.0
(0.9999, True)
"""
from __future__ import annotations

import math

from . import kernel as K
from .kernel import POISSON_EXACT_MAX_K, SURPRISE_COMPRESS, SURPRISE_EXACT_MAX, T_TABLE_SIZE

__all__ = ["POISSON_EXACT_MAX_K", "SURPRISE_COMPRESS", "SURPRISE_EXACT_MAX", "normal_sf", "poisson_sf",
           "score_from_surprise", "student_t_sf2"]


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z (accurate far into the tail)."""
    return float(K.normal_sf(float(z), K.CONSTANTS))


def poisson_sf(k: int, lam: float) -> float:
    """P(K >= k) for K ~ Poisson(lam), exact for small ``k``."""
    return float(K.poisson_sf(int(k), float(lam), K.CONSTANTS))


def student_t_sf2(t: float, nu: int) -> float:
    """Two-sided tail P(|T| >= |t|) of a Student-t with an odd number ``nu`` of degrees of freedom
    (at most the kernel's table: ``T_TABLE_SIZE - 1``).

    >>> round(student_t_sf2(0.0, 5), 6), round(student_t_sf2(12.706, 1), 4)
    (1.0, 0.05)
    """
    if not (isinstance(nu, int) and 0 < nu < T_TABLE_SIZE and nu % 2 == 1):
        raise ValueError(f"nu must be an odd integer from 1 to {T_TABLE_SIZE - 1}, got {nu!r}")
    return float(K.student_t_sf2(float(t), nu, K.CONSTANTS))


def score_from_surprise(s: float) -> float:
    """Score in [0, 1) from a surprise (``-log10`` tail probability), monotone in the surprise.

    Exact (``1 - 10**-s``) up to :data:`SURPRISE_EXACT_MAX`, compressed beyond it so that two
    different surprises up to about 60 never round to the same score.
    """
    return float(K.score_from_surprise(float(s), K.CONSTANTS))


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
