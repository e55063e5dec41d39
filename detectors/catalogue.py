"""The customer catalogue: free-form attributes per customer id, and the groups they form.

A shared cause (a hosting provider's region, an upstream network, a plan's configuration)
hits the customers that share an attribute value. The catalogue says who shares what:
``customer id -> {attribute: value}``, e.g. ``{"plan": "enterprise", "origin_provider":
"provider-a", "origin_region": "provider-a/us-east"}``. Attributes are free-form; which of
them form groups is configuration (``correlator.group_by``, :mod:`detectors.config`). A
*group* is one value of one grouping attribute (key ``"origin_provider=provider-a"``), plus
the whole fleet (key :data:`FLEET`). Customers the catalogue does not know have no attributes:
they belong to the fleet only.

Values are strings; numbers and booleans in a file are kept as their text (``64512``,
``true``); ``null`` or an empty CSV cell means the customer has no value for that attribute.

>>> cat = Catalogue({"a": {"plan": "pro", "origin_provider": "p1"}, "b": {"plan": "pro"}})
>>> cat.groups_of("a", ("origin_provider", "plan"))
('origin_provider=p1', 'plan=pro', '*')
>>> cat.groups_of("nobody", ("plan",))
('*',)
>>> sorted(cat.group_sizes(("plan",)).items())
[('*', 2), ('plan=pro', 2)]

Files: JSON lines (one object per customer: ``customer_id`` plus its attributes) or CSV with a
``customer_id`` column; every bad line is reported, with its number:

>>> parse_catalogue(['{"customer_id": "a", "plan": "pro"}', '{"plan": "free"}',
...                  '{"customer_id": "b", "x": [1]}'])
Traceback (most recent call last):
...
detectors.catalogue.CatalogueError: 2 bad lines:
  line 2: customer_id is required
  line 3: attribute 'x' must be a string, number or boolean, got a list of 1 items
"""
from __future__ import annotations

import csv
import json
import re
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .events import CUSTOMER_ID_RE, show

__all__ = ["FLEET", "Catalogue", "CatalogueError", "group_label", "parse_attributes", "parse_catalogue"]

#: the group key of the whole fleet
FLEET = "*"
#: attribute names: what a metric label or a config key can carry
ATTRIBUTE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z", re.ASCII)
#: longest attribute value kept (a region, an ASN, a team name)
MAX_VALUE_CHARS = 128
#: most attributes one customer may have
MAX_ATTRIBUTES = 64
#: bad lines listed in one error (the count says how many more there were)
MAX_REPORTED = 20


class CatalogueError(ValueError):
    """A catalogue file or record is invalid; ``problems`` lists ``(line, reason)`` pairs."""

    def __init__(self, problems: Sequence[tuple[int | None, str]], source: str | None = None):
        self.problems = list(problems)
        shown = [f"line {ln}: {why}" if ln is not None else why for ln, why in self.problems[:MAX_REPORTED]]
        if len(self.problems) > MAX_REPORTED:
            shown.append(f"... and {len(self.problems) - MAX_REPORTED} more")
        text = shown[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} bad lines:" + "".join(f"\n  {s}" for s in shown))
        super().__init__(f"{source}: {text}" if source else text)


def group_key(attribute: str, value: str) -> str:
    """The key of one group.

    >>> group_key("origin_provider", "provider-a")
    'origin_provider=provider-a'
    """
    return f"{attribute}={value}"


def split_group(key: str) -> tuple[str | None, str | None]:
    """``(attribute, value)`` of a group key; ``(None, None)`` for the fleet.

    >>> split_group("origin_region=eu/west"), split_group(FLEET)
    (('origin_region', 'eu/west'), (None, None))
    """
    if key == FLEET:
        return None, None
    attr, _, value = key.partition("=")
    return attr, value


def group_label(key: str) -> str:
    """A group for people.

    >>> group_label("plan=enterprise"), group_label(FLEET)
    ('plan=enterprise', 'the whole fleet')
    """
    return "the whole fleet" if key == FLEET else key


