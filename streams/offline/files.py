"""File sources: JSON lines and CSV (either may be gzip, detected from the magic bytes).

Bad lines are not dropped: a JSON line that does not decode goes to the DLQ with its line number
(the processor's decoder says why); a CSV row with the wrong number of columns is passed on as a
:class:`BadRow` carrying its reason.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from detectors.events import CONTRACT, EVENT_FIELDS, MAX_INTERVAL_S, REQUIRED_FIELDS, InvalidEvent, parse_ts

from .sources import Record, Source, SourceError

#: contract fields a CSV column can map to (``origin_errors.NNN`` too, one column per status code)
CSV_FIELDS = EVENT_FIELDS
#: fields whose cells are read as integers (the table's CSV types)
_INT_FIELDS = frozenset(f.name for f in CONTRACT if f.csv == "integer")
#: rows read to tell the interval from the timestamps when a CSV file has no interval_s column
INFER_ROWS = 5000
#: a file whose first this-many non-blank lines are all undecodable is "not JSON lines at all"
SNIFF_LINES = 20
#: lines per block of :meth:`JsonlSource.blocks`
BLOCK_LINES = 4096
#: bytes per line assumed when asking the reader for a block (the size hint of ``readlines``)
BLOCK_HINT_BYTES_PER_LINE = 256


class JsonlSource(Source):
    """One event per line. Blank lines are skipped; bad lines go to the DLQ with their number."""

    def __init__(self, path: str | Path):
        self.path = _check_file(path)
        self.name = str(self.path)
        self.total = self.path.stat().st_size
        self.blank_lines = 0
        self._sniff()

    def _sniff(self) -> None:
        reader, raw, gz = _open_binary(self.path)
        self.gzip = gz
        try:
            seen = 0
            first_error = None
            for ln, line in enumerate(reader, 1):
                if not line.strip():
                    continue
                seen += 1
                try:
                    json.loads(line)
                    return
                except UnicodeDecodeError:
                    first_error = first_error or (ln, "not UTF-8 text")
                except ValueError as exc:
                    first_error = first_error or (ln, f"invalid JSON: {getattr(exc, 'msg', exc)}")
                if seen >= SNIFF_LINES:
                    break
        except (OSError, EOFError) as exc:
            raise SourceError(f"{self.path}: cannot read: {exc}") from None
        finally:
            reader.close()
        if first_error is not None:
            ln, why = first_error
            raise SourceError(f"{self.path} is not JSON lines (line {ln}: {why}); "
                              f"for CSV name it .csv or pass --format csv")

    def records(self, progress=None) -> Iterator[Record]:
        reader, raw, _ = _open_binary(self.path)
        self.blank_lines = 0
        try:
            last = 0
            for ln, line in enumerate(reader, 1):
                if len(line) < 3 and not line.strip():
                    self.blank_lines += 1
                    continue
                if progress is not None and not ln & 4095:
                    pos = raw.tell()
                    progress(pos - last)
                    last = pos
                yield line, None, None, ln
            if progress is not None:
                progress(raw.tell() - last)
        except (OSError, EOFError) as exc:
            raise SourceError(f"{self.path}: read error: {exc}") from None
        finally:
            reader.close()

    def blocks(self, progress=None, max_lines: int = BLOCK_LINES) -> Iterator[tuple[list[bytes], list[int]]]:
        """The records of :meth:`records` (values and line numbers), up to ``max_lines`` at a time.

        Read with one ``readlines`` call per block instead of a generator step per line.
        """
        if max_lines < 1:
            raise ValueError(f"max_lines must be >= 1, got {max_lines!r}")
        reader, raw, _ = _open_binary(self.path)
        self.blank_lines = 0
        hint = max_lines * BLOCK_HINT_BYTES_PER_LINE
        try:
            ln = 0
            last = 0
            pending: list[bytes] = []  # read, not yet handed out
            while True:
                if len(pending) < max_lines:
                    more = reader.readlines(hint)
                    pending += more
                if not pending:
                    break
                lines, pending = pending[:max_lines], pending[max_lines:]
                first = ln + 1
                ln += len(lines)
                if min(map(len, lines)) < 3:  # maybe blank lines (records() skips them)
                    numbers = []
                    kept = []
                    for n, line in enumerate(lines, first):
                        if len(line) < 3 and not line.strip():
                            self.blank_lines += 1
                        else:
                            kept.append(line)
                            numbers.append(n)
                    lines = kept
                else:
                    numbers = list(range(first, ln + 1))
                if progress is not None:
                    pos = raw.tell()
                    progress(pos - last)
                    last = pos
                if lines:
                    yield lines, numbers
        except (OSError, EOFError) as exc:
            raise SourceError(f"{self.path}: read error: {exc}") from None
        finally:
            reader.close()

    def describe(self) -> dict[str, Any]:
        return {"type": "jsonl", "path": self.name, "gzip": self.gzip, "blank_lines": self.blank_lines}


def _number(s: str, integer: bool) -> Any:
    try:
        return int(s)
    except ValueError:
        pass
    try:
        v = float(s)
    except ValueError:
        return s  # the contract check names the field and the bad value
    if integer and v.is_integer():
        return int(v)
    return v if math.isfinite(v) else s


class CsvSource(Source):
    """CSV with a header row. Columns named like contract fields are used as they are;
    ``mapping`` (field -> column) names the others. Rows become contract JSON objects."""

    def __init__(self, path: str | Path, mapping: Mapping[str, str] | None = None):
        self.path = _check_file(path)
        self.name = str(self.path)
        self.total = self.path.stat().st_size
        self.mapping = dict(mapping or {})
        self.blank_lines = 0
        reader, raw, self.gzip = _open_binary(self.path)
        try:
            text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="")
            header = next(csv.reader(text), None)
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise SourceError(f"{self.path}: cannot read a CSV header: {exc}") from None
        finally:
            reader.close()
        if not header:
            raise SourceError(f"{self.path}: empty CSV file (expected a header row)")
        self.header = [h.strip() for h in header]
        self.columns = self._resolve(self.header)
        #: the interval told from the timestamps when there is no interval_s column (else None)
        self.inferred_interval_s: int | None = None
        if not any(f == "interval_s" for f, _ in self.columns):
            self.inferred_interval_s = self._infer_interval()

    def _infer_interval(self) -> int | None:
        """The most common gap between a customer's consecutive timestamps in the first rows.

        Without it every row would get the contract's default of 60 s, and a file of 5-minute
        rows would be modelled (and summarised) as 1-minute intervals.
        """
        ts_col = dict(self.columns)["ts"]
        id_col = dict(self.columns)["customer_id"]
        last: dict[str, float] = {}
        gaps: dict[int, int] = {}
        reader, _raw, _gz = _open_binary(self.path)
        text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="")
        try:
            rows = csv.reader(text)
            next(rows, None)
            for n, row in enumerate(rows):
                if n >= INFER_ROWS:
                    break
                if len(row) != len(self.header):
                    continue
                try:
                    ts = parse_ts(_number(row[ts_col].strip(), False))
                except InvalidEvent:
                    continue
                cid = row[id_col].strip()
                prev = last.get(cid)
                last[cid] = ts
                if prev is not None and 0 < ts - prev <= MAX_INTERVAL_S:
                    gap = round(ts - prev)
                    gaps[gap] = gaps.get(gap, 0) + 1
        except (UnicodeDecodeError, csv.Error):
            return None  # reading the rows reports it, with the line
        finally:
            text.close()
        return max(gaps, key=lambda g: (gaps[g], -g)) if gaps else None

    def _resolve(self, header: list[str]) -> list[tuple[str, int]]:
        for f, col in self.mapping.items():
            if f not in CSV_FIELDS and not (
                f.startswith("origin_errors.") and f[14:].isdigit() and len(f) == 17
            ):
                raise SourceError(f"--map {f}={col}: unknown field {f!r} "
                                  f"(fields: {', '.join(CSV_FIELDS)}, origin_errors.NNN)")
            if col not in header:
                raise SourceError(f"--map {f}={col}: {self.path} has no column {col!r} "
                                  f"(columns: {', '.join(header)})")
        cols: list[tuple[str, int]] = []
        mapped_cols = set(self.mapping.values())
        for f, col in self.mapping.items():
            cols.append((f, header.index(col)))
        have = {f for f, _ in cols}
        for i, h in enumerate(header):
            if h in mapped_cols or h in have:
                continue
            if h in CSV_FIELDS or (h.startswith("origin_errors.") and h[14:].isdigit()):
                cols.append((h, i))
                have.add(h)
        missing = [f for f in REQUIRED_FIELDS if f not in have]
        if missing:
            raise SourceError(f"{self.path}: no column for required field(s) {', '.join(missing)} "
                              f"(columns: {', '.join(header)}; use --map FIELD=COLUMN)")
        return cols

    def _row(self, row: list[str]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        origin: dict[str, Any] = {}
        for f, i in self.columns:
            if i >= len(row):
                continue
            s = row[i].strip()
            if s == "":
                continue
            if f == "customer_id":
                obj[f] = s
            elif f == "ts":
                v = _number(s, False)
                obj[f] = v
            elif f == "origin_errors":
                try:
                    obj[f] = json.loads(s)
                except ValueError:
                    obj[f] = s
            elif f.startswith("origin_errors."):
                origin[f[14:]] = _number(s, True)
            else:
                obj[f] = _number(s, f in _INT_FIELDS)
        if self.inferred_interval_s is not None:
            obj["interval_s"] = self.inferred_interval_s
        if origin:
            base = obj.get("origin_errors")
            obj["origin_errors"] = {**(base if isinstance(base, dict) else {}), **origin}
        return obj

    def records(self, progress=None) -> Iterator[Record]:
        reader, raw, _ = _open_binary(self.path)
        self.blank_lines = 0
        text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="")
        try:
            rows = csv.reader(text)
            next(rows, None)
            last = 0
            n = 0
            for row in rows:
                ln = rows.line_num
                n += 1
                if progress is not None and not n & 4095:
                    pos = raw.tell()
                    progress(pos - last)
                    last = pos
                if not row or all(not c.strip() for c in row):
                    self.blank_lines += 1
                    continue
                if len(row) != len(self.header):
                    value = ",".join(row)
                    yield (
                        BadRow(value, f"CSV row has {len(row)} columns, header has {len(self.header)}"),
                        None,
                        None,
                        ln,
                    )
                    continue
                yield json.dumps(self._row(row), separators=(",", ":")), None, None, ln
            if progress is not None:
                progress(raw.tell() - last)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.path}: not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            raise SourceError(f"{self.path}: CSV error near line {rows.line_num}: {exc}") from None
        finally:
            text.close()

    def describe(self) -> dict[str, Any]:
        return {"type": "csv", "path": self.name, "gzip": self.gzip, "columns": dict(
            (f, self.header[i]) for f, i in self.columns), "blank_lines": self.blank_lines,
            "inferred_interval_s": self.inferred_interval_s}


class BadRow(str):
    """A CSV row that cannot become an event: the raw text plus the reason (routed to the DLQ)."""

    def __new__(cls, value: str, reason: str):
        s = super().__new__(cls, value)
        s.reason = reason
        return s


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
