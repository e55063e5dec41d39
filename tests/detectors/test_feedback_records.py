"""Verdict and window records: what they carry, and the one-line reason for each bad one."""
from __future__ import annotations

import pytest

from detectors.events import parse_ts
from detectors.feedback import InvalidRecord, parse_verdict, verdict_from_alert
from detectors.silences import is_silenced, parse_window, window_from_alertmanager

T0 = parse_ts("2026-01-05T10:00:00Z")
ALERT = {
    "alert_id": "39b3b6ed530df191", "status": "resolved", "customer_id": "acme",
    "started_at": "2026-01-05T10:00:00Z", "resolved_at": "2026-01-05T11:00:00Z",
    "details": {
        "requests": {"observed": 900.0, "expected": 300.0, "surprise": 6.5},
        "cache_hit": {"observed": 0.2, "expected": 0.8, "surprise": 4.0},
    },
}


def verdict(**over):
    return dict(verdict_from_alert(ALERT, "false_alarm", at=T0 + 7200, by="alice").to_json(), **over)


def test_a_verdict_carries_what_each_signal_showed():
    v = verdict_from_alert(ALERT, "expected", at=T0 + 7200, by="alice", note="planned load test")
    assert v.customer_id == "acme" and v.range_end == T0 + 3600
    ev = {e.signal: e for e in v.evidence}
    assert (ev["requests"].side, ev["requests"].magnitude) == ("up", 3.0)
    assert (ev["cache_hit"].side, ev["cache_hit"].magnitude) == ("down", 4.0)
    assert parse_verdict(v.to_json()) == v
    w = v.withdraw(T0 + 9000, by="bob")
    assert parse_verdict(w.to_json()) == w and w.active(T0 + 8000) and not w.active(T0 + 9000)


@pytest.mark.parametrize("over, reason", [
    ({"verdict": "maybe"},
     "verdict must be one of false_alarm, expected, new_normal, confirmed, got 'maybe'"),
    ({"alert_id": "XYZ"}, "alert_id must be 16 lower-case hex digits, got 'XYZ'"),
    ({"customer_id": "a b"}, "customer_id must be 1-64 chars of [A-Za-z0-9._:-], got 'a b'"),
    ({"at": "2026-01-05T09:00:00Z"},
     "at (2026-01-05T09:00:00Z) is before the incident started (2026-01-05T10:00:00Z)"),
    ({"at": "yesterday"}, "at 'yesterday' is not RFC 3339"),
    ({"withdrawn_at": "2026-01-05T11:00:00Z"},
     "withdrawn_at (2026-01-05T11:00:00Z) is before the verdict (2026-01-05T12:00:00Z)"),
    ({"evidence": []}, "evidence must be a list of 1 to 7 signals, got a list of 0 items"),
    ({"evidence": [{"signal": "nope", "side": "up", "surprise": 1}]},
     "evidence 0: unknown signal 'nope' (known: requests, error_5xx, error_4xx, origin_errors, latency_p99, "
     "cache_hit, bytes)"),
    ({"note": "x" * 501}, "note is 501 characters long (at most 500)"),
    ({"schema": "other/v9"}, "schema must be 'lookout.feedback/v1', got 'other/v9'"),
])
def test_a_bad_verdict_says_what_is_wrong_in_one_line(over, reason):
    with pytest.raises(InvalidRecord) as err:
        parse_verdict(verdict(**over))
    assert str(err.value).replace("\"", "'") == reason.replace("\"", "'")


def window(**over):
    base = {"id": "mw-1", "customer_id": "acme", "from": "2026-01-05T22:00:00Z",
            "until": "2026-01-06T02:00:00Z", "created_at": "2026-01-05T12:00:00Z"}
    return parse_window(dict(base, **over), max_window_s=7 * 86400, max_backdate_s=86400)


def test_a_window_covers_from_until_and_recurs_by_its_rule():
    w = window(rrule="FREQ=WEEKLY;BYDAY=MO")
    inside, edge = parse_ts("2026-01-12T23:00:00Z"), parse_ts("2026-01-13T02:00:00Z")
    assert w.occurrence_at(parse_ts("2026-01-05T22:00:00Z")) == (T0 + 12 * 3600, T0 + 16 * 3600)
    assert w.occurrence_at(inside) == (parse_ts("2026-01-12T22:00:00Z"), edge)
    assert w.occurrence_at(edge) is None and w.occurrence_at(parse_ts("2026-01-08T23:00:00Z")) is None
    assert len(w.occurrences(T0, T0 + 28 * 86400)) == 4
    ended = w.expire(parse_ts("2026-01-12T23:30:00Z"))
    assert ended.occurrence_at(inside) == (parse_ts("2026-01-12T22:00:00Z"), parse_ts("2026-01-12T23:30:00Z"))
    assert ended.occurrence_at(parse_ts("2026-01-19T23:00:00Z")) is None


