"""The ``request-metrics`` event contract: validation of one decoded JSON object.

One event is one customer's traffic for one interval. Validation is strict about
what the detectors rely on and lenient about the rest: unknown extra fields are
ignored. Every rejection carries a short human-readable reason that ends up on
the dead-letter topic.

The contract is one table: the fields of :class:`Event`, each written with :func:`spec` (its
kind, range, whether it is required, its default, the count it is part of), and the
cross-field rules :data:`SUM_RULES` next to it. Everything else is derived from them:
:data:`CONTRACT`, :data:`EVENT_FIELDS` (the columns of an :class:`EventBatch`),
:data:`RULES`, :meth:`Event.to_json`, the CSV cell types (:attr:`FieldSpec.csv`), the
JSON Schemas in ``schemas/`` (``scripts/gen_schemas.py``) and the validator itself, whose
fast path is generated from the table once at import (:func:`_fast_path_source`).

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

import ast
import functools
import linecache
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import lru_cache
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, cast, overload

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


# ------------------------------------------------------------------------------- the table

#: field kinds: each says how a value is checked, its Python type, its CSV cell and its JSON Schema.
#: the customer id: 1-64 characters of :data:`CUSTOMER_ID_RE`
ID = "id"
#: the event time: RFC 3339 text with a zone, or epoch seconds, from 0 to :data:`MAX_TS` (kept as
#: epoch seconds)
TIME = "time"
#: an exact integer from ``lo`` to ``hi`` (not a float, not a bool)
INTEGER = "integer"
#: a non-negative integer up to :data:`MAX_COUNT`; an integral float is taken as that integer
COUNT = "count"
#: a finite number from ``lo`` to ``hi``, kept as a float
NUMBER = "number"
#: an object of 3-digit HTTP status code -> count (a count each); zero counts are dropped
CODE_COUNTS = "code_counts"
FIELD_KINDS = (ID, TIME, INTEGER, COUNT, NUMBER, CODE_COUNTS)
#: the Python type of a present value, by kind (:class:`Event`'s annotation; ``X | None`` if optional)
PY_TYPES = MappingProxyType({ID: "str", TIME: "float", INTEGER: "int", COUNT: "int", NUMBER: "float",
                             CODE_COUNTS: "Mapping[str, int]"})
#: what a CSV cell of a field is read as, by kind: ``text`` as it is; ``number`` (text if it is not
#: one); ``integer`` (a number, integral ones as integers); ``json`` (the cell is a JSON value)
CSV_TYPES = MappingProxyType({ID: "text", TIME: "number", INTEGER: "integer", COUNT: "integer",
                              NUMBER: "number", CODE_COUNTS: "json"})
#: ranges fixed by the kind (of each count, for code counts); the other kinds take theirs from the table
FIXED_RANGES = MappingProxyType({TIME: (0, MAX_TS), COUNT: (0, MAX_COUNT), CODE_COUNTS: (0, MAX_COUNT)})
_ROW = "lookout.contract"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One row of the contract's table (written as a field of :class:`Event` with :func:`spec`).

    Parameters
    ----------
    name : str
        The JSON key, the :class:`Event` attribute and the :class:`EventBatch` column.
    kind : str
        One of :data:`FIELD_KINDS`.
    required : bool
        An event without it is rejected.
    default : Any
        The value of an optional field that is absent (an explicit JSON ``null`` is then a bad
        value). ``None`` (the usual) means absent: the event holds ``None``,
        :meth:`Event.to_json` leaves the field out, and a ``null`` counts as absent too. Code
        counts are absent as ``{}``.
    lo, hi : float
        The range of a value (of each count, for code counts).
    within : str or None
        The field counts some of the events that field ``within`` (e.g. ``requests``) counts, so it
        is at most that field (its total, for code counts): alone, or summed with the other parts
        of its rule in :data:`SUM_RULES`.
    doc : str
        What the field is, where its name does not say it (the JSON Schema ``description``).

    >>> FIELDS["cache_hits"].kind, FIELDS["cache_hits"].within, FIELDS["cache_hits"].csv
    ('count', 'requests', 'integer')
    >>> FIELDS["latency_p99_ms"].py_type, FIELDS["interval_s"].default
    ('float | None', 60)
    """

    name: str
    kind: str
    required: bool = False
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    within: str | None = None
    doc: str = ""

    @property
    def optional(self) -> bool:
        """Absent is ``None`` (an optional field without a default)."""
        return not self.required and self.default is None and self.kind != CODE_COUNTS

    @property
    def py_type(self) -> str:
        """The field's type annotation on :class:`Event`."""
        return f"{PY_TYPES[self.kind]} | None" if self.optional else PY_TYPES[self.kind]

    @property
    def csv(self) -> str:
        """How a CSV cell of this field is read (see :data:`CSV_TYPES`)."""
        return CSV_TYPES[self.kind]


