"""Hostile input never stops the stream: every bad message is one dead letter with a reason and a kind.

Unit tests for each named kind of hostile message (tests/hostile.py), the wall-clock check,
the safety net for bugs, and Hypothesis properties of the decoder and of ``handle_many``.
"""
import gc
import json
import logging
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from detectors.engine import Engine
from detectors.events import CUSTOMER_ID_RE, INVALID_KINDS, MAX_COUNT, MAX_TS, Event, InvalidEvent, parse_ts
from streams.pipeline import processor as processor_module
from streams.pipeline.codecs import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_MESSAGE_BYTES,
    decode_event,
    decode_json,
    encode_json,
)
from streams.pipeline.metrics import WorkerMetrics
from streams.pipeline.processor import Processor
from tests.hostile import KINDS, TEMPLATES, _event, hostile_messages

#: a fixed wall clock for the tests: 2026-06-01T00:00:00Z, later than every event below but 2099's
NOW = parse_ts("2026-06-01T00:00:00Z")
HOUR = 3600.0
DAY = 86400.0


def good(cid="cust-0001", ts=NOW - DAY, **fields):
    return {"customer_id": cid, "ts": ts, "interval_s": 300, "requests": 1000, "status_4xx": 10,
            "status_5xx": 2, "latency_p50_ms": 20.0, "latency_p99_ms": 300.0} | fields


def processor(**kw):
    metrics = WorkerMetrics(CollectorRegistry())
    return Processor(Engine(), metrics, clock=lambda: NOW, **kw), metrics


def dlq_count(metrics, kind, topic="request-metrics-dlq"):
    return metrics.dlq.labels(topic, kind)._value.get()


# ------------------------------------------------------------------ each named hostile kind


@pytest.mark.parametrize("kind, description, make", TEMPLATES, ids=[t[1] for t in TEMPLATES])
def test_each_hostile_message_is_one_dead_letter_of_its_kind(kind, description, make):
    import random

    rng = random.Random(7)
    value = make(rng, _event(rng, "cust-0001"))
    proc, metrics = processor()
    out = proc.handle_many([(b"cust-0001", value, "request-metrics", 3, 42)])
    assert out.events == 1 and out.alerts == []
    assert len(out.dlq) == 1, description
    d = out.dlq[0]
    assert d["kind"] == kind and d["reason"] and len(d["reason"]) < 300
    assert (d["key"], d["partition"], d["offset"], d["source"]) == ("cust-0001", 3, 42, "request-metrics")
    assert len(d["raw"]) <= 10_000 + len("...[truncated]")
    json.loads(encode_json(d))  # the record itself can be sent
    assert proc.engine.customers == {}  # nothing reached the engine
    assert dlq_count(metrics, kind) == 1
    assert metrics.events.labels("invalid")._value.get() == 1


@pytest.mark.parametrize("value, kind, reason", [
    (b'{"requests": ' + b"9" * 5000 + b"}", "oversized", "5,000 digits"),
    (b'{"requests": ' + b"9" * 400 + b"}", "oversized", "400 digits"),
    (b"[" * 10_000 + b"]" * 10_000, "oversized", f"deeper than {MAX_DEPTH}"),
    (b'{"a": "' + b"x" * MAX_MESSAGE_BYTES + b'"}', "oversized", "65,545 bytes"),
    (b"\xc3\x28", "undecodable", "not UTF-8"),
    (b'{"latency_p99_ms": NaN}', "undecodable", "NaN is not a JSON number"),
    (b'{"requests": -Infinity}', "undecodable", "-Infinity is not a JSON number"),
    ('{"customer_id": "c"}' + " " * MAX_MESSAGE_BYTES, "oversized", "bytes"),  # str values (replay) too
])
def test_decoder_reasons_name_the_limit(value, kind, reason):
    with pytest.raises(InvalidEvent, match=reason) as exc:
        decode_event(value)
    assert exc.value.kind == kind


