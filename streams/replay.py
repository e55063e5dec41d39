"""Replay: historical events through the live code path, "would it have fired?".

Sources yield raw message values exactly as the worker would receive them; the runner hands
them to :class:`~streams.processor.Processor` (decode -> contract -> :class:`~detectors.engine.Engine`
-> alerts / dead letters), the very object the Faust agent uses. Nothing here decides whether
to alert.

* :class:`JsonlSource` -- JSON lines, optionally gzip (detected from the magic bytes).
* :class:`CsvSource` -- CSV with a header; ``--map field=column`` renames columns to contract
  fields; each row becomes the JSON object the producer would have sent.
* :class:`KafkaSource` -- ``kafka://TOPIC?from=..&to=..&bootstrap=..``: a time range of a topic
  (``offsets_for_times`` per partition), read by a consumer with no group id that never commits,
  so it never touches the live consumer group. Partitions are merged by message timestamp
  (approximately event time); per-customer order -- all the detectors need -- is Kafka's
  per-key order.

Memory is bounded by the number of customers, not by the source length: sources stream, and
the runner keeps per customer a few counters plus the (rare) alerts.

>>> parse_mapping(["requests=req_count,ts=time", "customer_id=cust"])
{'requests': 'req_count', 'ts': 'time', 'customer_id': 'cust'}
>>> KafkaSource.from_url("kafka://request-metrics?from=2026-01-01T00:00:00Z&bootstrap=h:9092").describe()["from"]
'2026-01-01T00:00:00Z'
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qs, urlsplit

from detectors.config import DetectorConfig
from detectors.engine import Engine, Verdict
from detectors.events import Event, InvalidEvent, format_ts, parse_ts
from detectors.signals import derive

from .codecs import encode_json
from .processor import Output, Processor

#: (value, key, partition, offset-or-line-number)
Record = tuple[Any, Any, "int | None", "int | None"]

#: contract fields a CSV column can map to (``origin_errors.NNN`` too, one column per status code)
CSV_FIELDS = ("customer_id", "ts", "interval_s", "requests", "status_4xx", "status_5xx", "latency_p50_ms",
              "latency_p99_ms", "cache_hits", "bytes_out", "origin_errors")
REQUIRED_FIELDS = ("customer_id", "ts", "requests", "status_4xx", "status_5xx")
_INT_FIELDS = frozenset({"interval_s", "requests", "status_4xx", "status_5xx", "cache_hits", "bytes_out"})
_FLOAT_FIELDS = frozenset({"latency_p50_ms", "latency_p99_ms"})
#: a file whose first this-many non-blank lines are all undecodable is "not JSON lines at all"
SNIFF_LINES = 20
#: compact alert fields kept in memory (evaluation, diff, report)
ALERT_FIELDS = ("alert_id", "status", "customer_id", "signal", "signals", "severity", "score", "started_at",
                "event_ts", "resolved_at", "interval_s", "notification", "observed", "expected")


class SourceError(Exception):
    """A source cannot be read; ``str(exc)`` is one line for the user."""


# ----------------------------------------------------------------------------- sources


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

    def describe(self) -> dict[str, Any]:
        return {"type": "jsonl", "path": self.name, "gzip": self.gzip, "blank_lines": self.blank_lines}


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

    def _resolve(self, header: list[str]) -> list[tuple[str, int]]:
        for f, col in self.mapping.items():
            if f not in CSV_FIELDS and not (f.startswith("origin_errors.") and f[14:].isdigit() and len(f) == 17):
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
                    yield _BadRow(value, f"CSV row has {len(row)} columns, header has {len(self.header)}"), None, None, ln
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
            (f, self.header[i]) for f, i in self.columns), "blank_lines": self.blank_lines}


class _BadRow(str):
    """A CSV row that cannot become an event: the raw text plus the reason (routed to the DLQ)."""

    def __new__(cls, value: str, reason: str):
        s = super().__new__(cls, value)
        s.reason = reason
        return s


class KafkaSource(Source):
    """A time range of a Kafka topic, read without a consumer group (never commits offsets)."""

    unit = "msg"
    KNOWN = ("from", "to", "bootstrap", "timeout")

    def __init__(self, topic: str, bootstrap: str, start: float | None = None, end: float | None = None,
                 timeout_s: float = 10.0):
        self.topic, self.bootstrap, self.start, self.end, self.timeout_s = topic, bootstrap, start, end, timeout_s
        self.name = f"kafka://{topic}"
        self._ranges: dict[Any, tuple[int, int]] | None = None

    @classmethod
    def from_url(cls, url: str, default_bootstrap: str | None = None) -> "KafkaSource":
        u = urlsplit(url)
        topic = (u.netloc + u.path).strip("/")
        if not topic or "/" in topic:
            raise SourceError(f"{url}: expected kafka://TOPIC?from=...&to=...&bootstrap=HOST:PORT")
        q = parse_qs(u.query, keep_blank_values=True)
        unknown = sorted(set(q) - set(cls.KNOWN))
        if unknown:
            raise SourceError(f"{url}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(cls.KNOWN)})")

        def one(k):
            v = q.get(k)
            return v[-1] if v else None

        def when(k):
            v = one(k)
            if v in (None, ""):
                return None
            try:
                return parse_ts(float(v) if v.replace(".", "", 1).isdigit() else v)
            except InvalidEvent as exc:
                raise SourceError(f"{url}: {k}={v}: {str(exc).replace('ts ', '', 1)}") from None

        start, end = when("from"), when("to")
        if start is not None and end is not None and end <= start:
            raise SourceError(f"{url}: 'to' must be after 'from'")
        try:
            timeout = float(one("timeout") or 10.0)
        except ValueError:
            raise SourceError(f"{url}: timeout must be seconds") from None
        bootstrap = one("bootstrap") or default_bootstrap or "127.0.0.1:9092"
        return cls(topic, bootstrap, start, end, timeout)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "kafka", "topic": self.topic, "bootstrap": self.bootstrap,
                             "from": format_ts(self.start) if self.start is not None else None,
                             "to": format_ts(self.end) if self.end is not None else None}
        if self._ranges:
            d["offsets"] = {str(tp.partition): [a, b] for tp, (a, b) in self._ranges.items()}
        return d

    def _consumer(self):
        import logging

        import kafka.errors as kerr
        from kafka import KafkaConsumer

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        ms = max(int(self.timeout_s * 1000), 100)
        kwargs: dict[str, Any] = dict(
            bootstrap_servers=self.bootstrap.split(","), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id="lookout-replay", request_timeout_ms=max(ms, 5000) + 1000,
            fetch_max_bytes=64 << 20, max_partition_fetch_bytes=8 << 20, max_poll_records=10000,
        )
        # kafka-python >= 3 bounds the bootstrap with bootstrap_timeout_ms, 2.x with api_version_auto_timeout_ms
        if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG:
            kwargs["bootstrap_timeout_ms"] = ms
        else:
            kwargs["api_version_auto_timeout_ms"] = ms
        unreachable = tuple(c for c in (getattr(kerr, "NoBrokersAvailable", None), kerr.KafkaTimeoutError,
                                         getattr(kerr, "KafkaConnectionError", None)) if c is not None)
        try:
            return KafkaConsumer(**kwargs)
        except unreachable:
            raise SourceError(f"cannot reach Kafka at {self.bootstrap} within {self.timeout_s:g} s") from None
        except (kerr.KafkaError, OSError, ValueError) as exc:
            raise SourceError(f"Kafka at {self.bootstrap}: {exc}") from None

    def _plan(self, consumer) -> dict[Any, tuple[int, int]]:
        """Per partition [start, stop) offsets for the time range (fixed once, so re-reads match)."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        if self._ranges is not None:
            return self._ranges
        try:
            topics = consumer.topics()
            if self.topic not in topics:
                raise SourceError(f"topic {self.topic!r} not found on {self.bootstrap}")
            parts = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            first = consumer.beginning_offsets(tps)
            last = consumer.end_offsets(tps)
            starts = dict(first)
            stops = dict(last)
            if self.start is not None:
                found = consumer.offsets_for_times({tp: int(self.start * 1000) for tp in tps})
                for tp in tps:
                    starts[tp] = found[tp].offset if found.get(tp) is not None else last[tp]
            if self.end is not None:
                found = consumer.offsets_for_times({tp: int(self.end * 1000) for tp in tps})
                for tp in tps:
                    if found.get(tp) is not None:
                        stops[tp] = found[tp].offset
        except SourceError:
            raise
        except KafkaError as exc:
            raise SourceError(f"Kafka at {self.bootstrap}: {type(exc).__name__}: {exc}") from None
        self._ranges = {tp: (starts[tp], max(starts[tp], stops[tp])) for tp in tps}
        self.total = sum(b - a for a, b in self._ranges.values())
        return self._ranges

    def prepare(self) -> None:
        """Connect and fix the offset ranges now (so errors surface before any work starts)."""
        c = self._consumer()
        try:
            self._plan(c)
        finally:
            c.close()

    def records(self, progress=None) -> Iterator[Record]:
        from kafka.errors import KafkaError

        consumer = self._consumer()
        try:
            ranges = self._plan(consumer)
            active = [tp for tp, (a, b) in ranges.items() if b > a]
            consumer.assign(active)
            for tp in active:
                consumer.seek(tp, ranges[tp][0])
            bufs: dict[Any, deque] = {tp: deque() for tp in active}
            paused: set = set()
            live = set(active)
            idle_since = time.monotonic()
            n = 0
            while live or any(bufs.values()):
                hungry = [tp for tp in live if not bufs[tp]]
                if hungry:
                    for tp in list(paused):
                        if len(bufs[tp]) < 2000:
                            consumer.resume(tp)
                            paused.discard(tp)
                    try:
                        batch = consumer.poll(timeout_ms=500)
                    except KafkaError as exc:
                        raise SourceError(f"Kafka at {self.bootstrap}: {type(exc).__name__}: {exc}") from None
                    got = False
                    for tp, msgs in batch.items():
                        if tp not in live:
                            continue
                        stop = ranges[tp][1]
                        buf = bufs[tp]
                        for m in msgs:
                            if m.offset >= stop:
                                break
                            buf.append(m)
                            got = True
                        if (msgs and msgs[-1].offset + 1 >= stop) or consumer.position(tp) >= stop:
                            live.discard(tp)
                            consumer.pause(tp)
                        elif len(buf) > 20000:
                            consumer.pause(tp)
                            paused.add(tp)
                    if got:
                        idle_since = time.monotonic()
                    else:
                        for tp in list(live):
                            if consumer.position(tp) >= ranges[tp][1]:
                                live.discard(tp)
                        if live and time.monotonic() - idle_since > self.timeout_s:
                            raise SourceError(
                                f"Kafka at {self.bootstrap}: no data from {self.topic} partition(s) "
                                f"{sorted(tp.partition for tp in live)} for {self.timeout_s:g} s")
                    if any(not bufs[tp] for tp in live):
                        continue
                # every live partition has buffered messages: emit in timestamp order until one runs dry
                while True:
                    heads = [(bufs[tp][0].timestamp, tp.partition, tp) for tp in bufs if bufs[tp]]
                    if not heads:
                        break
                    _, _, tp = min(heads)
                    m = bufs[tp].popleft()
                    n += 1
                    if progress is not None and not n & 1023:
                        progress(1024)
                    yield m.value, m.key, tp.partition, m.offset
                    if not bufs[tp] and tp in live:
                        break
            if progress is not None:
                progress(n & 1023)
        finally:
            consumer.close()


