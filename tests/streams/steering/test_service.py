"""The library functions behind `lookout feedback`, `lookout silence` and the HTTP endpoints."""
from __future__ import annotations

import json

import pytest

from detectors.config import FeedbackConfig
from detectors.events import parse_ts
from detectors.steering import Steering
from streams.steering.records import FEEDBACK, SILENCES, SteeringFeed
from streams.steering.service import (
    SteeringError,
    add_alertmanager_silence,
    add_window,
    expire_window,
    give_verdict,
    list_windows,
    withdraw_verdict,
)
from streams.steering.store import MemoryStore

NOW = parse_ts("2026-01-07T12:00:00Z")
ALERT = {"alert_id": "39b3b6ed530df191", "status": "firing", "customer_id": "acme",
         "started_at": "2026-01-07T11:00:00Z", "resolved_at": None,
         "details": {"error_5xx": {"observed": 0.08, "expected": 0.01, "surprise": 12.0}}}


def feed_from(store):
    """What a worker reading both topics ends up with (and the dead letters it parked)."""
    feed = SteeringFeed(Steering())
    dead = [feed.apply(t, k.encode(), None if v is None else json.dumps(v).encode())
            for t in (FEEDBACK, SILENCES) for k, v in store.read_all(t)]
    return feed.steering, [d for d in dead if d is not None]


def test_a_verdict_is_written_under_its_alert_id_and_a_worker_reads_it_back():
    store = MemoryStore(alerts=[ALERT])
    v = give_verdict(store, ALERT["alert_id"], "false_alarm", now=NOW, by="alice", note="batch job")
    assert store.read_all(FEEDBACK) == [(ALERT["alert_id"], v.to_json())]
    st, dead = feed_from(store)
    assert not dead and st.verdicts[ALERT["alert_id"]] == v
    assert st.offsets("acme", NOW + 60)[("error_5xx", "up")] == (1.0, 1.0 + (8.0 * 2 - 1.0))


def test_an_unknown_alert_id_or_verdict_is_refused_with_one_line():
    store = MemoryStore(alerts=[ALERT])
    with pytest.raises(SteeringError) as err:
        give_verdict(store, "0000000000000000", "expected", now=NOW)
    assert err.value.status == 404 and str(err.value).startswith("unknown alert id 0000000000000000")
    with pytest.raises(SteeringError, match="alert_id must be 16 lower-case hex digits"):
        give_verdict(store, "nope", "expected", now=NOW)
    with pytest.raises(SteeringError, match="verdict must be one of"):
        give_verdict(store, ALERT["alert_id"], "meh", now=NOW)
    assert store.read_all(FEEDBACK) == []


def test_a_verdict_can_be_withdrawn_once():
    store = MemoryStore(alerts=[ALERT])
    give_verdict(store, ALERT["alert_id"], "expected", now=NOW, by="alice")
    w = withdraw_verdict(store, ALERT["alert_id"], now=NOW + 600, by="bob")
    assert (w.verdict, w.withdrawn_at, w.withdrawn_by) == ("expected", NOW + 600, "bob")
    with pytest.raises(SteeringError, match="withdrawn already") as err:
        withdraw_verdict(store, ALERT["alert_id"], now=NOW + 700)
    assert err.value.status == 409
    with pytest.raises(SteeringError, match="no verdict on alert 0123456789abcdef"):
        withdraw_verdict(store, "0123456789abcdef", now=NOW)
    st, _ = feed_from(store)
    assert not st.verdicts[ALERT["alert_id"]].active(NOW + 900)


