"""Follow the ``alerts`` topic: what ``lookout alerts tail`` prints.

With the correlator it follows its routed alerts and its parent incidents instead, and shows
each parent with its children folded under it (:func:`fold`, :func:`format_parent`).

:class:`AlertTail` reads the topic without a consumer group (it never commits, so it never
disturbs anyone), starting at the first message at or after ``since`` (Kafka message time),
and yields alerts in message-time order, optionally only those of some customers. Lines are
formatted by :func:`format_alert` (what the demo's live view shows too) or as JSON lines;
:func:`tail` is the whole command without click.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, TextIO

from streams.kafka.admin import wait_for_kafka
from streams.kafka.security import kafka_python_kwargs
from streams.settings import Settings

#: how long one poll waits for new messages before checking whether to stop
POLL_MS = 500
SEVERITY_COLOURS = {"critical": "\033[1;31m", "warning": "\033[33m", "info": "\033[36m"}
RESOLVED_COLOUR = "\033[32m"
RESET = "\033[0m"


class TailError(Exception):
    """The topic cannot be followed; ``str(exc)`` is one line for the user."""


@dataclass
class AlertTail:
    """Alerts on ``topic`` from ``since`` (epoch seconds; None = only new ones), for ``customers``
    (all if empty)."""

    bootstrap: str
    topic: str | tuple[str, ...] = "alerts"  # or several: the correlator's routed alerts and incidents
    since: float | None = None
    customers: frozenset[str] = frozenset()
    timeout_s: float = 10.0
    #: kafka-python TLS/SASL arguments (streams.kafka.security.kafka_python_kwargs); not in repr (password)
    security: dict[str, Any] = field(default_factory=dict, repr=False)

    def _consumer(self):
        import kafka.errors as kerr
        from kafka import KafkaConsumer

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        ms = max(int(self.timeout_s * 1000), 100)
        kwargs: dict[str, Any] = dict(bootstrap_servers=self.bootstrap.split(","), group_id=None,
                                      enable_auto_commit=False, client_id="lookout-alerts-tail",
                                      request_timeout_ms=max(ms, 5000) + 1000, **self.security)
        # kafka-python >= 3 bounds the bootstrap with bootstrap_timeout_ms,
        # 2.x with api_version_auto_timeout_ms
        if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG:
            kwargs["bootstrap_timeout_ms"] = ms
        else:
            kwargs["api_version_auto_timeout_ms"] = ms
        try:
            return KafkaConsumer(**kwargs)
        except (kerr.KafkaError, OSError, ValueError):
            raise TailError(f"cannot reach Kafka at {self.bootstrap} within {self.timeout_s:g} s") from None

    def alerts(self, follow: bool = True, stop: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Yield alerts; with ``follow`` wait for new ones until ``stop`` is set, else end at the
        messages that were on the topic when it started."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        consumer = self._consumer()
        try:
            try:
                tps = []
                for topic in ((self.topic,) if isinstance(self.topic, str) else self.topic):
                    parts = consumer.partitions_for_topic(topic)
                    if not parts:
                        raise TailError(f"topic {topic!r} not found on {self.bootstrap}")
                    tps += [TopicPartition(topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                ends = consumer.end_offsets(tps)
                if self.since is None:
                    for tp in tps:
                        consumer.seek(tp, ends[tp])
                else:
                    found = consumer.offsets_for_times({tp: max(0, int(self.since * 1000)) for tp in tps})
                    for tp in tps:
                        consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])
            except KafkaError as exc:
                raise TailError(f"Kafka at {self.bootstrap}: {type(exc).__name__}: {exc}") from None
            while stop is None or not stop.is_set():
                if not follow and all(consumer.position(tp) >= ends[tp] for tp in tps):
                    return
                try:
                    batch = consumer.poll(timeout_ms=POLL_MS)
                except KafkaError as exc:
                    raise TailError(f"Kafka at {self.bootstrap}: {type(exc).__name__}: {exc}") from None
                msgs = sorted(
                    (m for ms in batch.values() for m in ms), key=lambda m: (m.timestamp, m.partition)
                )
                for m in msgs:
                    if not follow and m.offset >= ends[TopicPartition(m.topic, m.partition)]:
                        continue
                    alert = _decode(m.value)
                    if alert is not None and self._wanted(alert):
                        yield alert
        finally:
            consumer.close()

    def _wanted(self, alert: dict[str, Any]) -> bool:
        if not self.customers:
            return True
        if alert.get("schema") == INCIDENT_SCHEMA:
            return bool(self.customers & set(alert.get("customers") or ()))
        return alert.get("customer_id") in self.customers


INCIDENT_SCHEMA = "lookout.incident/v1"
#: children named on a parent's line (the rest are counted)
CHILDREN_SHOWN = 8


def tail(settings: Settings, since: float | None, customers: Iterable[str] = (), *, follow: bool = True,
         as_json: bool = False, out: TextIO | None = None, stop: threading.Event | None = None,
         parents: bool = False) -> int:
    """Print the alerts on ``settings.alerts_topic`` sent since ``since`` (epoch seconds; None:
    only new ones) to ``out`` (default stdout), one readable line -- or JSON line -- each, only
    those of ``customers`` if given; with ``follow`` wait for new ones until ``stop`` is set.
    Returns how many were printed. With ``parents`` it follows
    the routed alerts and parent incidents instead, children folded under their parent (unless
    ``as_json``).

    Raises :class:`TailError`, :class:`~streams.kafka.admin.BrokerError` (the broker does not
    answer or rejects the TLS/SASL settings) or :class:`~streams.settings.SettingsError`, each
    one line.
    """
    out = out or sys.stdout
    security = kafka_python_kwargs(settings)
    wait_for_kafka(settings.bootstrap, timeout=settings.kafka_timeout_s, security=security)
    folded = parents
    topics = (settings.routed_topic, settings.incidents_topic) if folded else settings.alerts_topic
    source = AlertTail(settings.bootstrap, topics, since, frozenset(customers), settings.kafka_timeout_s,
                       security)
    console = Console(out)
    n = 0
    stream = source.alerts(follow=follow, stop=stop)
    for alert in (fold(stream) if folded and not as_json else stream):
        print(format_line(alert, as_json, console), file=out, flush=True)
        n += 1
    return n


def _decode(value: bytes | None) -> dict[str, Any] | None:
    try:
        obj = json.loads(value) if value is not None else None
    except ValueError:
        return None
    if not isinstance(obj, dict) or "status" not in obj:
        return None
    return obj if "customer_id" in obj or obj.get("schema") == INCIDENT_SCHEMA else None


def fold(alerts: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Parents with their children folded: a parent is shown when it is published, escalates and
    resolves (not on every update as children join); alerts pass as they are (a child carries
    its ``parent_id`` and is shown under its parent)."""
    seen: dict[str, tuple[str, int]] = {}
    for a in alerts:
        if a.get("schema") == INCIDENT_SCHEMA:
            state = (a["status"], a.get("notification", 1))
            if seen.get(a["parent_id"]) == state:
                continue
            seen[a["parent_id"]] = state
            if a["status"] == "resolved":
                seen.pop(a["parent_id"], None)
        yield a


