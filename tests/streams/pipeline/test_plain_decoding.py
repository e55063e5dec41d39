"""Runs of plain lines are checked as a whole (decode_plain, Processor.decode_values) with the outcome
of decoding them one by one: the same events, and each bad line one dead letter with the same reason."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.engine import Engine
from detectors.events import EventBatch, InvalidEvent, parse_ts
from streams.pipeline.codecs import MAX_DEPTH, MAX_MESSAGE_BYTES, decode_message, decode_plain
from streams.pipeline.processor import Output, Processor
from tests.hostile import TEMPLATES, _event

NOW = parse_ts("2026-06-01T00:00:00Z")
#: plain lines around the others in the tests
RUN = 32


def good(i: int, **fields) -> dict:
    req = 1000 + i
    return {"customer_id": f"cust-{i % 7:04d}", "ts": "2026-01-05T00:00:00Z", "interval_s": 300,
            "requests": req, "status_4xx": i % 13, "status_5xx": i % 5, "origin_errors": {"522": i % 3},
            "latency_p50_ms": 20.5, "latency_p99_ms": 310.0, "cache_hits": req // 2,
            "bytes_out": req * 1000} | fields


def js(obj) -> bytes:
    return json.dumps(obj).encode()


def deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


#: valid lines that are not all plain, and lines a whole-run check must not let through
TRICKY: list[bytes] = [
    js(good(1, latency_p50_ms=20)),  # an int latency: valid, becomes 20.0
    js(good(2, requests=1000.0)),  # a count written as a float: valid through parse_event's full check
    js(good(3, ts=1767571200)),  # epoch seconds
    js(good(4, note="unknown fields are ignored", n=7)),
    js(good(5, customer_id="c" + "1" * 45)),  # a 45-digit run inside a string: valid
    js(good(6, trace=1234567890123456789)),  # a 19-digit integer in an unknown field: valid (json parses it)
    js(good(7, trace=[1, 2])),  # an array in an unknown field: valid
    js(good(8, origin_errors=None)),
    js(good(9, interval_s=None)),  # null is not "absent": contract
    js(good(10, ts="2099-01-01T00:00:00Z")),  # future
    js({"events": [good(11), good(12, status_5xx=-1), 5]}),  # an envelope: each event on its own
    b"  " + js(good(13)) + b"\r",  # whitespace around the object
    # a duplicate key hides what the first one held from the parsed object, not from the limits
    js(good(14))[:-1] + b', "bytes_out": ' + deep(MAX_DEPTH + 3).encode() + b', "bytes_out": 5}',
    js(good(15))[:-1] + b', "bytes_out": ' + b"9" * 45 + b', "bytes_out": 5}',
    js(good(16))[:-1] + b', "pad": "' + b"x" * (MAX_MESSAGE_BYTES - len(js(good(16))) - 12) + b'"}',
    js(good(17))[:-1] + b', "pad": "' + b"x" * (MAX_MESSAGE_BYTES - len(js(good(17))) - 11) + b'"}',
    js(good(18, x=json.loads(deep(MAX_DEPTH - 1)))),
    js(good(19, x=json.loads(deep(MAX_DEPTH)))),
    b'{"customer_id": "cust-0001", "customer_id": 5, "ts": 0, "requests": 1, "status_4xx": 0, '
    b'"status_5xx": 0}',
    js(good(22, x=json.loads("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)))),  # arrays count to the depth
    js(good(20, origin_errors={"522": 0})),
    js(good(21, status_4xx=True)),
    b"",
    b"   ",
]


def hostile(seed: int) -> bytes:
    rng = random.Random(seed)
    _, _, make = TEMPLATES[seed % len(TEMPLATES)]
    return make(rng, _event(rng, f"cust-{seed % 7:04d}"))


def plain_line():
    return st.one_of(
        st.integers(0, 10_000).map(lambda i: js(good(i))),
        st.integers(0, 10_000).map(lambda i: js(good(i, cache_hits=None, latency_p50_ms=None))),
    )


def other_line():
    return st.one_of(st.sampled_from(TRICKY), st.integers(0, 10 * len(TEMPLATES)).map(hostile))


@st.composite
def lines(draw):
    """Plain lines with a few others among them (each in its own, mostly plain, run)."""
    values = draw(st.lists(plain_line(), min_size=1, max_size=3 * RUN))
    for _ in range(draw(st.integers(0, 4))):
        values.insert(draw(st.integers(0, len(values))), draw(other_line()))
    return [v + b"\n" for v in values]


def processor() -> Processor:
    return Processor(Engine(), clock=lambda: NOW)


def one_by_one(values):
    p, out = processor(), Output()
    events = [e for k, v in enumerate(values) for e in p.decode_events(v, source="f", offset=k + 1, out=out)]
    return events, out


def in_runs(values):
    p, out = processor(), Output()
    parts = list(p.decode_values(values, list(range(1, len(values) + 1)), source="f", out=out))
    return [e for part in parts for e in part], out, parts


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines())
def test_runs_of_lines_give_what_line_by_line_decoding_gives(values):
    want, want_out = one_by_one(values)
    got, got_out, _ = in_runs(values)
    assert got == want
    assert got_out.dlq == want_out.dlq  # kind, reason, raw, offset and index, in order
    assert got_out.events == want_out.events


@pytest.mark.parametrize("other", TRICKY + [hostile(i) for i in range(len(TEMPLATES))])
def test_each_other_line_among_plain_ones_gives_what_line_by_line_decoding_gives(other):
    values = [js(good(i)) + b"\n" for i in range(2 * RUN)]
    values.insert(RUN + 3, other + b"\n")
    want, want_out = one_by_one(values)
    got, got_out, _ = in_runs(values)
    assert got == want and got_out.dlq == want_out.dlq and got_out.events == want_out.events


def test_plain_lines_come_out_as_one_batch_and_a_bad_one_costs_only_itself():
    values = [js(good(i)) + b"\n" for i in range(8 * RUN)]
    got, out, parts = in_runs(values)
    assert len(parts) == 1 and isinstance(parts[0], EventBatch) and len(got) == len(values) and not out.dlq
    values[100] = b'{"customer_id": "cust-0001"}\n'
    values[101] = js(good(101, ts="2099-01-01T00:00:00Z")) + b"\n"
    got, out, parts = in_runs(values)
    assert [d["offset"] for d in out.dlq] == [101, 102] and "missing required field" in out.dlq[0]["reason"]
    assert [d["kind"] for d in out.dlq] == ["contract", "future"] and len(got) == len(values) - 2
    # the lines around them are still batches: only the two went through decode_events
    assert [isinstance(p, EventBatch) for p in parts] == [True, False, False, True]


def test_lines_only_the_per_line_limits_refuse_are_never_plain():
    """A duplicate key hides from the parsed object a value the limits refuse; a line at the size
    limit is refused once its newline counts: the per-line decoder must see them."""

    base = js(good(0))[:-1]
    refused = [
        base + b', "bytes_out": ' + deep(MAX_DEPTH + 3).encode() + b', "bytes_out": 5}',
        base + b', "bytes_out": ' + b"9" * 45 + b', "bytes_out": 5}',
        base + b', "pad": "' + b"x" * (MAX_MESSAGE_BYTES - len(base) - 12) + b'"}',  # the limit, plus "\n"
    ]
    assert len(refused[-1]) == MAX_MESSAGE_BYTES
    for v in refused:
        assert decode_plain([js(good(1)), v]) is None
        with pytest.raises(InvalidEvent) as info:
            decode_message(v + b"\n")
        assert info.value.kind == "oversized"
    assert len(decode_plain([js(good(1)), refused[-1][:-3] + b'"}'])) == 2  # a byte shorter: plain
