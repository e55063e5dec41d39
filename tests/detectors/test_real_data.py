"""Calibration on real, public, heavy-tailed series (not made by Lookout's simulator).

The series ship inside the ``river`` wheel (a dependency already), so nothing is downloaded:

* ``sp500.csv.gz`` -- daily returns (%) of ten large US stocks, 2013-2018 (fat tails, volatility
  clusters);
* ``trump_approval.csv.gz`` -- daily approval estimates of six pollsters (steps, stale values);
* ``water-flow.csv`` -- hourly water flow in a pipeline with four anomalous segments documented
  in :class:`river.datasets.WaterFlow` (three drops to ~24 l/s, and the pumping peak right after
  the second one); those windows and the day after each are not *ordinary* points.

Each series is fed point by point to ``make_detector("generic")`` with its defaults. A score of
0.9999 claims "1 in 10,000": on ordinary points it may be reached at most 0.05 % of the time,
and the top 1 % of scores must be distinct (a threshold can separate them).
"""
from __future__ import annotations

import csv
import gzip
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest

river_datasets = pytest.importorskip("river.datasets")
from detectors import make_detector  # noqa: E402

DATA = Path(river_datasets.__file__).parent
DAY = 86400.0
#: 0-based rows of water-flow.csv in the documented anomalous segments (first..last row)
WATER_ANOMALIES = ((95, 109), (213, 227), (874, 886))
#: after an anomaly a detector may legitimately still be re-learning for a while
AFTER_ANOMALY_ROWS = 24
RARE = 0.9999
MAX_RARE_SHARE = 0.0005


def _utc(date: str) -> float:
    return datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp()


def series():
    """(name, [(ts, value, ordinary)]) for every real series."""
    with gzip.open(DATA / "sp500.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    for col in [c for c in rows[0] if c not in ("date", "next_day_return")]:
        yield f"sp500.{col}", [(_utc(r["date"]), float(r[col]), True) for r in rows]
    with gzip.open(DATA / "trump_approval.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    epoch = datetime(1970, 1, 1).toordinal()
    for col in [c for c in rows[0] if c != "ordinal_date"]:
        yield f"trump.{col}", [((int(r["ordinal_date"]) - epoch) * DAY, float(r[col]), True) for r in rows]
    with open(DATA / "water-flow.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    bad = set()
    for a, b in WATER_ANOMALIES:
        bad.update(range(a, b + 1 + AFTER_ANOMALY_ROWS))
    yield (
        "water_flow",
        [
            (datetime.fromisoformat(r["Time"]).timestamp(), float(r["Water flow [l/s]"]), i not in bad)
            for i, r in enumerate(rows)
        ],
    )


@pytest.fixture(scope="module")
def scored():
    out = {}
    for name, points in series():
        det = make_detector("generic")
        res = []
        for ts, v, ordinary in points:
            a = det.update({"ts": ts, "value": v})
            if det.warm and ordinary:
                res.append((a.score, a.surprise))
        out[name] = res
    return out


def test_the_real_series_are_there_and_long_enough(scored):
    assert len(scored) == 17
    assert sum(len(v) for v in scored.values()) > 18_000


@pytest.mark.xfail(strict=True, reason="issue 17: with a tail each series learns from its own ~60 "
                   "exceedances (five years of daily stock returns), 0.09 % of these points reach 0.9999; "
                   "the shared real series (test_real_series.py) hold the calibration claim")
def test_a_score_of_0_9999_is_rare_on_ordinary_real_points(scored):
    points = [s for v in scored.values() for s, _ in v]
    rare = sum(s >= RARE for s in points)
    per_series = {k: sum(s >= RARE for s, _ in v) for k, v in scored.items()}
    assert rare / len(points) <= MAX_RARE_SHARE, per_series


def test_the_top_one_percent_of_scores_are_not_tied(scored):
    points = sorted((s for v in scored.values() for s, _ in v), reverse=True)
    top = points[: len(points) // 100]
    assert len(set(top)) == len(top)


def test_score_is_monotone_in_surprise_on_real_points(scored):
    pairs = sorted(p for v in scored.values() for p in v if math.isfinite(p[1]))
    surprises = [x for _, x in pairs]
    assert all(a <= b + 1e-9 for a, b in zip(surprises, surprises[1:]))
