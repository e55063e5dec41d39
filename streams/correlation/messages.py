"""The correlator's own topics: what a message on them is, encoded and decoded (never raising).

The detection worker sends one **batch** record per topic partition and processed chunk (a
Kafka message costs a Faust worker far more than its bytes): the chunk's onsets or alerts
first, then the watermarks they are covered by.

*Onsets* topic (stage one's input; a record goes to the partition its groups hash to)::

    {"k": "batch", "onsets": [["origin_provider=p1", {customer_id, ts, interval_s, family}], ...],
     "wm": [["d3", 1767607200.0], ...]}                    input partition 3 reached this event time

*Parents* topic (stage two's input, one partition)::

    {"k": "batch", "alerts": [{...the alerts topic's record...}, ...],
     "wm": [["d3", ...], ...]}                             all alerts of d3 before it are here
    {"k": "tests", "src": "g1", "ts": W, "iv": 300,       stage one's partition 1 closed every interval
     "closed": [[t, [GroupTest, ...]], ...]}              ending by W; the tests of those that had any

Before batches, a record held one onset, alert or watermark; they are still read (a fleet
upgrades one worker at a time)::

    {"k": "onset", "group": "origin_provider=p1", "onset": {...}}
    {"k": "alert", "alert": {...}}
    {"k": "wm", "src": "d3", "ts": 1767607200.0}

A message that is not one of these (it can only come from something else writing to the
topics) is decoded to ``(None, reason)``: the stages count and dead-letter it.

>>> kind, body = decode(encode_watermark("d3", 600.0))
>>> kind, body
('wm', ('d3', 600.0))
>>> [value] = encode_batches([], [("d3", 600.0)])
>>> decode(value)
('batch', Batch(onsets=[], alerts=[], marks=[('d3', 600.0)]))
>>> decode(b'{"k": "onset"}')
(None, 'onset message needs group and onset')
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import orjson

from detectors.group_counts import GroupTest
from detectors.onsets import Onset
from streams.pipeline.codecs import encode_json

__all__ = ["MAX_RECORD_BYTES", "Batch", "decode", "encode_alert", "encode_batches", "encode_onset",
           "encode_record", "encode_tests", "encode_watermark", "onset_item"]

#: a batch record is cut before it grows past this (Kafka refuses records over ~1 MB by default)
MAX_RECORD_BYTES = 512 * 1024


class Batch(NamedTuple):
    """A batch record's content: onsets (with their group), alerts, then the watermarks after them."""

    onsets: list[tuple[str, Onset]]
    alerts: list[dict[str, Any]]
    marks: list[tuple[str, float]]


def encode_batches(items: Iterable[bytes], marks: Sequence[tuple[str, float]], *, field: str = "onsets",
                   limit: int = MAX_RECORD_BYTES) -> list[bytes]:
    """Batch records of ``items`` (each already JSON) under ``field``, the watermarks ``marks`` in the last.

    Items are packed in order into records of at most ``limit`` bytes (an item bigger than that
    gets a record of its own); no items and no marks: no record.

    >>> records = encode_batches([b'{"a":1}', b'{"b":2}'], [("d0", 9.0)], field="alerts", limit=30)
    >>> import json
    >>> [json.loads(r) for r in records]
    [{'k': 'batch', 'alerts': [{'a': 1}]}, {'k': 'batch', 'alerts': [{'b': 2}], 'wm': [['d0', 9.0]]}]
    """
    head = b'{"k":"batch","' + field.encode() + b'":['
    tail = b"]" + (b',"wm":' + encode_json([[s, ts] for s, ts in marks]) if marks else b"") + b"}"
    records: list[bytes] = []
    part: list[bytes] = []
    size = len(head) + len(tail)
    for item in items:
        if part and size + len(item) + 1 > limit:
            records.append(head + b",".join(part) + b"]}")
            part, size = [], len(head) + len(tail)
        part.append(item)
        size += len(item) + 1
    if part or marks:
        records.append(head + b",".join(part) + tail)
    return records


def encode_record(obj: Any) -> bytes:
    """The correlator's own records -- group tests and the stages' state -- as compact JSON.

    The same JSON values :func:`~streams.pipeline.codecs.encode_json` writes (any JSON reader
    takes them back), written by ``orjson``: a replayed backlog has stage one send the tests of
    hundreds of intervals at once and stage two hold them in its state, which ``json`` took ~37 ms
    to encode per 1.6 MB (orjson ~3 ms). Their numbers are all finite (counts, rates, surprises
    of finite tails, event times), where ``encode_json`` would refuse a NaN and orjson write null.

    >>> import json
    >>> json.loads(encode_record({"ts": 1767607200.0, "p": 1e-05, "onsets": {"c1": 600.0}}))
    {'ts': 1767607200.0, 'p': 1e-05, 'onsets': {'c1': 600.0}}
    """
    return orjson.dumps(obj)


def onset_item(group: str, onset: Onset) -> bytes:
    """One onset of a batch record (JSON)."""
    return encode_json([group, onset.to_json()])


def encode_onset(group: str, onset: Onset) -> bytes:
    return encode_json({"k": "onset", "group": group, "onset": onset.to_json()})


def encode_watermark(source: str, ts: float) -> bytes:
    return encode_json({"k": "wm", "src": source, "ts": ts})


def encode_alert(alert: Mapping[str, Any]) -> bytes:
    return encode_json({"k": "alert", "alert": alert})


def encode_tests(source: str, ts: float, iv: int | None,
                 closed: Sequence[tuple[float, Sequence[GroupTest]]]) -> bytes:
    return encode_record({"k": "tests", "src": source, "ts": ts, "iv": iv,
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
    if kind == "batch":
        return _decode_batch(obj)
    if kind == "tests":
        iv = obj.get("iv")
        if not isinstance(obj.get("src"), str) or not _number(obj.get("ts")) or not isinstance(
                obj.get("closed"), list) or not (iv is None or isinstance(iv, int) and iv > 0):
            return None, "tests message needs src, ts, iv and closed"
        closed = [(float(t), [GroupTest.from_json(x) for x in xs]) for t, xs in obj["closed"]]
        return "tests", (obj["src"], float(obj["ts"]), iv, closed)
    return None, f"unknown message kind {kind!r}"


def _decode_batch(obj: dict[str, Any]) -> tuple[str | None, Any]:
    onsets, alerts, marks = obj.get("onsets", []), obj.get("alerts", []), obj.get("wm", [])
    if not isinstance(onsets, list) or not all(
            isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], dict)
            for x in onsets):
        return None, "batch onsets must be a list of [group, onset]"
    if not isinstance(alerts, list) or not all(
            isinstance(a, dict) and {"alert_id", "status", "customer_id"} <= a.keys() for a in alerts):
        return None, "batch alerts must be a list of alerts with alert_id, status and customer_id"
    if not isinstance(marks, list) or not all(
            isinstance(m, list) and len(m) == 2 and isinstance(m[0], str) and _number(m[1]) for m in marks):
        return None, "batch wm must be a list of [src, numeric ts]"
    return "batch", Batch([(g, Onset.from_json(o)) for g, o in onsets], alerts,
                          [(src, float(ts)) for src, ts in marks])


def decode(value: bytes | str | None) -> tuple[str | None, Any]:
    """``(kind, body)`` of one message, or ``(None, reason)`` for anything else."""
    try:
        # orjson: a batch of tests is hundreds of intervals' worth in a replayed backlog
        return _decode_obj(orjson.loads(value)) if value is not None else (None, "empty message")
    except (ValueError, TypeError, KeyError) as exc:
        return None, f"undecodable: {str(exc)[:200]}"
