"""Verdicts and windows applied by the engine: each effect, when it applies, and nothing else changes.

Scenarios come from the simulator (a few large customers, one injected incident each); a plain
run finds the incidents the verdicts are about, a steered run applies them.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

from detectors.engine import Engine, ReferenceEngine
from detectors.events import format_ts, parse_event, parse_ts
from detectors.feedback import verdict_from_alert
from detectors.history import MemoryHistory
from detectors.silences import parse_window
from detectors.steering import SteeredEngine, Steering
from detectors.synthetic import SimConfig, simulate

IV = 300
CHUNK = 997  # an odd batch size: effects fall anywhere within a batch


def field(model, name: str) -> float:
    """A named field of a River detector's state row (its family's declaration says where)."""
    f = next(f for f in model.family.fields if f.name == name)
    return float(model.state[f.offset])


@lru_cache(maxsize=None)
def scenario():
    kinds = ("origin_outage", "traffic_surge", "latency")
    sim = simulate(SimConfig(customers=8, duration_s=5 * 86400, interval_s=IV, seed=5, incidents=6,
                             size_min=300, small_fraction=0.0, kinds=kinds))
    return sim, [parse_event(e) for e in sim.events()]


def run(engine, events, steering=None, history=None, watch=()):
    eng = SteeredEngine(engine, steering, history)
    outcomes, alerts = [], []
    for i in range(0, len(events), CHUNK):
        part = events[i:i + CHUNK]
        v = eng.process_many(part)
        outcomes += v.outcomes
        alerts += v.alerts
        if history is not None:
            history.observe(eng.engine, part, watch)
    return eng, outcomes, alerts


@lru_cache(maxsize=None)
def plain():
    sim, events = scenario()
    eng, outcomes, alerts = run(Engine(), events)
    return eng, alerts


def first_incident(alerts, min_duration=3):
    """A firing alert whose incident lasted at least ``min_duration`` intervals."""
    resolved = {a["alert_id"]: a for a in alerts if a["status"] == "resolved"}
    for a in alerts:
        r = resolved.get(a["alert_id"])
        if a["status"] == "firing" and a["notification"] == 1 and r is not None and (
                parse_ts(r["resolved_at"]) - parse_ts(a["started_at"]) >= min_duration * IV):
            return a, r
    raise AssertionError("the scenario has no incident long enough")


def test_false_alarm_resolves_the_open_incident_within_one_interval_and_records_the_verdict():
    _, events = scenario()
    _, alerts = plain()
    firing, _ = first_incident(alerts)
    at = parse_ts(firing["event_ts"]) + IV + 60  # given a minute into the interval after the firing
    st = Steering()
    st.put_verdict(verdict_from_alert(firing, "false_alarm", at=at, by="alice", note="customer's load test"))
    _, _, steered = run(Engine(), events, st)
    res = [a for a in steered if a["alert_id"] == firing["alert_id"] and a["status"] == "resolved"]
    assert len(res) == 1
    assert at - IV < parse_ts(res[0]["event_ts"]) <= at  # the event whose interval contains the verdict
    assert res[0]["feedback"] == {"verdict": "false_alarm", "by": "alice", "at": format_ts(at),
                                  "note": "customer's load test"}


def test_every_other_customer_stays_bit_identical():
    _, events = scenario()
    base, alerts = plain()
    firing, _ = first_incident(alerts)
    cid = firing["customer_id"]
    st = Steering()
    st.put_verdict(verdict_from_alert(firing, "new_normal", at=parse_ts(firing["event_ts"]) + IV + 60))
    st.put_window(parse_window({"id": "mw-1", "customer_id": cid, "from": events[0].ts + 3 * 86400,
                                "until": events[0].ts + 3 * 86400 + 6 * 3600, "created_at": events[0].ts}))
    eng, _, steered = run(Engine(), events, st)
    others = sorted(c for c in base.customers if c != cid)
    assert others and all(base.dump_customer(c) == eng.dump_customer(c) for c in others)
    assert [a for a in alerts if a["customer_id"] != cid] == [a for a in steered if a["customer_id"] != cid]
    assert base.dump_customer(cid) != eng.dump_customer(cid)


def test_steered_fleet_and_reference_are_equal_bit_for_bit():
    sim, events = scenario()
    _, alerts = plain()
    firing, resolved = first_incident(alerts)
    cid = firing["customer_id"]
    t0 = events[0].ts
    others = sorted({e.customer_id for e in events} - {cid})
    st = Steering()
    st.put_verdict(verdict_from_alert(resolved, "expected", at=parse_ts(resolved["event_ts"]) + 3600))
    st.put_window(parse_window({"id": "mw-learn", "customer_id": others[0], "from": t0 + 2 * 86400,
                                "until": t0 + 2 * 86400 + 5 * 3600, "mode": "learn", "signal": "requests",
                                "created_at": t0 + 2 * 86400 + 3600}))
    st.put_window(parse_window({"id": "mw-notify", "customer_id": others[1], "from": t0 + 86400,
                                "until": t0 + 86400 + 7200, "rrule": "FREQ=DAILY", "mode": "both",
                                "created_at": t0}))
    watch = st.customers
    a = run(Engine(), events, st, MemoryHistory(3600, 86400), watch)
    b = run(ReferenceEngine(), events, st, MemoryHistory(3600, 86400), watch)
    assert a[1] == b[1] and a[2] == b[2]
    assert all(a[0].dump_customer(c) == b[0].dump_customer(c) for c in a[0].customers)
    assert a[0].applied["rebuild"] >= 2 and not a[0].applied["rebuild_unavailable"]


def test_expected_takes_the_incident_out_of_the_model_as_if_it_had_been_masked():
    _, events = scenario()
    _, alerts = plain()
    firing, resolved = first_incident(alerts)
    cid = firing["customer_id"]
    started = parse_ts(firing["started_at"])
    at = parse_ts(resolved["event_ts"]) + 2 * 3600
    st = Steering()
    st.put_verdict(verdict_from_alert(resolved, "expected", at=at))
    rebuilt, _, _ = run(Engine(), events, st, MemoryHistory(3600, 86400), st.customers)
    # the same range kept out of the model live, by a learn window known from the start
    masked = Steering()
    masked.put_window(parse_window({"id": "mw", "customer_id": cid, "from": started,
                                    "until": parse_ts(resolved["resolved_at"]), "mode": "learn",
                                    "created_at": events[0].ts}))
    live, _, _ = run(Engine(), events, masked)
    assert rebuilt.applied["rebuild"] == 1
    level = [field(e.models_of(cid)["requests"], "_level") for e in (rebuilt, live)]
    assert level[0] == level[1]
    states = [rebuilt.dump_customer(cid), live.dump_customer(cid)]
    # the lifecycle may differ (live masking changed what was scored during the range); the models do not
    for name in rebuilt.models_of(cid):
        r, m = rebuilt.models_of(cid)[name], live.models_of(cid)[name]
        assert all(np.array_equal(r.state[f.offset:f.offset + f.size], m.state[f.offset:f.offset + f.size],
                                  equal_nan=True) for f in r.family.persisted), name
    assert states[0] != plain()[0].dump_customer(cid)


def test_a_notify_window_mutes_alerts_inside_and_lets_open_incidents_resolve():
    _, events = scenario()
    _, alerts = plain()
    firing, resolved = first_incident(alerts)
    cid = firing["customer_id"]
    started, ended = parse_ts(firing["started_at"]), parse_ts(resolved["resolved_at"])
    later = [a for a in alerts if a["customer_id"] == cid and parse_ts(a["started_at"]) > ended + 3600]
    assert later, "the scenario has a second incident of that customer"
    second = later[0]["alert_id"]
    st = Steering()
    # starts while the first incident is open: its resolution must still reach the sinks
    st.put_window(parse_window({"id": "mw-mid", "customer_id": cid, "from": started + 2 * IV,
                                "until": ended + 4 * 3600, "mode": "notify", "created_at": events[0].ts}))
    # covers the second incident from before it began to after it ended
    s2 = parse_ts(later[0]["started_at"])
    st.put_window(parse_window({"id": "mw-all", "customer_id": cid, "from": s2 - 3600, "until": s2 + 6 * 3600,
                                "mode": "both", "created_at": events[0].ts}))
    _, _, out = run(Engine(), events, st)
    first = [a for a in out if a["alert_id"] == firing["alert_id"]]
    assert first[-1]["status"] == "resolved" and "silenced_by" not in first[-1]
    inside = [a for a in out if a["alert_id"] == second]
    assert {a["status"] for a in inside} == {"firing", "resolved"}
    assert all(a["silenced_by"] == ["mw-all"] for a in inside)
    assert [a for a in out if a["customer_id"] != cid] == [a for a in alerts if a["customer_id"] != cid]


def test_an_incident_kept_quiet_by_a_window_fires_within_two_intervals_after_it_ends():
    _, events = scenario()
    _, alerts = plain()
    firing, resolved = first_incident(alerts, min_duration=6)
    cid = firing["customer_id"]
    started, ended = parse_ts(firing["started_at"]), parse_ts(resolved["resolved_at"])
    until = started + 4 * IV  # ends while the customer is still anomalous
    st = Steering()
    st.put_window(parse_window({"id": "mw-early", "customer_id": cid, "from": started - 3600, "until": until,
                                "mode": "notify", "created_at": events[0].ts}))
    _, _, out = run(Engine(), events, st)
    mine = [a for a in out if a["customer_id"] == cid and started - 3600 <= parse_ts(a["event_ts"]) <= ended]
    quiet = [a for a in mine if a.get("silenced_by")]
    loud = [a for a in mine if not a.get("silenced_by")]
    assert quiet and quiet[0]["status"] == "firing" and any(a.get("window_ended") for a in quiet)
    assert loud and loud[0]["status"] == "firing" and parse_ts(loud[0]["event_ts"]) <= until + 2 * IV


def test_new_normal_accepts_the_current_level_at_once():
    _, events = scenario()
    _, alerts = plain()
    firing, _ = first_incident(alerts, min_duration=6)
    cid = firing["customer_id"]
    at = parse_ts(firing["event_ts"]) + IV + 60  # (an alert goes out once its interval has ended)
    st = Steering()
    v = verdict_from_alert(firing, "new_normal", at=at)
    st.put_verdict(v)
    cut = next(i for i, e in enumerate(events) if e.ts >= at + 2 * IV)
    base, _, _ = run(Engine(), events[:cut])
    eng, _, out = run(Engine(), events[:cut], st)
    assert eng.applied["accept"] == 1
    assert any(a["alert_id"] == firing["alert_id"] and a["status"] == "resolved" for a in out)
    last = next(e for e in reversed(events[:cut]) if e.customer_id == cid)
    moved = 0
    for sig in v.signals:
        b, s = base.models_of(cid)[sig], eng.models_of(cid)[sig]
        if not math.isnan(field(b, "_anom_since")):  # it was tracking a shift: now accepted, nothing pending
            assert math.isnan(field(s, "_anom_since")) or field(s, "_anom_since") > at
            moved += 1
    assert moved >= 1 and last.ts > at


def test_false_alarm_offsets_hold_then_fade_and_confirmed_removes_them():
    from detectors.feedback import Evidence, Verdict
    st = Steering()
    day = 86400.0
    fa = Verdict("0123456789abcdef", "false_alarm", "acme", 0.0, 1800.0, 3600.0,
                 (Evidence("requests", "up", 9.0, 3.0),))
    st.put_verdict(fa)
    assert st.offsets("acme", 3600.0 + day)[("requests", "up")] == (1.0, 6.0)
    assert st.offsets("acme", 3600.0 + 12 * 3600)[("requests", "up")] == (1.0, 1.0)  # other time of day
    assert st.offsets("acme", 3600.0 + 28 * day)[("requests", "up")] == pytest.approx((0.5, 3.5))
    assert st.offsets("acme", 3600.0 + day)[("requests", "down")] == (1.0, 1.0)  # near: every signal
    st.put_verdict(Verdict("fedcba9876543210", "confirmed", "acme", 5 * day, None, 5 * day + 60,
                           (Evidence("requests", "up", 12.0, 4.0),)))
    assert st.offsets("acme", 3600.0 + day)[("requests", "up")] == (1.0, 6.0)
    assert ("requests", "up") not in st.offsets("acme", 3600.0 + 6 * day)
    st.put_verdict(fa.withdraw(2 * day))
    assert st.offsets("acme", 3600.0 + 3 * day) is None


def onsets_of(engine, events, steering=None):
    eng = SteeredEngine(engine, steering)
    return [o for i in range(0, len(events), CHUNK) for o in eng.process_many(events[i:i + CHUNK]).onsets]


def test_customers_in_a_window_do_not_count_toward_parent_incidents_and_others_still_do():
    _, events = scenario()
    _, alerts = plain()
    firing, resolved = first_incident(alerts)
    cid = firing["customer_id"]
    started, ended = parse_ts(firing["started_at"]), parse_ts(resolved["resolved_at"])
    plain_onsets = onsets_of(Engine(), events)
    assert any(o.customer_id == cid and started - 3 * IV <= o.ts <= ended for o in plain_onsets)
    st = Steering()
    st.put_window(parse_window({"id": "mw", "customer_id": cid, "from": started - 6 * IV, "until": ended,
                                "mode": "notify", "created_at": events[0].ts}))
    steered = onsets_of(Engine(), events, st)
    inside = [o for o in steered if o.customer_id == cid and started - 6 * IV <= o.ts < ended]
    assert inside == []
    # every other onset is the same as without the window (the window mutes, it does not change models)
    expected = [o for o in plain_onsets if not (o.customer_id == cid and started - 6 * IV <= o.ts < ended)]
    assert steered == expected
