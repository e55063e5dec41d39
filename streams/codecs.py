"""Bytes <-> events and alerts, and the dead-letter record for anything that cannot be decoded.

>>> ev = decode_event(b'{"customer_id": "c1", "ts": 60, "requests": 1, "status_4xx": 0, "status_5xx": 0}')
>>> ev.customer_id, ev.ts
('c1', 60.0)
>>> decode_event(b'{"customer_id": "c1"')
Traceback (most recent call last):
...
detectors.events.InvalidEvent: invalid JSON: Expecting ',' delimiter at char 20
"""
from __future__ import annotations

import json
import time
from typing import Any

from detectors.events import UNDECODABLE, Event, InvalidEvent, parse_event

#: raw payloads longer than this are truncated in the DLQ record (the reason is what matters)
DLQ_MAX_RAW_CHARS = 10_000


def decode_event(value: bytes | str | None) -> Event:
    """Decode one ``request-metrics`` message value; raise :class:`InvalidEvent` with the reason."""
    if value is None:
        raise InvalidEvent("empty message (null value)", UNDECODABLE)
    try:
        obj = json.loads(value)
    except UnicodeDecodeError:
        raise InvalidEvent("value is not UTF-8 text", UNDECODABLE) from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc.msg} at char {exc.pos}", UNDECODABLE) from None
    return parse_event(obj)


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def dlq_record(
    value: bytes | str | None,
    reason: str,
    *,
    key: bytes | str | None = None,
    source: str = "",
    partition: int | None = None,
    offset: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The JSON object parked on the dead-letter topic: the reason plus enough to find/replay the input."""

    def text(b):
        if b is None:
            return None
        if isinstance(b, bytes):
            b = b.decode("utf-8", errors="replace")
        return b if len(b) <= DLQ_MAX_RAW_CHARS else b[:DLQ_MAX_RAW_CHARS] + "...[truncated]"

    return {
        "reason": reason,
        "source": source,
        "partition": partition,
        "offset": offset,
        "key": text(key),
        "raw": text(value),
        "received_at": time.time() if now is None else now,
    }
