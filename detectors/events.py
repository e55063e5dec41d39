"""The ``request-metrics`` event contract: validation of one decoded JSON object.

One event is one customer's traffic for one interval. Validation is strict about
what the detectors rely on and lenient about the rest: unknown extra fields are
ignored. Every rejection carries a short human-readable reason that ends up on
the dead-letter topic.

>>> e = parse_event({"customer_id": "acme", "ts": "2026-01-05T10:00:00Z",
...                  "requests": 1000, "status_4xx": 12, "status_5xx": 3,
...                  "origin_errors": {"522": 2}, "latency_p50_ms": 20.5,
...                  "latency_p99_ms": 180.0, "cache_hits": 900, "bytes_out": 123456})
>>> e.customer_id, e.ts, e.interval_s, e.origin_errors_total
('acme', 1767607200.0, 60, 2)
>>> parse_event({"customer_id": "acme", "ts": 0, "requests": 5, "status_4xx": 0, "status_5xx": 9})
Traceback (most recent call last):
...
detectors.events.InvalidEvent: status_4xx + status_5xx (9) exceeds requests (5)

Every rejection also has a bounded ``kind`` (one of :data:`INVALID_KINDS`), the label of the
dead-letter metric:

>>> try:
...     parse_event({"customer_id": "acme\\n", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0})
... except InvalidEvent as exc:
...     print(exc.kind, "-", exc)
contract - customer_id must be 1-64 chars of [A-Za-z0-9._:-], got 'acme\\n'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import lru_cache
from operator import attrgetter
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence, overload

#: the whole id, ASCII only (``\Z``: ``$`` would also match before a trailing newline)
CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z", re.ASCII)
DEFAULT_INTERVAL_S = 60
MAX_INTERVAL_S = 7 * 86400
#: events further than this in the future (vs. the epoch seconds 2100-01-01) are rejected as garbage
MAX_TS = 4102444800.0
#: default of how far an event may be ahead of the wall clock (the worker's ``max_future_s``)
DEFAULT_MAX_FUTURE_S = 3600.0
#: largest count accepted (requests, status codes, cache hits, bytes, origin errors): 2**53, the
#: largest integer every JSON implementation (and a float) represents exactly
MAX_COUNT = 2**53
#: largest latency accepted, ms (a day: anything slower is not a latency measurement)
MAX_LATENCY_MS = 86_400_000.0
#: longest ``ts`` text looked at (RFC 3339 with nanoseconds and an offset is 35 characters)
MAX_TS_CHARS = 64
#: longest value shown in a rejection reason (the raw message is on the DLQ record anyway)
MAX_REASON_VALUE_CHARS = 80

#: why a message was rejected (the ``kind`` label of ``lookout_dlq_messages_total``):
#: not UTF-8 JSON text at all
KIND_UNDECODABLE = "undecodable"
#: over a size limit: message bytes, nesting depth or digits of an integer
KIND_OVERSIZED = "oversized"
#: JSON, but breaks the event contract (fields, types, ranges, cross-field rules)
KIND_CONTRACT = "contract"
#: event time too far ahead of the wall clock
KIND_FUTURE = "future"
#: the decoder itself failed (a bug): the message is parked rather than crashing the worker
KIND_INTERNAL = "internal"
INVALID_KINDS = (KIND_UNDECODABLE, KIND_OVERSIZED, KIND_CONTRACT, KIND_FUTURE, KIND_INTERNAL)


class InvalidEvent(ValueError):
    """The event breaks the contract; ``str(exc)`` is the reason sent to the DLQ.

    Parameters
    ----------
    reason : str
        Short human-readable reason.
    kind : str
        Category of the rejection, one of :data:`INVALID_KINDS` (a bounded metric label).
    """

    def __init__(self, reason: str, kind: str = KIND_CONTRACT):
        if kind not in INVALID_KINDS:
            raise ValueError(f"unknown rejection kind {kind!r}; expected one of {INVALID_KINDS}")
        super().__init__(reason)
        self.kind = kind


def show(value: Any, limit: int = MAX_REASON_VALUE_CHARS) -> str:
    """A short, always printable description of ``value`` for a rejection reason.

    Scalars appear as their ``repr`` cut to ``limit`` characters; containers and huge integers
    (whose ``repr`` may be long, slow or even refused by Python) only by their size.

    >>> show("x" * 100, limit=10)
    "'xxxxxx..."
    >>> show(10**400), show([[1]] * 5), show(1.5)
    ('an integer of 401 digits', 'a list of 5 items', '1.5')
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return (
            f"an integer of {len(str(abs(value))) if value.bit_length() < 10_000 else 'thousands of'} digits"
        )
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, (str, bytes)):
        value = value[: limit + 1]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Event:
    customer_id: str
    ts: float  # interval start, epoch seconds (UTC)
    interval_s: int
    requests: int
    status_4xx: int
    status_5xx: int
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    cache_hits: int | None = None
    bytes_out: int | None = None
    origin_errors: Mapping[str, int] = field(default_factory=dict)

    @property
    def origin_errors_total(self) -> int:
        return sum(self.origin_errors.values())

    def to_json(self) -> dict[str, Any]:
        """The event back as a contract JSON object (``ts`` as RFC 3339)."""
        d: dict[str, Any] = {
            "customer_id": self.customer_id,
            "ts": format_ts(self.ts),
            "interval_s": self.interval_s,
            "requests": self.requests,
            "status_4xx": self.status_4xx,
            "status_5xx": self.status_5xx,
        }
        if self.origin_errors:
            d["origin_errors"] = dict(self.origin_errors)
        for k in ("latency_p50_ms", "latency_p99_ms", "cache_hits", "bytes_out"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


def format_ts(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC (``Z``), seconds precision unless fractional.

    >>> format_ts(0)
    '1970-01-01T00:00:00Z'
    """
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if ts != int(ts):
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(value: Any) -> float:
    """RFC 3339 string or epoch seconds → epoch seconds (float).

    >>> parse_ts("2026-01-01T00:00:00Z"), parse_ts(1767225600), parse_ts("2026-01-01T01:00:00+01:00")
    (1767225600.0, 1767225600.0, 1767225600.0)
    """
    if isinstance(value, str):
        if len(value) > MAX_TS_CHARS:  # before the cache: it must not keep long garbage
            raise InvalidEvent(f"ts {show(value)} is not RFC 3339 (longer than {MAX_TS_CHARS} characters)")
        return _parse_ts_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEvent(f"ts must be an RFC 3339 string or epoch seconds, got {type(value).__name__}")
    # compare before converting: float() of a huge int raises OverflowError
    if not 0 <= value <= MAX_TS:  # False for NaN too
        raise InvalidEvent(f"ts {show(value)} is out of range")
    return float(value)


def parse_time(value: Any) -> float:
    """Like :func:`parse_ts`, but epoch seconds may also be text (CSV cells, label files, URLs).

    >>> parse_time(" 1767225600 "), parse_time("1767225600.5"), parse_time("2026-01-01T00:00:00Z")
    (1767225600.0, 1767225600.5, 1767225600.0)
    """
    if isinstance(value, str):
        s = value.strip()
        try:
            value = float(s)
        except ValueError:
            value = s
    return parse_ts(value)


def time_or_none(value: Any) -> float | None:
    """:func:`parse_time`, or ``None`` when ``value`` is missing or not a valid time.

    For reading back our own outputs (alerts, labels), where a missing time is expected and a
    bad one is skipped rather than fatal.

    >>> time_or_none("1970-01-01T00:01:00Z"), time_or_none(None), time_or_none("soon"), time_or_none(True)
    (60.0, None, None, None)
    """
    if value is None:
        return None
    try:
        return parse_time(value)
    except InvalidEvent:
        return None


@lru_cache(maxsize=4096)
def _parse_ts_text(value: str) -> float:
    """RFC 3339 text -> epoch seconds; cached: every customer of an interval shares its ``ts``."""
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise InvalidEvent(f"ts {show(value)} is not RFC 3339") from None
    if dt.tzinfo is None:
        raise InvalidEvent(f"ts {show(value)} has no time zone (use Z or an offset)")
    try:
        ts = dt.timestamp()
    except (OverflowError, ValueError, OSError):  # e.g. year 1 with a positive offset
        raise InvalidEvent(f"ts {show(value)} is out of range") from None
    if not 0 <= ts <= MAX_TS:
        raise InvalidEvent(f"ts {show(value)} is out of range")
    return ts


@overload
def _count(obj: Mapping[str, Any], name: str, required: Literal[True] = ...) -> int: ...
@overload
def _count(obj: Mapping[str, Any], name: str, required: Literal[False]) -> int | None: ...


def _count(obj: Mapping[str, Any], name: str, required: bool = True) -> int | None:
    v = obj.get(name)
    if type(v) is int and 0 <= v <= MAX_COUNT:  # the common case, first
        return v
    if v is None:
        if required:
            raise InvalidEvent(f"missing required field {name!r}")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidEvent(f"{name} must be a non-negative integer, got {type(v).__name__}")
    if v < 0:  # NaN falls through to the checks below
        raise InvalidEvent(f"{name} must be non-negative, got {show(v)}")
    if not v <= MAX_COUNT:  # compare before int(): int(1e300) is a 300-digit integer, int(inf) raises
        raise InvalidEvent(f"{name} {show(v)} exceeds the maximum count {MAX_COUNT}")
    if isinstance(v, float):
        if not v.is_integer():
            raise InvalidEvent(f"{name} must be an integer, got {show(v)}")
        v = int(v)
    return v


def _ms(obj: Mapping[str, Any], name: str) -> float | None:
    v = obj.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_LATENCY_MS:
        raise InvalidEvent(f"{name} must be a number from 0 to {MAX_LATENCY_MS:.0f}, got {show(v)}")
    return float(v)


#: customer ids already found valid, remembered up to this many (then forgotten all at once)
KNOWN_IDS_MAX = 100_000
_known_ids: set[str] = set()
#: every valid ``origin_errors`` key: three ASCII digits
_STATUS_CODES = frozenset(f"{i:03d}" for i in range(1000))
_MISSING = object()


def _valid_id(cid: Any) -> bool:
    """Is ``cid`` a customer id of the contract? (remembers the valid ones: ids repeat every interval)"""
    if not isinstance(cid, str) or not CUSTOMER_ID_RE.match(cid):
        return False
    if type(cid) is str:  # (a str subclass may compare equal to a valid id and be something else)
        if len(_known_ids) >= KNOWN_IDS_MAX:
            _known_ids.clear()
        _known_ids.add(cid)
    return True


def parse_event(obj: Any) -> Event:
    """Validate one decoded JSON value against the contract; raise :class:`InvalidEvent`.

    Each field has a fast path for the common valid case (an exact ``int``/``float``/``str`` in
    range); anything else takes the full check, and fields are checked in a fixed order, so
    the reason names the first bad field.
    """
    return _new_event(*event_fields(obj))


def event_fields(obj: Any) -> tuple[Any, ...]:
    """The checks of :func:`parse_event`; the event's fields as a tuple, in :data:`EVENT_FIELDS` order.

    For callers that keep events as columns (:func:`parse_batch`) rather than objects.

    >>> event_fields({"customer_id": "c1", "ts": 60, "requests": 3, "status_4xx": 1, "status_5xx": 0})
    ('c1', 60.0, 60, 3, 1, 0, None, None, None, None, {})
    """
    if not isinstance(obj, (dict, Mapping)):  # dict first: the ABC check is slow
        raise InvalidEvent(f"event must be a JSON object, got {type(obj).__name__}")
    get = obj.get
    cid = get("customer_id")
    if not (type(cid) is str and cid in _known_ids) and not _valid_id(cid):
        raise InvalidEvent(f"customer_id must be 1-64 chars of [A-Za-z0-9._:-], got {show(cid)}")
    raw_ts = get("ts", _MISSING)
    if type(raw_ts) is str and len(raw_ts) <= MAX_TS_CHARS:
        ts = _parse_ts_text(raw_ts)
    elif raw_ts is _MISSING and "ts" not in obj:
        raise InvalidEvent("missing required field 'ts'")
    else:
        ts = parse_ts(raw_ts)
    interval = get("interval_s", DEFAULT_INTERVAL_S)
    if type(interval) is not int or not 1 <= interval <= MAX_INTERVAL_S:
        if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= MAX_INTERVAL_S:
            raise InvalidEvent(
                f"interval_s must be an integer from 1 to {MAX_INTERVAL_S}, got {show(interval)}"
            )
    requests = get("requests")
    if type(requests) is not int or not 0 <= requests <= MAX_COUNT:
        requests = _count(obj, "requests")
    s4 = get("status_4xx")
    if type(s4) is not int or not 0 <= s4 <= MAX_COUNT:
        s4 = _count(obj, "status_4xx")
    s5 = get("status_5xx")
    if type(s5) is not int or not 0 <= s5 <= MAX_COUNT:
        s5 = _count(obj, "status_5xx")
    if s4 + s5 > requests:
        raise InvalidEvent(f"status_4xx + status_5xx ({s4 + s5}) exceeds requests ({requests})")
    cache_hits = get("cache_hits")
    if cache_hits is not None:
        if type(cache_hits) is not int or not 0 <= cache_hits <= MAX_COUNT:
            cache_hits = _count(obj, "cache_hits")
        if cache_hits > requests:
            raise InvalidEvent(f"cache_hits ({cache_hits}) exceeds requests ({requests})")
    bytes_out = get("bytes_out")
    if bytes_out is not None and (type(bytes_out) is not int or not 0 <= bytes_out <= MAX_COUNT):
        bytes_out = _count(obj, "bytes_out")
    p50 = get("latency_p50_ms")
    if p50 is not None and (type(p50) is not float or not 0.0 <= p50 <= MAX_LATENCY_MS):
        p50 = _ms(obj, "latency_p50_ms")
    p99 = get("latency_p99_ms")
    if p99 is not None and (type(p99) is not float or not 0.0 <= p99 <= MAX_LATENCY_MS):
        p99 = _ms(obj, "latency_p99_ms")
    raw_origin = get("origin_errors")
    origin: dict[str, int] = {}
    if raw_origin is not None:
        if not isinstance(raw_origin, (dict, Mapping)):
            raise InvalidEvent("origin_errors must be an object of status code -> count")
        total = 0
        for code, n in raw_origin.items():
            # isdigit() alone accepts any Unicode digit ("٥٢٢"): the set holds ASCII ones only
            if type(code) is not str or code not in _STATUS_CODES:
                if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isdigit()):
                    raise InvalidEvent(f"origin_errors key {show(code)} is not a 3-digit status code")
            if type(n) is not int or not 0 <= n <= MAX_COUNT:
                raise InvalidEvent(
                    f"origin_errors[{code!r}] must be an integer from 0 to {MAX_COUNT}, got {show(n)}"
                )
            if n:
                origin[code] = n
                total += n
        if total > requests:
            raise InvalidEvent(f"origin_errors total ({total}) exceeds requests ({requests})")
    return cid, ts, interval, requests, s4, s5, p50, p99, cache_hits, bytes_out, origin


#: the fields of an event in :class:`Event`'s order: the columns of an :class:`EventBatch`
EVENT_FIELDS = ("customer_id", "ts", "interval_s", "requests", "status_4xx", "status_5xx", "latency_p50_ms",
                "latency_p99_ms", "cache_hits", "bytes_out", "origin_errors")


def _event_maker() -> Any:
    """An :class:`Event` constructor for validated fields, without the dataclass ``__init__``.

    The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` by name,
    which is more than half of validating an event; this sets the slots directly, in field order.

    >>> _new_event("c", 0.0, 60, 1, 0, 0, None, None, None, None, {}) == Event("c", 0.0, 60, 1, 0, 0)
    True
    """
    names = tuple(f.name for f in fields(Event))
    if names != EVENT_FIELDS:
        raise AssertionError(f"Event fields changed ({names}): update EVENT_FIELDS and _event_maker")
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 = (getattr(Event, n).__set__ for n in names)
    new = object.__new__

    def make(cid: str, ts: float, interval_s: int, requests: int, status_4xx: int, status_5xx: int,
             p50: float | None, p99: float | None, cache_hits: int | None, bytes_out: int | None,
             origin_errors: Mapping[str, int]) -> Event:
        e = new(Event)
        s0(e, cid)
        s1(e, ts)
        s2(e, interval_s)
        s3(e, requests)
        s4(e, status_4xx)
        s5(e, status_5xx)
        s6(e, p50)
        s7(e, p99)
        s8(e, cache_hits)
        s9(e, bytes_out)
        s10(e, origin_errors)
        return e

    return make


_new_event = _event_maker()


class EventBatch(Sequence[Event]):
    """Valid events held as columns (one list per field of :data:`EVENT_FIELDS`).

    What :func:`parse_batch` returns. It is a sequence of :class:`Event` (each built when it is
    looked at, equal to what :func:`parse_event` gives), and the engine reads its columns
    directly (:meth:`column`), so a batch that only goes through the engine builds no event
    objects.

    >>> b = parse_batch([{"customer_id": "c1", "ts": 60, "requests": 3, "status_4xx": 1, "status_5xx": 0}])
    >>> len(b), b.column("requests"), b[0] == parse_event(
    ...     {"customer_id": "c1", "ts": 60, "requests": 3, "status_4xx": 1, "status_5xx": 0})
    (1, [3], True)
    """

    __slots__ = ("_cols",)

    def __init__(self, columns: Sequence[list[Any]]):
        if len(columns) != len(EVENT_FIELDS) or len({len(c) for c in columns}) > 1:
            raise ValueError(f"an EventBatch needs {len(EVENT_FIELDS)} columns of one length")
        self._cols = tuple(columns)

    @classmethod
    def of_fields(cls, rows: Sequence[tuple[Any, ...]]) -> "EventBatch":
        """A batch of validated field tuples (:func:`event_fields`), one per event."""
        if not rows:
            return cls([[] for _ in EVENT_FIELDS])
        return cls(list(map(list, zip(*rows))))

    @classmethod
    def of(cls, parts: Iterable[Sequence[Event]]) -> "EventBatch":
        """One batch of ``parts`` in order: batches, or sequences of :class:`Event`."""
        cols: list[list[Any]] = [[] for _ in EVENT_FIELDS]
        for part in parts:
            if isinstance(part, EventBatch):
                for col, more in zip(cols, part._cols):
                    col += more
            elif part:
                for col, get in zip(cols, _EVENT_GETTERS):
                    col += map(get, part)
        return cls(cols)

    def __len__(self) -> int:
        return len(self._cols[0])

    @overload
    def __getitem__(self, k: int) -> Event: ...
    @overload
    def __getitem__(self, k: slice) -> "EventBatch": ...

    def __getitem__(self, k: int | slice) -> "Event | EventBatch":
        if isinstance(k, slice):
            return EventBatch([c[k] for c in self._cols])
        *fields_, origin = (c[k] for c in self._cols)
        return _new_event(*fields_, dict(origin) if origin else {})

    def __iter__(self) -> Iterator[Event]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"<EventBatch of {len(self)} events>"

    def column(self, name: str) -> list[Any]:
        """The values of field ``name`` (of :data:`EVENT_FIELDS`, or ``origin_errors_total``), in order.

        A column is the batch's own list: read it, do not change it.
        """
        if name == "origin_errors_total":
            return [sum(d.values()) if d else 0 for d in self._cols[-1]]
        return self._cols[EVENT_FIELDS.index(name)]


_EVENT_GETTERS = tuple(attrgetter(n) for n in EVENT_FIELDS)


def parse_batch(objs: Iterable[Any]) -> EventBatch:
    """Validate decoded JSON values as :func:`parse_event` does, into one :class:`EventBatch`.

    Raises the :class:`InvalidEvent` of the first bad value (then check them one by one to
    find every bad one and its reason).

    >>> parse_batch([{"customer_id": "c1", "ts": 60, "requests": 1, "status_4xx": 0, "status_5xx": 0}])[0].ts
    60.0
    >>> parse_batch([{"customer_id": "c1", "ts": 60, "requests": 1, "status_4xx": 2, "status_5xx": 0}])
    Traceback (most recent call last):
    ...
    detectors.events.InvalidEvent: status_4xx + status_5xx (2) exceeds requests (1)
    """
    return EventBatch.of_fields(list(map(event_fields, objs)))