def _value(name: str, v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        text = str(v)
    elif isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"attribute {name!r} must be finite, got {v!r}")
        text = str(int(v)) if v.is_integer() else repr(v)
    elif isinstance(v, str):
        text = v.strip()
        if not text:
            return None
    else:
        raise ValueError(f"attribute {name!r} must be a string, number or boolean, got {show(v)}")
    if len(text) > MAX_VALUE_CHARS or not text.isprintable():
        raise ValueError(f"attribute {name!r}: value must be 1-{MAX_VALUE_CHARS} printable characters, "
                         f"got {show(text)}")
    return text


def parse_attributes(obj: Any) -> dict[str, str]:
    """One customer's attributes from a decoded JSON object (the ``customers`` topic's value).

    Raises ``ValueError`` with the reason. ``customer_id`` in the object is ignored (the key
    says who it is).

    >>> parse_attributes({"plan": "pro", "origin_asn": 64512, "beta": True, "team": None})
    {'plan': 'pro', 'origin_asn': '64512', 'beta': 'true'}
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"attributes must be a JSON object, got {show(obj)}")
    out: dict[str, str] = {}
    for name, v in obj.items():
        if name == "customer_id":
            continue
        if not isinstance(name, str) or not ATTRIBUTE_RE.match(name):
            raise ValueError(f"attribute name must be 1-64 chars of [A-Za-z0-9_.-] starting with a letter "
                             f"or _, got {show(name)}")
        text = _value(name, v)
        if text is not None:
            out[name] = text
    if len(out) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes per customer, got {len(out)}")
    return out


def _customer_id(v: Any) -> str:
    if v is None or v == "":
        raise ValueError("customer_id is required")
    if not isinstance(v, str) or not CUSTOMER_ID_RE.match(v):
        raise ValueError(f"customer_id must be 1-64 chars of [A-Za-z0-9._:-], got {show(v)}")
    return v


class Catalogue:
    """Customer id -> attributes; groups and their sizes (see the module docstring).

    Updates (:meth:`set`, :meth:`remove`) are what a compacted ``customers`` topic delivers:
    the latest value per customer wins, a tombstone removes it.
    """

    def __init__(self, entries: Mapping[str, Mapping[str, str]] | None = None):
        self._attrs: dict[str, dict[str, str]] = {}
        self._sizes: dict[tuple[str, ...], dict[str, int]] = {}
        self._members: dict[str, frozenset[str]] = {}
        for cid, attrs in (entries or {}).items():
            self.set(cid, attrs)

    def __len__(self) -> int:
        return len(self._attrs)

    def __contains__(self, cid: object) -> bool:
        return cid in self._attrs

    def __iter__(self) -> Iterator[str]:
        return iter(self._attrs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalogue) and self._attrs == other._attrs

    def __repr__(self) -> str:
        return f"Catalogue({len(self)} customers)"

    def get(self, cid: str) -> Mapping[str, str]:
        """``cid``'s attributes (empty for a customer the catalogue does not know)."""
        return self._attrs.get(cid, {})

    def set(self, cid: str, attrs: Mapping[str, str]) -> None:
        """Add or replace one customer (attributes already validated, e.g. by :func:`parse_attributes`)."""
        self._attrs[cid] = dict(attrs)
        self._sizes.clear()
        self._members.clear()

    def remove(self, cid: str) -> None:
        """Forget one customer (a tombstone); no-op if unknown."""
        if self._attrs.pop(cid, None) is not None:
            self._sizes.clear()
            self._members.clear()

    def groups_of(self, cid: str, group_by: Sequence[str]) -> tuple[str, ...]:
        """The groups of ``cid``: one per grouping attribute it has (``group_by`` order), then the fleet."""
        attrs = self._attrs.get(cid)
        if not attrs:
            return (FLEET,)
        return tuple(group_key(a, attrs[a]) for a in group_by if a in attrs) + (FLEET,)

    def in_group(self, cid: str, group: str) -> bool:
        """Whether ``cid`` belongs to ``group`` (everyone belongs to the fleet).

        >>> Catalogue({"a": {"plan": "pro"}}).in_group("a", "plan=pro")
        True
        """
        attr, value = split_group(group)
        return attr is None or self._attrs.get(cid, {}).get(attr) == value

    def group_sizes(self, group_by: Sequence[str]) -> dict[str, int]:
        """Customers per group of the ``group_by`` attributes (and the fleet: every customer)."""
        key = tuple(group_by)
        sizes = self._sizes.get(key)
        if sizes is None:
            sizes = {FLEET: len(self._attrs)}
            for attrs in self._attrs.values():
                for a in key:
                    v = attrs.get(a)
                    if v is not None:
                        g = group_key(a, v)
                        sizes[g] = sizes.get(g, 0) + 1
            self._sizes[key] = sizes
        return sizes

    def members(self, group: str) -> frozenset[str]:
        """The customers of ``group`` (every known customer for the fleet); cached until the next update."""
        cached = self._members.get(group)
        if cached is None:
            attr, value = split_group(group)
            cached = frozenset(c for c, a in self._attrs.items() if attr is None or a.get(attr) == value)
            self._members[group] = cached
        return cached

    def size_of(self, group: str, group_by: Sequence[str]) -> int:
        """Customers in ``group`` (0 for a group nobody is in)."""
        return self.group_sizes(group_by).get(group, 0)

    def to_json_lines(self) -> Iterator[str]:
        """The catalogue as JSON lines (what :func:`parse_catalogue` reads back)."""
        for cid, attrs in self._attrs.items():
            yield json.dumps({"customer_id": cid, **attrs}, separators=(",", ":"))


