"""Alertmanager sink: Lookout alerts as Alertmanager alerts (v2 API).

Each incident is one Alertmanager alert with labels that group and route
(``alertname``, ``customer``, ``signal``, ``severity``, ``alert_id``) and annotations a ticket can
show (summary, description = the explanation, diagnosis, observed/expected, a Grafana link).

With the correlator, a parent incident is one more alert (``alertname=LookoutParent``, labels
``parent_id``, ``scope``, ``scope_attribute``, ``family``, ``severity``; annotations the cause and
its children) and each child folded under it carries ``parent_id``: an inhibition rule on equal
``parent_id`` (``deploy/alertmanager.yml``) mutes the children while the parent fires. Parents are
re-sent like alerts, so the inhibition holds across worker restarts, and every child is still
sent and resolved as itself, so none is left open.

Alertmanager resolves an alert whose ``endsAt`` passes, so firing alerts are sent with
``endsAt = now + expiry`` and re-sent every ``resend_every_s`` (a Faust timer calls
:meth:`resend`); the set of open alerts lives in a mapping the caller provides -- a Faust table
in the worker, so it survives restarts -- keyed by customer id. A resolution is sent with
``endsAt`` = the resolution time. On escalation the severity label changes, so the alert with
the previous label set is ended at the same time.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any, Callable, MutableMapping
from urllib.parse import quote

import aiohttp

from detectors.alerting import SEVERITIES
from detectors.events import format_ts, parse_ts
from detectors.signals import format_band, format_value

from .actions import action_urls, muted

log = logging.getLogger("lookout.sinks.alertmanager")

ALERTNAME = "LookoutAnomaly"
#: a parent incident (issue 18): one alert for a shared cause; its children carry ``parent_id``
PARENT_ALERTNAME = "LookoutParent"
INCIDENT_SCHEMA = "lookout.incident/v1"
CUSTOMER_DASHBOARD = "lookout-customer"
#: children named in a parent's annotation (the rest are counted)
MAX_CHILDREN_SHOWN = 20


def is_parent(record: dict[str, Any]) -> bool:
    return record.get("schema") == INCIDENT_SCHEMA


def _whole_seconds(ts: float) -> str:
    """RFC 3339 in whole seconds: every ``startsAt``/``endsAt`` has the same precision, so later
    times also sort later as text.

    >>> _whole_seconds(1767806100.75)
    '2026-01-07T17:15:00Z'
    """
    return format_ts(math.floor(ts))


def _band(band: Any, unit: str) -> str:
    if isinstance(band, (list, tuple)) and len(band) == 2:
        return f" (band {format_band(band[0], band[1], unit)})"
    return ""


def labels_of(alert: dict[str, Any]) -> dict[str, str]:
    """The label set: a child folded under a parent carries ``parent_id`` (the inhibition's key)."""
    if is_parent(alert):
        scope = alert["scope"]
        return {"alertname": PARENT_ALERTNAME, "parent_id": alert["parent_id"], "scope": scope["group"],
                "scope_attribute": scope.get("attribute") or "fleet", "family": alert["family"],
                "severity": alert["severity"]}
    labels = {
        "alertname": ALERTNAME,
        "customer": alert["customer_id"],
        "signal": alert["signal"],
        "severity": alert["severity"],
        "alert_id": alert["alert_id"],
    }
    if alert.get("parent_id"):
        labels["parent_id"] = alert["parent_id"]
    return labels


def decode(value: bytes) -> dict[str, Any] | None:
    """An alert (or a parent incident record) from a topic the sinks read, or None for anything else.

    >>> decode(b'{"alert_id": "a", "status": "firing", "customer_id": "c"}')["alert_id"], decode(b"[]")
    ('a', None)
    """
    try:
        alert = json.loads(value)
        if isinstance(alert, dict) and ({"alert_id", "status", "customer_id"} <= alert.keys() or (
                is_parent(alert) and {"parent_id", "status"} <= alert.keys())):
            return alert
    except ValueError:
        pass
    return None


def ident(record: dict[str, Any]) -> tuple[str, str]:
    """(key of the open-alerts table, id): customer and alert id, or the parent's own slot."""
    if is_parent(record):
        return "parent:" + record["parent_id"], record["parent_id"]
    return record["customer_id"], record["alert_id"]


def remember(open_alerts: MutableMapping[str, dict[str, dict[str, Any]]],
             alert: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """Apply one notification to the open alerts (table key -> {id: latest firing record});
    return whether it is sent and the record it replaces.

    A firing one is remembered, a resolution forgets its alert. A notification a maintenance
    window mutes is neither sent nor remembered -- unless it ends an incident Alertmanager was
    told about, which must not stay open there.

    >>> open_alerts = {}
    >>> remember(open_alerts, {"customer_id": "c", "alert_id": "a", "status": "firing"})
    (True, None)
    >>> list(open_alerts["c"])
    ['a']
    >>> remember(open_alerts, {"customer_id": "c", "alert_id": "a", "status": "resolved"})[0], open_alerts
    (True, {})
    """
    cid, aid = ident(alert)
    current = dict(open_alerts.get(cid) or {})
    previous = current.get(aid)
    if muted(alert) and (previous is None or alert["status"] == "firing"):
        return False, previous
    if alert["status"] == "firing":
        current[aid] = alert
    else:
        current.pop(aid, None)
    if current:
        open_alerts[cid] = current
    elif cid in open_alerts:
        del open_alerts[cid]
    return True, previous


def _parent_payload(record: dict[str, Any], *, now: float, expiry_s: float) -> dict[str, Any]:
    started = parse_ts(record["since"])
    if record["status"] == "resolved":
        ends = max(parse_ts(record["resolved_at"]) if record.get("resolved_at") else now, started + 1)
    else:
        ends = now + expiry_s
    kids = record.get("children") or []
    shown = ", ".join(f"{k['customer_id']} ({k['status']})" for k in kids[:MAX_CHILDREN_SHOWN])
    more = f" and {len(kids) - MAX_CHILDREN_SHOWN} more" if len(kids) > MAX_CHILDREN_SHOWN else ""
    return {
        "labels": labels_of(record),
        "annotations": {
            "summary": record["summary"],
            "description": record["cause"],
            "children": f"{len(kids)} child alerts: {shown}{more}",
            "customers_affected": str(record.get("customers_affected", "")),
            "since": record["since"],
        },
        "startsAt": _whole_seconds(started),
        "endsAt": _whole_seconds(ends),
    }


def dashboard_url(grafana_url: str, customer_id: str) -> str:
    customer = quote(customer_id, safe="")
    return f"{grafana_url.rstrip('/')}/d/{CUSTOMER_DASHBOARD}/lookout-customer?var-customer={customer}"


def to_alertmanager(
    alert: dict[str, Any], *, grafana_url: str, now: float, expiry_s: float, api_url: str | None = None
) -> dict[str, Any]:
    """One Lookout alert -> one Alertmanager v2 ``postableAlert`` (with ``api_url``: the steering
    requests as ``*_url`` annotations, :func:`streams.sinks.actions.action_urls`)."""
    if is_parent(alert):
        return _parent_payload(alert, now=now, expiry_s=expiry_s)
    started = parse_ts(alert["started_at"])
    if alert["status"] == "resolved":
        ends = parse_ts(alert["resolved_at"]) if alert.get("resolved_at") else now
        # Alertmanager treats endsAt in the past as resolved; keep it after startsAt
        ends = max(ends, started + 1)
    else:
        ends = now + expiry_s
    unit = alert.get("unit", "")
    link = dashboard_url(grafana_url, alert["customer_id"])
    annotations = {
        "summary": alert["summary"],
        "description": alert["explanation"],
        "diagnosis": alert["diagnosis"],
        "observed": format_value(alert.get("observed"), unit),
        "expected": format_value(alert.get("expected"), unit) + _band(alert.get("band"), unit),
        "signals": ",".join(alert.get("signals", [])),
        "started_at": alert["started_at"],
        "dashboard": link,
    }
    if api_url:
        annotations.update(action_urls(alert, api_url))
    if isinstance(alert.get("feedback"), dict):
        fb = alert["feedback"]
        annotations["feedback"] = f"{fb.get('verdict')} by {fb.get('by') or '-'} at {fb.get('at')}"
    return {
        "labels": labels_of(alert),
        "annotations": annotations,
        "startsAt": _whole_seconds(started),
        "endsAt": _whole_seconds(ends),
        "generatorURL": link,
    }


class AlertmanagerSink:
    def __init__(
        self,
        url: str,
        open_alerts: MutableMapping[str, dict[str, dict[str, Any]]],
        *,
        grafana_url: str = "http://localhost:3000",
        resend_every_s: float = 60.0,
        timeout_s: float = 10.0,
        auth: tuple[str, str] | None = None,
        metrics: Any = None,
        clock: Callable[[], float] = time.time,
        api_url: str | None = None,
    ):
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.open = open_alerts  # customer id -> {alert_id: latest firing alert}
        self.grafana_url = grafana_url
        self.resend_every_s = resend_every_s
        self.expiry_s = 3 * resend_every_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.auth = aiohttp.BasicAuth(*auth) if auth else None
        self.metrics = metrics
        self.clock = clock
        self.api_url = api_url
        self._session: aiohttp.ClientSession | None = None
        self._unsent_resolutions: list[dict[str, Any]] = []
        #: one post at a time, so Alertmanager gets them in the order they were decided
        self._order = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _am(self, alert: dict[str, Any], now: float) -> dict[str, Any]:
        return to_alertmanager(alert, grafana_url=self.grafana_url, now=now, expiry_s=self.expiry_s,
                               api_url=self.api_url)

    async def handle(self, alert: dict[str, Any]) -> bool:
        """Send one alert notification; remember firing ones for :meth:`resend` (:func:`remember`)."""
        now = self.clock()
        sent, previous = remember(self.open, alert)
        if not sent:
            return True
        payload = [self._am(alert, now)]
        if previous is not None and labels_of(previous) != labels_of(alert):
            # escalation changed the label set: end the alert under its old labels
            ended = dict(previous, status="resolved", resolved_at=alert["event_ts"])
            payload.append(self._am(ended, now))
        return await self._send(alert, payload)

    async def handle_stray(self, alert: dict[str, Any]) -> bool:
        """An alert read from a partition its key no longer hashes to: written before the topic
        grew (``lookout topics repartition``), read after it.

        Its customer's open alerts now live with the partition the key hashes to, whose owner
        re-sends them (the repartition applied this alert to them), so nothing is remembered
        here -- another worker may own the customer, and remembering would re-send an alert it
        has since resolved. A resolution is sent; a firing one is left to that re-send, except
        that an escalation ends the alert under its lower severities (severities only rise), as
        :meth:`handle` would have: the new owner never saw the label set it replaces.
        """
        now = self.clock()
        if alert.get("status") == "resolved":
            return await self._send(alert, [self._am(alert, now)])
        severity = alert.get("severity")
        if is_parent(alert) or int(alert.get("notification") or 1) < 2 or severity not in SEVERITIES:
            return True
        async with self._order:
            return await self._post([self._am(dict(alert, severity=lower, status="resolved",
                                                   resolved_at=alert["event_ts"]), now)
                                     for lower in SEVERITIES[:SEVERITIES.index(severity)]])

    async def _send(self, alert: dict[str, Any], payload: list[dict[str, Any]]) -> bool:
        async with self._order:
            ok = await self._post(payload)
        if not ok and alert["status"] == "resolved":
            self._unsent_resolutions.append(alert)  # firing ones are re-sent by resend() anyway
        return ok

    async def resend(self) -> int:
        """Re-post every open alert (and unsent resolutions) so Alertmanager keeps them active.

        What is open is read once the posts before have been answered: read earlier, a
        resolution handled meanwhile could reach Alertmanager before this re-send of its firing,
        which would open the alert again there until it expired.
        """
        async with self._order:
            now = self.clock()
            payload = [self._am(a, now) for alerts in list(self.open.values()) for a in alerts.values()]
            pending, self._unsent_resolutions = self._unsent_resolutions, []
            payload += [self._am(a, now) for a in pending]
            if payload and not await self._post(payload):
                self._unsent_resolutions.extend(pending)
        return len(payload)

    async def _post(self, payload: list[dict[str, Any]]) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, auth=self.auth)
        t0 = time.perf_counter()
        try:
            async with self._session.post(self.url, json=payload) as resp:
                ok = resp.status < 300
                if not ok:
                    log.warning("alertmanager refused %d alert(s): HTTP %s %s", len(payload), resp.status,
                                (await resp.text())[:200])
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("alertmanager unreachable at %s: %s", self.url, exc)
            ok = False
        if self.metrics is not None:
            self.metrics.sink_request_seconds.labels("alertmanager").observe(time.perf_counter() - t0)
            self.metrics.sink_deliveries.labels("alertmanager", "delivered" if ok else "failed").inc(
                len(payload)
            )
        return ok
