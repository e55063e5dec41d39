"""Hostile ``request-metrics`` messages, for tests that mix them into a valid stream.

:func:`hostile_messages` returns ``(key, value, kind)`` triples: ``kind`` is the dead-letter
kind the worker must give the message (``lookout_dlq_messages_total{kind=...}``). Every message
is rejected by :func:`streams.pipeline.codecs.decode_event` or, for kind ``future``, by the processor's
wall-clock check (a unit test checks both). Customer ids and keys are the simulator's
(``cust-0001`` ...), so a message that slipped through would land on a real customer: e.g. an
accepted event from 2099 would make every later event of that customer a duplicate.

>>> msgs = hostile_messages(len(TEMPLATES), seed=1)
>>> sorted({kind for _, _, kind in msgs}) == sorted(KINDS)
True
"""
from __future__ import annotations

import json
import random
from typing import Callable

#: kinds produced (the processor's ``INVALID_KINDS`` minus ``internal``, which needs a bug)
KINDS = ("undecodable", "oversized", "contract", "future")
#: just over the decoder's 64 KiB message limit
OVERSIZED_BYTES = 64 * 1024 + 1
#: the simulator's customer ids (``cust-0001`` ...) that hostile messages target
CUSTOMERS = 100


def _event(rng: random.Random, cid: str) -> dict:
    """A valid event (2026-01-05 plus a few days), the base every mutation starts from."""
    requests = rng.randint(100, 100_000)
    return {"customer_id": cid, "ts": 1767571200 + 300 * rng.randint(0, 2880), "interval_s": 300,
            "requests": requests, "status_4xx": requests // 50, "status_5xx": requests // 200,
            "origin_errors": {"522": requests // 400}, "latency_p50_ms": 20.5, "latency_p99_ms": 310.0,
            "cache_hits": requests // 2, "bytes_out": requests * 1000}


def _js(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def _replace(ev: dict, field: str, literal: str) -> bytes:
    """The event with ``field``'s value replaced by a raw JSON ``literal`` (which json.dumps cannot write)."""
    return _js(ev | {field: "@@"}).replace(b'"@@"', literal.encode())


Template = Callable[[random.Random, dict], bytes]

#: (kind, description, message from a valid event)
TEMPLATES: list[tuple[str, str, Template]] = [
    # -- not JSON text
    ("undecodable", "not UTF-8", lambda r, ev: b"\xff\xfe" + _js(ev)[2:]),
    ("undecodable", "UTF-16 encoded JSON", lambda r, ev: json.dumps(ev).encode("utf-16")),
    ("undecodable", "truncated JSON", lambda r, ev: _js(ev)[: r.randint(1, 40)]),
    ("undecodable", "empty value", lambda r, ev: b""),
    ("undecodable", "NaN literal", lambda r, ev: _replace(ev, "latency_p99_ms", "NaN")),
    ("undecodable", "Infinity literal", lambda r, ev: _replace(ev, "requests", "Infinity")),
    ("undecodable", "-Infinity literal", lambda r, ev: _replace(ev, "latency_p50_ms", "-Infinity")),
    ("undecodable", "two JSON values", lambda r, ev: _js(ev) + b" " + _js(ev)),
    (
        "undecodable",
        "raw control character in a string",
        lambda r, ev: _js(ev).replace(b'"interval_s"', b'"inter\x01"'),
    ),
    # -- over a size limit
    ("oversized", "5,000-digit integer", lambda r, ev: _replace(ev, "requests", "9" * 5000)),
    ("oversized", "400-digit integer", lambda r, ev: _replace(ev, "bytes_out", "1" + "0" * 399)),
    ("oversized", "41-digit integer in an unknown field", lambda r, ev: _replace(ev, "trace", "7" * 41)),
    ("oversized", "arrays nested 10,000 deep", lambda r, ev: b"[" * 10_000 + b"]" * 10_000),
    (
        "oversized",
        "objects nested 10,000 deep in a field",
        lambda r, ev: _replace(ev, "extra", '{"a":' * 10_000 + "1" + "}" * 10_000),
    ),
    ("oversized", "message over 64 KiB", lambda r, ev: _js(ev | {"padding": "x" * OVERSIZED_BYTES})),
    # -- JSON, but breaks the contract
    (
        "contract",
        "customer id with a trailing newline",
        lambda r, ev: _js(ev | {"customer_id": ev["customer_id"] + "\n"}),
    ),
    (
        "contract",
        "customer id with Arabic-Indic digits",
        lambda r, ev: _js(ev | {"customer_id": "cust-\u0660\u0661"}),
    ),
    (
        "contract",
        "customer id with fullwidth letters",
        lambda r, ev: _js(ev | {"customer_id": "\uff43ust-0001"}),
    ),
    ("contract", "customer id of 65 chars", lambda r, ev: _js(ev | {"customer_id": "c" * 65})),
    (
        "contract",
        "origin code in Arabic-Indic digits",
        lambda r, ev: _js(ev | {"origin_errors": {"\u0665\u0662\u0662": 1}}),
    ),
    ("contract", "origin code with a newline", lambda r, ev: _js(ev | {"origin_errors": {"522\n": 1}})),
    ("contract", "requests 1e300", lambda r, ev: _replace(ev, "requests", "1e300")),
    ("contract", "requests 1e999 (inf)", lambda r, ev: _replace(ev, "requests", "1e999")),
    ("contract", "requests 2**53 + 1", lambda r, ev: _js(ev | {"requests": 2**53 + 1})),
    ("contract", "latency 1e300 ms", lambda r, ev: _replace(ev, "latency_p99_ms", "1e300")),
    ("contract", "negative count", lambda r, ev: _js(ev | {"status_4xx": -r.randint(1, 10)})),
    ("contract", "boolean count", lambda r, ev: _js(ev | {"requests": True})),
    ("contract", "5xx above requests", lambda r, ev: _js(ev | {"status_5xx": ev["requests"] + 1})),
    ("contract", "missing requests", lambda r, ev: _js({k: v for k, v in ev.items() if k != "requests"})),
    ("contract", "ts without a time zone", lambda r, ev: _js(ev | {"ts": "2026-01-05T10:00:00"})),
    (
        "contract",
        "ts with Arabic-Indic digits",
        lambda r, ev: _js(ev | {"ts": "\u0662\u0660\u0662\u0666-01-05T10:00:00Z"}),
    ),
    ("contract", "ts 1e300", lambda r, ev: _replace(ev, "ts", "1e300")),
    ("contract", "ts of 40 digits", lambda r, ev: _replace(ev, "ts", "9" * 40)),
    ("contract", "a JSON array", lambda r, ev: _js([ev])),
    ("contract", "a JSON string", lambda r, ev: b'"hello"'),
    ("contract", "null", lambda r, ev: b"null"),
    # -- too far ahead of the wall clock (valid otherwise)
    ("future", "ts in 2099", lambda r, ev: _js(ev | {"ts": f"2099-{r.randint(1, 12):02d}-01T00:00:00Z"})),
    ("future", "epoch ts in 2099", lambda r, ev: _js(ev | {"ts": 4_070_908_800 + 300 * r.randint(0, 1000)})),
]


def hostile_messages(n: int, seed: int) -> list[tuple[bytes | None, bytes, str]]:
    """``n`` hostile messages as ``(key, value, expected dead-letter kind)``, deterministic per ``seed``.

    Every template comes once in each run of ``len(TEMPLATES)`` messages (in a shuffled order),
    so any ``n >= len(TEMPLATES)`` covers every kind of hostile input. About one key in ten is None.
    """
    rng = random.Random(seed)
    order: list[int] = []
    out: list[tuple[bytes | None, bytes, str]] = []
    for _ in range(n):
        if not order:
            order = list(range(len(TEMPLATES)))
            rng.shuffle(order)
        kind, _, make = TEMPLATES[order.pop()]
        cid = f"cust-{rng.randint(1, CUSTOMERS):04d}"
        key = None if rng.random() < 0.1 else cid.encode()
        out.append((key, make(rng, _event(rng, cid)), kind))
    return out
