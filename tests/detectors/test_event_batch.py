"""EventBatch: events kept as columns give what parse_event and the engine give event by event."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.engine import Engine
from detectors.events import EventBatch, InvalidEvent, event_fields, parse_batch, parse_event
from detectors.synthetic import SimConfig, simulate

#: field values that parse_event accepts, refuses, or accepts only after converting them
VALUES = {
    "customer_id": st.sampled_from(["c1", "c2", "cust-0001", "", "c\n", 5, None, "x" * 65]),
    "ts": st.sampled_from(["2026-01-05T00:00:00Z", "2026-01-05T01:00:00+01:00", 1767571200, 1767571200.5,
                           "2026-01-05T00:00:00", True, None, -1, "soon"]),
    "interval_s": st.sampled_from([60, 300, 0, 604801, 60.0, True, None, "60"]),
    "requests": st.sampled_from([0, 10, 1000, 2**53, 2**53 + 1, 1000.0, 10.5, -1, True, None, "10"]),
    "status_4xx": st.sampled_from([0, 1, 5, 5.0, -1, None]),
    "status_5xx": st.sampled_from([0, 2, 5, 2.0, None, False]),
    "latency_p50_ms": st.sampled_from([12.5, 0.0, 13, 86_400_001.0, -0.5, None, "1", True]),
    "latency_p99_ms": st.sampled_from([300.0, 300, None, 1e300]),
    "cache_hits": st.sampled_from([0, 5, 9, 5.0, 2000, None, -3]),
    "bytes_out": st.sampled_from([0, 123456789, 1.5, None, 2**60]),
    "origin_errors": st.sampled_from([{}, {"522": 2}, {"522": 0, "502": 1}, {"52": 1}, {"522": 1.0},
                                      {"522": 5000}, None, [1], "522"]),
    "extra": st.sampled_from([1, {"a": [1]}, None]),
}


#: a valid event that objects() changes a field or two of
BASE = {"customer_id": "c1", "ts": "2026-01-05T00:00:00Z", "interval_s": 300, "requests": 1000,
        "status_4xx": 5, "status_5xx": 2, "latency_p50_ms": 12.5, "latency_p99_ms": 300.0, "cache_hits": 900,
        "bytes_out": 10**6, "origin_errors": {"522": 1}}


def changed(base, changes, dropped):
    obj = base | dict(changes)
    for k in dropped:
        obj.pop(k, None)
    return obj


def objects():
    change = st.sampled_from(sorted(VALUES)).flatmap(lambda k: VALUES[k].map(lambda v: (k, v)))
    return st.one_of(
        st.builds(changed, st.just(BASE), st.lists(change, max_size=2), st.sets(st.sampled_from(sorted(BASE)),
                                                                               max_size=2)),
        st.fixed_dictionaries({}, optional=VALUES),
        st.sampled_from([None, [], "event", 7]),
    )


def outcome(fn, obj):
    try:
        return fn(obj)
    except InvalidEvent as exc:
        return ("invalid", str(exc), exc.kind)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects())
def test_one_object_in_a_batch_is_what_parse_event_makes_of_it(obj):
    want = outcome(parse_event, obj)
    got = outcome(parse_batch, [obj])
    if isinstance(want, tuple):
        assert got == want
    else:
        assert list(got) == [want] and got[0] == want
        assert got.column("origin_errors_total") == [want.origin_errors_total]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(objects(), min_size=1, max_size=12))
def test_a_batch_holds_the_events_or_raises_the_first_reason(objs):
    one_by_one = [outcome(parse_event, o) for o in objs]
    bad = [r for r in one_by_one if isinstance(r, tuple)]
    if bad:
        with pytest.raises(InvalidEvent) as info:
            parse_batch(objs)
        assert (str(info.value), info.value.kind) == bad[0][1:]
    else:
        batch = parse_batch(objs)
        assert list(batch) == one_by_one and len(batch) == len(objs)
        assert batch.column("requests") == [e.requests for e in one_by_one]
        assert batch.column("origin_errors_total") == [e.origin_errors_total for e in one_by_one]


def test_batches_slice_and_join_with_event_lists():
    objs = [{"customer_id": f"c{i}", "ts": 60 * i, "requests": i, "status_4xx": 0, "status_5xx": 0,
             "origin_errors": {"522": i % 2}} for i in range(6)]
    events = [parse_event(o) for o in objs]
    batch = parse_batch(objs)
    joined = EventBatch.of([batch[:2], events[2:4], [], batch[4:]])
    assert list(joined) == events and isinstance(batch[1:3], EventBatch) and len(batch[1:3]) == 2
    assert event_fields(objs[1])[-1] == {"522": 1} and batch[0].origin_errors == {}
    # an event's mapping is its own: changing it does not change the batch
    batch[1].origin_errors["522"] = 99
    assert batch[1].origin_errors == {"522": 1}
    with pytest.raises(ValueError):
        EventBatch([[1], [2]])


def test_the_engine_gives_the_same_for_a_batch_and_for_its_events():
    sim = simulate(SimConfig(customers=8, duration_s=2 * 86400, interval_s=300, seed=3, incidents=4,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    objs = list(sim.events())
    objs[40:40] = objs[30:35]  # duplicates
    a, b = Engine(), Engine()
    got, want = [], []
    for i in range(0, len(objs), 500):
        chunk = objs[i:i + 500]
        got.append(a.process_many(parse_batch(chunk)))
        want.append(b.process_many([parse_event(o) for o in chunk]))
    assert got == want
    assert any(v.alerts for v in want) and any("duplicate" in v.outcomes for v in want)
    assert a.dump_all() == b.dump_all()
