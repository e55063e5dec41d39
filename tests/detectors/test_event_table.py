"""The event contract is one table (the fields of ``Event``): the schemas, the validator, ``Event``,
``EventBatch``, ``to_json`` and the CSV cell types all follow it, and a new numeric field is one row."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jsonschema
import pytest

from detectors import events
from detectors.events import CONTRACT, COUNT, INTEGER, MAX_COUNT, NUMBER, RULES, InvalidEvent, parse_event

ROOT = Path(__file__).parents[2]
#: the row of the table a new row is written before (any row after the required ones would do)
ANCHOR = "    origin_errors: Mapping[str, int] = spec("


def gen_schemas():
    spec = importlib.util.spec_from_file_location("gen_schemas", ROOT / "scripts" / "gen_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def events_with(monkeypatch):
    """A fresh copy of detectors.events whose table has one more row (a line of ``class Event``)."""

    def load(row: str):
        source = Path(events.__file__).read_text()
        assert source.count(ANCHOR) == 1
        name = "detectors._events_with_one_more_field"
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
        monkeypatch.setitem(sys.modules, name, module)  # dataclasses look the module up
        exec(compile(source.replace(ANCHOR, row + "\n" + ANCHOR), f"<{name}>", "exec"), module.__dict__)
        return module

    return load


BASE = {"customer_id": "c1", "ts": "2026-01-05T00:00:00Z", "requests": 100, "status_4xx": 10, "status_5xx": 2}


def test_the_committed_schemas_are_what_the_table_gives():
    assert gen_schemas().stale() == [], "the table changed: run scripts/gen_schemas.py and commit schemas/"


def with_room(obj):
    """``obj`` with each rule's bound raised to the sum of its parts: only ranges can make it invalid."""
    obj = dict(obj)
    for _ in RULES:  # bounds may be parts of other rules: as many passes as there are rules
        for rule in RULES:
            parts = [obj.get(p) or 0 for p in rule.parts]
            if all(type(v) is int for v in parts) and type(obj.get(rule.bound)) is int:
                obj[rule.bound] = max(obj[rule.bound], sum(parts))
    return obj


def test_every_range_and_required_field_of_the_table_is_what_schema_and_validator_both_enforce():
    validator = jsonschema.Draft202012Validator(gen_schemas().event_schema())
    base = BASE | {"requests": 0, "status_4xx": 0, "status_5xx": 0}

    def both(obj):
        try:
            parse_event(obj)
            parsed = True
        except InvalidEvent:
            parsed = False
        assert validator.is_valid(obj) == parsed, obj
        return parsed

    for row in CONTRACT:
        if row.kind in (INTEGER, COUNT, NUMBER):
            step = 1 if row.kind != NUMBER else row.hi * 1e-9
            assert both(with_room(base | {row.name: row.lo})) and both(with_room(base | {row.name: row.hi}))
            assert not both(base | {row.name: row.lo - step}) and not both(base | {row.name: row.hi + step})
        assert both({k: v for k, v in base.items() if k != row.name}) == (not row.required), row.name


def test_a_new_numeric_field_is_one_row(events_with):
    ev = events_with('    client_closed: int | None = spec(COUNT, within="status_4xx")')
    assert ev.EVENT_FIELDS[-2:] == ("client_closed", "origin_errors")
    assert "client_closed <= status_4xx" in map(str, ev.RULES)
    assert "client_closed" not in events.EVENT_FIELDS  # the copy is its own

    e = ev.parse_event(BASE | {"client_closed": 7.0})
    assert e.client_closed == 7 and type(e.client_closed) is int
    assert ev.parse_event(BASE).client_closed is None
    assert e.to_json()["client_closed"] == 7 and ev.parse_event(e.to_json()) == e
    assert "client_closed" not in ev.parse_event(BASE).to_json()
    for bad, reason in [("7", "client_closed must be a non-negative integer, got str"),
                        (-1, "client_closed must be non-negative, got -1"),
                        (11, "client_closed (11) exceeds status_4xx (10)")]:
        with pytest.raises(ev.InvalidEvent) as info:
            ev.parse_event(BASE | {"client_closed": bad})
        assert str(info.value) == reason

    objs = [BASE | {"client_closed": 3}, BASE, BASE | {"customer_id": "c2", "client_closed": 0}]
    batch = ev.parse_batch(objs)
    assert batch.column("client_closed") == [3, None, 0] and list(batch) == [ev.parse_event(o) for o in objs]
    assert len(ev.event_fields(objs[0])) == len(ev.EVENT_FIELDS) == len(events.EVENT_FIELDS) + 1
    assert ev.FIELDS["client_closed"].csv == "integer"  # what streams.replay.files reads as an integer

    gen = gen_schemas()
    schema = gen.event_schema(ev.CONTRACT, ev.RULES)
    assert schema["properties"]["client_closed"] == {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
    assert "client_closed <= status_4xx" in schema["description"]
    jsonschema.Draft202012Validator(schema).validate(objs[0])


def test_a_new_number_field_takes_its_range_from_its_row(events_with):
    ev = events_with("    latency_p75_ms: float | None = spec(NUMBER, lo=0.0, hi=MAX_LATENCY_MS)")
    assert ev.parse_event(BASE | {"latency_p75_ms": 120}).latency_p75_ms == 120.0
    with pytest.raises(ev.InvalidEvent, match="latency_p75_ms must be a number from 0 to 86400000, got -1"):
        ev.parse_event(BASE | {"latency_p75_ms": -1})
    assert ev.FIELDS["latency_p75_ms"].csv == "number"


@pytest.mark.parametrize("row, error", [
    ("    client_closed: float | None = spec(COUNT)", "annotated 'float | None'; a count field is 'int"),
    ('    client_closed: int | None = spec(COUNT, within="cache_hits")', "cache_hits is not a required"),
    ("    client_closed: int | None = spec(COUNT, lo=1)", "range"),
    ("    client_id: str = spec(ID)", "required"),
])
def test_a_row_that_contradicts_itself_fails_at_import(events_with, row, error):
    with pytest.raises((TypeError, ValueError), match=error):
        events_with(row)
