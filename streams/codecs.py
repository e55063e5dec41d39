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
import time
from typing import Any

from detectors.events import KIND_OVERSIZED, KIND_UNDECODABLE, Event, InvalidEvent, parse_event

#: raw payloads longer than this are truncated in the DLQ record (the reason is what matters)
DLQ_MAX_RAW_CHARS = 10_000
#: largest message value decoded, bytes (an event is ~300 bytes; Kafka's default limit is 1 MiB)
MAX_MESSAGE_BYTES = 64 * 1024
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


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON ``text``, brackets inside strings ignored.

    Iterative (no recursion, so any depth is measured); linear in the length of ``text``.

    >>> json_depth('{"a": [1, {"b": "[[[["}]}')
    3
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "[" or ch == "{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch == "]" or ch == "}":
            depth -= 1
    return deepest


def decode_event(value: bytes | str | None) -> Event:
    """Decode one ``request-metrics`` message value; raise :class:`InvalidEvent` with the reason.

    Limits, checked before the JSON parser runs into them: :data:`MAX_MESSAGE_BYTES`,
    :data:`MAX_DEPTH` and :data:`MAX_INT_DIGITS`; ``NaN``/``Infinity`` are not JSON and are refused.
    The value must be UTF-8 (``json.loads`` would also guess UTF-16/32 from bytes).
    """
    if isinstance(value, str):
        if len(value) > MAX_MESSAGE_BYTES:  # more characters than the limit means more bytes too
            raise InvalidEvent(f"message of {len(value):,} characters (at most {MAX_MESSAGE_BYTES:,} bytes)",
                               KIND_OVERSIZED)
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
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"message of {len(raw):,} bytes (at most {MAX_MESSAGE_BYTES:,})", KIND_OVERSIZED)
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("value is not UTF-8 text", KIND_UNDECODABLE) from None
    # cheap bound first: depth can only exceed MAX_DEPTH if there are more opening brackets than that
    if text.count("{") + text.count("[") > MAX_DEPTH and json_depth(text) > MAX_DEPTH:
        raise InvalidEvent(f"JSON nested deeper than {MAX_DEPTH} levels", KIND_OVERSIZED)
    decoder = _CHECKING_DECODER if _TOO_MANY_DIGITS in raw.translate(_DIGITS_TO_ZERO) else _DECODER
    try:
        obj = decoder.decode(text)
    except _Reject as exc:
        raise exc.invalid from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc.msg} at char {exc.pos}", KIND_UNDECODABLE) from None
    except RecursionError:  # not reachable after the depth check; a guard should the check ever be wrong
        raise InvalidEvent(f"JSON nested deeper than {MAX_DEPTH} levels", KIND_OVERSIZED) from None
    return parse_event(obj)


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
) -> dict[str, Any]:
    """The JSON object parked on the dead-letter topic: the reason plus enough to find/replay the input.

    ``kind`` is the rejection's category (:data:`detectors.events.INVALID_KINDS`), ``None`` if unknown.
    """

    def text(b):
        if b is None:
            return None
        if isinstance(b, (bytes, bytearray)):  # cut before decoding: the value may be huge
            t = bytes(b[: DLQ_MAX_RAW_CHARS]).decode("utf-8", errors="replace")
        elif isinstance(b, str):
            t = b[:DLQ_MAX_RAW_CHARS]
        else:  # not a message value at all: its type is all there is to show
            return f"<{type(b).__name__}>"
        return t if len(b) <= DLQ_MAX_RAW_CHARS else t + "...[truncated]"

    return {
        "reason": reason,
        "kind": kind,
        "source": source,
        "partition": partition,
        "offset": offset,
        "key": text(key),
        "raw": text(value),
        "received_at": time.time() if now is None else now,
    }
