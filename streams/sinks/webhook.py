"""Webhook sink for ticketing systems: JSON POST per alert state, retried, never lost.

* Idempotency: header ``Idempotency-Key: <alert_id>:<status>:<notification>`` -- one key per alert
  *state*, so a redelivery after a crash or a retry after a timeout can be dropped by the receiver.
  The issue asked for ``<alert_id>:<status>``; ``notification`` is added on purpose: an escalation
  (warning -> critical) re-sends ``status=firing`` with a higher ``notification``, and under
  ``alert_id:firing`` a deduplicating receiver would silently drop it as a replay of the opening.
  ``notification`` is part of the alert itself, so the key is still the same on every redelivery.
* Retries: connection errors, timeouts, 408/425/429 and 5xx are retried with exponential backoff
  (``base_delay_s * 2**(attempt-1)``, capped at ``max_delay_s``) and jitter (a random 50-100 % of
  that step), up to ``max_attempts``; other 4xx are permanent. After the last attempt the alert is
  handed to ``on_dead_letter`` (the worker parks it on the sink DLQ topic with the reason).
* Order: the states of one alert are delivered in order (a resolution never overtakes its
  firing): alerts are routed to ``lanes`` by ``alert_id``, each lane delivers sequentially.
* Parents (issue 18): with the correlator the sink gets the alerts that page on their own and
  one POST per parent incident update (``lookout.incident/v1``, its children listed), keyed
  ``parent_id:status:update`` and in order per parent; children folded under a parent are not
  POSTed on their own.
* Bounded: at most ``max_in_flight`` alerts are queued or being delivered; :meth:`submit`
  waits when full, which back-pressures the Kafka consumer instead of growing memory.
* Secrets: the bearer token is sent, never logged (``repr`` masks it).
* Steering: a notification a maintenance window mutes (``silenced_by``) is not posted; with
  ``api_url`` every payload carries ``actions``, the requests behind "false alarm" / "expected"
  buttons (:mod:`streams.sinks.actions`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import zlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp

from .actions import actions, muted

log = logging.getLogger("lookout.sinks.webhook")

RETRYABLE_STATUS = frozenset({408, 425, 429})


def idempotency_key(alert: dict[str, Any]) -> str:
    """``alert_id:status:notification``; a parent incident's update: ``parent_id:status:update``.

    >>> idempotency_key({"schema": "lookout.incident/v1", "parent_id": "p1", "status": "firing", "update": 3})
    'p1:firing:3'
    """
    if alert.get("schema") == "lookout.incident/v1":
        return f"{alert['parent_id']}:{alert['status']}:{alert.get('update', 1)}"
    return f"{alert['alert_id']}:{alert['status']}:{alert.get('notification', 1)}"


def _id(alert: dict[str, Any]) -> str:
    return alert.get("alert_id") or alert["parent_id"]


@dataclass
class Delivery:
    alert: dict[str, Any]
    done: asyncio.Future


class WebhookSink:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        max_attempts: int = 8,
        max_in_flight: int = 100,
        lanes: int = 4,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        timeout_s: float = 10.0,
        on_dead_letter: Callable[[dict[str, Any], str], Awaitable[None]] | None = None,
        metrics: Any = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        api_url: str | None = None,
    ):
        if max_attempts < 1 or max_in_flight < 1 or lanes < 1:
            raise ValueError("max_attempts, max_in_flight and lanes must be >= 1")
        self.url = url
        self._token = token
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.on_dead_letter = on_dead_letter
        self.metrics = metrics
        self.sleep = sleep
        self.rng = rng
        self.api_url = api_url
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queues = [asyncio.Queue() for _ in range(lanes)]
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookSink(url={self.url!r}, token={'***' if self._token else None})"

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._tasks = [asyncio.ensure_future(self._lane(q)) for q in self._queues]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "WebhookSink":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- API ---------------------------------------------------------------------------
    async def submit(self, alert: dict[str, Any]) -> asyncio.Future:
        """Queue one alert (waits while ``max_in_flight`` are pending); the future resolves to
        ``"delivered"`` or ``"dead-lettered"``, or raises if the alert could not even be handed
        to ``on_dead_letter`` (then it must not be acknowledged)."""
        await self.start()
        await self._slots.acquire()
        fut = asyncio.get_running_loop().create_future()
        lane = zlib.crc32(_id(alert).encode()) % len(self._queues)
        self._queues[lane].put_nowait(Delivery(alert, fut))
        self._gauge()
        return fut

    async def deliver_all(self, alerts) -> list[str]:
        """Submit alerts in order and wait until each is delivered or dead-lettered (``"muted"``:
        a maintenance window mutes it, nothing is posted)."""
        futs = []
        for a in alerts:
            if muted(a):
                fut = asyncio.get_running_loop().create_future()
                fut.set_result("muted")
                futs.append(fut)
            else:
                futs.append(await self.submit(a))
        return list(await asyncio.gather(*futs))

    @property
    def pending(self) -> int:
        return sum(q.qsize() for q in self._queues)

    # -- internals ---------------------------------------------------------------------
    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.sink_queue.labels("webhook").set(self.pending)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.sink_deliveries.labels("webhook", result).inc()

    async def _lane(self, q: asyncio.Queue) -> None:
        while True:
            d: Delivery = await q.get()
            error: BaseException | None = None
            try:
                try:
                    result = await self._deliver(d.alert)
                except (asyncio.CancelledError, _DeadLetterFailed):
                    raise
                except Exception as exc:  # never let one alert kill the lane, nor vanish
                    log.exception("webhook delivery crashed: %s", exc)
                    result = await self._dead_letter(
                        d.alert, f"delivery crashed: {type(exc).__name__}: {exc}"
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not even dead-lettered: the caller must not acknowledge it
                error = exc.__cause__ if isinstance(exc, _DeadLetterFailed) and exc.__cause__ else exc
                log.error(
                    "webhook could not dead-letter %s: %s: %s",
                    _key_or_type(d.alert),
                    type(error).__name__,
                    error,
                )
            finally:
                self._slots.release()
                self._gauge()
            if not d.done.done():
                if error is not None:
                    d.done.set_exception(error)
                else:
                    d.done.set_result(result)

    async def _dead_letter(self, alert: dict[str, Any], reason: str) -> str:
        """Count a failed alert and hand it to ``on_dead_letter`` (which may raise)."""
        self._count("failed")
        if self.on_dead_letter is not None:
            try:
                await self.on_dead_letter(alert, f"webhook {self.url}: {reason}")
            except Exception as exc:
                raise _DeadLetterFailed() from exc
        return "dead-lettered"

    async def _deliver(self, alert: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key(alert)}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = dict(alert, actions=actions(alert, self.api_url)) if self.api_url else alert
        body = json.dumps(payload).encode()
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            t0 = time.perf_counter()
            try:
                assert self._session is not None
                async with self._session.post(self.url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        self._count("delivered")
                        return "delivered"
                    text = (await resp.text())[:200]
                    reason = f"HTTP {resp.status}: {text}".strip()
                    if resp.status < 500 and resp.status not in RETRYABLE_STATUS:
                        break  # permanent: the request itself is refused
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}".strip()
            finally:
                if self.metrics is not None:
                    self.metrics.sink_request_seconds.labels("webhook").observe(time.perf_counter() - t0)
            if attempt < self.max_attempts:
                if self.metrics is not None:
                    self.metrics.sink_retries.labels("webhook").inc()
                delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
                await self.sleep(delay * (0.5 + 0.5 * self.rng()))
        log.warning("webhook gave up on %s after %d attempt(s): %s", idempotency_key(alert), attempt, reason)
        return await self._dead_letter(alert, f"{reason} (after {attempt} attempts)")


class _DeadLetterFailed(Exception):
    """``on_dead_letter`` raised (the cause): the alert is neither delivered nor parked."""


def _key_or_type(alert: Any) -> str:
    try:
        return idempotency_key(alert)
    except Exception:
        return f"a {type(alert).__name__}"
