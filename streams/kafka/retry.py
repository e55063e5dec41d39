"""Kafka I/O inside an agent waits out a broker outage instead of failing the agent.

An agent that raises stops the worker (:mod:`streams.kafka.supervision`, exit 70). A broker that
is down for a while is not a bug: the consumer and producer already retry quietly until it
answers (:mod:`streams.worker.outage`). The reads an agent makes with clients of its own (the
correlator's state, the Alertmanager sink's open alerts and their topic's layout) do the same
through :func:`until_reachable`: a retriable Kafka error, a timeout or a refused connection is
retried every :data:`RETRY_S` seconds; anything else is raised.

>>> import asyncio
>>> from aiokafka.errors import KafkaConnectionError
>>> calls = []
>>> async def read():
...     calls.append(1)
...     if len(calls) < 3:
...         raise KafkaConnectionError("Unable to bootstrap")
...     return "state"
>>> async def no_wait(s):
...     pass
>>> asyncio.run(until_reachable(read, "the correlator's state", sleep=no_wait)), len(calls)
('state', 3)
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, TypeVar

__all__ = ["RETRY_S", "started", "unreachable", "until_reachable"]

log = logging.getLogger("lookout.kafka")

T = TypeVar("T")

#: seconds between two attempts while the broker does not answer
RETRY_S = 1.0


def unreachable(exc: BaseException) -> bool:
    """Is ``exc`` the broker not answering (yet), rather than a bug or a refusal?

    >>> from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAuthorizationFailedError
    >>> unreachable(KafkaConnectionError()), unreachable(KafkaTimeoutError()), unreachable(TimeoutError())
    (True, True, True)
    >>> unreachable(TopicAuthorizationFailedError()), unreachable(ValueError())
    (False, False)
    """
    from aiokafka.errors import KafkaTimeoutError

    # (OSError covers TimeoutError, which asyncio's timeouts raise too)
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, (KafkaTimeoutError, OSError))


async def started(client: Any) -> None:
    """Start an aiokafka ``client``; if that fails (the broker does not answer), close it before
    raising, or it stays open and every retry of :func:`until_reachable` logs "Unclosed
    AIOKafkaConsumer"."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


async def until_reachable(call: Callable[[], Awaitable[T]], what: str, *, retry_s: float = RETRY_S,
                          sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> T:
    """``await call()``, again every ``retry_s`` seconds while the broker is unreachable; ``what``
    names the work in the one WARNING line per outage."""
    failures = 0
    while True:
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not unreachable(exc):
                raise
            if not failures:
                log.warning("%s waits for Kafka (%s: %s); retrying every %.0f s", what, type(exc).__name__,
                            exc, retry_s)
            failures += 1
            await sleep(retry_s)
            continue
        if failures:
            log.warning("%s: Kafka answered again after %d attempt(s)", what, failures + 1)
        return result
