"""``POST /feedback``, ``POST /silences``, ``GET /silences``: the steering requests over HTTP.

The worker's web port serves them (:mod:`streams.worker.app` wires :meth:`SteeringApi.handle` to
Faust's web server); each request calls the same library function as the command line
(:mod:`streams.steering.service`). Every request needs ``Authorization: Bearer <token>``
(``LOOKOUT_API_TOKEN`` or ``LOOKOUT_API_TOKEN_FILE``): 401 without it, 503 while the worker has
no token configured. The token is compared in constant time and never logged.

=====================  =========================================================================
request                body (JSON) or query parameters
=====================  =========================================================================
POST /feedback         ``alert_id``, ``verdict`` (or ``withdraw: true``), ``by``, ``note``
POST /silences         a window: ``customer_id``, ``from``, ``until`` (or ``for``: seconds or
                       ``4h``), ``signal``, ``rrule``, ``mode``, ``reason``, ``by`` -- or an
                       Alertmanager silence (``matchers``, ``startsAt``, ``endsAt``, ...)
GET /silences          ``customer``, ``all=1``: the windows in force or to come
DELETE /silences       ``id``: end a window now
=====================  =========================================================================

>>> import asyncio
>>> from streams.steering.store import MemoryStore
>>> api = SteeringApi(MemoryStore(), token="s3cret", clock=lambda: 1767780000.0, blocking=_inline)
>>> run = asyncio.run
>>> run(api.handle("GET", "/silences", {}, {}, b""))[0]
401
>>> status, body = run(api.handle("POST", "/silences", {"Authorization": "Bearer s3cret"}, {},
...     b'{"customer_id": "acme", "from": "2026-01-07T12:00:00Z", "for": "2h", "by": "alice"}'))
>>> status, body["window"]["until"]
(201, '2026-01-07T14:00:00Z')
"""
from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Any, Awaitable, Callable, Mapping

from detectors.config import FeedbackConfig
from detectors.events import InvalidEvent, parse_time

from .service import (
    TOPICS,
    SteeringError,
    Topics,
    add_alertmanager_silence,
    add_window,
    expire_window,
    give_verdict,
    list_windows,
    withdraw_verdict,
)
from .store import RecordStore, StoreError

__all__ = ["SteeringApi"]

#: largest request body read, bytes
MAX_BODY_BYTES = 64 * 1024
Response = tuple[int, dict[str, Any]]