def spec(kind: str, *, required: bool = False, default: Any = None, lo: float | None = None,
         hi: float | None = None, within: str | None = None, doc: str = "") -> Any:
    """A row of the table, written as the default of an :class:`Event` field (see :class:`FieldSpec`).

    Kinds of :data:`FIXED_RANGES` take their range from there; ``integer`` and ``number`` fields
    need ``lo`` and ``hi``. The :class:`Event` constructor wants the required fields and those
    with a default; the others default to ``None`` (code counts to ``{}``).
    """
    if kind not in FIELD_KINDS:
        raise ValueError(f"unknown field kind {kind!r} (known: {', '.join(FIELD_KINDS)})")
    if kind in (ID, TIME) and not required:
        raise ValueError(f"the {kind} field is required: an event is nothing without it")
    if kind in FIXED_RANGES:
        if lo is not None or hi is not None:
            raise ValueError(f"a {kind} field has the range {FIXED_RANGES[kind]} of its kind")
        lo, hi = FIXED_RANGES[kind]
    elif kind in (INTEGER, NUMBER) and (lo is None or hi is None):
        raise ValueError(f"a {kind} field needs lo and hi")
    meta = {_ROW: dict(kind=kind, required=required, default=default, lo=lo, hi=hi, within=within, doc=doc)}
    if kind == CODE_COUNTS:
        return field(default_factory=dict, metadata=meta)
    if required or default is not None:
        return field(metadata=meta)
    return field(default=None, metadata=meta)


@dataclass(frozen=True, slots=True)
class AtMost:
    """A cross-field rule: the sum of ``parts`` (of a code-count field: its total) is at most ``bound``.

    >>> str(AtMost(("status_4xx", "status_5xx"), "requests"))
    'status_4xx + status_5xx <= requests'
    """

    parts: tuple[str, ...]
    bound: str

    @property
    def label(self) -> str:
        """The parts as a rejection reason names them."""
        return " + ".join(f"{p} total" if FIELDS[p].kind == CODE_COUNTS else p for p in self.parts)

    def __str__(self) -> str:
        return f"{self.label} <= {self.bound}"