def open_source(spec: str, *, mapping: Mapping[str, str] | None = None, fmt: str = "auto",
                default_bootstrap: str | None = None) -> Source:
    """A source from a command-line spec: a file path or ``kafka://TOPIC?...``."""
    if spec.startswith("kafka://"):
        if mapping:
            raise SourceError("--map applies to CSV files only")
        return KafkaSource.from_url(spec, default_bootstrap)
    base = spec[:-3] if spec.endswith(".gz") else spec
    if fmt == "csv" or (fmt == "auto" and (base.lower().endswith(".csv") or mapping)):
        return CsvSource(spec, mapping)
    if mapping:
        raise SourceError("--map applies to CSV files only (name the file .csv or pass --format csv)")
    return JsonlSource(spec)


# ----------------------------------------------------------------------------- traces


class Trace:
    """Per event of one customer: observed value and, once warm, the model's expected value, band
    and score for every signal (compact float arrays; NaN = not available)."""

    FIELDS = ("value", "expected", "lo", "hi", "score")

    def __init__(self, customer_id: str, signals: Iterable[str]):
        self.customer_id = customer_id
        self.ts = array("d")
        self.requests = array("d")
        self.series: dict[str, dict[str, array]] = {s: {f: array("d") for f in self.FIELDS} for s in signals}

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, e: Event, models: Mapping[str, Any] | None) -> None:
        nan = math.nan
        self.ts.append(e.ts)
        self.requests.append(e.requests)
        xs = derive(e)
        for name, cols in self.series.items():
            x = xs.get(name)
            value = expected = lo = hi = score = nan
            if x is not None:
                if "value" in x:
                    value = float(x["value"])
                elif x.get("den"):
                    value = x["num"] / x["den"]
                model = models.get(name) if models is not None else None
                if model is not None and model.warm:
                    a = model.assess(x)
                    expected, lo, hi, score = a.expected, a.lo, a.hi, a.score
            cols["value"].append(value)
            cols["expected"].append(expected)
            cols["lo"].append(lo)
            cols["hi"].append(hi)
            cols["score"].append(score)