async def _inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class SteeringApi:
    """The three requests behind a bearer token (see the module docstring).

    ``blocking`` runs the store's blocking calls (default: a thread, off the event loop).
    """

    def __init__(self, store: RecordStore, *, token: str | None, fb: FeedbackConfig | None = None,
                 topics: Topics = TOPICS, clock: Callable[[], float] = time.time,
                 blocking: Callable[..., Awaitable[Any]] = asyncio.to_thread):
        self.store = store
        self._token = token
        self.fb = fb or FeedbackConfig()
        self.topics = topics
        self.clock = clock
        self.blocking = blocking

    def __repr__(self) -> str:
        return f"SteeringApi(token={'***' if self._token else None})"

    def authorized(self, headers: Mapping[str, str]) -> bool:
        given = ""
        for k, v in headers.items():
            if k.lower() == "authorization" and v[:7].lower() == "bearer ":
                given = v[7:].strip()
        return bool(self._token) and hmac.compare_digest(given.encode(), (self._token or "").encode())

    async def handle(self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str],
                     body: bytes) -> Response:
        """One request -> (HTTP status, JSON body)."""
        if not self._token:
            return 503, {"error": "the steering API is off: set LOOKOUT_API_TOKEN or LOOKOUT_API_TOKEN_FILE"}
        if not self.authorized(headers):
            return 401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}
        route = (method.upper(), path.rstrip("/"))
        try:
            if route == ("POST", "/feedback"):
                return await self._feedback(self._request(query, body))
            if route == ("POST", "/silences"):
                return await self._silence(self._request(query, body))
            if route == ("GET", "/silences"):
                return await self._list(query)
            if route == ("DELETE", "/silences"):
                return await self._expire(self._request(query, body))
            return 405, {"error": f"{method} {path} is not a steering request"}
        except SteeringError as exc:
            return exc.status, {"error": str(exc)}
        except StoreError as exc:
            return 503, {"error": str(exc)}

    @staticmethod
    def _request(query: Mapping[str, str], body: bytes) -> dict[str, Any]:
        fields: dict[str, Any] = dict(query)
        if body.strip():
            if len(body) > MAX_BODY_BYTES:
                raise SteeringError(f"request body of {len(body):,} bytes (at most {MAX_BODY_BYTES:,})", 413)
            try:
                obj = json.loads(body)
            except ValueError as exc:
                raise SteeringError(f"request body is not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise SteeringError("request body must be a JSON object")
            fields.update(obj)
        return fields

    async def _feedback(self, req: dict[str, Any]) -> Response:
        aid, now = str(req.get("alert_id") or ""), self.clock()
        by, note = _text(req, "by"), _text(req, "note")
        if _flag(req.get("withdraw")):
            v = await self.blocking(withdraw_verdict, self.store, aid, now=now, by=by, topics=self.topics)
        else:
            v = await self.blocking(give_verdict, self.store, aid, str(req.get("verdict")), now=now, by=by,
                                    note=note, topics=self.topics)
        return 201, {"verdict": v.to_json()}

    async def _silence(self, req: dict[str, Any]) -> Response:
        now = self.clock()
        if "matchers" in req:  # an Alertmanager silence, as amtool or a support tool posts it
            mode = req.pop("mode", None)
            w = await self.blocking(add_alertmanager_silence, self.store, self.fb, req, now=now, mode=mode,
                                    topics=self.topics)
            return 201, {"silenceID": w.id, "window": w.to_json()}
        start = _when(req.get("from"), now, "from")
        if req.get("until") is not None:
            until = _when(req.get("until"), now, "until")
        elif req.get("for") is not None:
            until = start + _seconds(req["for"])
        else:
            raise SteeringError("give until or for")
        cid = str(req.get("customer_id") or "")
        w = await self.blocking(add_window, self.store, self.fb, customer_id=cid, start=start, until=until,
                                now=now, signal=req.get("signal") or None, rrule=req.get("rrule") or None,
                                mode=req.get("mode") or "both",
                                reason=_text(req, "reason"), by=_text(req, "by"), topics=self.topics)
        return 201, {"silenceID": w.id, "window": w.to_json()}

    async def _list(self, query: Mapping[str, str]) -> Response:
        now = self.clock()
        ws = await self.blocking(list_windows, self.store, now=now, include_past=_flag(query.get("all")),
                                 customer_id=query.get("customer") or None, topics=self.topics)
        return 200, {"windows": [dict(w.to_json(), active=w.occurrence_at(now) is not None) for w in ws]}

    async def _expire(self, req: dict[str, Any]) -> Response:
        w = await self.blocking(expire_window, self.store, str(req.get("id") or ""), now=self.clock(),
                                by=_text(req, "by"), topics=self.topics)
        return 200, {"window": w.to_json()}


def _flag(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() in ("1", "true", "yes"))


def _text(req: Mapping[str, Any], name: str) -> str:
    v = req.get(name)
    return "" if v is None else str(v)


def _when(v: Any, now: float, name: str) -> float:
    if v is None or v == "now":
        return now
    try:
        return parse_time(v)
    except InvalidEvent as exc:
        raise SteeringError(str(exc).replace("ts ", f"{name} ", 1)) from None


def _seconds(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    text = str(v).strip().lower()
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, KeyError):
        raise SteeringError(f"for must be seconds or a duration like 4h or 90m, got {v!r}") from None
