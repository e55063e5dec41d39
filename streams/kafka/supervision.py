"""Every agent of the worker stops the process when it fails, instead of being restarted by Faust.

When a Faust agent raises, Faust's supervisor restarts it and its stream carries on *after* the
message that failed: the records of that batch are acknowledged and committed without ever
having been handled (seen here: offsets committed for ~188k unprocessed events). For the
detection agent that loses alerts; for a sink agent it loses a firing or a resolved at
Alertmanager or the webhook (an alert left open for ever); for the correlator, a parent's update.

:func:`stop_on_failure` wraps an agent's body: anything it raises that is not a cancellation
(a rebalance or shutdown cancels agents on purpose) goes to ``fail(exc, agent)``, which logs
one CRITICAL line and ends the process at once (:meth:`WorkerRuntime.fail
<streams.worker.runtime.WorkerRuntime.fail>`: exit status 70, nothing more committed); the
supervisor (systemd, Kubernetes, compose's ``restart: on-failure``) starts it again at the
committed offsets, and the sinks' idempotency (deterministic alert ids, Alertmanager's label
sets) makes the redelivery harmless. Bad input never raises: it is counted and dead-lettered
where it is read.

>>> import asyncio
>>> failed = []
>>> async def body(stream):
...     raise RuntimeError("a bug")
>>> guarded = stop_on_failure("lookout.sink.webhook", lambda exc, name: failed.append((name, str(exc))))(body)
>>> asyncio.run(guarded(None))
>>> failed
[('lookout.sink.webhook', 'a bug')]
"""
from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable

__all__ = ["AgentFailed", "stop_on_failure"]

#: what an agent that failed reports: (what it raised, the agent's name)
AgentFailed = Callable[[BaseException, str], None]

def stop_on_failure(agent: str, fail: AgentFailed) -> Callable[[Callable[[Any], Awaitable[None]]],
                                                                Callable[[Any], Awaitable[None]]]:
    """Decorate an agent body (``async def body(stream)``) so that a failure stops the worker."""

    def decorate(body: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        @functools.wraps(body)
        async def guarded(stream: Any) -> None:
            try:
                await body(stream)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # not bad input (that never raises): do not let Faust skip it
                fail(exc, agent)

        return guarded

    return decorate