class ReplayEngine(Engine):
    """:class:`Engine` plus bookkeeping for reports. Every decision is ``Engine.process``'s own:
    this subclass only counts (customer sizes, time span, outcomes) and, for a few traced
    customers, peeks at the models' assessment *before* the event is processed (``assess``
    does not learn)."""

    def __init__(self, config: DetectorConfig | None = None, trace: Iterable[str] = ()):
        super().__init__(config)
        self.sizes: dict[str, list] = {}  # customer -> [events, sum of requests]
        self.outcomes: dict[str, int] = {}
        self.intervals: dict[int, int] = {}
        self.t_min = math.inf
        self.t_max = -math.inf
        self.trace_customers = set(trace)
        self.traces: dict[str, Trace] = {}

    def process(self, e: Event) -> Verdict:
        cid = e.customer_id
        s = self.sizes.get(cid)
        if s is None:
            s = self.sizes[cid] = [0, 0]
        s[0] += 1
        s[1] += e.requests
        ts = e.ts
        if ts < self.t_min:
            self.t_min = ts
        end = ts + e.interval_s
        if end > self.t_max:
            self.t_max = end
        self.intervals[e.interval_s] = self.intervals.get(e.interval_s, 0) + 1
        if cid in self.trace_customers:
            st = self.customers.get(cid)
            if st is None or st.last_ts is None or ts > st.last_ts:
                tr = self.traces.get(cid)
                if tr is None:
                    tr = self.traces[cid] = Trace(cid, self._enabled_order())
                tr.add(e, st.models if st is not None else None)
        v = Engine.process(self, e)
        self.outcomes[v.outcome] = self.outcomes.get(v.outcome, 0) + 1
        return v

    def _enabled_order(self) -> list[str]:
        return [s for s in self.config.signals if s in self._enabled]

    # -- derived facts -----------------------------------------------------------------
    def customer_sizes(self) -> dict[str, float]:
        """Customer -> mean requests per interval (the size used for deciles)."""
        return {c: (tot / n if n else 0.0) for c, (n, tot) in self.sizes.items()}

    @property
    def span_s(self) -> float:
        return max(0.0, self.t_max - self.t_min) if self.t_max > self.t_min else 0.0

    @property
    def interval_s(self) -> int | None:
        return max(self.intervals, key=self.intervals.get) if self.intervals else None


