"""Detection quality on labelled simulator data (a regression guard for issue 9's targets).

The full measurement is ``scripts/evaluate_detectors.py`` (150 customers x 21 days, seed 2027);
this runs a CI-sized simulation with another seed the defaults were not tuned on (tuning used
seed 11). Half the customers are small (under 100 requests per 5 minutes), weekends are 40 %
to 120 % of weekdays in local time, noise is heavy-tailed: see :mod:`detectors.synthetic`.
The floors are regression guards a little under what this seed measures (recall 0.92 overall,
0.87 under 100 requests, 1.0 at >= 1,000 (30 labels); false alerts per customer-week
0.025 in the first two weeks, 0.075 after, 0.042 overall; median delay 1 and 2 intervals).
The issue's false-alert target (0.05) holds on the held-out seeds of
scripts/evaluate_detectors.py; with 40 customers one false alert in the third week alone is
0.025 per customer-week, so this seed's bounds carry one or two false alerts of margin.
"""
import statistics
from collections import defaultdict

import pytest

from detectors import Engine, parse_event
from detectors.evaluation import WEEK_S, evaluate
from detectors.events import parse_ts
from detectors.synthetic import ALL_KINDS, SimConfig, simulate

SEED = 4242
SMALL, BIG = 100, 1000  # median requests per interval
COLD_S = 14 * 86400.0


@pytest.fixture(scope="module")
def result():
    sim = simulate(SimConfig(customers=40, duration_s=21 * 86400, interval_s=300, seed=SEED,
                             incidents_per_customer_week=1.5, kinds=ALL_KINDS))
    eng = Engine()
    req = defaultdict(list)
    alerts = []
    for ev in sim.events():
        e = parse_event(ev)
        req[e.customer_id].append(e.requests)
        alerts.extend(eng.process(e).alerts)
    sizes = {c: statistics.median(v) for c, v in req.items()}
    span = sim.end - sim.start
    ev = evaluate(alerts, sim.incidents, customers=sizes, span_s=span, interval_s=300)
    first = {}
    for a in alerts:
        first.setdefault(a["alert_id"], a)
    cold = [
        f for f in ev.false_alert_ids if parse_ts(first[f["alert_id"]]["started_at"]) < sim.start + COLD_S
    ]
    return {
        "ev": ev,
        "sizes": sizes,
        "cold": len(cold),
        "cold_cw": len(sizes) * COLD_S / WEEK_S,
        "late": ev.false_alerts - len(cold),
        "late_cw": len(sizes) * (span - COLD_S) / WEEK_S,
    }


def _labels(result, lo=0.0, hi=float("inf")):
    return [r for r in result["ev"].labels if lo <= result["sizes"][r.customer_id] < hi]


def test_most_customers_are_small(result):
    sizes = sorted(result["sizes"].values())
    assert sizes[len(sizes) // 2 - 1] < SMALL


def test_recall_overall(result):
    assert result["ev"].n_labels >= 80
    assert result["ev"].recall >= 0.9, result["ev"].format_table()


def test_recall_for_small_customers(result):
    small = _labels(result, hi=SMALL)
    assert len(small) >= 30
    assert sum(r.detected for r in small) / len(small) >= 0.80  # issue target: 0.60


def test_recall_for_customers_with_at_least_1000_requests_per_interval(result):
    big = _labels(result, lo=BIG)
    assert len(big) >= 20
    assert sum(r.detected for r in big) / len(big) >= 0.96  # issue target: 0.97 (30 labels here)


def test_false_alerts_per_customer_week_in_the_first_two_weeks_and_after(result):
    # issue target: 0.05 in both; with 40 customers one false alert is 0.0125 (first two weeks)
    # or 0.025 (third week) per customer-week
    assert result["cold"] / result["cold_cw"] <= 0.05
    assert result["late"] / result["late_cw"] <= 0.1
    assert result["ev"].false_per_customer_week <= 0.06, result["ev"].format_table()


def test_time_to_detect(result):
    abrupt = [r.ttd_intervals for r in result["ev"].labels if r.detected and r.kind != "error_creep"]
    small = [r.ttd_intervals for r in _labels(result, hi=SMALL) if r.detected]
    assert statistics.median(abrupt) <= 1
    assert statistics.median(small) <= 6
