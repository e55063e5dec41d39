"""The migration trial's measure: what "the baseline after the window" is compared with."""
from __future__ import annotations

from detectors.steering_eval import BASELINE_TOLERANCE, _rel, migration_trial


def test_a_rate_below_one_event_per_interval_is_compared_at_that_resolution():
    # 0.00004 vs 0.00003 at 800 requests per interval: both "no errors expected"
    assert _rel(4e-5, 3e-5, 1 / 800) < BASELINE_TOLERANCE
    assert _rel(4e-5, 3e-5) > BASELINE_TOLERANCE  # strictly relative it reads as 33 %
    # a rate the data do resolve keeps the relative measure: 2 % against 1 % is 100 %
    assert _rel(0.02, 0.01, 1 / 800) == 1.0


def test_an_announced_migration_under_a_window_leaves_the_baseline_where_it_would_have_been():
    out = migration_trial(seed=7, customers=16, days=10, migrations=4)
    assert out["migrations"] == 4
    assert out["within_5pct"] == out["migrations"], out["cases"]
    assert out["max_trace"] == 0.0  # nothing of the migration itself reached the model
    assert out["worst_without_window"] > BASELINE_TOLERANCE  # (without the window it would have)
    assert out["firing_sent_inside_windows"] == 0