def test_windows_are_added_listed_and_expired():
    store, fb = MemoryStore(), FeedbackConfig()
    w = add_window(store, fb, customer_id="acme", start=NOW + 3600, until=NOW + 5 * 3600, now=NOW,
                   reason="origin migration", by="alice")
    weekly = add_window(store, fb, customer_id="beta", start=NOW - 1800, until=NOW + 1800, now=NOW,
                        rrule="FREQ=WEEKLY", mode="notify")
    assert [x.id for x in list_windows(store, now=NOW)] == [weekly.id, w.id]
    assert [x.id for x in list_windows(store, now=NOW, customer_id="acme")] == [w.id]
    ended = expire_window(store, weekly.id, now=NOW + 60, by="bob")
    assert ended.occurrence_at(NOW + 120) is None and ended.occurrence_at(NOW) is not None
    assert [x.id for x in list_windows(store, now=NOW + 120)] == [w.id]
    assert len(list_windows(store, now=NOW + 120, include_past=True)) == 2
    with pytest.raises(SteeringError, match="expired already") as err:
        expire_window(store, weekly.id, now=NOW + 180)
    assert err.value.status == 409
    with pytest.raises(SteeringError, match="unknown window id 'mw-none'"):
        expire_window(store, "mw-none", now=NOW)
    st, dead = feed_from(store)
    assert not dead and set(st.windows) == {w.id, weekly.id}


@pytest.mark.parametrize("kwargs, reason", [
    ({"until": NOW - 60}, "until (2026-01-07T11:59:00Z) must be after from (2026-01-07T12:00:00Z)"),
    ({"until": NOW + 8 * 86400},
     "the window lasts 8 days, longer than the maximum of 7 days (feedback.max_window_s)"),
    ({"customer_id": "a b"}, "customer_id must be 1-64 chars of [A-Za-z0-9._:-], got 'a b'"),
])
def test_a_bad_window_is_refused_and_nothing_is_written(kwargs, reason):
    store = MemoryStore()
    args = dict(customer_id="acme", start=NOW, until=NOW + 3600, now=NOW)
    with pytest.raises(SteeringError) as err:
        add_window(store, FeedbackConfig(), **{**args, **kwargs})
    assert str(err.value) == reason and err.value.status == 400 and store.read_all(SILENCES) == []


def test_the_maximum_window_is_configurable():
    with pytest.raises(SteeringError, match="longer than the maximum of 2 h"):
        add_window(MemoryStore(), FeedbackConfig(max_window_s=7200), customer_id="acme", start=NOW,
                   until=NOW + 3 * 3600, now=NOW)


def test_an_alertmanager_silence_is_stored_as_a_customer_window():
    store = MemoryStore()
    w = add_alertmanager_silence(store, FeedbackConfig(), {
        "matchers": [{"name": "customer", "value": "acme", "isRegex": False}],
        "startsAt": "2026-01-07T13:00:00Z", "endsAt": "2026-01-07T15:00:00Z", "createdBy": "carol",
        "comment": "db failover"}, now=NOW)
    assert store.read_all(SILENCES) == [(w.id, w.to_json())] and w.by == "carol"


def test_bad_records_on_the_topics_become_dead_letters_and_change_nothing():
    feed = SteeringFeed(Steering())
    bad = [
        (FEEDBACK, b"39b3b6ed530df191", b"{not json"),
        (FEEDBACK, b"1111111111111111", b'{"alert_id": "39b3b6ed530df191", "verdict": "expected"}'),
        (SILENCES, b"mw-1", b'{"id": "mw-1", "customer_id": "acme", "from": 0, "until": 900000}'),
        (SILENCES, b"mw-2", b'{"id": "mw-3", "customer_id": "acme", "from": 0, "until": 60}'),
        (SILENCES, None, None),
    ]
    dead = [feed.apply(t, k, v, partition=0, offset=i) for i, (t, k, v) in enumerate(bad)]
    reasons = [d["reason"] for d in dead]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "customer_id must be 1-64 chars of [A-Za-z0-9._:-], got None"
    assert reasons[2] == ("the window lasts 10.4167 days, longer than the maximum of 7 days "
                          "(feedback.max_window_s)")
    assert reasons[3] == "key 'mw-2' is not the record's id 'mw-3'"
    assert reasons[4] == "a tombstone (null value) needs a key"
    assert all(d["kind"] == "contract" for d in dead) and [d["offset"] for d in dead] == [0, 1, 2, 3, 4]
    assert not feed.steering.customers
    assert feed.counts[("verdict", "invalid")] == 2 and feed.counts[("window", "invalid")] == 3
