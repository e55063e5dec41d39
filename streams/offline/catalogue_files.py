"""Customer catalogue files: JSON lines or CSV (gzip ok), parsed by :mod:`detectors.catalogue`.

>>> import tempfile, os
>>> from detectors.catalogue import Catalogue
>>> path = os.path.join(tempfile.mkdtemp(), "customers.jsonl")
>>> write_catalogue(Catalogue({"acme": {"plan": "pro"}}), path)
1
>>> read_catalogue(path).get("acme")
{'plan': 'pro'}
"""
from __future__ import annotations

import gzip
from pathlib import Path

from detectors.catalogue import Catalogue, parse_catalogue

__all__ = ["read_catalogue", "write_catalogue"]


def read_catalogue(path: str | Path) -> Catalogue:
    """Read a catalogue file: CSV if it ends with ``.csv`` (or ``.csv.gz``), else sniffed; every bad line
    is reported at once (:class:`~detectors.catalogue.CatalogueError`, naming the file)."""
    p = str(path)
    with open(p, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(p, "rt", encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    name = p[:-3] if p.endswith(".gz") else p
    fmt = "csv" if name.endswith(".csv") else None
    return parse_catalogue(lines, fmt=fmt, source=p)


def write_catalogue(catalogue: Catalogue, path: str | Path) -> int:
    """Write ``catalogue`` as JSON lines; return the number of customers."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in catalogue.to_json_lines():
            f.write(line + "\n")
            n += 1
    return n
