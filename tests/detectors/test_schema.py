"""The shipped JSON Schema and the validator in code agree on the contract."""
import json
from pathlib import Path

import jsonschema
import pytest

from detectors.events import InvalidEvent, parse_event
from detectors.synthetic import SimConfig, simulate

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "request-metrics.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_simulated_events_satisfy_the_schema_and_the_parser():
    sim = simulate(SimConfig(customers=5, duration_s=6 * 3600, interval_s=300, seed=3, incidents=2))
    for ev in sim.events():
        VALIDATOR.validate(ev)
        parse_event(ev)


@pytest.mark.parametrize(
    "bad",
    [
        {"customer_id": "has space", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0},
        {"customer_id": "c", "ts": "2026-01-01 10:00", "requests": 1, "status_4xx": 0, "status_5xx": 0},
        {"customer_id": "c", "ts": 0, "requests": -1, "status_4xx": 0, "status_5xx": 0},
        {"customer_id": "c", "ts": 0, "requests": 1, "status_4xx": 0},
        {
            "customer_id": "c",
            "ts": 0,
            "requests": 1,
            "status_4xx": 0,
            "status_5xx": 0,
            "origin_errors": {"5xx": 1},
        },
        {"customer_id": "c", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0, "interval_s": 0},
        # hostile input: a trailing newline, non-ASCII digits, huge magnitudes
        {"customer_id": "c\n", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0},
        {"customer_id": "c\u0661", "ts": 0, "requests": 1, "status_4xx": 0, "status_5xx": 0},
        {
            "customer_id": "c",
            "ts": 0,
            "requests": 1,
            "status_4xx": 0,
            "status_5xx": 0,
            "origin_errors": {"\u0665\u0662\u0662": 1},
        },
        {
            "customer_id": "c",
            "ts": 0,
            "requests": 1,
            "status_4xx": 0,
            "status_5xx": 0,
            "origin_errors": {"522\n": 1},
        },
        {
            "customer_id": "c",
            "ts": "\u0662\u0660\u0662\u0666-01-05T10:00:00Z",
            "requests": 1,
            "status_4xx": 0,
            "status_5xx": 0,
        },
        {"customer_id": "c", "ts": 0, "requests": 1e300, "status_4xx": 0, "status_5xx": 0},
        {"customer_id": "c", "ts": 0, "requests": 2**53 + 1, "status_4xx": 0, "status_5xx": 0},
        {
            "customer_id": "c",
            "ts": 0,
            "requests": 1,
            "status_4xx": 0,
            "status_5xx": 0,
            "latency_p99_ms": 1e300,
        },
    ],
)
def test_what_the_schema_rejects_the_parser_rejects(bad):
    assert not VALIDATOR.is_valid(bad)
    with pytest.raises(InvalidEvent):
        parse_event(bad)