@dataclass(frozen=True, slots=True)
class Event:
    """One valid event. Its fields, in order, are the contract's table: one :func:`spec` a row.

    The order is the order of the checks (a rejection names the first bad field), of
    :data:`EVENT_FIELDS` and of the columns of an :class:`EventBatch`. Required fields and
    fields with a default come before the optional ones (the constructor takes them in order).
    A field's annotation is the type its kind gives (:attr:`FieldSpec.py_type`, checked at
    import). A numeric field with its signal in :mod:`detectors.signals` is one line here.
    """

    customer_id: str = spec(ID, required=True)
    ts: float = spec(TIME, required=True, doc="Interval start: RFC 3339 with a time zone "
                                              "(e.g. 2026-01-05T10:00:00Z) or epoch seconds")
    interval_s: int = spec(INTEGER, lo=1, hi=MAX_INTERVAL_S, default=DEFAULT_INTERVAL_S)
    requests: int = spec(COUNT, required=True)
    status_4xx: int = spec(COUNT, required=True, within="requests")
    status_5xx: int = spec(COUNT, required=True, within="requests")
    cache_hits: int | None = spec(COUNT, within="requests")
    bytes_out: int | None = spec(COUNT)
    latency_p50_ms: float | None = spec(NUMBER, lo=0.0, hi=MAX_LATENCY_MS)
    latency_p99_ms: float | None = spec(NUMBER, lo=0.0, hi=MAX_LATENCY_MS)
    origin_errors: Mapping[str, int] = spec(CODE_COUNTS, within="requests", doc="Errors caused by the "
                                            "origin, by HTTP status code (also counted in status_5xx)")

    @property
    def origin_errors_total(self) -> int:
        return sum(self.origin_errors.values())

    def to_json(self) -> dict[str, Any]:
        """The event back as a contract JSON object (``ts`` as RFC 3339, absent fields left out).

        >>> parse_event({"customer_id": "c", "ts": 60, "requests": 2, "status_4xx": 0, "status_5xx": 1,
        ...              "latency_p99_ms": 20}).to_json()  # doctest: +NORMALIZE_WHITESPACE
        {'customer_id': 'c', 'ts': '1970-01-01T00:01:00Z', 'interval_s': 60, 'requests': 2,
         'status_4xx': 0, 'status_5xx': 1, 'latency_p99_ms': 20.0}
        """
        d: dict[str, Any] = {}
        for row in CONTRACT:
            v = getattr(self, row.name)
            if row.kind == TIME:
                v = format_ts(v)
            elif row.kind == CODE_COUNTS:
                if not v:
                    continue
                v = dict(v)
            elif v is None:
                continue
            d[row.name] = v
        return d


#: cross-field rules over more than one field: each part is ``within`` the bound (see
#: :class:`FieldSpec`); a field ``within`` another and in no rule here is at most it alone
SUM_RULES = (
    AtMost(("status_4xx", "status_5xx"), "requests"),  # a response has one status code
)


def _table() -> tuple[FieldSpec, ...]:
    rows = []
    for f in fields(Event):
        row = FieldSpec(f.name, **f.metadata[_ROW])
        if f.type != row.py_type:
            raise TypeError(f"Event.{f.name} is annotated {f.type!r}; a {row.kind} field is {row.py_type!r}")
        rows.append(row)
    return tuple(rows)


def _rules(rows: Mapping[str, FieldSpec], named: Sequence[AtMost]) -> tuple[AtMost, ...]:
    """:data:`SUM_RULES`, then a rule of its own for each other field that is ``within`` another."""
    grouped = {p for rule in named for p in rule.parts}
    alone = (AtMost((r.name,), r.within) for r in rows.values() if r.within and r.name not in grouped)
    rules = (*named, *alone)
    for rule in rules:
        bound = rows.get(rule.bound)
        if bound is None or not bound.required or bound.kind not in (INTEGER, COUNT):
            raise ValueError(f"rule {rule}: {rule.bound} is not a required count of the table")
        for p in rule.parts:
            if p not in rows or rows[p].within != rule.bound or rows[p].kind not in (COUNT, CODE_COUNTS):
                raise ValueError(f"rule {rule}: {p} is not a count of the table within {rule.bound}")
    return rules


#: the contract's table: one :class:`FieldSpec` per field of :class:`Event`, in order
CONTRACT = _table()
#: field name -> its row
FIELDS: Mapping[str, FieldSpec] = MappingProxyType({r.name: r for r in CONTRACT})
#: the fields of an event in :class:`Event`'s order: the columns of an :class:`EventBatch`
EVENT_FIELDS = tuple(FIELDS)
#: the fields every event has
REQUIRED_FIELDS = tuple(r.name for r in CONTRACT if r.required)
#: every cross-field rule, checked right after the last field it involves
RULES = _rules(FIELDS, SUM_RULES)


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


# ------------------------------------------------------------------ checks of one field (slow paths)
# The generated fast path (below) accepts the common valid values itself and calls these for
# anything else: they convert what the contract allows converting, or raise the reason.


def _missing(name: str) -> InvalidEvent:
    return InvalidEvent(f"missing required field {name!r}")


def _not_an_object(obj: Any) -> None:
    raise InvalidEvent(f"event must be a JSON object, got {type(obj).__name__}")


