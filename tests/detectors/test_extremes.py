"""The generic detector's extreme-value tail of the raw values (``extreme_quantile``)."""
import math
import random

import numpy as np
import pytest

from detectors import kernel as K
from detectors import make_detector
from detectors.univariate import GenericDetector, SeasonalDetector

STEP = 300.0
RARE = 0.9999


def run(det, values, start=0):
    return [det.update({"ts": (start + i) * STEP, "value": v}) for i, v in enumerate(values)]


def bursty(n, seed=3):
    """Mostly idle, a burst of 100-220 every 50 points (disk writes, a batch job's traffic)."""
    rnd = random.Random(seed)
    return [rnd.uniform(100.0, 220.0) if i % 50 == 0 else rnd.uniform(0.0, 2.0) for i in range(n)]


@pytest.mark.parametrize("q", [0.99, 0.95])
def test_each_side_tracks_its_quantile_without_keeping_points(q):
    rnd = random.Random(5)
    values = [rnd.lognormvariate(0.0, 1.0) for _ in range(20_000)]
    det = GenericDetector(extreme_quantile=q)
    run(det, values)
    row = det.state
    upper = row[K.XT_UP + K.X_H + 2]
    lower = -row[K.XT_DN + K.X_H + 2]
    assert upper == pytest.approx(np.quantile(values, q), rel=0.03)
    assert lower == pytest.approx(np.quantile(values, 1.0 - q), rel=0.03)
    assert row[K.XT_N] == len(values)
    # the peaks: about 1 - q of the points, each side
    assert row[K.XT_UP + K.X_K] == pytest.approx((1.0 - q) * len(values), rel=0.15)


def test_a_value_far_beyond_every_burst_alerts_where_the_seasonal_model_alone_does_not():
    values = bursty(3000)
    generic, seasonal = make_detector("generic"), make_detector("generic", extreme_quantile=0)
    for det in (generic, seasonal):
        run(det, values)
    ts = 3000 * STEP
    huge = {"ts": ts, "value": 900.0}  # four times the largest burst
    usual = {"ts": ts, "value": 200.0}  # a burst like the others
    assert seasonal.score_one(huge) < RARE < generic.score_one(huge)
    assert generic.score_one(usual) < RARE


def test_without_the_tail_it_is_its_seasonal_detector_bit_for_bit():
    rnd = random.Random(2)
    values = [50.0 + 10.0 * math.sin(i / 40.0) + rnd.gauss(0.0, 1.0) for i in range(3000)]
    values[2500] = 500.0
    params = {"transform": "identity", "direction": "both", "ar_memory_points": 2000.0}
    off = GenericDetector(extreme_quantile=0.0, **params)
    plain = SeasonalDetector(**params)
    assert run(off, values) == run(plain, values)
    assert np.array_equal(off.state[:K.SEASONAL.width], plain.state, equal_nan=True)


def test_a_level_shift_is_one_detection_at_the_change():
    rnd = random.Random(1)
    det = make_detector("generic")
    run(det, [100.0 + rnd.gauss(0.0, 1.0) for _ in range(3000)])
    after = run(det, [130.0 + rnd.gauss(0.0, 1.0) for _ in range(600)], start=3000)
    alerts = [i for i, a in enumerate(after) if a.score >= RARE]
    assert alerts == [0]


def test_beyond_a_bounded_tail_the_surprise_stays_finite_and_keeps_ranking():
    rnd = random.Random(4)
    det = make_detector("generic")
    run(det, [min(100.0, max(0.0, rnd.gauss(40.0, 8.0))) for _ in range(3000)])  # CPU-like, bounded
    ts = 3000 * STEP
    surprises = [det.assess({"ts": ts, "value": v}).surprise for v in (120.0, 200.0, 1e4, 1e8)]
    assert all(math.isfinite(s) for s in surprises)
    assert surprises == sorted(surprises) and len(set(surprises)) == len(surprises)
    assert surprises[0] > 4.0


def test_a_late_or_repeated_point_teaches_the_tail_nothing():
    det = make_detector("generic")
    run(det, bursty(1000))
    before = det.state.copy()
    det.update({"ts": 500 * STEP, "value": 5000.0})  # late
    det.update({"ts": 999 * STEP, "value": 5000.0})  # the last point again
    assert np.array_equal(det.state, before, equal_nan=True)


def test_a_bad_quantile_is_refused_in_one_line():
    for q in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match=r"extreme_quantile must be in \[0, 1\)"):
            make_detector("generic", extreme_quantile=q)


def test_the_tail_does_not_speak_from_a_handful_of_peaks():
    """Fitted to a few peaks, a heavy tail looks bounded: below K.EXTREME_MIN_PEAKS on a side the
    score is the seasonal model's (with the factor 2 of having two models)."""
    values = bursty(600)  # 12 bursts
    generic, seasonal = make_detector("generic"), make_detector("generic", extreme_quantile=0)
    for det in (generic, seasonal):
        run(det, values)
    assert generic.state[K.XT_UP + K.X_K] < K.EXTREME_MIN_PEAKS
    huge = {"ts": 600 * STEP, "value": 900.0}
    assert generic.assess(huge).surprise == pytest.approx(
        max(seasonal.assess(huge).surprise - math.log10(2.0), 0.0))
