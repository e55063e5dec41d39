"""Verdicts on alerts: what a support engineer said about an incident, as a validated record.

A verdict is written once per alert (compacted topic ``feedback``, key = ``alert_id``); a later
record for the same alert replaces it, and a withdrawal is a record with ``withdrawn_at`` set.
The record is self-contained: it carries the customer, the incident's time range and the
evidence each of the alert's signals had, so a worker applies it without looking anything up.

=============  ==========================================================================
verdict        effect (applied by :mod:`detectors.steering`)
=============  ==========================================================================
false_alarm    the customer x signal needs more evidence next time (an offset that decays
               over weeks); the open incident resolves now
expected       the incident's range is taken back out of the model (rebuilt without it);
               the incident resolves now
new_normal     the model accepts the current level now instead of after 24 h; the incident
               resolves now
confirmed      kept for evaluation; it resets any false-alarm offset of its signals
=============  ==========================================================================

Validation raises :class:`InvalidRecord` with one line that says what is wrong, like the event
contract does:

>>> alert = {"alert_id": "39b3b6ed530df191", "status": "firing", "customer_id": "acme",
...          "started_at": "2026-01-05T10:00:00Z", "resolved_at": None,
...          "details": {"requests": {"observed": 900.0, "expected": 300.0, "surprise": 6.5}}}
>>> v = verdict_from_alert(alert, "false_alarm", at=1767609000.0, by="alice")
>>> v.evidence
(Evidence(signal='requests', side='up', surprise=6.5, magnitude=3.0),)
>>> parse_verdict(v.to_json()) == v
True
>>> parse_verdict(dict(v.to_json(), verdict="meh"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
detectors.feedback.InvalidRecord: verdict must be one of false_alarm, expected, ..., got 'meh'
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .alerting import magnitude
from .events import CUSTOMER_ID_RE, InvalidEvent, format_ts, parse_time, show
from .signals import SIGNALS

__all__ = [
    "FEEDBACK_SCHEMA",
    "VERDICTS",
    "Evidence",
    "InvalidRecord",
    "Verdict",
    "parse_verdict",
    "verdict_from_alert",
]

FEEDBACK_SCHEMA = "lookout.feedback/v1"
FALSE_ALARM, EXPECTED, NEW_NORMAL, CONFIRMED = "false_alarm", "expected", "new_normal", "confirmed"
VERDICTS = (FALSE_ALARM, EXPECTED, NEW_NORMAL, CONFIRMED)
#: verdicts that end the open incident when they are applied
RESOLVING = frozenset({FALSE_ALARM, EXPECTED, NEW_NORMAL})
#: alert ids are the first 16 hex digits of a SHA-256 (:func:`detectors.alerting.alert_id`)
ALERT_ID_RE = re.compile(r"[0-9a-f]{16}\Z")
#: free-text fields (who, a note, a reason) are cut to keep records and logs small
MAX_NOTE_CHARS = 500
MAX_NAME_CHARS = 100
SIDES = ("up", "down")


class InvalidRecord(ValueError):
    """A verdict or window record breaks its contract; ``str(exc)`` is the one-line reason."""


@dataclass(frozen=True)
class Evidence:
    """What one signal of the alert showed: its direction, surprise (-log10 tail p) and magnitude
    (how many times worse than expected, :func:`detectors.alerting.magnitude`)."""

    signal: str
    side: str  # "up" (observed above expected) or "down"
    surprise: float
    magnitude: float = 1.0


@dataclass(frozen=True)
class Verdict:
    """One engineer's verdict on one alert (see the module docstring)."""

    alert_id: str
    verdict: str
    customer_id: str
    started_at: float  # when the incident started (event time)
    resolved_at: float | None  # when it resolved, None if it was open when the verdict was given
    at: float  # when the verdict was given (wall clock = event time it takes effect)
    evidence: tuple[Evidence, ...]
    by: str = ""
    note: str = ""
    withdrawn_at: float | None = None  # set: the verdict was withdrawn at that time
    withdrawn_by: str = ""

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(e.signal for e in self.evidence)

    def active(self, t: float) -> bool:
        """Whether the verdict stands at time ``t`` (given, and not withdrawn yet)."""
        return self.at <= t and (self.withdrawn_at is None or t < self.withdrawn_at)

    @property
    def range_end(self) -> float:
        """End of the incident's range as the verdict saw it (its resolution, else the verdict time)."""
        return self.resolved_at if self.resolved_at is not None else self.at

    def withdraw(self, at: float, by: str = "") -> "Verdict":
        """This verdict, withdrawn at ``at``."""
        return Verdict(self.alert_id, self.verdict, self.customer_id, self.started_at, self.resolved_at,
                       self.at, self.evidence, self.by, self.note, at, by)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": FEEDBACK_SCHEMA,
            "alert_id": self.alert_id,
            "verdict": self.verdict,
            "customer_id": self.customer_id,
            "started_at": format_ts(self.started_at),
            "resolved_at": format_ts(self.resolved_at) if self.resolved_at is not None else None,
            "at": format_ts(self.at),
            "by": self.by,
            "note": self.note,
            "evidence": [dict(signal=e.signal, side=e.side, surprise=e.surprise, magnitude=e.magnitude)
                         for e in self.evidence],
            "withdrawn_at": format_ts(self.withdrawn_at) if self.withdrawn_at is not None else None,
            "withdrawn_by": self.withdrawn_by,
        }

    def annotation(self) -> dict[str, Any]:
        """What the alert's ``resolved`` notification carries about this verdict."""
        out = {"verdict": self.verdict, "by": self.by, "at": format_ts(self.at)}
        if self.note:
            out["note"] = self.note
        return out


