"""The benchmark's measurement rule for the worker (python -m bench): what it counts as busy time."""
from __future__ import annotations

import pytest

from bench.__main__ import busy_rate


def test_the_idle_tail_after_the_last_event_does_not_count():
    # 1,000 events/s for 10 s, then the worker sat idle 0.9 s before the scrape that saw it done
    samples = [(float(t), 1000.0 * t, 0.1 * t) for t in range(11)] + [(10.9, 12000.0, 1.01)]
    eps, per_cpu = busy_rate(samples, n_events=12000)
    assert eps == pytest.approx(1000.0)
    assert per_cpu == pytest.approx(10000.0)


def test_a_run_over_before_the_second_scrape_uses_the_last_one():
    eps, per_cpu = busy_rate([(0.0, 100.0, None), (0.5, 600.0, None)], n_events=600)
    assert eps == pytest.approx(1000.0)
    assert per_cpu is None  # no CPU figure where /proc is not readable


def test_one_scrape_is_no_rate():
    with pytest.raises(ValueError):
        busy_rate([(1.0, 5.0, 0.0)], n_events=10)