def test_limits_are_inclusive_and_a_valid_event_at_the_limits_decodes():
    nested = {"x": 1}
    for _ in range(MAX_DEPTH - 2):  # the event itself and "extra" are two levels
        nested = [nested]
    ev = good(extra=nested, big=int("9" * MAX_INT_DIGITS), neg=-int("9" * MAX_INT_DIGITS))
    text = json.dumps(ev)
    ev["pad"] = "p" * (MAX_MESSAGE_BYTES - len(text) - len(', "pad": ""'))
    raw = json.dumps(ev).encode()
    assert len(raw) == MAX_MESSAGE_BYTES
    assert decode_event(raw).customer_id == "cust-0001"
    with pytest.raises(InvalidEvent, match="bytes"):
        decode_event(raw + b" ")


@pytest.mark.parametrize("tail, ok", [
    ("\n", True), (" \t\r\n", True), ("", True),
    (" x", False), ("{}", False), ("\u00a0", False),  # a no-break space is not JSON whitespace
    ("\n\n{", False),
])
def test_an_event_is_one_json_value_and_json_whitespace(tail, ok):
    """Only JSON's own whitespace may follow the object (the newline of a JSON line)."""
    text = json.dumps(good()) + tail
    if ok:
        assert decode_event(text) == decode_event(text.encode()) == decode_event(json.dumps(good()))
    else:
        with pytest.raises(InvalidEvent, match="invalid JSON: Extra data") as exc:
            decode_event(text.encode())
        assert exc.value.kind == "undecodable"


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert decode_event(json.dumps(good(note="[{" * 1000)).encode()).requests == 1000


# ------------------------------------------------------------------ the wall clock


def test_an_event_from_2099_is_parked_and_does_not_silence_its_customer():
    proc, metrics = processor()
    first = proc.handle(json.dumps(good(ts=NOW - 2 * DAY)))
    future = proc.handle(json.dumps(good(ts="2099-01-01T00:00:00Z")))
    later = proc.handle(json.dumps(good(ts=NOW - DAY)))
    assert first.dlq == [] and later.dlq == []
    assert [d["kind"] for d in future.dlq] == ["future"] and "ahead of the wall clock" in future.dlq[0][
        "reason"
    ]
    assert proc.engine.last_ts_of("cust-0001") == NOW - DAY  # the later event was not a duplicate
    assert metrics.events.labels("duplicate")._value.get() == 0
    assert dlq_count(metrics, "future") == 1


@pytest.mark.parametrize("ahead, parked", [(HOUR, False), (HOUR + 1, True), (-365 * DAY, False)])
def test_the_future_limit_is_max_future_s(ahead, parked):
    proc, _ = processor(max_future_s=HOUR)
    out = proc.handle(json.dumps(good(ts=NOW + ahead)))
    assert bool(out.dlq) is parked


def test_the_future_check_can_be_turned_off_and_follows_the_injected_clock():
    proc, _ = processor(max_future_s=None)
    assert proc.handle(json.dumps(good(ts="2099-01-01T00:00:00Z"))).dlq == []
    late = Processor(Engine(), clock=lambda: parse_ts("2099-01-01T00:00:00Z"))
    assert late.handle(json.dumps(good(ts="2099-01-01T00:30:00Z"))).dlq == []
    with pytest.raises(ValueError):
        Processor(Engine(), max_future_s=-1)


# ------------------------------------------------------------------ bugs become dead letters, not crashes


