"""Issue 9 mechanisms, one behaviour each: heavy tails and surprise, short history, sequential evidence."""
import math
import random

from detectors import Engine, make_detector, parse_event
from detectors.stats import score_from_surprise, student_t_sf2

STEP = 300
DAY = 86400
MONDAY = 1767571200  # 2026-01-05T00:00:00Z


def test_extreme_points_are_ranked_by_surprise_and_never_tied_at_one():
    det = make_detector("generic", warmup_s=0, warmup_points=10)
    rnd = random.Random(1)
    for i in range(500):
        det.learn_one({"ts": i * 60.0, "value": rnd.gauss(100.0, 5.0)})
    outliers = [det.assess({"ts": 500 * 60.0, "value": 100.0 + k}) for k in (200, 400, 800, 1600, 3200)]
    surprises = [a.surprise for a in outliers]
    scores = [a.score for a in outliers]
    assert surprises == sorted(surprises) and len(set(surprises)) == 5
    assert scores == sorted(scores) and len(set(scores)) == 5 and max(scores) < 1.0


def test_score_is_the_tail_probability_up_to_one_in_a_million_and_monotone_beyond():
    assert score_from_surprise(4.0) == 1.0 - 1e-4
    beyond = [score_from_surprise(s) for s in (6.5, 10.0, 20.0, 40.0, 55.0)]
    assert beyond == sorted(beyond) and len(set(beyond)) == len(beyond) and beyond[-1] < 1.0


def test_heavy_tails_make_a_five_sigma_point_plausible():
    # the learned noise is Student-t with 3 degrees of freedom: 5 standard deviations is about
    # 1 in 300 two-sided, not 1 in 1.7 million
    assert 0.002 < student_t_sf2(5.0 * math.sqrt(3.0), 3) < 0.005


def ev(ts, requests, s5=0, cid="acme"):
    return parse_event({"customer_id": cid, "ts": ts, "interval_s": STEP, "requests": requests,
                        "status_4xx": 0, "status_5xx": s5})


def business_day(rnd, ts, weekday_level, weekend_factor):
    hour = (ts % DAY) / 3600.0
    lam = weekday_level * (0.6 + 0.4 * math.sin(math.pi * hour / 24.0))
    if ((ts - MONDAY) // DAY) % 7 >= 5:
        lam *= weekend_factor
    return max(0, round(rnd.gauss(lam, math.sqrt(lam))))


def test_the_first_weekends_after_a_cold_start_do_not_alert():
    # a business customer: weekends at 40 % of weekdays, first seen on a Monday
    eng, rnd, alerts = Engine(), random.Random(2), []
    for i in range(int(14 * DAY / STEP)):
        ts = MONDAY + i * STEP
        alerts += eng.process(ev(ts, business_day(rnd, ts, 2000, 0.4))).alerts
    assert alerts == []


def test_a_drop_to_a_third_on_a_weekday_already_seen_is_detected():
    eng, rnd = Engine(), random.Random(3)
    n = int(9 * DAY / STEP)  # Monday to Tuesday of the second week
    for i in range(n):
        ts = MONDAY + i * STEP
        eng.process(ev(ts, business_day(rnd, ts, 2000, 0.4)))
    alerts = []
    for i in range(n, n + 6):
        ts = MONDAY + i * STEP
        alerts += eng.process(ev(ts, business_day(rnd, ts, 2000, 0.4) // 3)).alerts
    assert [a["status"] for a in alerts] == ["firing"] and alerts[0]["signal"] == "requests"


def small_history(eng, rnd, n, cid="small"):
    for i in range(n):
        req = max(1, round(rnd.gauss(40, 6)))
        eng.process(ev(MONDAY + i * STEP, req, int(rnd.random() < 0.3), cid))  # ~0.8 % 5xx


def test_a_sustained_5xx_rise_at_40_requests_per_interval_opens_an_incident_within_a_few_intervals():
    eng, rnd = Engine(), random.Random(4)
    n = int(3 * DAY / STEP)
    small_history(eng, rnd, n)
    fired = None
    for k in range(12):  # 5xx at ~12 %: about 5 errors among 40 requests per interval
        a = eng.process(ev(MONDAY + (n + k) * STEP, 40, 5, "small")).alerts
        if a and fired is None:
            fired = (k, a[0])
    assert fired is not None and fired[0] <= 4
    k, alert = fired
    assert alert["signal"] == "error_5xx"
    expl = alert["explanation"]
    assert "over the last" in expl and "errors in" in expl and "requests" in expl, expl


def test_one_bad_interval_of_a_small_customer_does_not_open_an_incident():
    eng, rnd = Engine(), random.Random(5)
    n = int(3 * DAY / STEP)
    small_history(eng, rnd, n)
    alerts = eng.process(ev(MONDAY + n * STEP, 40, 12, "small")).alerts  # 30 % 5xx, once
    for k in range(1, 13):
        alerts += eng.process(ev(MONDAY + (n + k) * STEP, 40, int(rnd.random() < 0.3), "small")).alerts
    assert alerts == []


def test_a_lasting_drop_is_one_incident_resolved_once_the_new_level_is_accepted():
    # a customer's traffic falls to 40 % for good (a migration, a lost client): one incident at
    # the change, resolved once the new level is accepted (CUSTOMER_ADAPT_S, then the recovery
    # intervals), and none after it
    from detectors.univariate import CUSTOMER_ADAPT_S

    eng, rnd = Engine(), random.Random(5)
    n = int(8 * DAY / STEP)
    for i in range(n):
        ts = MONDAY + i * STEP
        assert not eng.process(ev(ts, business_day(rnd, ts, 5000, 1.0))).alerts
    alerts = []
    for i in range(n, n + int(2 * DAY / STEP)):
        ts = MONDAY + i * STEP
        for a in eng.process(ev(ts, int(business_day(rnd, ts, 5000, 1.0) * 0.4))).alerts:
            alerts.append((ts - (MONDAY + n * STEP), a))
    assert [a["status"] for _, a in alerts] == ["firing", "resolved"], alerts
    (t_open, opened), (t_resolved, _) = alerts
    assert opened["signal"] == "requests" and t_open <= 2 * STEP
    assert t_resolved <= CUSTOMER_ADAPT_S + 12 * STEP
