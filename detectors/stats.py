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