def test_a_decoder_bug_is_one_dead_letter_and_is_logged_once(monkeypatch, caplog):
    real = processor_module.decode_message

    def buggy(value):
        if b"boom" in value:
            raise KeyError("bug")
        return real(value)

    monkeypatch.setattr(processor_module, "decode_message", buggy)
    proc, metrics = processor()
    records = [
        (None, json.dumps(good(ts=NOW - DAY + i * 300, boom=True)).encode(), "t", 0, i) for i in range(3)
    ]
    records.insert(1, (None, json.dumps(good(cid="ok")).encode(), "t", 0, 99))
    with caplog.at_level(logging.ERROR, logger="lookout.processor"):
        out = proc.handle_many(records)
    assert [d["offset"] for d in out.dlq] == [0, 1, 2] and {d["kind"] for d in out.dlq} == {"internal"}
    assert "KeyError" in out.dlq[0]["reason"]
    assert list(proc.engine.customers) == ["ok"]
    assert dlq_count(metrics, "internal") == 3
    assert len([r for r in caplog.records if "KeyError" in r.getMessage()]) == 1


def test_an_engine_bug_is_not_bad_input_it_propagates_to_stop_the_worker():
    """A valid event the engine fails on is not parked as bad input: the worker must stop (exit 70)."""
    class Fragile(Engine):
        def process_many(self, events):
            if any(e.customer_id == "poison" for e in events):
                raise ZeroDivisionError("float division by zero")
            return super().process_many(events)

    proc = Processor(Fragile(), clock=lambda: NOW)
    values = [json.dumps(good(cid=c, ts=NOW - DAY + i * 300)) for i in range(3) for c in ("a", "poison", "b")]
    with pytest.raises(ZeroDivisionError):
        proc.handle_many((None, v, "t", 0, i) for i, v in enumerate(values))
    assert gc.isenabled()  # the collector, paused for the batch, runs again


def test_the_garbage_collector_is_paused_for_a_batch_only():
    seen = []

    class Watching(Engine):
        def process_many(self, events):
            seen.append(gc.isenabled())
            return super().process_many(events)

    proc = Processor(Watching(), clock=lambda: NOW)
    proc.handle_many([(None, json.dumps(good()), "t", 0, 1), (None, b"{", "t", 0, 2)])
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        proc.handle_many([(None, json.dumps(good(ts=NOW - DAY + 300)), "t", 0, 3)])
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_every_kind_is_a_pre_declared_metric_label():
    _, metrics = processor()
    for kind in INVALID_KINDS:
        assert dlq_count(metrics, kind) == 0
    assert set(KINDS) <= set(INVALID_KINDS)


# ------------------------------------------------------------------ the reusable generator


def test_hostile_messages_cover_every_kind_and_are_all_rejected_as_labelled():
    msgs = hostile_messages(3 * len(TEMPLATES) + 5, seed=11)
    assert msgs == hostile_messages(3 * len(TEMPLATES) + 5, seed=11)  # deterministic
    assert msgs != hostile_messages(3 * len(TEMPLATES) + 5, seed=12)
    assert {k for _, _, k in msgs} == set(KINDS)
    assert any(key is None for key, _, _ in msgs) and any(key is not None for key, _, _ in msgs)
    proc = Processor(Engine())  # the real wall clock, as in the worker
    for key, value, kind in msgs:
        assert isinstance(value, bytes)
        if kind != "future":
            with pytest.raises(InvalidEvent) as exc:
                decode_event(value)
            assert exc.value.kind == kind, value[:80]
        out = proc.handle(value, key=key)
        assert [d["kind"] for d in out.dlq] == [kind], value[:80]
    assert proc.engine.customers == {}


# ------------------------------------------------------------------ properties (Hypothesis)

PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalars = (st.none() | st.booleans() | st.text(max_size=20)
                | st.integers(min_value=-(10**60), max_value=10**60)
                | st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=20)
FIELDS = ("customer_id", "ts", "interval_s", "requests", "status_4xx", "status_5xx", "origin_errors",
          "latency_p50_ms", "latency_p99_ms", "cache_hits", "bytes_out")


@st.composite
def valid_events(draw, cid=None):
    requests = draw(st.integers(0, MAX_COUNT))
    s4 = draw(st.integers(0, requests))
    s5 = draw(st.integers(0, requests - s4))
    ev = {"customer_id": cid or draw(st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)),
          "ts": draw(st.integers(0, int(NOW))), "requests": requests, "status_4xx": s4, "status_5xx": s5}
    if draw(st.booleans()):
        ev["origin_errors"] = {draw(st.from_regex(r"[0-9]{3}", fullmatch=True)): draw(st.integers(0, s5))}
        ev["latency_p99_ms"] = draw(st.floats(0, 86_400_000))
    return ev


