"""The fleet engine equals the reference (per-customer River detectors), bit for bit.

Both run the kernel's arithmetic (detectors/kernel.py); what this holds equal is everything the
fleet does around it -- columns of a batch, slots, gates, which events come back to Python, the
lifecycle of customers woken inside a batch, state rows in arrays and their records. Same
outcomes, scores, alerts and state bytes for the same events, however the events are cut into
batches: on random streams (hypothesis: gaps, duplicates, missing fields, zero traffic, bursts,
any batch boundaries) and on simulated fleets with incidents.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.config import DetectorConfig
from detectors.engine import Engine
from detectors.events import Event, parse_event
from detectors.fleet import FleetEngine
from detectors.reference import ReferenceEngine
from detectors.signals import SIGNALS
from detectors.state import model_state
from detectors.synthetic import SimConfig, simulate

#: warm after a few points, so short random streams reach scoring, gates and incidents
QUICK = DetectorConfig().with_overrides({
    "model.warmup_s": 0.0, "model.warmup_points": 3, "model.accept_shift_after_s": 7200.0,
})


def run_reference(eng: ReferenceEngine, events: list[Event]):
    outcomes, alerts, scores = [], [], {}
    for e in events:
        v = eng.process(e)
        outcomes.append(v.outcome)
        alerts.extend(v.alerts)
        for s, x in v.scores.items():
            scores.setdefault(s, []).append(x)
    return outcomes, alerts, scores


def run_fleet(eng: FleetEngine, events: list[Event], cuts: list[int]):
    outcomes, alerts, scores = [], [], {}
    bounds = sorted({0, len(events), *[c for c in cuts if 0 < c < len(events)]})
    for a, b in zip(bounds, bounds[1:]):
        bv = eng.process_many(events[a:b])
        outcomes.extend(bv.outcomes)
        alerts.extend(bv.alerts)
        for s, xs in bv.scores.items():
            scores.setdefault(s, []).extend(xs)
    return outcomes, alerts, scores


def assert_same(ref: ReferenceEngine, fleet: FleetEngine, events: list[Event], cuts: list[int]):
    r = run_reference(ref, events)
    f = run_fleet(fleet, events, cuts)
    assert f[0] == r[0], "outcomes differ"
    assert f[2] == r[2], "scores differ"
    assert f[1] == r[1], "alerts differ"
    assert fleet.dump_all() == ref.dump_all(), "learned state differs"
    return r


@st.composite
def streams(draw):
    """A few customers' events: irregular steps (0 = a duplicate), traffic from 0 to millions
    with sudden changes, errors, optional fields missing, latency spikes."""
    n_cust = draw(st.integers(1, 4))
    n = draw(st.integers(1, 120))
    t = {f"c{i}": 1_700_000_000.0 + draw(st.integers(0, 86400)) for i in range(n_cust)}
    level = {c: draw(st.sampled_from([0, 3, 40, 900, 250_000])) for c in t}
    events = []
    for _ in range(n):
        c = draw(st.sampled_from(sorted(t)))
        t[c] += draw(st.sampled_from([0, -300, 60, 300, 300, 300, 900, 3600, 6 * 3600, 3 * 86400]))
        if draw(st.integers(0, 9)) == 0:
            level[c] = draw(st.sampled_from([0, 1, 5, 60, 2000, 1_000_000]))
        req = max(0, int(level[c] * draw(st.floats(0.5, 1.5))))
        e5 = draw(st.integers(0, req)) if draw(st.integers(0, 5)) == 0 else min(req, req // 100)
        e4 = min(req - e5, draw(st.integers(0, max(0, req // 10))))
        origin = min(e5, draw(st.integers(0, e5))) if e5 else 0
        obj = {"customer_id": c, "ts": t[c], "interval_s": 300, "requests": req,
               "status_4xx": e4, "status_5xx": e5}
        if origin:
            obj["origin_errors"] = {"522": origin}
        if draw(st.booleans()):
            obj["latency_p99_ms"] = draw(st.sampled_from([12.0, 80.5, 95.0, 3000.0, 86_400_000.0]))
        if draw(st.booleans()):
            obj["cache_hits"] = draw(st.integers(0, req))
        if draw(st.booleans()):
            obj["bytes_out"] = req * draw(st.sampled_from([0, 1, 5000, 2**20]))
        events.append(parse_event(obj))
    cuts = draw(st.lists(st.integers(0, n), max_size=6))
    return events, cuts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_random_streams_equal_the_reference(case):
    events, cuts = case
    assert_same(ReferenceEngine(QUICK), FleetEngine(QUICK, capacity=2), events, cuts)


@pytest.mark.parametrize("seed", [11, 2027])
def test_simulated_fleet_with_incidents_equals_the_reference(seed):
    sim = simulate(SimConfig(customers=24, duration_s=9 * 86400, interval_s=300, seed=seed))
    events = [parse_event(e) for e in sim.events()]
    cuts = list(range(0, len(events), 997))  # batches that split intervals anywhere
    _, alerts, scores = assert_same(ReferenceEngine(), Engine(), events, cuts)
    assert alerts, "the comparison must cover alerts"
    assert max(max(xs) for xs in scores.values()) > 0.9999


def test_state_moves_between_the_engines_mid_stream():
    """A record either engine writes continues in the other (checkpoints, hand-overs)."""
    sim = simulate(SimConfig(customers=6, duration_s=4 * 86400, interval_s=300, seed=5))
    events = [parse_event(e) for e in sim.events()]
    half = len(events) // 2
    ref, fleet = ReferenceEngine(), FleetEngine()
    run_reference(ref, events[:half])
    run_fleet(fleet, events[:half], [])
    ref2, fleet2 = ReferenceEngine(), FleetEngine()
    for cid in sorted(ref.customers):
        fleet2.load_customer(cid, ref.dump_customer(cid))
        ref2.load_customer(cid, fleet.dump_customer(cid))
    assert fleet2.pop_dirty() == set()  # loaded state is stored already
    for cid in sorted(ref.customers):  # what a record covers, read without loading it (history copies)
        blob = ref.dump_customer(cid)
        assert fleet2.record_last_ts(cid, blob) == ref2.record_last_ts(cid, blob) == ref.last_ts_of(cid)
    assert run_fleet(fleet2, events[half:], [100]) == run_reference(ref2, events[half:])
    assert fleet2.dump_all() == ref2.dump_all()


def test_models_of_shows_the_reference_models():
    sim = simulate(SimConfig(customers=3, duration_s=2 * 86400, interval_s=300, seed=8))
    events = [parse_event(e) for e in sim.events()]
    ref, fleet = ReferenceEngine(), FleetEngine()
    run_reference(ref, events)
    run_fleet(fleet, events, [])
    for cid in ref.customers:
        mine, theirs = fleet.models_of(cid), ref.models_of(cid)
        assert list(mine) == list(theirs)
        for s in mine:
            assert model_state(mine[s]) == model_state(theirs[s]), s
            probe = {"ts": events[-1].ts + 300, "value": 10.0, "num": 1.0, "den": 10.0, "n": 10.0}
            assert mine[s].assess(probe) == theirs[s].assess(probe) or math.isnan(mine[s].assess(probe).value)
    assert fleet.models_of("nobody") is None


def test_drop_and_reuse_of_slots_starts_cold():
    fleet = FleetEngine(capacity=1)
    e = parse_event({"customer_id": "a", "ts": 0, "requests": 10, "status_4xx": 0, "status_5xx": 0})
    fleet.process(e)
    fleet.drop_customer("a")
    assert "a" not in fleet.customers and fleet.pop_dirty() == set()
    assert fleet.process(e).outcome == "warming"  # not a duplicate: the customer starts cold
    fleet.process(parse_event({"customer_id": "b", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0}))
    assert sorted(fleet.customers) == ["a", "b"] and fleet.capacity >= 2


def test_every_signal_declares_inputs_that_agree_with_its_args():
    events = [
        parse_event({"customer_id": "a", "ts": 0, "requests": r, "status_4xx": 1 if r else 0,
                     "status_5xx": 0, "origin_errors": {"522": 0}, **extra})
        for r in (0, 7)
        for extra in ({}, {"latency_p99_ms": 9.5, "cache_hits": min(r, 3), "bytes_out": 99})
    ]
    for sig in SIGNALS.values():
        assert sig.inputs is not None, sig.name
        value, support, skip_zero = sig.inputs
        for e in events:
            v = getattr(e, value)
            n = getattr(e, support) if support else None
            absent = v is None or (skip_zero and n == 0)
            expect = None if absent else (e.ts, float(v), None if n is None else float(n))
            assert sig.args(e) == expect, (sig.name, e)