def test_silenced_asks_per_signal_and_mode():
    t = parse_ts("2026-01-05T23:00:00Z")
    latency_only = window(id="mw-2", signal="latency_p99", mode="notify")
    learn_only = window(id="mw-3", customer_id="other", mode="learn")
    assert is_silenced([latency_only], "acme", "latency_p99", t)
    assert not is_silenced([latency_only], "acme", "error_5xx", t)
    assert not is_silenced([learn_only], "other", "requests", t)
    assert is_silenced([learn_only], "other", "requests", t, mode="learn")
    assert not is_silenced([latency_only], "acme", "latency_p99", t + 86400)


@pytest.mark.parametrize("over, reason", [
    ({"until": "2026-01-05T21:00:00Z"},
     "until (2026-01-05T21:00:00Z) must be after from (2026-01-05T22:00:00Z)"),
    ({"until": "2026-01-15T22:00:00Z"},
     "the window lasts 10 days, longer than the maximum of 7 days (feedback.max_window_s)"),
    ({"rrule": "FREQ=SECONDLY"}, "rrule FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY, got 'SECONDLY'"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "rrule 'FREQ=WEEKLY;BYDAY=XX' cannot be read: invalid 'BYDAY': XX"),
    ({"mode": "mute"}, "mode must be one of notify, learn, both, got 'mute'"),
    ({"signal": "errors"}, "unknown signal 'errors' (known: requests, error_5xx, error_4xx, origin_errors, "
                           "latency_p99, cache_hit, bytes)"),
    ({"created_at": "2026-01-08T12:00:00Z"},
     "from (2026-01-05T22:00:00Z) is 2.58333 days before the window was created; at most 24 h "
     "(feedback.max_backdate_s)"),
    ({"id": "a/b"}, "id must be 1-64 chars of [A-Za-z0-9._:-], got 'a/b'"),
])
def test_a_bad_window_says_what_is_wrong_in_one_line(over, reason):
    with pytest.raises(InvalidRecord) as err:
        window(**over)
    assert str(err.value) == reason


def am(matchers, **over):
    base = {"matchers": matchers, "startsAt": "2026-01-05T22:00:00Z", "endsAt": "2026-01-06T02:00:00Z",
            "createdBy": "bob", "comment": "origin migration"}
    return window_from_alertmanager(dict(base, **over), now=T0, max_window_s=7 * 86400)


def test_an_alertmanager_silence_becomes_a_customer_window():
    w = am([{"name": "alertname", "value": "LookoutAnomaly", "isRegex": False},
            {"name": "customer", "value": "acme", "isRegex": False, "isEqual": True},
            {"name": "signal", "value": "error_5xx", "isRegex": False}], id="am-42")
    assert (w.id, w.customer_id, w.signal, w.mode, w.by, w.reason) == (
        "am-42", "acme", "error_5xx", "both", "bob", "origin migration")
    assert (w.start, w.end) == (parse_ts("2026-01-05T22:00:00Z"), parse_ts("2026-01-06T02:00:00Z"))


@pytest.mark.parametrize("matchers, reason", [
    ([{"name": "customer", "value": "acme.*", "isRegex": True}],
     "matcher 0 ('customer'): only equality matchers are supported (a window names one customer)"),
    ([{"name": "severity", "value": "critical"}, {"name": "customer", "value": "acme"}],
     "matcher 0: unsupported label 'severity' (use customer, signal, alertname)"),
    ([{"name": "signal", "value": "error_5xx"}], "a matcher on customer is required"),
    ([{"name": "alertname", "value": "Other"}, {"name": "customer", "value": "acme"}],
     "alertname must be LookoutAnomaly, got 'Other'"),
])
def test_an_alertmanager_silence_lookout_cannot_honour_is_refused(matchers, reason):
    with pytest.raises(InvalidRecord) as err:
        am(matchers)
    assert str(err.value) == reason