def check_decoded(result):
    """An accepted event satisfies the contract, whatever it was decoded from."""
    assert isinstance(result, Event)
    assert CUSTOMER_ID_RE.match(result.customer_id) and result.customer_id.isascii()
    assert "\n" not in result.customer_id
    assert math.isfinite(result.ts) and 0 <= result.ts <= MAX_TS
    for n in (
        result.requests,
        result.status_4xx,
        result.status_5xx,
        result.cache_hits or 0,
        result.bytes_out or 0,
    ):
        assert type(n) is int and 0 <= n <= MAX_COUNT
    assert result.status_4xx + result.status_5xx <= result.requests
    for v in (result.latency_p50_ms, result.latency_p99_ms):
        assert v is None or (math.isfinite(v) and v >= 0)
    for code, n in result.origin_errors.items():
        assert len(code) == 3 and code.isascii() and code.isdigit() and 0 < n <= MAX_COUNT


def decode_totally(value):
    try:
        result = decode_event(value)
    except InvalidEvent as exc:
        assert exc.kind in INVALID_KINDS and str(exc)
        return None
    check_decoded(result)
    return result


class _Constant(Exception):
    pass


def _refuse_constant(name):
    raise _Constant(name)


REFUSED = object()


def _refuse_long_int(text):
    if len(text.lstrip("-")) > MAX_INT_DIGITS:  # decode_json's documented limit
        raise _Constant(text)
    return int(text)


def json_reference(raw):
    """The standard library's decoder on the UTF-8 text (the semantics decode_json keeps), or
    REFUSED; integers of more than MAX_INT_DIGITS digits are refused, as decode_json documents
    (two inserted 20-digit runs side by side make one of 40 or more)."""
    try:
        return json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_refuse_long_int).decode(
            raw.decode("utf-8"))
    except (ValueError, _Constant):
        return REFUSED


def same(a, b):
    """Equal values of equal types all the way down (1 is not 1.0; -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


#: integers of up to MAX_INT_DIGITS digits, of both sizes: those within 64 bits and those beyond
_ints_within_limit = st.integers(-(2**70), 2**70) | st.integers(
    -(10**MAX_INT_DIGITS) + 1, 10**MAX_INT_DIGITS - 1
)
_values_within_limits = st.recursive(
    st.none() | st.booleans() | st.text(max_size=20) | _ints_within_limit | st.floats(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(_values_within_limits, st.booleans(), st.data())
def test_decode_json_gives_the_standard_decoders_value_or_refuses_what_it_refuses(value, ascii_only, data):
    """The fast JSON path changes no value (ints of any size stay ints, -0.0, duplicate keys,
    lone surrogates, a BOM, 1e400); what the standard decoder refuses is refused."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at] = data.draw(st.sampled_from(
            [b'"a": 1, "a": 2, ', b"\\ud800", b"\xef\xbb\xbf", b" ", b"\n", b"-0", b"1e400", b"\x00", b",",
             b"12345678901234567890", b"-9223372036854775809", b"0.1", b'"', b"NaN", b"\xed\xa0\x80"]))
    want = json_reference(bytes(raw))
    try:
        got = decode_json(bytes(raw), MAX_MESSAGE_BYTES)
    except InvalidEvent:
        assert want is REFUSED
    else:
        assert want is not REFUSED and same(got, want)


@PROPERTY
@given(st.binary(max_size=2000))
def test_any_bytes_decode_to_an_event_or_invalid_event(value):
    decode_totally(value)


@PROPERTY
@given(json_values)
def test_any_json_value_decodes_to_an_event_or_invalid_event(value):
    decode_totally(json.dumps(value).encode())  # NaN/Infinity written as literals too


