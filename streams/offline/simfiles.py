"""Simulator files: events as JSON lines and incident labels (JSON lines or CSV).

The simulator itself (:mod:`detectors.synthetic`) is pure; reading and writing files is here,
next to the commands that use it (``lookout simulate``, ``lookout replay --labels``).

>>> import tempfile, os
>>> from detectors.synthetic import Incident
>>> path = os.path.join(tempfile.mkdtemp(), "labels.jsonl")
>>> write_labels([Incident("acme", 1767607200.0, 1767609000.0, "latency")], path)
1
>>> read_labels(path)
[Incident(customer_id='acme', start=1767607200.0, end=1767609000.0, kind='latency', cause=None, scope=None)]
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from detectors.synthetic import Incident, incident_from_fields

__all__ = ["read_labels", "write_jsonl", "write_labels"]


def _open_text_write(path: str | Path):
    p = str(path)
    if p == "-":
        return None
    if p.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "wb", compresslevel=5), encoding="utf-8", newline="\n")
    return open(p, "w", encoding="utf-8", newline="\n", buffering=1 << 20)


def write_jsonl(events: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Stream events to ``path`` as JSON lines (gzip if it ends with ``.gz``; ``-`` = stdout).

    Returns the number of events written.
    """
    encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
    f = _open_text_write(path)
    out = sys.stdout if f is None else f
    n = 0
    buf: list[str] = []
    try:
        for ev in events:
            buf.append(encode(ev))
            n += 1
            if len(buf) >= 2048:
                buf.append("")
                out.write("\n".join(buf))
                buf.clear()
        if buf:
            buf.append("")
            out.write("\n".join(buf))
    finally:
        if f is not None:
            f.close()
        else:
            out.flush()
    return n


def write_labels(incidents: Iterable[Incident], path: str | Path) -> int:
    """Write incidents as JSON lines ``{"customer_id","start","end","kind"}``; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for inc in incidents:
            f.write(json.dumps(inc.to_json(), separators=(",", ":")) + "\n")
            n += 1
    return n


def read_labels(path: str | Path) -> list[Incident]:
    """Read incident labels: JSON lines (as written by :func:`write_labels`) or CSV with a
    header ``customer_id,start,end[,kind]``; times RFC 3339 or epoch seconds. ``.gz`` is fine.

    Raises :class:`ValueError` naming the file and line of the first bad record.
    """
    p = str(path)
    opener = gzip.open if p.endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    stripped = text.lstrip("\ufeff \t\r\n")
    out: list[Incident] = []
    if not stripped:
        return out
    if stripped.startswith("{"):
        for ln, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("each line must be a JSON object")
                out.append(Incident.from_json(obj))
            except ValueError as exc:  # includes JSONDecodeError
                raise ValueError(f"{p}:{ln}: {exc}") from None
        return out
    reader = csv.reader(io.StringIO(stripped))
    header = [h.strip().lower() for h in next(reader)]
    missing = [h for h in ("customer_id", "start", "end") if h not in header]
    if missing:
        raise ValueError(
            f"{p}:1: CSV header must contain customer_id,start,end[,kind]; missing {', '.join(missing)}"
        )
    ix = {h: header.index(h) for h in ("customer_id", "start", "end")}
    kix = header.index("kind") if "kind" in header else None
    for ln, row in enumerate(reader, 2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            if len(row) < len(header):
                raise ValueError(f"expected {len(header)} columns, got {len(row)}")
            out.append(
                incident_from_fields(
                    row[ix["customer_id"]].strip(),
                    row[ix["start"]],
                    row[ix["end"]],
                    row[kix].strip() if kix is not None else None,
                )
            )
        except ValueError as exc:
            raise ValueError(f"{p}:{ln}: {exc}") from None
    return out