def _jsonl(lines: Iterable[str], cat: Catalogue, problems: list[tuple[int | None, str]]) -> None:
    for ln, line in enumerate(lines, 1):
        line = line.strip().lstrip("\ufeff") if ln == 1 else line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            problems.append((ln, f"not JSON: {exc}"))
            continue
        try:
            if not isinstance(obj, dict):
                raise ValueError(f"each line must be a JSON object, got {show(obj)}")
            cat.set(_customer_id(obj.get("customer_id")), parse_attributes(obj))
        except ValueError as exc:
            problems.append((ln, str(exc)))


def _csv(lines: Iterable[str], cat: Catalogue, problems: list[tuple[int | None, str]]) -> None:
    reader = csv.reader(lines)
    header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
    if "customer_id" not in header:
        problems.append((1, "CSV header must name a customer_id column"))
        return
    ix = header.index("customer_id")
    for ln, row in enumerate(reader, 2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            if len(row) != len(header):
                raise ValueError(f"expected {len(header)} columns, got {len(row)}")
            obj = {h: c for h, c in zip(header, row) if h and h != "customer_id"}
            cat.set(_customer_id(row[ix].strip()), parse_attributes(obj))
        except ValueError as exc:
            problems.append((ln, str(exc)))


def parse_catalogue(lines: Iterable[str], fmt: str | None = None, source: str | None = None) -> Catalogue:
    """A catalogue from the lines of a JSONL or CSV file (``fmt`` ``"jsonl"``/``"csv"``; ``None``:
    JSONL if the first non-blank line starts with ``{``).

    A customer listed twice keeps its last line (as a compacted topic would). Raises
    :class:`CatalogueError` listing every bad line (nothing is half-loaded).

    >>> parse_catalogue(["customer_id,plan,origin_asn", "a,pro,64512", "b,,"]).get("a")
    {'plan': 'pro', 'origin_asn': '64512'}
    """
    lines = list(lines)
    if fmt is None:
        first = next((ln.strip().lstrip("\ufeff") for ln in lines if ln.strip()), "")
        fmt = "jsonl" if first.startswith("{") or not first else "csv"
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown catalogue format {fmt!r} (use jsonl or csv)")
    cat = Catalogue()
    problems: list[tuple[int | None, str]] = []
    (_jsonl if fmt == "jsonl" else _csv)(lines, cat, problems)
    if problems:
        raise CatalogueError(problems, source)
    return cat