def _customer_id(v: Any, name: str) -> str:
    if not _valid_id(v):
        raise InvalidEvent(f"{name} must be 1-64 chars of [A-Za-z0-9._:-], got {show(v)}")
    return cast(str, v)


def _time(obj: Mapping[str, Any], name: str, v: Any) -> float:
    if v is _MISSING and name not in obj:
        raise _missing(name)
    return parse_ts(v)


def _integer(v: Any, name: str, lo: int, hi: int, required: bool) -> int:
    if v is None and required:
        raise _missing(name)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InvalidEvent(f"{name} must be an integer from {lo} to {hi}, got {show(v)}")
    return v


def _count(v: Any, name: str, required: bool) -> int | None:
    if v is None:
        if required:
            raise _missing(name)
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


def _plain(x: float) -> str:
    """A bound as a reason shows it: ``0``, ``86400000``, ``0.5``."""
    return f"{x:.0f}" if float(x).is_integer() else repr(x)


def _number(v: Any, name: str, lo: float, hi: float, required: bool) -> float:
    if v is None and required:
        raise _missing(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:  # False for NaN
        raise InvalidEvent(f"{name} must be a number from {_plain(lo)} to {_plain(hi)}, got {show(v)}")
    return float(v)


def _code_counts(v: Any, name: str, required: bool) -> tuple[dict[str, int], int]:
    """The non-zero counts of a code-count field, and their total."""
    if v is None:
        if required:
            raise _missing(name)
        return {}, 0
    if not isinstance(v, (dict, Mapping)):
        raise InvalidEvent(f"{name} must be an object of status code -> count")
    counts: dict[str, int] = {}
    total = 0
    for code, n in v.items():
        # isdigit() alone accepts any Unicode digit ("٥٢٢"): the set holds ASCII ones only
        if type(code) is not str or code not in _STATUS_CODES:
            if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isdigit()):
                raise InvalidEvent(f"{name} key {show(code)} is not a 3-digit status code")
        if type(n) is not int or not 0 <= n <= MAX_COUNT:
            raise InvalidEvent(f"{name}[{code!r}] must be an integer from 0 to {MAX_COUNT}, got {show(n)}")
        if n:
            counts[code] = n
            total += n
    return counts, total


def _exceeds(label: str, total: int, bound: str, limit: int) -> None:
    raise InvalidEvent(f"{label} ({total}) exceeds {bound} ({limit})")


# ------------------------------------------------------------ the fast path, generated from the table

def _literal(x: Any) -> str:
    """``x`` as Python source (a bound or a default written into the generated code)."""
    text = repr(x)
    if ast.literal_eval(text) != x:
        raise ValueError(f"{x!r} cannot be written into the generated validator")
    return text


def _check_lines(i: int, row: FieldSpec) -> list[str]:
    """The statements that leave field ``i`` of the table, valid, in ``v{i}`` (and its total in ``t{i}``)."""
    v, name = f"v{i}", repr(row.name)
    if row.kind == ID:
        return [f"{v} = get({name})",
                f"if not (type({v}) is str and {v} in _known_ids):",
                f"    {v} = _customer_id({v}, {name})"]
    if row.kind == TIME:
        return [f"{v} = get({name}, _MISSING)",
                f"if type({v}) is str and len({v}) <= {MAX_TS_CHARS}:",
                f"    {v} = _parse_ts_text({v})",
                "else:",
                f"    {v} = _time(obj, {name}, {v})"]
    if row.kind == CODE_COUNTS:
        check = f"_code_counts({v}, {name}, {row.required})"
        return [f"{v} = get({name})",
                f"t{i} = 0",
                f"if {v} is None:",
                f"    {v} = {{}}" if not row.required else f"    {check}",
                f"elif type({v}) is dict:  # the loop of _code_counts, inline; anything else: its call",
                "    counts = {}",
                f"    for code, n in {v}.items():",
                f"        if type(code) is not str or code not in _STATUS_CODES or type(n) is not int or not "
                f"0 <= n <= {_literal(row.hi)}:",
                f"            counts, t{i} = {check}",
                "            break",
                "        if n:",
                "            counts[code] = n",
                f"            t{i} += n",
                f"    {v} = counts",
                "else:",
                f"    {v}, t{i} = {check}"]
    lo, hi = _literal(row.lo), _literal(row.hi)
    if row.kind == NUMBER:
        lo, hi = _literal(float(cast(float, row.lo))), _literal(float(cast(float, row.hi)))
        bad, check = f"type({v}) is not float or not {lo} <= {v} <= {hi}", f"_number({v}, {name}, {lo}, {hi}"
    elif row.kind == COUNT:
        bad, check = f"type({v}) is not int or not {lo} <= {v} <= {hi}", f"_count({v}, {name}"
    else:
        bad, check = f"type({v}) is not int or not {lo} <= {v} <= {hi}", f"_integer({v}, {name}, {lo}, {hi}"
    default = "" if row.default is None else f", {_literal(row.default)}"
    return [f"{v} = get({name}{default})",
            f"if {v} is not None and ({bad}):" if row.optional else f"if {bad}:",
            f"    {v} = {check}, {row.required})"]


