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
