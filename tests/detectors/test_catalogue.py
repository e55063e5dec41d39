"""The customer catalogue: parsing (every bad line named), groups, sizes, updates."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.catalogue import FLEET, Catalogue, CatalogueError, parse_attributes, parse_catalogue

GROUP_BY = ("origin_provider", "plan")


def test_jsonl_and_csv_give_the_same_catalogue():
    jsonl = ['{"customer_id": "a", "plan": "pro", "origin_provider": "p1", "origin_asn": 64512}',
             '', '{"customer_id": "b", "plan": "free", "origin_provider": null}']
    csv = ["customer_id,plan,origin_provider,origin_asn", "a,pro,p1,64512", "b,free,,"]
    assert parse_catalogue(jsonl) == parse_catalogue(csv)
    cat = parse_catalogue(csv)
    assert cat.get("a") == {"plan": "pro", "origin_provider": "p1", "origin_asn": "64512"}
    assert cat.get("b") == {"plan": "free"}  # an empty cell / null is no value, not an empty one


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_loaded():
    lines = ['{"customer_id": "ok", "plan": "pro"}', "not json", '["a list"]', '{"plan": "x"}',
             '{"customer_id": "bad id!", "plan": "x"}', '{"customer_id": "c", "team": {"n": 1}}',
             '{"customer_id": "d", "9lives": "x"}', '{"customer_id": "e", "plan": "' + "x" * 200 + '"}']
    with pytest.raises(CatalogueError) as exc:
        parse_catalogue(lines, source="customers.jsonl")
    lines_named = [ln for ln, _ in exc.value.problems]
    assert lines_named == [2, 3, 4, 5, 6, 7, 8]
    text = str(exc.value)
    assert text.startswith("customers.jsonl: 7 bad lines:")
    assert "line 4: customer_id is required" in text
    assert "line 6: attribute 'team' must be a string, number or boolean" in text


def test_a_csv_without_customer_id_or_with_ragged_rows_says_so():
    with pytest.raises(CatalogueError, match="line 1: CSV header must name a customer_id column"):
        parse_catalogue(["id,plan", "a,pro"])
    with pytest.raises(CatalogueError, match="line 3: expected 2 columns, got 3"):
        parse_catalogue(["customer_id,plan", "a,pro", "b,pro,extra"])


def test_a_customer_listed_twice_keeps_its_last_line_like_a_compacted_topic():
    cat = parse_catalogue(['{"customer_id": "a", "plan": "pro"}', '{"customer_id": "a", "plan": "free"}'])
    assert len(cat) == 1 and cat.get("a") == {"plan": "free"}


def test_unknown_customers_have_no_attributes_and_belong_to_the_fleet_only():
    cat = Catalogue({"a": {"plan": "pro"}})
    assert cat.get("nobody") == {}
    assert cat.groups_of("nobody", GROUP_BY) == (FLEET,)
    assert cat.groups_of("a", GROUP_BY) == ("plan=pro", FLEET)
    assert cat.in_group("nobody", FLEET) and not cat.in_group("nobody", "plan=pro")


def test_sizes_and_members_follow_updates_and_tombstones():
    cat = Catalogue({"a": {"plan": "pro"}, "b": {"plan": "pro"}, "c": {"plan": "free"}})
    assert cat.group_sizes(GROUP_BY) == {FLEET: 3, "plan=pro": 2, "plan=free": 1}
    assert cat.members("plan=pro") == {"a", "b"}
    cat.set("c", {"plan": "pro", "origin_provider": "p1"})
    cat.remove("a")
    cat.remove("never-there")
    assert cat.group_sizes(GROUP_BY) == {FLEET: 2, "plan=pro": 2, "origin_provider=p1": 1}
    assert cat.members("plan=pro") == {"b", "c"}
    assert cat.size_of("plan=free", GROUP_BY) == 0


def test_values_are_kept_as_text():
    assert parse_attributes({"asn": 64512, "beta": False, "ratio": 2.0, "x": 2.5, "s": "  eu  "}) == {
        "asn": "64512", "beta": "false", "ratio": "2", "x": "2.5", "s": "eu"}
    with pytest.raises(ValueError, match="must be finite"):
        parse_attributes({"x": float("nan")})
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_attributes(["plan", "pro"])


names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
values = st.one_of(st.text("abcxyz-/0123", min_size=1, max_size=8), st.integers(0, 10**6), st.booleans())


@given(st.dictionaries(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
                       st.dictionaries(names, values, max_size=4), max_size=12))
def test_json_lines_round_trip(entries):
    cat = Catalogue({cid: parse_attributes(attrs) for cid, attrs in entries.items()})
    assert parse_catalogue(list(cat.to_json_lines()), fmt="jsonl") == cat
    sizes = cat.group_sizes(tuple(sorted({a for v in entries.values() for a in v})))
    assert sizes[FLEET] == len(entries)
    for g, n in sizes.items():
        assert len(cat.members(g)) == n
