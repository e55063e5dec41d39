"""Message bytes -> verdicts and windows -> a :class:`~detectors.steering.Steering` (no I/O).

The records of the ``feedback`` and ``silences`` topics (or of the files ``lookout replay
--feedback/--silences`` reads) are validated like events: a bad one never stops anything, it
becomes a dead-letter record with its one-line reason. A null value (a tombstone) removes the
record of its key.

>>> from detectors.steering import Steering
>>> feed = SteeringFeed(Steering())
>>> feed.apply(SILENCES, b"mw-1", b'{"id": "mw-1", "customer_id": "acme", "from": 0, "until": 3600}')
>>> sorted(feed.steering.windows), feed.counts[("window", "applied")]
(['mw-1'], 1)
>>> feed.apply(SILENCES, b"mw-2", b'{"id": "mw-2", "customer_id": "acme", "from": 0, "until": 0}')["reason"]
'until (1970-01-01T00:00:00Z) must be after from (1970-01-01T00:00:00Z)'
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterable

from detectors.config import FeedbackConfig
from detectors.events import KIND_CONTRACT, InvalidEvent, show
from detectors.feedback import InvalidRecord, Verdict, parse_verdict
from detectors.silences import Window, parse_window, window_from_alertmanager
from detectors.steering import Steering
from streams.pipeline.codecs import decode_json, dlq_record

__all__ = ["FEEDBACK", "SILENCES", "SteeringFeed", "decode_verdict", "decode_window", "load_lines"]

#: which topic a record came from (and the ``kind`` label of the records counter)
FEEDBACK, SILENCES = "feedback", "silences"
KINDS = {FEEDBACK: "verdict", SILENCES: "window"}
#: largest record value read, bytes (a record is well under 2 KB)
MAX_RECORD_BYTES = 16 * 1024


def _key_text(key: Any) -> str | None:
    if key is None:
        return None
    if isinstance(key, (bytes, bytearray)):
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRecord("key is not UTF-8 text") from None
    return str(key)


def decode_verdict(key: Any, value: bytes | str) -> Verdict:
    """A ``feedback`` message as a verdict; :class:`~detectors.feedback.InvalidRecord` if it is not one."""
    v = parse_verdict(_json(value))
    k = _key_text(key)
    if k is not None and k != v.alert_id:
        raise InvalidRecord(f"key {show(k)} is not the record's alert_id {show(v.alert_id)}")
    return v


def decode_window(key: Any, value: bytes | str, fb: FeedbackConfig | None = None,
                  now: float | None = None) -> Window:
    """A ``silences`` message as a window: a Lookout window, or an Alertmanager silence
    (``matchers``...) mapped to one (created ``now``)."""
    fb = fb or FeedbackConfig()
    obj = _json(value)
    if isinstance(obj, dict) and "matchers" in obj:
        w = window_from_alertmanager(obj, now=time.time() if now is None else now,
                                     max_window_s=fb.max_window_s, max_backdate_s=fb.max_backdate_s)
    else:
        w = parse_window(obj, max_window_s=fb.max_window_s, max_backdate_s=fb.max_backdate_s)
    k = _key_text(key)
    if k is not None and k != w.id:
        raise InvalidRecord(f"key {show(k)} is not the record's id {show(w.id)}")
    return w


def _json(value: bytes | str) -> Any:
    try:
        return decode_json(value, MAX_RECORD_BYTES)
    except InvalidEvent as exc:
        raise InvalidRecord(str(exc)) from None


def load_lines(feed: "SteeringFeed", topic: str, lines: Iterable[str | bytes], name: str = "") -> int:
    """Apply the JSON lines of a file (``lookout replay --feedback/--silences``) to ``feed``;
    return how many were applied. Blank lines are skipped; a bad one raises
    :class:`~detectors.feedback.InvalidRecord` naming the file and line.
    """
    n = 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        dead = feed.apply(topic, None, line if isinstance(line, bytes) else line.encode())
        if dead is not None:
            raise InvalidRecord(f"{name or topic} line {i}: {dead['reason']}")
        n += 1
    return n


class SteeringFeed:
    """Applies records to ``steering``; counts them by (kind, result) and returns dead letters.

    Parameters
    ----------
    steering : Steering
        Where verdicts and windows go.
    clock : callable
        Wall clock (``received_at`` of dead letters).
    on_change : callable, optional
        Called with the customer id after a record of it was applied.
    on_count : callable, optional
        Called with (kind, result) of every record (metrics).
    """

    def __init__(self, steering: Steering, clock: Callable[[], float] = time.time,
                 on_change: Callable[[str], Any] | None = None,
                 on_count: Callable[[str, str], Any] | None = None):
        self.steering = steering
        self.clock = clock
        self.on_change = on_change
        self.on_count = on_count
        self.counts: Counter[tuple[str, str]] = Counter()

    def _counted(self, kind: str, result: str) -> None:
        self.counts[(kind, result)] += 1
        if self.on_count is not None:
            self.on_count(kind, result)

    def apply(self, topic: str, key: Any, value: bytes | str | None, *, source: str = "",
              partition: int | None = None, offset: int | None = None) -> dict[str, Any] | None:
        """Apply one message of ``topic`` (:data:`FEEDBACK` or :data:`SILENCES`); the dead-letter
        record if it is not a valid record (nothing is applied then), else None."""
        kind = KINDS[topic]
        st = self.steering
        try:
            if value is None:
                k = _key_text(key)
                if k is None:
                    raise InvalidRecord("a tombstone (null value) needs a key")
                cid = self._drop(topic, k)
                self._counted(kind, "removed")
            elif topic == FEEDBACK:
                v = decode_verdict(key, value)
                st.put_verdict(v)
                cid = v.customer_id
                self._counted(kind, "withdrawn" if v.withdrawn_at is not None else "applied")
            else:
                w = decode_window(key, value, st.fb, self.clock())
                st.put_window(w)
                cid = w.customer_id
                self._counted(kind, "expired" if w.expired_at is not None else "applied")
        except InvalidRecord as exc:
            self._counted(kind, "invalid")
            return dlq_record(value, str(exc), kind=KIND_CONTRACT, key=key, source=source or topic,
                              partition=partition, offset=offset, now=self.clock())
        if cid is not None and self.on_change is not None:
            self.on_change(cid)
        return None

    def _drop(self, topic: str, key: str) -> str | None:
        st = self.steering
        if topic == FEEDBACK:
            old_v = st.verdicts.get(key)
            st.drop_verdict(key)
            return old_v.customer_id if old_v is not None else None
        old_w = st.windows.get(key)
        st.drop_window(key)
        return old_w.customer_id if old_w is not None else None