def _rule_lines(rule: AtMost) -> list[str]:
    """The check of ``rule``, on the ``v{i}``/``t{i}`` of its fields."""
    index = {name: i for i, name in enumerate(EVENT_FIELDS)}
    parts = []
    for p in rule.parts:
        i, row = index[p], FIELDS[p]
        parts.append(f"t{i}" if row.kind == CODE_COUNTS else f"(v{i} or 0)" if row.optional else f"v{i}")
    total, limit = " + ".join(parts), f"v{index[rule.bound]}"
    return [f"if {total} > {limit}:", f"    _exceeds({rule.label!r}, {total}, {rule.bound!r}, {limit})"]


def _fast_path_source() -> str:
    """Python source of the validator and the :class:`Event` makers, written out from the table.

    One factory, ``_factory(new, Event, s0, s1, ...)`` (``s{i}`` sets slot ``i`` of an event,
    without the frozen dataclass's ``__init__``), returning :func:`event_fields`,
    :func:`parse_event`, :func:`_new_event` and :func:`_event_at`. Each field is checked in
    table order, by a fast test of the common valid value and a call of its kind's check
    otherwise; each rule of :data:`RULES` right after the last field it involves.
    """
    n = len(CONTRACT)
    after: dict[int, list[AtMost]] = {}
    for rule in RULES:
        last = max(EVENT_FIELDS.index(name) for name in (*rule.parts, rule.bound))
        after.setdefault(last, []).append(rule)
    checks = ["if not isinstance(obj, (dict, Mapping)):  # dict first: the ABC check is slow",
              "    _not_an_object(obj)",
              "get = obj.get"]
    for i, row in enumerate(CONTRACT):
        checks += [f"# {row.name}: {row.kind}", *_check_lines(i, row)]
        for rule in after.get(i, ()):
            checks += [f"# {rule}", *_rule_lines(rule)]
    values = ", ".join(f"v{i}" for i in range(n))

    def build(value: Callable[[int, FieldSpec], str]) -> list[str]:
        sets = (f"s{i}(e, {value(i, row)})" for i, row in enumerate(CONTRACT))
        return ["e = new(Event)", *sets, "return e"]

    def of_row(i: int, row: FieldSpec) -> str:  # an event's mapping is its own, not the batch's
        return f"dict(c{i}[k])" if row.kind == CODE_COUNTS else f"c{i}[k]"

    functions = {
        "event_fields(obj)": [*checks, f"return ({values},)"],
        "parse_event(obj)": [*checks, *build(lambda i, row: f"v{i}")],
        f"_new_event({values})": build(lambda i, row: f"v{i}"),
        "_event_at(columns, k)": [f"{', '.join(f'c{i}' for i in range(n))}, = columns", *build(of_row)],
    }
    lines = [f"def _factory(new, Event, {', '.join(f's{i}' for i in range(n))}):"]
    for signature, body in functions.items():
        lines += [f"    def {signature}:", *(f"        {line}" for line in body), ""]
    names = (signature.split("(")[0] for signature in functions)
    lines.append(f"    return {{{', '.join(f'{name!r}: {name}' for name in names)}}}")
    return "\n".join(lines) + "\n"