@PROPERTY
@given(valid_events(), st.sampled_from(FIELDS), json_values | st.text(), st.booleans())
def test_mutated_events_decode_to_an_event_or_invalid_event(ev, field, value, delete):
    if delete:
        ev.pop(field, None)
    else:
        ev[field] = value
    decode_totally(json.dumps(ev).encode())


@PROPERTY
@given(valid_events(), st.data())
def test_byte_mutations_of_valid_events_decode_to_an_event_or_invalid_event(ev, data):
    raw = bytearray(json.dumps(ev).encode())
    assert decode_totally(bytes(raw)) is not None  # the unmutated event is valid
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = data.draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
            [b"9" * 50, b"[" * 40, b"\\n", "\u0661".encode(), b"NaN", b"1e999", b"\xff"]))
        if op == "insert":
            raw[at:at] = chunk
        elif op == "delete":
            del raw[at:at + len(chunk)]
        else:
            raw[at:at + len(chunk)] = chunk
    decode_totally(bytes(raw))


@PROPERTY
@given(
    valid_events(),
    st.sampled_from(["\n", "\u0661", "\uff10", "\uff41", " ", "\x00", "/"])
    | st.characters().filter(lambda c: not re.fullmatch(r"[A-Za-z0-9._:-]", c, re.ASCII)),
    st.integers(0, 64),
)
def test_a_customer_id_with_any_other_character_is_rejected(ev, ch, at):
    ev["customer_id"] = ev["customer_id"][:at] + ch + ev["customer_id"][at:]
    with pytest.raises(InvalidEvent, match="customer_id") as exc:
        decode_event(json.dumps(ev).encode())
    assert exc.value.kind == "contract"


@PROPERTY
@given(
    valid_events(),
    st.sampled_from(["522\n", "\u0665\u0662\u0662", "\uff15\uff12\uff12", " 522", "52", "5220"])
    | st.text(max_size=5).filter(lambda s: not re.fullmatch(r"[0-9]{3}", s, re.ASCII)),
)
def test_an_origin_code_other_than_three_ascii_digits_is_rejected(ev, code):
    ev["origin_errors"] = {code: 0}
    with pytest.raises(InvalidEvent, match="3-digit") as exc:
        decode_event(json.dumps(ev).encode())
    assert exc.value.kind == "contract"


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(valid_events(cid="x"), min_size=1, max_size=30), st.integers(0, 2**32), st.data())
def test_handle_many_parks_exactly_the_hostile_messages_and_processes_every_valid_one(events, seed, data):
    # valid events of distinct customers (each with one event, so none is a duplicate)
    valid = [json.dumps(ev | {"customer_id": f"c{i}"}).encode() for i, ev in enumerate(events)]
    hostile = [v for _, v, _ in hostile_messages(data.draw(st.integers(0, 2 * len(TEMPLATES))), seed)]
    tagged = [(v, True) for v in valid] + [(v, False) for v in hostile]
    tagged = data.draw(st.permutations(tagged))
    proc, metrics = processor()
    out = proc.handle_many((None, v, "t", 0, i) for i, (v, _) in enumerate(tagged))
    assert out.events == len(tagged)
    assert sorted(d["offset"] for d in out.dlq) == [i for i, (_, ok) in enumerate(tagged) if not ok]
    assert set(proc.engine.customers) == {f"c{i}" for i in range(len(events))}
    processed = sum(metrics.events.labels(o)._value.get() for o in ("scored", "warming"))
    assert processed == len(valid) and metrics.events.labels("invalid")._value.get() == len(hostile)


def test_max_future_s_is_a_setting_with_the_processors_default():
    from streams.settings import Settings

    assert Settings.from_env({"LOOKOUT_MAX_FUTURE_S": "120"}).max_future_s == 120.0
    assert Settings.from_env({}).max_future_s == Processor(Engine()).max_future_s == HOUR
