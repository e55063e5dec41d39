"""What ``lookout feedback``, ``lookout silence`` and the worker's HTTP endpoints do: one function each.

Every function validates first (the records' own rules, :mod:`detectors.feedback` and
:mod:`detectors.silences`), then writes one record through a :class:`~streams.steering.store.RecordStore`.
A request that cannot be honoured raises :class:`SteeringError` with one line and the HTTP status
that fits it (the commands exit with status 2 for every 4xx: the request was wrong).

>>> from streams.steering.store import MemoryStore
>>> store = MemoryStore(alerts=[{"alert_id": "39b3b6ed530df191", "status": "firing", "customer_id": "acme",
...     "started_at": "2026-01-05T10:00:00Z", "details": {"requests": {"observed": 9e3, "expected": 3e3}}}])
>>> give_verdict(store, "39b3b6ed530df191", "false_alarm", by="alice", now=1767609000.0).customer_id
'acme'
>>> give_verdict(store, "0000000000000000", "expected", now=1767609000.0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streams.steering.service.SteeringError: unknown alert id 0000000000000000: not on the alerts topic since ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from detectors.config import FeedbackConfig
from detectors.events import format_ts, show
from detectors.feedback import InvalidRecord, Verdict, check_alert_id, parse_verdict, verdict_from_alert
from detectors.silences import Window, parse_window, window_from_alertmanager, window_id

from .store import RecordStore

__all__ = ["SteeringError", "Topics", "add_alertmanager_silence", "add_window", "expire_window",
           "give_verdict", "list_windows", "withdraw_verdict"]

#: how far back an alert id is looked for on the alerts topic, by default
ALERT_LOOKBACK_S = 30 * 86400.0


class SteeringError(Exception):
    """A verdict or window that cannot be given; ``str(exc)`` is one line, ``status`` its HTTP status."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Topics:
    feedback: str = "feedback"
    silences: str = "silences"


#: the topics' default names
TOPICS = Topics()


def give_verdict(store: RecordStore, alert_id: str, verdict: str, *, now: float, by: str = "", note: str = "",
                 since: float | None = None, topics: Topics = Topics()) -> Verdict:
    """Record ``verdict`` on the alert ``alert_id`` (looked up on the alerts topic since ``since``,
    default 30 days back): the worker that owns its customer applies it."""
    since = now - ALERT_LOOKBACK_S if since is None else since
    try:
        check_alert_id(alert_id)
        alert = store.find_alert(alert_id, since)
        if alert is None:
            raise SteeringError(f"unknown alert id {alert_id}: not on the alerts topic since "
                                f"{format_ts(since)}", 404)
        v = verdict_from_alert(alert, verdict, at=now, by=by, note=note)
    except InvalidRecord as exc:
        raise SteeringError(str(exc)) from None
    store.write(topics.feedback, alert_id, v.to_json())
    return v


def current_verdict(store: RecordStore, alert_id: str, topics: Topics = Topics()) -> Verdict | None:
    """The verdict standing on ``alert_id`` (the latest record of its key), or None."""
    latest: Mapping[str, Any] | None = None
    for key, value in store.read_all(topics.feedback):
        if key == alert_id:
            latest = value
    if latest is None:
        return None
    try:
        return parse_verdict(latest)
    except InvalidRecord:
        return None


def withdraw_verdict(store: RecordStore, alert_id: str, *, now: float, by: str = "",
                     topics: Topics = Topics()) -> Verdict:
    """Withdraw the verdict on ``alert_id``: its effects end (a rebuilt model is rebuilt without it)."""
    try:
        check_alert_id(alert_id)
    except InvalidRecord as exc:
        raise SteeringError(str(exc)) from None
    v = current_verdict(store, alert_id, topics)
    if v is None:
        raise SteeringError(f"no verdict on alert {alert_id} to withdraw", 404)
    if v.withdrawn_at is not None:
        raise SteeringError(f"the {v.verdict} verdict on alert {alert_id} was withdrawn already, at "
                            f"{format_ts(v.withdrawn_at)}", 409)
    w = v.withdraw(max(now, v.at), by)
    store.write(topics.feedback, alert_id, w.to_json())
    return w


def add_window(store: RecordStore, fb: FeedbackConfig, *, customer_id: str, start: float, until: float,
               now: float, signal: str | None = None, rrule: str | None = None, mode: str = "both",
               reason: str = "", by: str = "", id: str | None = None, topics: Topics = Topics()) -> Window:
    """Announce a maintenance window (see :mod:`detectors.silences`); return it with its id."""
    record = {"id": id or window_id(customer_id, signal, start, until, now), "customer_id": customer_id,
              "signal": signal, "from": start, "until": until, "rrule": rrule, "mode": mode, "reason": reason,
              "by": by, "created_at": now}
    try:
        w = parse_window(record, max_window_s=fb.max_window_s, max_backdate_s=fb.max_backdate_s)
    except InvalidRecord as exc:
        raise SteeringError(str(exc)) from None
    store.write(topics.silences, w.id, w.to_json())
    return w


def add_alertmanager_silence(store: RecordStore, fb: FeedbackConfig, silence: Any, *, now: float,
                             mode: str | None = None, topics: Topics = Topics()) -> Window:
    """An Alertmanager-shaped silence (matchers on customer and signal) as a customer window."""
    try:
        w = window_from_alertmanager(silence, now=now, mode=mode, max_window_s=fb.max_window_s,
                                     max_backdate_s=fb.max_backdate_s)
    except InvalidRecord as exc:
        raise SteeringError(str(exc)) from None
    store.write(topics.silences, w.id, w.to_json())
    return w


def list_windows(store: RecordStore, *, now: float, include_past: bool = False,
                 customer_id: str | None = None, topics: Topics = Topics()) -> list[Window]:
    """The windows on the topic (latest record per id) that are in force or to come at ``now``
    (every one with ``include_past``), by start."""
    latest: dict[str, Mapping[str, Any] | None] = {}
    for key, value in store.read_all(topics.silences):
        latest[key] = value
    out = []
    for value in latest.values():
        if value is None:
            continue
        try:
            w = parse_window(value)
        except InvalidRecord:
            continue
        if customer_id is not None and w.customer_id != customer_id:
            continue
        if include_past or w.occurrence_at(now) is not None or _upcoming(w, now):
            out.append(w)
    return sorted(out, key=lambda w: (w.start, w.id))


def _upcoming(w: Window, now: float) -> bool:
    if w.expired_at is not None and w.expired_at <= now:
        return False
    if w.rrule is None:
        return w.start > now
    return bool(w.occurrences(now, now + 366 * 86400.0))


def expire_window(store: RecordStore, window_id_: str, *, now: float, by: str = "",
                  topics: Topics = Topics()) -> Window:
    """End window ``window_id_`` now (an occurrence in progress ends now, none follows)."""
    windows = {w.id: w for w in list_windows(store, now=now, include_past=True, topics=topics)}
    w = windows.get(window_id_)
    if w is None:
        raise SteeringError(f"unknown window id {show(window_id_)}", 404)
    if w.expired_at is not None and w.expired_at <= now:
        raise SteeringError(f"window {window_id_} has expired already, at {format_ts(w.expired_at)}", 409)
    ended = w.expire(now)
    record = ended.to_json()
    if by:
        record["reason"] = (f"{w.reason} " if w.reason else "") + f"[expired by {by}]"
    store.write(topics.silences, w.id, record)
    return ended