def format_line(alert: dict[str, Any], as_json: bool, console: Any = None) -> str:
    """One alert as the demo shows it (two lines when firing; ``console`` decides colours), or as
    one compact JSON line."""
    if as_json:
        return json.dumps(alert, separators=(",", ":"), sort_keys=True)
    return format_alert(alert, console if console is not None else Console(_NoTty()))


class _NoTty:
    def isatty(self) -> bool:
        return False


class Console:
    """A terminal: colours only when it is a TTY and ``NO_COLOR`` is unset, and one status line
    that the next line replaces."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.colour = stream.isatty() and os.environ.get("NO_COLOR") is None
        self._status = False

    def paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.colour else text

    def line(self, text: str) -> None:
        self.clear_status()
        print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        if self.colour:
            print("\r\033[K" + text, end="", file=self.stream, flush=True)
            self._status = True

    def clear_status(self) -> None:
        if self._status:
            print("\r\033[K", end="", file=self.stream, flush=True)
            self._status = False


def format_parent(r: dict[str, Any], con: Console) -> str:
    """A parent incident: its cause, then its children (two lines)."""
    when = r["event_ts"][5:16].replace("T", " ")
    kids = r.get("children") or []
    names = ", ".join(k["customer_id"] for k in kids[:CHILDREN_SHOWN])
    more = f" and {len(kids) - CHILDREN_SHOWN} more" if len(kids) > CHILDREN_SHOWN else ""
    if r["status"] == "resolved":
        head = con.paint("RESOLVED ", RESOLVED_COLOUR)
        return f"{when}  {head} PARENT     {r['cause']}: all {len(kids)} child alerts resolved"
    tag = "ESCALATED" if r.get("notification", 1) > 1 else "PARENT"
    head = con.paint(f"{tag:<9}", SEVERITY_COLOURS.get(r["severity"], ""))
    return (f"{when}  {head} {r['parent_id'][:10]} {r['severity']:<8} {r['cause']}\n"
            f"{'':19}-> {len(kids)} child alerts folded under it ({r.get('children_open', 0)} open): "
            f"{names}{more}")


def format_child(a: dict[str, Any], con: Console) -> str:
    """An alert folded under a parent: one short line, indented under it."""
    when = a["event_ts"][5:16].replace("T", " ")
    what = "resolved" if a["status"] == "resolved" else f"{a['severity']} {a.get('signal', '')}".strip()
    return f"{when}  {'':9}   + {a['customer_id']:<10} {what} (under parent {a['parent_id'][:10]})"


def format_alert(a: dict[str, Any], con: Console) -> str:
    """One readable line per alert notification (a parent incident, or a child folded under one,
    in the folded form)."""
    if a.get("schema") == INCIDENT_SCHEMA:
        return format_parent(a, con)
    if a.get("parent_id"):
        return format_child(a, con)
    when = a["event_ts"][5:16].replace("T", " ")
    if a["status"] == "resolved":
        head = con.paint("RESOLVED ", RESOLVED_COLOUR)
        return f"{when}  {head} {a['customer_id']:<10} {a['summary'].split(': ', 1)[-1]}"
    sev = a["severity"]
    tag = "ESCALATED" if a.get("notification", 1) > 1 else "FIRING"
    head = con.paint(f"{tag:<9}", SEVERITY_COLOURS.get(sev, ""))
    return (f"{when}  {head} {a['customer_id']:<10} {sev:<8} {a['explanation'].removeprefix('Since ')}\n"
            f"{'':19}-> {a['diagnosis']}")