#: pseudo file name of the generated code in tracebacks (its lines are in :mod:`linecache`); it ends
#: like this module's path, so profiles count its time where they count this module's
FAST_PATH_FILE = "<generated from the contract's table>/" + __name__.replace(".", "/") + ".py"


def _compile_fast_path() -> dict[str, Callable[..., Any]]:
    source = _fast_path_source()
    linecache.cache[FAST_PATH_FILE] = (len(source), None, source.splitlines(True), FAST_PATH_FILE)
    scope: dict[str, Any] = {}
    exec(compile(source, FAST_PATH_FILE, "exec"), globals(), scope)  # globals: the module's own
    setters = (getattr(Event, name).__set__ for name in EVENT_FIELDS)
    return cast(dict[str, Callable[..., Any]], scope["_factory"](object.__new__, Event, *setters))


_FAST_PATH = _compile_fast_path()
_F = TypeVar("_F", bound=Callable[..., Any])


def _generated(stub: _F) -> _F:
    """The generated function named like ``stub``, with ``stub``'s signature and documentation."""
    return cast(_F, functools.update_wrapper(_FAST_PATH[stub.__name__], stub))


@_generated
def parse_event(obj: Any) -> Event:
    """Validate one decoded JSON value against the contract; raise :class:`InvalidEvent`.

    Each field has a fast path for the common valid case (an exact ``int``/``float``/``str`` in
    range); anything else takes the full check, and fields are checked in a fixed order, so
    the reason names the first bad field. Generated from the table (:func:`_fast_path_source`).
    """
    raise AssertionError("replaced by the code generated from the table")


@_generated
def event_fields(obj: Any) -> tuple[Any, ...]:
    """The checks of :func:`parse_event`; the event's fields as a tuple, in :data:`EVENT_FIELDS` order.

    For callers that keep events as columns (:func:`parse_batch`) rather than objects.

    >>> values = event_fields({"customer_id": "c1", "ts": 60, "requests": 3, "status_4xx": 1,
    ...                        "status_5xx": 0})
    >>> values[:6], values[EVENT_FIELDS.index("cache_hits")], values[EVENT_FIELDS.index("origin_errors")]
    (('c1', 60.0, 60, 3, 1, 0), None, {})
    """
    raise AssertionError("replaced by the code generated from the table")


@_generated
def _new_event(*values: Any) -> Event:
    """An :class:`Event` of validated field values in table order, without the dataclass ``__init__``.

    The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` by name,
    which is more than half of validating an event; this sets the slots directly.

    >>> obj = {"customer_id": "c", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0}
    >>> _new_event(*event_fields(obj)) == parse_event(obj) == Event("c", 0.0, 60, 1, 0, 0)
    True
    """
    raise AssertionError("replaced by the code generated from the table")


@_generated
def _event_at(columns: Sequence[list[Any]], k: int) -> Event:
    """The :class:`Event` of row ``k`` of ``columns`` (in table order), its code counts copied."""
    raise AssertionError("replaced by the code generated from the table")


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
        return _event_at(self._cols, k)

    def __iter__(self) -> Iterator[Event]:
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"<EventBatch of {len(self)} events>"

    def column(self, name: str) -> list[Any]:
        """The values of field ``name`` of :data:`EVENT_FIELDS` in order (``origin_errors_total``: totals).

        A column is the batch's own list: read it, do not change it.
        """
        counts = _TOTALS.get(name)
        if counts is not None:
            return [sum(d.values()) if d else 0 for d in self._cols[counts]]
        return self._cols[EVENT_FIELDS.index(name)]


_EVENT_GETTERS = tuple(attrgetter(n) for n in EVENT_FIELDS)
#: ``NAME_total`` -> the index of code-count field ``NAME``: columns of totals
_TOTALS = {f"{r.name}_total": i for i, r in enumerate(CONTRACT) if r.kind == CODE_COUNTS}


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
