"""The benchmarks' entry point (python -m bench [NAME]) and the full run's measurement rule for the
worker: what it counts as busy time."""
from __future__ import annotations

import importlib

import pytest

from bench import BENCHMARKS
from bench.__main__ import main
from bench.suite import busy_rate


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_has_its_own_options_behind_its_name(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert f"usage: python -m bench {name}" in capsys.readouterr().out
    assert callable(importlib.import_module(BENCHMARKS[name][0]).main)


def test_without_a_name_it_is_the_full_run_and_its_help_lists_the_others(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "usage: python -m bench [-h] [--events EVENTS]" in out and "--only {replay," in out
    assert all(f"  {name} " in out for name in BENCHMARKS)


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


def test_a_paired_round_says_why_a_worker_of_the_pair_stopped():
    """A contender that stopped (the worker exited, say) used to leave only "did not finish (see
    above)" with nothing above: a thread drops a SystemExit silently."""
    import pytest

    from bench.suite import paired_rounds

    def ok():
        return 1000.0, 900.0

    def exited():
        raise SystemExit("worker exited with code 70 after consuming 1200 of 2400")

    runs: dict = {}
    per_cpu: dict = {"off": [], "on": []}
    with pytest.raises(SystemExit, match="round 1: .*on: worker exited with code 70"):
        paired_rounds({"off": ok, "on": exited}, ("off", "on"), 1, runs, per_cpu)
    paired_rounds({"off": ok, "on": ok}, ("off", "on"), 1, runs, per_cpu)
    assert per_cpu == {"off": [900.0], "on": [900.0]}
