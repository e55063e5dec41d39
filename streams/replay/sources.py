"""Replay sources: what a source is, file helpers, and :func:`open_source` for a command-line spec.

A source yields :data:`Record` tuples -- raw message values exactly as the worker would receive
them -- so that the runner can hand them to the live :class:`~streams.pipeline.processor.Processor`.

>>> parse_mapping(["requests=req_count,ts=time", "customer_id=cust"])
{'requests': 'req_count', 'ts': 'time', 'customer_id': 'cust'}
"""
from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

#: (value, key, partition, offset-or-line-number)
Record = tuple[Any, Any, "int | None", "int | None"]


class SourceError(Exception):
    """A source cannot be read; ``str(exc)`` is one line for the user."""



class Source:
    """Iterable of :data:`Record`; ``total`` (for progress) is in ``unit``s, or None."""

    name: str = ""
    unit: str = "B"
    total: int | None = None

    def records(self, progress: Callable[[int], None] | None = None) -> Iterator[Record]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


def _open_binary(path: Path) -> tuple[Any, Any, bool]:
    """(line reader, raw file for position, is_gzip)."""
    raw = open(path, "rb")
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    if gz:
        return io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=1 << 20), raw, True
    return io.BufferedReader(raw, buffer_size=1 << 20), raw, False


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file")
    if not p.is_file():
        raise SourceError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise SourceError(f"{p}: permission denied")
    return p


def parse_mapping(items: Iterable[str] | None) -> dict[str, str]:
    """``["requests=req_count,ts=time", ...]`` -> ``{"requests": "req_count", "ts": "time"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            field_, sep, column = part.partition("=")
            if not sep or not field_.strip() or not column.strip():
                raise SourceError(f"--map {part!r}: expected FIELD=COLUMN, e.g. requests=req_count")
            out[field_.strip()] = column.strip()
    return out



def open_source(spec: str, *, mapping: Mapping[str, str] | None = None, fmt: str = "auto",
                default_bootstrap: str | None = None, default_timeout_s: float = 10.0,
                kafka_security: Mapping[str, Any] | None = None) -> Source:
    """A source from a command-line spec: a file path or ``kafka://TOPIC?...``.

    ``kafka_security``: kafka-python TLS/SASL arguments for a Kafka source.
    """
    from .files import CsvSource, JsonlSource
    from .kafka import KafkaSource

    if spec.startswith("kafka://"):
        if mapping:
            raise SourceError("--map applies to CSV files only")
        return KafkaSource.from_url(spec, default_bootstrap, default_timeout_s, kafka_security)
    base = spec[:-3] if spec.endswith(".gz") else spec
    if fmt == "csv" or (fmt == "auto" and (base.lower().endswith(".csv") or mapping)):
        return CsvSource(spec, mapping)
    if mapping:
        raise SourceError("--map applies to CSV files only (name the file .csv or pass --format csv)")
    return JsonlSource(spec)
