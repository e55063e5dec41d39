"""The correlator's own topics: what a message on them is, encoded and decoded (never raising).

*Onsets* topic (stage one's input, key = the group, or ``wm:<partition>``)::

    {"k": "onset", "group": "origin_provider=p1", "onset": {customer_id, ts, interval_s, family}}
    {"k": "wm", "src": "d3", "ts": 1767607200.0}          input partition 3 reached this event time

*Parents* topic (stage two's input, one partition)::

    {"k": "alert", "alert": {...the alerts topic's record...}}
    {"k": "wm", "src": "d3", "ts": ...}                   as above: all alerts of d3 before it are here
    {"k": "tests", "src": "g1", "ts": W, "iv": 300,       stage one's partition 1 closed every interval
     "closed": [[t, [GroupTest, ...]], ...]}              ending by W; the tests of those that had any

A message that is not one of these (it can only come from something else writing to the
topics) is decoded to ``(None, reason)``: the stages count and dead-letter it.

>>> kind, body = decode(encode_watermark("d3", 600.0))
>>> kind, body
('wm', ('d3', 600.0))
>>> decode(b'{"k": "onset"}')
(None, 'onset message needs group and onset')
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from detectors.group_counts import GroupTest
from detectors.onsets import Onset
from streams.pipeline.codecs import encode_json

__all__ = ["decode", "encode_alert", "encode_onset", "encode_tests", "encode_watermark"]


def encode_onset(group: str, onset: Onset) -> bytes:
    return encode_json({"k": "onset", "group": group, "onset": onset.to_json()})


def encode_watermark(source: str, ts: float) -> bytes:
    return encode_json({"k": "wm", "src": source, "ts": ts})


def encode_alert(alert: Mapping[str, Any]) -> bytes:
    return encode_json({"k": "alert", "alert": alert})


def encode_tests(source: str, ts: float, iv: int | None,
                 closed: Sequence[tuple[float, Sequence[GroupTest]]]) -> bytes:
    return encode_json({"k": "tests", "src": source, "ts": ts, "iv": iv,
                        "closed": [[t, [x.to_json() for x in tests]] for t, tests in closed]})


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _decode_obj(obj: Any) -> tuple[str | None, Any]:
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    kind = obj.get("k")
    if kind == "onset":
        if not isinstance(obj.get("group"), str) or not isinstance(obj.get("onset"), dict):
            return None, "onset message needs group and onset"
        return "onset", (obj["group"], Onset.from_json(obj["onset"]))
    if kind == "wm":
        if not isinstance(obj.get("src"), str) or not _number(obj.get("ts")):
            return None, "watermark needs src and a numeric ts"
        return "wm", (obj["src"], float(obj["ts"]))
    if kind == "alert":
        a = obj.get("alert")
        if not isinstance(a, dict) or not {"alert_id", "status", "customer_id"} <= a.keys():
            return None, "alert message needs an alert with alert_id, status and customer_id"
        return "alert", a
    if kind == "tests":
        iv = obj.get("iv")
        if not isinstance(obj.get("src"), str) or not _number(obj.get("ts")) or not isinstance(
                obj.get("closed"), list) or not (iv is None or isinstance(iv, int) and iv > 0):
            return None, "tests message needs src, ts, iv and closed"
        closed = [(float(t), [GroupTest.from_json(x) for x in xs]) for t, xs in obj["closed"]]
        return "tests", (obj["src"], float(obj["ts"]), iv, closed)
    return None, f"unknown message kind {kind!r}"


def decode(value: bytes | str | None) -> tuple[str | None, Any]:
    """``(kind, body)`` of one message, or ``(None, reason)`` for anything else."""
    try:
        return _decode_obj(json.loads(value)) if value is not None else (None, "empty message")
    except (ValueError, TypeError, KeyError) as exc:
        return None, f"undecodable: {str(exc)[:200]}"
