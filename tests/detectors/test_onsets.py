"""Onsets: the family a customer newly shows, the same from the fleet engine and the reference."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from detectors.alerting import Finding, Incident, Tracker
from detectors.config import AlertingConfig
from detectors.engine import Engine, ReferenceEngine
from detectors.events import parse_event, time_or_none
from detectors.fleet import FleetEngine
from detectors.onsets import Onset, detect, family_label, family_of
from detectors.synthetic import SimConfig, simulate
from detectors.univariate import Assessment
from tests.detectors.test_fleet import QUICK, streams

UP = Assessment(0.99999, 0.3, 0.01, 0.0, 0.02, 40.0, 6.0)
DOWN = Assessment(0.99999, 10.0, 500.0, 300.0, 700.0, 0.0, 6.0)
CFG = AlertingConfig()


def event(ts=600, **kw):
    base = {"customer_id": "c1", "ts": ts, "interval_s": 300, "requests": 1000, "status_4xx": 0,
            "status_5xx": 300}
    return parse_event({**base, **kw})


def test_origin_errors_are_keyed_by_their_dominant_code():
    e = event(origin_errors={"522": 250, "521": 40})
    assert family_of([Finding("error_5xx", 600, UP), Finding("latency_p99", 600, UP)], e) == "origin:522"
    assert family_label("origin:522") == "origin errors (522)"


def test_5xx_mostly_from_the_edge_is_not_an_origin_family():
    e = event(origin_errors={"502": 20})  # 20 of 300 5xx from the origin
    assert family_of([Finding("error_5xx", 600, UP)], e) == "5xx"


def test_the_most_specific_family_wins():
    e = event(status_5xx=0)
    assert family_of([Finding("latency_p99", 600, UP), Finding("requests", 600, DOWN)], e) == "traffic_drop"
    assert family_of([Finding("requests", 600, UP), Finding("error_4xx", 600, UP)], e) == "4xx"
    assert family_of([Finding("requests", 600, UP)], e) == "traffic_surge"
    assert family_of([], e) is None


def test_a_family_already_anomalous_is_no_onset():
    e = event(origin_errors={"522": 300})
    now = [Finding("origin_errors", 600, UP)]
    assert detect(Tracker(), e, now, CFG) == [Onset("c1", 600.0, 300, "origin:522")]
    # anomalous in the previous interval (within open_m - 1 intervals)
    assert detect(Tracker(hist=1, recent=[(300.0, [Finding("error_5xx", 300, UP)])]), e, now, CFG) == []
    # ... but not if that was longer ago than the window (intervals 300 and 600 before 900 are)
    later = event(ts=900, origin_errors={"522": 300})
    assert detect(Tracker(hist=0, recent=[(0.0, [Finding("error_5xx", 0, UP)])]), later, now, CFG) != []
    # part of an open incident, however old
    inc = Incident("c1", "x", 0.0, 300, "warning",
                   findings={"origin_errors": Finding("origin_errors", 0, UP)})
    assert detect(Tracker(incident=inc), e, now, CFG) == []
    # another family during an open incident is an onset (a new problem)
    inc = Incident("c1", "x", 0.0, 300, "warning", findings={"cache_hit": Finding("cache_hit", 0, UP)})
    assert detect(Tracker(incident=inc), e, now, CFG) == [Onset("c1", 600.0, 300, "origin:522")]


def test_onsets_round_trip_through_json():
    o = Onset("c1", 600.0, 300, "origin:522")
    assert Onset.from_json(o.to_json()) == o
    for bad in ({**o.to_json(), "family": "weather"}, {**o.to_json(), "interval_s": 0}, {"ts": 1}):
        try:
            Onset.from_json(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def _onsets(eng, events, cuts):
    out = []
    bounds = sorted({0, len(events), *[c for c in cuts if 0 < c < len(events)]})
    for a, b in zip(bounds, bounds[1:]):
        out.extend(eng.process_many(events[a:b]).onsets)
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_the_fleet_engine_finds_the_references_onsets_in_any_batches(case):
    events, cuts = case
    ref = ReferenceEngine(QUICK)
    want = [o for e in events for o in ref.process(e).onsets]
    assert _onsets(FleetEngine(QUICK, capacity=2), events, cuts) == want


def test_a_simulated_fleet_has_onsets_before_its_alerts():
    sim = simulate(SimConfig(customers=16, duration_s=9 * 86400, seed=3))
    events = [parse_event(e) for e in sim.events()]
    eng, ref = Engine(), ReferenceEngine()
    onsets = _onsets(eng, events, list(range(0, len(events), 1000)))
    assert onsets == [o for e in events for o in ref.process(e).onsets]
    first_onset: dict[str, float] = {}
    for o in onsets:
        first_onset.setdefault(o.customer_id, o.ts)
    fired = {}
    for a in Engine().process_many(events).alerts:
        if a["status"] == "firing":
            fired.setdefault(a["customer_id"], time_or_none(a["event_ts"]))
    assert fired, "the simulation must produce alerts"
    # every customer that alerted had an onset no later than its first alert
    for cid, ts in fired.items():
        assert first_onset.get(cid, float("inf")) <= ts, cid
