"""Customer maintenance windows: when a customer's alerts are muted and what its models do not learn.

A window (compacted topic ``silences``, key = its ``id``) covers one customer, optionally one
signal, from ``from`` until ``until``, and recurs when it has an ``rrule`` (RFC 5545, e.g.
``FREQ=WEEKLY;BYDAY=SU``: every occurrence starts at the rule's dates at the time of day of
``from`` and lasts ``until - from``). Its ``mode``:

* ``notify`` -- alerts are still produced to the ``alerts`` topic, with ``silenced_by``, and the
  sinks do not notify them; an incident open when the window starts still resolves at the sinks;
* ``learn`` -- the models score but do not learn the window's events (an announced migration
  does not become the new normal);
* ``both`` (the default) -- both.

``expire`` ends a window early: from ``expired_at`` on it covers nothing. Everything here is a
pure function of the records and a time, so live, replay and the correlator agree:

>>> from detectors.events import parse_ts
>>> w = parse_window({"id": "mw-1", "customer_id": "acme", "from": "2026-01-04T02:00:00Z",
...                   "until": "2026-01-04T04:00:00Z", "rrule": "FREQ=WEEKLY;BYDAY=SU",
...                   "created_at": "2026-01-01T00:00:00Z"})
>>> w.mode, format_ts(w.occurrence_at(parse_ts("2026-01-11T03:00:00Z"))[0])
('both', '2026-01-11T02:00:00Z')
>>> is_silenced([w], "acme", "requests", parse_ts("2026-01-18T02:30:00Z"))
True
>>> is_silenced([w], "acme", "requests", parse_ts("2026-01-18T04:00:00Z"))
False
>>> parse_window({"id": "mw-2", "customer_id": "acme", "from": "2026-01-04T04:00:00Z",
...               "until": "2026-01-04T02:00:00Z"})
Traceback (most recent call last):
...
detectors.feedback.InvalidRecord: until (2026-01-04T02:00:00Z) must be after from (2026-01-04T04:00:00Z)
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Mapping

from .events import format_ts, show
from .feedback import MAX_NAME_CHARS, MAX_NOTE_CHARS, InvalidRecord, _text, _time, check_customer
from .signals import SIGNALS

__all__ = [
    "MODES",
    "SILENCE_SCHEMA",
    "Window",
    "is_silenced",
    "parse_window",
    "window_from_alertmanager",
    "window_id",
]

SILENCE_SCHEMA = "lookout.silence/v1"
NOTIFY, LEARN, BOTH = "notify", "learn", "both"
MODES = (NOTIFY, LEARN, BOTH)
#: a window's id: what a user types to expire it
WINDOW_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
#: recurrence frequencies a window may have (finer ones would be a window that never ends)
RRULE_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
MAX_RRULE_CHARS = 200
#: occurrence starts computed ahead at a time (they are cached per rule)
_CHUNK = 256
#: Alertmanager matcher names a Lookout window understands (alertname must be ours if given)
AM_CUSTOMER, AM_SIGNAL, AM_ALERTNAME = "customer", "signal", "alertname"
LOOKOUT_ALERTNAME = "LookoutAnomaly"


@dataclass(frozen=True)
class Window:
    """One maintenance window (see the module docstring); times are epoch seconds."""

    id: str
    customer_id: str
    signal: str | None
    start: float  # "from": the first occurrence's start
    end: float  # "until": the first occurrence's end
    rrule: str | None = None
    mode: str = BOTH
    reason: str = ""
    by: str = ""
    created_at: float = 0.0
    expired_at: float | None = None

    @property
    def notify(self) -> bool:
        """Whether the window mutes notifications."""
        return self.mode != LEARN

    @property
    def learn(self) -> bool:
        """Whether the window keeps its events out of the models."""
        return self.mode != NOTIFY

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def covers(self, signal: str | None) -> bool:
        """Whether the window applies to ``signal`` (None: the whole customer)."""
        return self.signal is None or self.signal == signal

    def occurrence_at(self, t: float) -> tuple[float, float] | None:
        """The occurrence ``[start, end)`` in force at ``t`` (clipped by ``expired_at``), or None."""
        if t < self.start or (self.expired_at is not None and t >= self.expired_at):
            return None
        if self.rrule is None:
            s, e = self.start, self.end
        else:
            first = _occurrences(self.rrule, self.start).last_at_or_before(t)
            if first is None:
                return None
            s, e = first, first + self.duration_s
        if not s <= t < e:
            return None
        return s, e if self.expired_at is None else min(e, self.expired_at)

    def occurrences(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """Every occurrence overlapping ``[t0, t1)``, clipped by ``expired_at``, in order."""
        stop = t1 if self.expired_at is None else min(t1, self.expired_at)
        if stop <= t0:
            return []
        if self.rrule is None:
            spans = [(self.start, self.end)]
        else:
            starts = _occurrences(self.rrule, self.start)
            spans = [(s, s + self.duration_s) for s in starts.between(t0 - self.duration_s, stop)]
        out = []
        for s, e in spans:
            if self.expired_at is not None:
                e = min(e, self.expired_at)
            if s < stop and e > t0 and e > s:
                out.append((s, e))
        return out

    def expire(self, at: float) -> "Window":
        """This window ended at ``at`` (never later than it was already)."""
        return replace(self, expired_at=at if self.expired_at is None else min(at, self.expired_at))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SILENCE_SCHEMA,
            "id": self.id,
            "customer_id": self.customer_id,
            "signal": self.signal,
            "from": format_ts(self.start),
            "until": format_ts(self.end),
            "rrule": self.rrule,
            "mode": self.mode,
            "reason": self.reason,
            "by": self.by,
            "created_at": format_ts(self.created_at),
            "expired_at": format_ts(self.expired_at) if self.expired_at is not None else None,
        }


class _Starts:
    """Occurrence starts of one rule, computed lazily in chunks and kept sorted."""

    def __init__(self, rule: Any):
        self.rule = rule
        self.starts: list[float] = []
        self.done = False  # the rule has no more occurrences

    def _extend_to(self, t: float) -> None:
        while not self.done and (not self.starts or self.starts[-1] <= t):
            after = self.starts[-1] if self.starts else None
            got = 0
            it = iter(self.rule) if after is None else self.rule.xafter(_utc(after), count=_CHUNK, inc=False)
            for d in it:
                self.starts.append(d.timestamp())
                got += 1
                if got >= _CHUNK:
                    break
            if got < _CHUNK:
                self.done = True

    def last_at_or_before(self, t: float) -> float | None:
        self._extend_to(t)
        i = bisect.bisect_right(self.starts, t)
        return self.starts[i - 1] if i else None

    def between(self, t0: float, t1: float) -> list[float]:
        self._extend_to(t1)
        return self.starts[bisect.bisect_right(self.starts, t0):bisect.bisect_left(self.starts, t1)]


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc)


@lru_cache(maxsize=1024)
def _occurrences(text: str, start: float) -> _Starts:
    return _Starts(_rule(text, start))


def _rule(text: str, start: float) -> Any:
    """The recurrence of ``text`` from ``start``; :class:`InvalidRecord` if it is not one we take."""
    from dateutil import rrule

    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "\n" in body or ":" in body or "DTSTART" in body.upper():
        raise InvalidRecord(f"rrule must be one RRULE's parameters (e.g. FREQ=WEEKLY;BYDAY=SU), "
                            f"got {show(text)}")
    params = dict(p.split("=", 1) for p in body.upper().split(";") if "=" in p)
    if params.get("FREQ") not in RRULE_FREQS:
        raise InvalidRecord(f"rrule FREQ must be one of {', '.join(RRULE_FREQS)}, "
                            f"got {show(params.get('FREQ'))}")
    try:
        rule = rrule.rrulestr(body, dtstart=_utc(start))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRecord(f"rrule {show(text)} cannot be read: {exc}") from None
    if not isinstance(rule, rrule.rrule):
        raise InvalidRecord(f"rrule must be a single rule, got {show(text)}")
    return rule


def window_id(customer_id: str, signal: str | None, start: float, end: float, created_at: float) -> str:
    """A new window's id: short, and the same for the same request.

    >>> window_id("acme", None, 0.0, 3600.0, 10.0)
    'mw-3eb688f2ce'
    """
    blob = f"{customer_id}|{signal or ''}|{start}|{end}|{created_at}".encode()
    return "mw-" + hashlib.sha256(blob).hexdigest()[:10]


def parse_window(obj: Any, *, max_window_s: float | None = None,
                 max_backdate_s: float | None = None) -> Window:
    """A window record, validated; :class:`~detectors.feedback.InvalidRecord` with one line if not.

    ``max_window_s`` bounds an occurrence's length; ``max_backdate_s`` how long before its
    creation a window may start (what came before is beyond the state history kept).
    """
    if not isinstance(obj, Mapping):
        raise InvalidRecord(f"a window must be a JSON object, got {type(obj).__name__}")
    schema = obj.get("schema", SILENCE_SCHEMA)
    if schema != SILENCE_SCHEMA:
        raise InvalidRecord(f"schema must be {SILENCE_SCHEMA!r}, got {show(schema)}")
    wid = obj.get("id")
    if not isinstance(wid, str) or not WINDOW_ID_RE.match(wid):
        raise InvalidRecord(f"id must be 1-64 chars of [A-Za-z0-9._:-], got {show(wid)}")
    cid = check_customer(obj.get("customer_id"))
    signal = obj.get("signal")
    if signal is not None and signal not in SIGNALS:
        raise InvalidRecord(f"unknown signal {show(signal)} (known: {', '.join(SIGNALS)})")
    start, end = _time(obj, "from"), _time(obj, "until")
    assert start is not None and end is not None
    if end <= start:
        raise InvalidRecord(f"until ({format_ts(end)}) must be after from ({format_ts(start)})")
    if max_window_s is not None and end - start > max_window_s:
        raise InvalidRecord(f"the window lasts {_span(end - start)}, longer than the maximum of "
                            f"{_span(max_window_s)} (feedback.max_window_s)")
    mode = obj.get("mode") or BOTH
    if mode not in MODES:
        raise InvalidRecord(f"mode must be one of {', '.join(MODES)}, got {show(mode)}")
    rule = obj.get("rrule")
    if rule is not None:
        if not isinstance(rule, str) or len(rule) > MAX_RRULE_CHARS:
            raise InvalidRecord(f"rrule must be a string of at most {MAX_RRULE_CHARS} characters")
        _rule(rule, start)
        rule = rule.strip() or None
    created = _time(obj, "created_at", required=False)
    created = start if created is None else created
    if max_backdate_s is not None and start < created - max_backdate_s:
        raise InvalidRecord(f"from ({format_ts(start)}) is {_span(created - start)} before the window was "
                            f"created; at most {_span(max_backdate_s)} (feedback.max_backdate_s)")
    expired = _time(obj, "expired_at", required=False)
    return Window(wid, cid, signal, start, end, rule, mode, _text(obj, "reason", MAX_NOTE_CHARS),
                  _text(obj, "by", MAX_NAME_CHARS), created, expired)


def _span(seconds: float) -> str:
    """
    >>> _span(7 * 86400), _span(5400), _span(90)
    ('7 days', '1.5 h', '90 s')
    """
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


def window_from_alertmanager(obj: Any, *, now: float, mode: str | None = None,
                             max_window_s: float | None = None,
                             max_backdate_s: float | None = None) -> Window:
    """An Alertmanager silence (``matchers``, ``startsAt``, ``endsAt``, ``createdBy``, ``comment``)
    as a Lookout window.

    Matchers must name one ``customer`` (and may name one ``signal``, and ``alertname`` =
    ``LookoutAnomaly``), all equality matchers: a window belongs to one customer. Its ``id``, if
    given, is kept (so the same silence posted twice is one window).

    >>> w = window_from_alertmanager({"matchers": [{"name": "customer", "value": "acme", "isRegex": False}],
    ...     "startsAt": "2026-01-05T22:00:00Z", "endsAt": "2026-01-06T02:00:00Z", "createdBy": "bob",
    ...     "comment": "origin migration"}, now=1767650000.0)
    >>> w.customer_id, w.mode, w.reason, w.by
    ('acme', 'both', 'origin migration', 'bob')
    """
    if not isinstance(obj, Mapping):
        raise InvalidRecord(f"a silence must be a JSON object, got {type(obj).__name__}")
    matchers = obj.get("matchers")
    if not isinstance(matchers, list) or not matchers:
        raise InvalidRecord("matchers must be a non-empty list")
    found: dict[str, Any] = {}
    for i, m in enumerate(matchers):
        if not isinstance(m, Mapping):
            raise InvalidRecord(f"matcher {i} must be an object")
        name, value = m.get("name"), m.get("value")
        if m.get("isRegex") or m.get("isEqual") is False:
            raise InvalidRecord(f"matcher {i} ({show(name)}): only equality matchers are supported "
                                "(a window names one customer)")
        if name not in (AM_CUSTOMER, AM_SIGNAL, AM_ALERTNAME):
            raise InvalidRecord(f"matcher {i}: unsupported label {show(name)} "
                                f"(use {AM_CUSTOMER}, {AM_SIGNAL}, {AM_ALERTNAME})")
        if name in found:
            raise InvalidRecord(f"matcher {i}: label {name} given twice")
        found[str(name)] = value
    if found.get(AM_ALERTNAME, LOOKOUT_ALERTNAME) != LOOKOUT_ALERTNAME:
        raise InvalidRecord(f"alertname must be {LOOKOUT_ALERTNAME}, got {show(found[AM_ALERTNAME])}")
    if AM_CUSTOMER not in found:
        raise InvalidRecord("a matcher on customer is required")
    start, end = _time(obj, "startsAt"), _time(obj, "endsAt")
    assert start is not None and end is not None
    cid, signal = found[AM_CUSTOMER], found.get(AM_SIGNAL)
    record = {"id": obj.get("id") or window_id(str(cid), signal, start, end, now), "customer_id": cid,
              "signal": signal, "from": start, "until": end, "mode": mode or BOTH,
              "reason": obj.get("comment"), "by": obj.get("createdBy"), "created_at": now}
    return parse_window(record, max_window_s=max_window_s, max_backdate_s=max_backdate_s)


def is_silenced(windows: Iterable[Window], customer_id: str, signal: str | None, t: float,
                mode: str = NOTIFY) -> bool:
    """Whether ``customer_id`` (for ``signal``; None: every signal) is in a window at ``t``.

    ``mode`` is what is asked about: ``notify`` (are its notifications muted?) or ``learn``
    (is it kept out of the models?). The correlator asks this to leave customers in a window out
    of parent incidents.
    """
    want_notify = mode != LEARN
    for w in windows:
        if w.customer_id != customer_id or not w.covers(signal):
            continue
        if (w.notify if want_notify else w.learn) and w.occurrence_at(t) is not None:
            return True
    return False


def active_windows(windows: Iterable[Window], t: float) -> list[tuple[Window, tuple[float, float]]]:
    """The windows in force at ``t`` and their current occurrence (what ``silence list`` shows)."""
    out = []
    for w in windows:
        occ = w.occurrence_at(t)
        if occ is not None:
            out.append((w, occ))
    return out


def upcoming(w: Window, t: float, horizon_s: float) -> list[tuple[float, float]]:
    """Occurrences of ``w`` that start within ``horizon_s`` after ``t`` (for listings)."""
    return [o for o in w.occurrences(t, t + horizon_s) if o[0] >= t]
