import pytest

from detectors.events import InvalidEvent, format_ts, parse_event, parse_ts

GOOD = {
    "customer_id": "cust-01.eu:prod",
    "ts": "2026-03-02T10:05:00Z",
    "interval_s": 300,
    "requests": 1200,
    "status_4xx": 30,
    "status_5xx": 12,
    "origin_errors": {"522": 10, "502": 0},
    "latency_p50_ms": 21.5,
    "latency_p99_ms": 410,
    "cache_hits": 1000,
    "bytes_out": 9_000_000,
    "something_new": {"ignored": True},
}


def test_valid_event_round_trips_through_json_form():
    e = parse_event(GOOD)
    assert e.ts == parse_ts("2026-03-02T10:05:00Z")
    assert e.origin_errors == {"522": 10}  # zero counts dropped
    assert parse_event(e.to_json()) == e


def test_epoch_seconds_and_default_interval():
    e = parse_event({k: v for k, v in GOOD.items() if k != "interval_s"} | {"ts": 1772445900})
    assert e.interval_s == 60
    assert format_ts(e.ts) == "2026-03-02T10:05:00Z"


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "x" * 65}, "customer_id"),
        ({"customer_id": "bad id"}, "customer_id"),
        ({"ts": "yesterday"}, "RFC 3339"),
        ({"ts": "2026-03-02T10:05:00"}, "time zone"),
        ({"ts": -5}, "out of range"),
        ({"requests": -1}, "non-negative"),
        ({"requests": 1.5}, "integer"),
        ({"requests": "10"}, "integer"),
        ({"status_5xx": 2000}, "exceeds requests"),
        ({"cache_hits": 5000}, "cache_hits"),
        ({"interval_s": 0}, "interval_s"),
        ({"origin_errors": {"abc": 1}}, "3-digit"),
        ({"origin_errors": {"522": 5000}}, "exceeds requests"),
        ({"latency_p99_ms": float("nan")}, "latency_p99_ms"),
        ({"requests": True}, "integer"),
        # hostile values: rejected with a reason, never OverflowError/ValueError from a conversion
        ({"customer_id": "cust-01\n"}, "customer_id"),  # `$` would match before the newline
        ({"customer_id": "cust-\u0660\u0661"}, "customer_id"),  # Arabic-Indic digits are not [0-9]
        ({"origin_errors": {"\u0665\u0662\u0662": 1}}, "3-digit"),  # str.isdigit() says True
        ({"origin_errors": {"522": 10**30}}, "origin_errors"),
        ({"requests": 1e300}, "maximum count"),
        ({"requests": 10**400}, "maximum count"),
        ({"requests": float("inf")}, "maximum count"),
        ({"requests": float("nan")}, "requests"),
        ({"bytes_out": 2**53 + 1}, "maximum count"),
        ({"latency_p50_ms": 1e300}, "latency_p50_ms"),
        ({"latency_p99_ms": float("inf")}, "latency_p99_ms"),
        ({"ts": 10**400}, "out of range"),
        ({"ts": float("nan")}, "out of range"),
        ({"ts": "2026-03-02T10:05:00" + "0" * 10_000 + "Z"}, "RFC 3339"),
        ({"ts": "0001-01-01T00:00:00+01:00"}, "out of range"),
        ({"interval_s": 10**400}, "interval_s"),
    ],
)
def test_contract_violations_have_a_reason(patch, reason):
    with pytest.raises(InvalidEvent, match=reason) as exc:
        parse_event(GOOD | patch)
    assert exc.value.kind == "contract"
    assert len(str(exc.value)) < 200  # a huge value is described, not copied into the reason


def test_the_largest_count_is_accepted():
    e = parse_event(GOOD | {"requests": 2**53, "bytes_out": 2**53})
    assert e.requests == 2**53 and e.bytes_out == 2**53


def test_rejection_kinds_are_bounded():
    assert InvalidEvent("x").kind == "contract"
    assert InvalidEvent("x", kind="future").kind == "future"
    with pytest.raises(ValueError):
        InvalidEvent("x", kind="something new")


@pytest.mark.parametrize("missing", ["customer_id", "ts", "requests", "status_4xx", "status_5xx"])
def test_required_fields(missing):
    with pytest.raises(InvalidEvent):
        parse_event({k: v for k, v in GOOD.items() if k != missing})


def test_optional_fields_may_be_absent():
    e = parse_event({"customer_id": "c", "ts": 0, "requests": 0, "status_4xx": 0, "status_5xx": 0})
    assert e.latency_p99_ms is None and e.cache_hits is None and e.origin_errors == {}


def test_not_an_object():
    with pytest.raises(InvalidEvent, match="JSON object"):
        parse_event([1, 2])


def test_a_valid_id_seen_before_does_not_vouch_for_an_equal_string_of_another_type():
    parse_event(GOOD | {"customer_id": "cust-7"})

    class Sneaky(str):
        def __hash__(self):
            return hash("cust-7")

        def __eq__(self, other):
            return True

    with pytest.raises(InvalidEvent, match="customer_id"):
        parse_event(GOOD | {"customer_id": Sneaky("bad id")})
    assert parse_event(GOOD | {"customer_id": "cust-7"}).customer_id == "cust-7"
