#!/usr/bin/env python3
"""Write the JSON Schemas in ``schemas/`` from the event contract's table.

    .venv/bin/python scripts/gen_schemas.py            # (re)write schemas/*.schema.json
    .venv/bin/python scripts/gen_schemas.py --check    # exit 1 if a committed schema is stale

The table is :class:`detectors.events.Event` (one :func:`~detectors.events.spec` per field:
kind, range, required or default) with the cross-field rules :data:`detectors.events.RULES`;
the message limits come from :mod:`streams.pipeline.codecs`. Change those, run this, commit
the schemas with them: ``tests/detectors/test_event_table.py`` fails while a committed file
differs from what this writes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.events import (
    CODE_COUNTS,
    CONTRACT,
    COUNT,
    CUSTOMER_ID_RE,
    DEFAULT_MAX_FUTURE_S,
    ID,
    INTEGER,
    MAX_TS_CHARS,
    NUMBER,
    RULES,
    TIME,
    AtMost,
    FieldSpec,
)
from streams.pipeline.codecs import (
    ENVELOPE_KEY,
    MAX_DEPTH,
    MAX_ENVELOPE_BYTES,
    MAX_ENVELOPE_EVENTS,
    MAX_INT_DIGITS,
    MAX_MESSAGE_BYTES,
)

SCHEMAS = ROOT / "schemas"
EVENT_FILE = "request-metrics.schema.json"
ENVELOPE_FILE = "request-metrics-envelope.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://lookout.example/schemas/"
#: end of a whole-string pattern: ``$`` also matches before a trailing newline in some dialects
END = r"(?![\s\S])"
#: RFC 3339 with a zone, ASCII digits only (the decoder's own test is ``datetime.fromisoformat``)
RFC3339 = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
           + END)
#: a JSON value whose one-line form fits this many characters is written on one line
LINE = 110
#: a key of a code-count field: an HTTP status code
STATUS_CODE = "^[0-9]{3}" + END


def _num(x: Any) -> Any:
    """Integral floats as integers (``4102444800``, not ``4102444800.0``)."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _range(row: FieldSpec, type_: str) -> dict[str, Any]:
    return {"type": type_, "minimum": _num(row.lo), "maximum": _num(row.hi)}


def field_schema(row: FieldSpec) -> dict[str, Any]:
    """The JSON Schema of one field of the table, by its kind."""
    out: dict[str, Any] = {"description": row.doc} if row.doc else {}
    if row.kind == ID:
        out.update(type="string", pattern="^" + CUSTOMER_ID_RE.pattern.removesuffix(r"\Z") + END)
    elif row.kind == TIME:
        text = {"type": "string", "format": "date-time", "pattern": RFC3339, "maxLength": MAX_TS_CHARS}
        out["oneOf"] = [text, _range(row, "number")]
    elif row.kind in (INTEGER, COUNT, NUMBER):
        out.update(_range(row, "number" if row.kind == NUMBER else "integer"))
    elif row.kind == CODE_COUNTS:
        out.update(type="object", propertyNames={"pattern": STATUS_CODE},
                   additionalProperties=_range(row, "integer"))
    else:
        raise ValueError(f"{row.name}: no JSON Schema for kind {row.kind!r}")
    if row.default is not None:
        out["default"] = row.default
    return out


def event_schema(table: Sequence[FieldSpec] = CONTRACT, rules: Sequence[AtMost] = RULES) -> dict[str, Any]:
    """The schema of one event of ``table`` (default: the contract's) with cross-field ``rules``."""
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + EVENT_FILE,
        "title": "Lookout request-metrics event",
        "description": (
            "One customer's CDN traffic for one interval. Topic `request-metrics`, message key = "
            f"customer_id, value = UTF-8 JSON of at most {MAX_MESSAGE_BYTES} bytes, nested at most "
            f"{MAX_DEPTH} deep, integers of at most {MAX_INT_DIGITS} digits, no NaN/Infinity. Unknown extra "
            f"fields are ignored. Cross-field rules ({', '.join(map(str, rules))}) and ts at most "
            "max_future_s (default "
            f"{DEFAULT_MAX_FUTURE_S:g} s) ahead of the wall clock are enforced by the decoder "
            "(streams.pipeline.codecs.decode_event, detectors.events.parse_event, the worker). Patterns "
            "end in (?![\\s\\S]) rather than $ because in some regex dialects $ also matches before a "
            "trailing newline; character classes are ASCII. Generated from the table in "
            "detectors/events.py by scripts/gen_schemas.py."
        ),
        "type": "object",
        "required": [row.name for row in table if row.required],
        "properties": {row.name: field_schema(row) for row in table},
        "additionalProperties": True,
    }


def envelope_schema() -> dict[str, Any]:
    id_field = next(row.name for row in CONTRACT if row.kind == ID)
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + ENVELOPE_FILE,
        "title": "Lookout request-metrics envelope",
        "description": (
            "Many events of one input partition in one message (an aggregation tier flushing every "
            "interval produces them). Topic `request-metrics`, any key (or none), the partition chosen by "
            f"the producer: every event's {id_field} must hash to the message's partition as Kafka's "
            f"default partitioner does ((murmur2(UTF-8 {id_field}) & 0x7fffffff) % partitions; Java "
            "clients, kafka-python and aiokafka agree), else that event is dead-lettered with kind "
            f"`wrong_partition`. Value = UTF-8 JSON of at most {MAX_ENVELOPE_BYTES} bytes, nested at most "
            f"{MAX_DEPTH} deep. Each event is validated on its own against {EVENT_FILE}: a bad event is one "
            "dead letter carrying its `index` in the envelope, its neighbours are processed. A value that is "
            "not such an envelope (and not a single event) is one dead letter. The envelope is one Kafka "
            "message: its events share its offset; after a crash it is re-run whole and event-time dedup "
            "skips what the restored state already has."
        ),
        "type": "object",
        "required": [ENVELOPE_KEY],
        "additionalProperties": False,
        "not": {"required": [id_field]},
        "properties": {
            ENVELOPE_KEY: {"type": "array", "maxItems": MAX_ENVELOPE_EVENTS, "items": {"$ref": EVENT_FILE}},
        },
    }


def dump(value: Any, indent: int = 0, width: int = LINE) -> str:
    """JSON text that reads like a hand-written schema: what fits in ``width`` is on one line.

    >>> print(dump({"a": [1, 2], "b": {"c": "xyz", "d": 1}}, width=20))
    {
      "a": [1, 2],
      "b": {
        "c": "xyz",
        "d": 1
      }
    }
    """
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or not value or indent + len(flat) <= width:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {dump(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + dump(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def render() -> dict[str, str]:
    """File name -> text of every schema the table gives."""
    return {name: dump(schema) + "\n"
            for name, schema in ((EVENT_FILE, event_schema()), (ENVELOPE_FILE, envelope_schema()))}


def stale(directory: Path = SCHEMAS) -> list[str]:
    """The schema files in ``directory`` that differ from :func:`render` (or are missing)."""
    out = []
    for name, text in render().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a schema is stale")
    args = p.parse_args(argv)
    if args.check:
        bad = stale()
        for name in bad:
            print(f"schemas/{name} is not what the contract's table gives: run scripts/gen_schemas.py",
                  file=sys.stderr)
        return 1 if bad else 0
    for name, text in render().items():
        (SCHEMAS / name).write_text(text, encoding="utf-8")
        print(f"wrote schemas/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
