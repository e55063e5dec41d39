"""The local scorer mirrors the benchmark's rules (see ../shared/data/real-series/README.md)."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from detectors import nab


def _series(n=1000, windows=((500, 599),)):
    return nab.Series("f", np.arange(float(n)) * 300.0, np.zeros(n), tuple(windows))


def _score(s, hits, at=1.0):
    sc = np.zeros(len(s.ts))
    for i in hits:
        sc[i] = at
    return nab.corpus_score([s], [sc])


def test_probation_is_15_percent_capped_at_750_points():
    assert nab.probation(1000) == 150
    assert nab.probation(4032) == 604
    assert nab.probation(15000) == 750


def test_a_detection_at_the_left_edge_is_perfect_and_silence_is_zero():
    s = _series()
    assert _score(s, [500]).score == pytest.approx(100.0)
    assert _score(s, []).score == 0.0


def test_credit_falls_across_the_window_to_nothing_at_its_right_edge():
    s = _series()
    early, middle, late = (_score(s, [i]).score for i in (510, 550, 599))
    assert 100.0 > early > middle > late
    # the sigmoid at the window's centre: 2 / (1 + e^-2.5) - 1 = 0.848, over its value at the edge
    assert middle == pytest.approx(100 * (1 + 0.848 / 0.987) / 2, abs=0.5)
    assert late == pytest.approx(50.0, abs=2.0)  # ~0 credit instead of -1


def test_only_the_earliest_detection_in_a_window_counts():
    s = _series()
    assert _score(s, [510, 511, 560, 590]).score == _score(s, [510]).score


def test_each_detection_outside_a_window_costs_0_11():
    s = _series()
    one_fp = _score(s, [500, 300]).raw
    two_fp = _score(s, [500, 300, 310]).raw
    assert one_fp == pytest.approx(1.0 - 0.11)
    assert two_fp == pytest.approx(1.0 - 0.22)


def test_a_detection_just_after_a_window_costs_less_than_one_far_away():
    s = _series()
    just_after = _score(s, [500, 601]).raw
    far = _score(s, [500, 990]).raw
    assert far < just_after < 1.0


def test_probation_points_are_never_scored():
    s = _series(windows=((100, 140), (500, 599)))  # the first window lies in probation (150 points)
    res = _score(s, [100, 500])
    assert res.windows == 1
    assert res.score == pytest.approx(100.0)


def test_the_threshold_is_the_best_one_for_the_whole_corpus():
    s = _series()
    sc = np.zeros(len(s.ts))
    sc[500] = 0.9
    sc[300] = 0.5  # a lower-scored false detection: the best threshold leaves it out
    res = nab.corpus_score([s], [sc])
    assert res.score == pytest.approx(100.0)
    assert res.threshold == 0.9
    assert res.false_positives == 0


def test_tied_scores_cannot_be_separated():
    s = _series()
    sc = np.zeros(len(s.ts))
    sc[500] = sc[300] = sc[310] = 1.0
    assert nab.corpus_score([s], [sc]).raw == pytest.approx(1.0 - 0.22)


def test_rare_share_counts_ordinary_points_only():
    s = _series()
    sc = np.zeros(len(s.ts))
    sc[[10, 520, 700, 701]] = 0.99995  # probation, window, two ordinary
    share, worst, worst_share = nab.rare_share([s], [sc])
    ordinary = len(s.ts) - 150 - 100
    assert share == pytest.approx(2 / ordinary)
    assert worst == "f" and worst_share == share


def test_load_corpus_maps_windows_to_rows(tmp_path):
    (tmp_path / "a").mkdir()
    rows = ["timestamp,value"] + [f"2014-04-01 00:{m:02d}:00,{m}" for m in range(0, 60, 5)]
    with gzip.open(tmp_path / "a" / "x.csv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    (tmp_path / "windows.json").write_text(
        json.dumps({"a/x.csv.gz": [["2014-04-01 00:20:00.000000", "2014-04-01 00:30:00.000000"]]})
    )
    (s,) = nab.load_corpus(tmp_path)
    assert s.name == "a/x.csv.gz"
    assert s.windows == ((4, 6),)
    assert s.values[5] == 25.0
    assert s.ts[1] - s.ts[0] == 300.0


def test_scores_must_match_the_file():
    s = _series()
    with pytest.raises(ValueError, match="1 scores for 1000 points"):
        nab.corpus_score([s], [np.zeros(1)])