def compact_alert(a: Mapping[str, Any]) -> dict[str, Any]:
    return {k: a.get(k) for k in ALERT_FIELDS}


# ----------------------------------------------------------------------------- runner


@dataclass
class EngineRun:
    """What one detector configuration produced over the source."""

    label: str
    config: DetectorConfig
    alerts: list[dict[str, Any]] = field(default_factory=list)  # compact
    alerts_path: Path | None = None

    def counts(self) -> dict[str, Any]:
        firing = [a for a in self.alerts if a["status"] == "firing"]
        opened = {a["alert_id"] for a in firing}
        sev: dict[str, int] = {}
        sig: dict[str, int] = {}
        seen: set = set()
        for a in firing:
            if a["alert_id"] in seen:
                continue
            seen.add(a["alert_id"])
            sev[a["severity"]] = sev.get(a["severity"], 0) + 1
            sig[a["signal"]] = sig.get(a["signal"], 0) + 1
        return {"alerts": len(self.alerts), "firing": len(firing),
                "resolved": sum(1 for a in self.alerts if a["status"] == "resolved"),
                "opened_incidents": len(opened), "by_severity": dict(sorted(sev.items())),
                "by_primary_signal": dict(sorted(sig.items())),
                "customers_alerted": len({a["customer_id"] for a in firing})}