# -- validation -----------------------------------------------------------------------------------
def _time(obj: Mapping[str, Any], name: str, required: bool = True) -> float | None:
    v = obj.get(name)
    if v is None:
        if required:
            raise InvalidRecord(f"missing required field {name!r}")
        return None
    try:
        return parse_time(v)
    except InvalidEvent as exc:
        raise InvalidRecord(str(exc).replace("ts ", f"{name} ", 1)) from None


def _text(obj: Mapping[str, Any], name: str, limit: int) -> str:
    v = obj.get(name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise InvalidRecord(f"{name} must be a string, got {type(v).__name__}")
    if len(v) > limit:
        raise InvalidRecord(f"{name} is {len(v)} characters long (at most {limit})")
    return v


def check_customer(cid: Any) -> str:
    if not isinstance(cid, str) or not CUSTOMER_ID_RE.match(cid):
        raise InvalidRecord(f"customer_id must be 1-64 chars of [A-Za-z0-9._:-], got {show(cid)}")
    return cid


def check_alert_id(aid: Any) -> str:
    if not isinstance(aid, str) or not ALERT_ID_RE.match(aid):
        raise InvalidRecord(f"alert_id must be 16 lower-case hex digits, got {show(aid)}")
    return aid


def check_verdict(name: Any) -> str:
    if name not in VERDICTS:
        raise InvalidRecord(f"verdict must be one of {', '.join(VERDICTS)}, got {show(name)}")
    return str(name)


def _evidence(v: Any) -> tuple[Evidence, ...]:
    if not isinstance(v, list) or not 1 <= len(v) <= len(SIGNALS):
        raise InvalidRecord(f"evidence must be a list of 1 to {len(SIGNALS)} signals, got {show(v)}")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, Mapping):
            raise InvalidRecord(f"evidence {i} must be an object, got {type(item).__name__}")
        sig, side, surprise = item.get("signal"), item.get("side"), item.get("surprise")
        mag = item.get("magnitude", 1.0)
        if sig not in SIGNALS:
            raise InvalidRecord(f"evidence {i}: unknown signal {show(sig)} (known: {', '.join(SIGNALS)})")
        if side not in SIDES:
            raise InvalidRecord(f"evidence {i}: side must be 'up' or 'down', got {show(side)}")
        if isinstance(surprise, bool) or not isinstance(surprise, (int, float)) or not (
                math.isfinite(surprise) and surprise >= 0):
            raise InvalidRecord(f"evidence {i}: surprise must be a number >= 0, got {show(surprise)}")
        if isinstance(mag, bool) or not isinstance(mag, (int, float)) or not (
                math.isfinite(mag) and mag >= 1):
            raise InvalidRecord(f"evidence {i}: magnitude must be a number >= 1, got {show(mag)}")
        out.append(Evidence(str(sig), str(side), float(surprise), float(mag)))
    if len({e.signal for e in out}) != len(out):
        raise InvalidRecord("evidence names a signal twice")
    return tuple(out)


