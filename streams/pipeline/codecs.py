"""Bytes <-> events and alerts, and the dead-letter record for anything that cannot be decoded.

Decoding is total: :func:`decode_event` returns an :class:`~detectors.events.Event` or raises
:class:`~detectors.events.InvalidEvent` (with a reason and a ``kind``) for any input, however
large, deep or strange, without ever running out of stack or spending unbounded time.

>>> ev = decode_event(b'{"customer_id": "c1", "ts": 60, "requests": 1, "status_4xx": 0, "status_5xx": 0}')
>>> ev.customer_id, ev.ts
('c1', 60.0)
>>> decode_event(b'{"customer_id": "c1"')
Traceback (most recent call last):
...
detectors.events.InvalidEvent: invalid JSON: Expecting ',' delimiter at char 20
>>> decode_event(b'[' * 10_000 + b']' * 10_000)
Traceback (most recent call last):
...
detectors.events.InvalidEvent: JSON nested deeper than 32 levels
"""
from __future__ import annotations

import json
import re
import time
from itertools import repeat
from typing import Any, Sequence

import orjson

from detectors.events import (
    KIND_CONTRACT,
    KIND_OVERSIZED,
    KIND_UNDECODABLE,
    Event,
    EventBatch,
    InvalidEvent,
    parse_batch,
    parse_event,
)

#: raw payloads longer than this are truncated in the DLQ record (the reason is what matters)
DLQ_MAX_RAW_CHARS = 10_000
#: largest single-event message value decoded, bytes (an event is ~300 bytes)
MAX_MESSAGE_BYTES = 64 * 1024
#: largest envelope message value decoded, bytes (Kafka's default ``max.message.bytes`` is 1 MiB)
MAX_ENVELOPE_BYTES = 1024 * 1024
#: most events in one envelope (500 events of ~300 bytes are ~150 KB)
MAX_ENVELOPE_EVENTS = 5000
#: the key of an envelope's event list: ``{"events": [event, ...]}``
ENVELOPE_KEY = "events"
#: dead-letter kind of an envelope event whose customer hashes to another partition than the message's
KIND_WRONG_PARTITION = "wrong_partition"
#: dead-letter kinds the streams layer adds to :data:`detectors.events.INVALID_KINDS`
STREAM_KINDS = (KIND_WRONG_PARTITION,)
#: deepest nesting of JSON arrays/objects (an event needs 2: the event and ``origin_errors``)
MAX_DEPTH = 32
#: most digits of a JSON integer (any 128-bit integer fits; a count needs at most 16)
MAX_INT_DIGITS = 40


class _Reject(Exception):
    """Raised from inside the JSON parser's hooks; carries the InvalidEvent to raise."""

    def __init__(self, invalid: InvalidEvent):
        super().__init__(str(invalid))
        self.invalid = invalid


def _parse_int(text: str) -> int:
    # the length check comes before int(): conversion time grows with the square of the digits
    if len(text) > MAX_INT_DIGITS and len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Reject(InvalidEvent(f"integer of {len(text.lstrip('-')):,} digits (at most {MAX_INT_DIGITS})",
                                   KIND_OVERSIZED))
    return int(text)


def _parse_constant(name: str) -> float:
    raise _Reject(InvalidEvent(f"invalid JSON: {name} is not a JSON number", KIND_UNDECODABLE))


#: the common case: no digit run longer than MAX_INT_DIGITS anywhere, so no integer can be too long
_DECODER = json.JSONDecoder(parse_constant=_parse_constant)
#: otherwise (the run may also be inside a string): every integer literal is checked before int()
_CHECKING_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_parse_constant)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TOO_MANY_DIGITS = b"0" * (MAX_INT_DIGITS + 1)
#: a run of digits that may be an integer beyond 64 bits (every 18-digit integer fits)
_LONG_DIGITS = b"0" * 19


#: a JSON string literal (the unrolled form: linear time even on an unterminated string)
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


#: every byte but JSON's brackets, the quote and the backslash (deleted to find the nesting)
_NOT_MARKS = bytes(b for b in range(256) if b not in b'[]{}"\\')
#: a JSON string literal without escapes, among the marks left of the text
_PLAIN_STRINGS = re.compile(rb'"[^"]*"')