@dataclass
class ReplayResult:
    source: dict[str, Any]
    records: int
    invalid: int
    engine: ReplayEngine
    runs: list[EngineRun]
    seconds: float
    dlq_path: Path | None = None

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class _Progress:
    def __init__(self, source: Source, enabled: bool, desc: str = "replay"):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            scale = source.unit == "B"
            self.bar = tqdm(total=source.total, desc=desc, unit=source.unit, unit_scale=scale,
                            unit_divisor=1024 if scale else 1000, mininterval=0.5, leave=False, dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_replay(
    source: Source,
    config: DetectorConfig,
    *,
    baseline: DetectorConfig | None = None,
    out_dir: Path | None = None,
    trace: Iterable[str] = (),
    progress: bool = False,
    keep_alerts: bool = True,
) -> ReplayResult:
    """One pass over ``source``: every record goes through a :class:`Processor` per configuration.

    Writes ``alerts.jsonl`` (and ``baseline_alerts.jsonl``) and ``dlq.jsonl`` into ``out_dir``
    when given.
    """
    engine = ReplayEngine(config, trace)
    procs: list[tuple[Processor, EngineRun]] = [(Processor(engine, dlq_topic="dlq.jsonl"), EngineRun("config", config))]
    if baseline is not None:
        procs.append((Processor(Engine(baseline), dlq_topic="dlq.jsonl"), EngineRun("baseline", baseline)))
    files = []
    writers: list[Any] = []
    dlq_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for _, run in procs:
            run.alerts_path = out_dir / ("alerts.jsonl" if run.label == "config" else "baseline_alerts.jsonl")
            f = open(run.alerts_path, "wb", buffering=1 << 16)
            files.append(f)
            writers.append(f.write)
        dlq_file = open(out_dir / "dlq.jsonl", "wb", buffering=1 << 16)
        files.append(dlq_file)
    else:
        writers = [None] * len(procs)
    is_file = not isinstance(source, KafkaSource)
    src_name = source.name
    bar = _Progress(source, progress)
    outs = [Output() for _ in procs]
    records = invalid = 0
    t0 = time.perf_counter()
    try:
        main_proc, main_run = procs[0]
        main_out = outs[0]
        decode, process = main_proc.decode, main_proc.process_event
        keep = main_run.alerts.append
        write = writers[0]
        rest = list(zip(procs[1:], outs[1:], writers[1:]))
        for value, key, partition, offset in source.records(bar):
            records += 1
            if isinstance(value, _BadRow):  # a CSV row that cannot become an object: park it as is
                main_out.dlq.append(_csv_dlq(value, src_name, offset))
            else:
                # decoded once; every configuration's processor sees the same event
                event = decode(value, key=key, source=src_name, partition=partition, offset=offset, out=main_out)
                if event is not None:
                    process(event, main_out)
                    for (p, run), o, w in rest:
                        p.process_event(event, o)
                        for a in o.alerts:
                            if w is not None:
                                w(encode_json(a) + b"\n")
                            if keep_alerts:
                                run.alerts.append(compact_alert(a))
                        o.alerts.clear()
            if main_out.alerts:
                for a in main_out.alerts:
                    if write is not None:
                        write(encode_json(a) + b"\n")
                    if keep_alerts:
                        keep(compact_alert(a))
                main_out.alerts.clear()
            if main_out.dlq:
                for d in main_out.dlq:
                    invalid += 1
                    if is_file:
                        d["line"] = offset
                        d["offset"] = None
                        if isinstance(d.get("raw"), str):
                            d["raw"] = d["raw"].rstrip("\r\n")
                    if dlq_file is not None:
                        dlq_file.write(encode_json(d) + b"\n")
                main_out.dlq.clear()
    finally:
        bar.close()
        for f in files:
            f.close()
    seconds = time.perf_counter() - t0
    return ReplayResult(source.describe(), records, invalid, engine, [r for _, r in procs], seconds,
                        out_dir / "dlq.jsonl" if out_dir is not None else None)


def _csv_dlq(value: "_BadRow", source: str, line: int | None) -> dict[str, Any]:
    from .codecs import dlq_record

    d = dlq_record(str(value), value.reason, source=source, offset=line)
    return d


def trace_customers(source: Source, config: DetectorConfig, customers: Iterable[str],
                    progress: bool = False) -> dict[str, Trace]:
    """A second, cheap pass for customers chosen after the first one (e.g. those with false
    alerts): only records mentioning one of them go through a fresh processor."""
    want = set(customers)
    if not want:
        return {}
    tokens = [json.dumps(c).encode() for c in want]
    engine = ReplayEngine(config, want)
    proc = Processor(engine)
    out = Output()
    bar = _Progress(source, progress, desc="trace")
    try:
        for value, key, partition, offset in source.records(bar):
            if isinstance(value, _BadRow):
                continue
            if key is not None:
                k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
                if k not in want:
                    continue
            else:
                raw = value if isinstance(value, bytes) else str(value).encode()
                if not any(t in raw for t in tokens):
                    continue
            proc.handle(value, out=out)
            out.alerts.clear()
            out.dlq.clear()
    finally:
        bar.close()
    return engine.traces


# ----------------------------------------------------------------------------- diff


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def incidents(alerts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """alert_id -> one row per opened incident (first firing's signal, highest severity, resolution)."""
    out: dict[str, dict[str, Any]] = {}
    for a in alerts:
        aid = a["alert_id"]
        inc = out.get(aid)
        if a["status"] == "firing":
            if inc is None:
                out[aid] = {"alert_id": aid, "customer_id": a["customer_id"], "started_at": a["started_at"],
                            "first_event_ts": a["event_ts"], "signal": a["signal"],
                            "signals": list(a.get("signals") or [a["signal"]]), "severity": a["severity"],
                            "score": a.get("score"), "resolved_at": None}
            else:
                if SEVERITY_RANK.get(a["severity"], 0) > SEVERITY_RANK.get(inc["severity"], 0):
                    inc["severity"] = a["severity"]
                inc["signals"] = sorted(set(inc["signals"]) | set(a.get("signals") or []))
        elif a["status"] == "resolved" and inc is not None:
            inc["resolved_at"] = a.get("resolved_at")
            inc["signals"] = sorted(set(inc["signals"]) | set(a.get("signals") or []))
    return out


DIFF_FIELDS = ("severity", "signal", "resolved_at")


def diff_alerts(new: Iterable[Mapping[str, Any]], old: Iterable[Mapping[str, Any]],
                matched_new: set[str] | None = None, matched_old: set[str] | None = None) -> dict[str, Any]:
    """Incidents gained, lost and changed (same alert_id, different severity/signal/resolved_at).

    ``matched_*`` (alert ids that match a label) annotate rows with ``matches_label``.
    """
    a, b = incidents(new), incidents(old)

    def row(inc, matched):
        r = {k: inc[k] for k in ("alert_id", "customer_id", "started_at", "signal", "severity", "resolved_at")}
        if matched is not None:
            r["matches_label"] = inc["alert_id"] in matched
        return r

    gained = [row(a[k], matched_new) for k in a if k not in b]
    lost = [row(b[k], matched_old) for k in b if k not in a]
    changed = []
    for k in a:
        if k in b:
            ch = {f: [b[k][f], a[k][f]] for f in DIFF_FIELDS if a[k][f] != b[k][f]}
            if ch:
                r = row(a[k], matched_new)
                r["changes"] = ch
                changed.append(r)
    key = lambda r: (r["started_at"] or "", r["customer_id"])  # noqa: E731
    return {"gained": sorted(gained, key=key), "lost": sorted(lost, key=key), "changed": sorted(changed, key=key),
            "unchanged": sum(1 for k in a if k in b) - len(changed),
            "counts": {"new": len(a), "baseline": len(b)}}


def format_diff(diff: Mapping[str, Any], limit: int = 20) -> str:
    g, l_, c = diff["gained"], diff["lost"], diff["changed"]
    lines = [f"alerts vs baseline: {len(g)} gained, {len(l_)} lost, {len(c)} changed, {diff['unchanged']} unchanged "
             f"(incidents: baseline {diff['counts']['baseline']}, new {diff['counts']['new']})"]

    def lab(r):
        if "matches_label" not in r:
            return ""
        return "  [labelled]" if r["matches_label"] else "  [no label]"

    for mark, title, rows in (("+", "gained", g), ("-", "lost", l_), ("~", "changed", c)):
        for r in rows[:limit]:
            text = f"  {mark} {title:<8}{r['customer_id']:<20}{r['started_at']:<22}{r['severity']:<9}{r['signal']:<14}"
            if "changes" in r:
                text += "; ".join(f"{f} {o} -> {n}" for f, (o, n) in r["changes"].items())
            lines.append(text.rstrip() + lab(r))
        if len(rows) > limit:
            lines.append(f"    ... {len(rows) - limit} more {title} (see diff.json)")
    return "\n".join(lines)