def parse_verdict(obj: Any) -> Verdict:
    """A verdict record (as :meth:`Verdict.to_json` writes it), validated; :class:`InvalidRecord` if not."""
    if not isinstance(obj, Mapping):
        raise InvalidRecord(f"a verdict must be a JSON object, got {type(obj).__name__}")
    schema = obj.get("schema", FEEDBACK_SCHEMA)
    if schema != FEEDBACK_SCHEMA:
        raise InvalidRecord(f"schema must be {FEEDBACK_SCHEMA!r}, got {show(schema)}")
    aid = check_alert_id(obj.get("alert_id"))
    verdict = check_verdict(obj.get("verdict"))
    cid = check_customer(obj.get("customer_id"))
    started = _time(obj, "started_at")
    resolved = _time(obj, "resolved_at", required=False)
    at = _time(obj, "at")
    withdrawn = _time(obj, "withdrawn_at", required=False)
    assert started is not None and at is not None
    if resolved is not None and resolved < started:
        raise InvalidRecord(f"resolved_at ({format_ts(resolved)}) is before started_at "
                            f"({format_ts(started)})")
    if at < started:
        raise InvalidRecord(f"at ({format_ts(at)}) is before the incident started ({format_ts(started)})")
    if withdrawn is not None and withdrawn < at:
        raise InvalidRecord(f"withdrawn_at ({format_ts(withdrawn)}) is before the verdict ({format_ts(at)})")
    return Verdict(aid, verdict, cid, started, resolved, at, _evidence(obj.get("evidence")),
                   _text(obj, "by", MAX_NAME_CHARS), _text(obj, "note", MAX_NOTE_CHARS), withdrawn,
                   _text(obj, "withdrawn_by", MAX_NAME_CHARS))


def verdict_from_alert(alert: Mapping[str, Any], verdict: str, *, at: float, by: str = "",
                       note: str = "") -> Verdict:
    """The verdict record for ``alert`` (its latest notification, as on the ``alerts`` topic).

    Each signal of the alert's ``details`` becomes one :class:`Evidence`: its side (observed
    above or below expected) and its surprise. Raises :class:`InvalidRecord` for an alert
    without what a verdict needs, or bad ``by``/``note``.
    """
    check_verdict(verdict)
    fields = {"by": by, "note": note}
    for name, limit in (("by", MAX_NAME_CHARS), ("note", MAX_NOTE_CHARS)):
        _text(fields, name, limit)
    details = alert.get("details")
    if not isinstance(details, Mapping) or not details:
        raise InvalidRecord(f"alert {show(alert.get('alert_id'))} has no signal details")
    evidence = []
    for sig, d in details.items():
        if sig not in SIGNALS or not isinstance(d, Mapping):
            continue
        obs, exp, surprise = d.get("observed"), d.get("expected"), d.get("surprise")
        o, x = _num(obs), _num(exp)
        known = o is not None and x is not None
        side = "down" if known and o < x else "up"  # type: ignore[operator]
        mag = magnitude(sig, o, x) if known else 1.0  # type: ignore[arg-type]
        evidence.append({"signal": sig, "side": side, "surprise": _num(surprise) or 0.0,
                         "magnitude": round(max(1.0, mag), 6)})
    record = {
        "alert_id": alert.get("alert_id"), "verdict": verdict, "customer_id": alert.get("customer_id"),
        "started_at": alert.get("started_at"), "resolved_at": alert.get("resolved_at"), "at": at,
        "by": by, "note": note, "evidence": evidence,
    }
    return parse_verdict(record)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)