def json_depth(text: str | bytes) -> int:
    """Deepest nesting of arrays/objects in JSON ``text``, brackets inside strings ignored.

    Iterative (no recursion, so any depth is measured); linear in the length of ``text``.

    >>> json_depth('{"a": [1, {"b": "[[[["}]}'), json_depth(b'[["]"], {"x": "{"}]')
    (3, 2)
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    # only the brackets, quotes and backslashes are left (C speed; an envelope of 500 events is
    # ~150 KB of text, ~15 KB of marks); without a backslash every string is a plain "..."
    marks = raw.translate(None, _NOT_MARKS)
    if b"\\" in marks:  # escapes: strings out of the text itself, the general way
        brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", raw.decode("utf-8", "surrogatepass")))
    else:
        # two quotes in a row open and close a string without brackets, or close one and open
        # the next with nothing between: either way dropping them changes no bracket's side
        marks = marks.replace(b'""', b"")
        brackets = _PLAIN_STRINGS.sub(b"", marks).replace(b'"', b"").decode("ascii")
    depth = deepest = 0
    for ch in brackets:
        if ch == "[" or ch == "{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def decode_event(value: bytes | str | None) -> Event:
    """Decode one ``request-metrics`` message value; raise :class:`InvalidEvent` with the reason.

    Limits, checked before the JSON parser runs into them: :data:`MAX_MESSAGE_BYTES`,
    :data:`MAX_DEPTH` and :data:`MAX_INT_DIGITS`; ``NaN``/``Infinity`` are not JSON and are refused.
    The value must be UTF-8 (``json.loads`` would also guess UTF-16/32 from bytes).
    """
    return parse_event(decode_json(value, MAX_MESSAGE_BYTES))


def decode_message(value: bytes | str | None) -> Event | list[Any]:
    """Decode a message that is one event or an envelope ``{"events": [...]}`` of many.

    Returns the :class:`~detectors.events.Event` of a single-event message, or the list of the
    envelope's still unvalidated JSON values (each one goes through
    :func:`~detectors.events.parse_event` on its own, so one bad event spoils only itself).
    Raises :class:`InvalidEvent` for a message that is neither (the whole message is one dead letter).

    >>> decode_message(b'{"events": [{"customer_id": "c1"}, 7]}')
    [{'customer_id': 'c1'}, 7]
    >>> decode_message(b'{"events": {}}')
    Traceback (most recent call last):
    ...
    detectors.events.InvalidEvent: envelope 'events' must be a JSON array, got dict
    """
    obj = decode_json(value, MAX_ENVELOPE_BYTES)
    if isinstance(obj, dict) and ENVELOPE_KEY in obj and "customer_id" not in obj:
        events = obj[ENVELOPE_KEY]
        if not isinstance(events, list):
            raise InvalidEvent(f"envelope {ENVELOPE_KEY!r} must be a JSON array, got {type(events).__name__}",
                               KIND_CONTRACT)
        if len(events) > MAX_ENVELOPE_EVENTS:
            raise InvalidEvent(f"envelope of {len(events):,} events (at most {MAX_ENVELOPE_EVENTS:,})",
                               KIND_OVERSIZED)
        extra = sorted(k for k in obj if k != ENVELOPE_KEY)
        if extra:
            names = ", ".join(map(repr, extra[:5]))[:200]
            raise InvalidEvent(f"unknown envelope field(s) {names}", KIND_CONTRACT)
        return events
    n = len(value) if isinstance(value, (bytes, bytearray, str)) else 0
    if n > MAX_MESSAGE_BYTES:  # an envelope may be larger, a single event may not
        raise InvalidEvent(f"message of {n:,} bytes (at most {MAX_MESSAGE_BYTES:,})", KIND_OVERSIZED)
    return parse_event(obj)


def decode_json(value: bytes | str | None, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """The JSON value of a message, within the size/depth/digit limits; raise :class:`InvalidEvent`."""
    if isinstance(value, str):
        if len(value) > max_bytes:  # more characters than the limit means more bytes too
            raise InvalidEvent(
                f"message of {len(value):,} characters (at most {max_bytes:,} bytes)", KIND_OVERSIZED
            )
        text = value
        raw = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, (bytes, bytearray)):
        raw = value
        text = None
    elif value is None:
        raise InvalidEvent("empty message (null value)", KIND_UNDECODABLE)
    else:
        raise InvalidEvent(
            f"message value must be bytes or text, got {type(value).__name__}", KIND_UNDECODABLE
        )
    if len(raw) > max_bytes:
        raise InvalidEvent(f"message of {len(raw):,} bytes (at most {max_bytes:,})", KIND_OVERSIZED)
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("value is not UTF-8 text", KIND_UNDECODABLE) from None
    # cheap bound first: depth can only exceed MAX_DEPTH if there are more opening brackets than that
    if text.count("{") + text.count("[") > MAX_DEPTH and json_depth(raw) > MAX_DEPTH:
        raise InvalidEvent(f"JSON nested deeper than {MAX_DEPTH} levels", KIND_OVERSIZED)
    digits = raw.translate(_DIGITS_TO_ZERO)
    if _TOO_MANY_DIGITS in digits:
        decoder = _CHECKING_DECODER
    else:
        decoder = _DECODER
        if _LONG_DIGITS not in digits:
            # Every integer fits 64 bits, where orjson gives exactly what json gives (beyond,
            # it would give a float); anything orjson refuses (errors, NaN, lone surrogates,
            # a BOM, 1e400) is decoded again by json below, which gives json's result or reason.
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
    try:
        obj = decoder.decode(text)
    except _Reject as exc:
        raise exc.invalid from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc.msg} at char {exc.pos}", KIND_UNDECODABLE) from None
    except RecursionError:  # not reachable after the depth check; a guard should the check ever be wrong
        raise InvalidEvent(f"JSON nested deeper than {MAX_DEPTH} levels", KIND_OVERSIZED) from None
    return obj


def decode_plain(values: Sequence[bytes]) -> EventBatch | None:
    """The events of single-event message ``values``, checked together, when each is a *plain* valid
    event; else None (then :func:`decode_message` each value: one bad value spoils the batch).

    Plain: bytes shorter than :data:`MAX_MESSAGE_BYTES` (by at least a byte, so that a line gives
    the same answer with or without its newline) that hold no ``[``, at most :data:`MAX_DEPTH`
    ``{`` and no run of digits that :func:`decode_json` hands to the standard library's parser,
    and are a valid event. For such a value :func:`decode_message` takes the same steps
    (``orjson``, then the checks of :func:`~detectors.events.parse_event`), so the batch holds the
    very events it would give, without the per-value limit checks and event objects.

    >>> ok = b'{"customer_id": "c1", "ts": 60, "requests": 1, "status_4xx": 0, "status_5xx": 0}'
    >>> [e.customer_id for e in decode_plain([ok, ok.replace(b"c1", b"c2")])]
    ['c1', 'c2']
    >>> decode_plain([ok, b'{"events": []}']) is None, decode_plain([ok, b'{"customer_id": 5}']) is None
    (True, True)
    """
    if not values:
        return parse_batch(())
    objs = plain_objects(values)
    if objs is None or set(map(type, objs)) != {dict}:
        return None
    try:
        return parse_batch(objs)
    except Exception:  # not an event, or a validator bug: decode_message says which
        return None


def plain_objects(values: Sequence[Any]) -> list[Any] | None:
    """The JSON values ``orjson`` makes of ``values`` when they pass :func:`plain_text` and all
    are JSON; else None.

    >>> plain_objects([b'{"a": 1}', b"2"]), plain_objects([b'{"x": [1]}']), plain_objects([b"{"])
    ([{'a': 1}, 2], None, None)
    """
    if not plain_text(values):
        return None
    try:
        return list(map(orjson.loads, values))
    except orjson.JSONDecodeError:
        return None


def plain_text(values: Sequence[Any]) -> bool:
    """Do ``values`` pass the limit checks of :func:`decode_plain` (all but JSON and the contract)?

    Checked over all of them at once; each value that passes alone passes too.
    """
    if set(map(type, values)) != {bytes} or max(map(len, values)) >= MAX_MESSAGE_BYTES:
        return False
    text = b"".join(values)
    if b"[" in text or _LONG_DIGITS in text.translate(_DIGITS_TO_ZERO):
        return False
    return max(map(bytes.count, values, repeat(b"{"))) <= MAX_DEPTH


def plain_object(value: Any) -> Any:
    """The JSON value ``orjson`` makes of one ``value`` that passes :func:`plain_text`, else None.

    With :func:`~detectors.events.event_fields` of that object, :func:`decode_plain` for one value.

    >>> plain_object(b'{"customer_id": "c1", "ts": 60}'), plain_object(b'{"x": [1]}'), plain_object(b"{")
    ({'customer_id': 'c1', 'ts': 60}, None, None)
    """
    objs = plain_objects((value,))
    return None if objs is None else objs[0]


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def dlq_record(
    value: bytes | str | None,
    reason: str,
    *,
    kind: str | None = None,
    key: bytes | str | None = None,
    source: str = "",
    partition: int | None = None,
    offset: int | None = None,
    now: float | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """The JSON object parked on the dead-letter topic: the reason plus enough to find/replay the input.

    ``kind`` is the rejection's category (:data:`detectors.events.INVALID_KINDS`), ``None`` if unknown.
    ``index`` is the position of the event within an envelope message (then ``raw`` is that event
    alone); the field is only present for envelope events.
    """

    def text(b):
        if b is None:
            return None
        if isinstance(b, (bytes, bytearray)):  # cut before decoding: the value may be huge
            t = bytes(b[:DLQ_MAX_RAW_CHARS]).decode("utf-8", errors="replace")
        elif isinstance(b, str):
            t = b[:DLQ_MAX_RAW_CHARS]
        else:  # not a message value at all: its type is all there is to show
            return f"<{type(b).__name__}>"
        return t if len(b) <= DLQ_MAX_RAW_CHARS else t + "...[truncated]"

    rec = {
        "reason": reason,
        "kind": kind,
        "source": source,
        "partition": partition,
        "offset": offset,
        "key": text(key),
        "raw": text(value),
        "received_at": time.time() if now is None else now,
    }
    if index is not None:
        rec["index"] = index
    return rec


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of ``data`` (as Java's ``Utils.murmur2``, signed result).

    >>> murmur2(b"21")
    -973932308
    """
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    tail = length & ~3
    for i in range(0, tail, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for key ``customer_id`` (UTF-8).

    Java clients, kafka-python and aiokafka agree: ``(murmur2(key) & 0x7fffffff) % partitions``.

    >>> partition_of("c1", 4) == partition_of("c1", 4) and 0 <= partition_of("c1", 4) < 4
    True
    """
    return (murmur2(customer_id.encode("utf-8")) & 0x7FFFFFFF) % partitions
