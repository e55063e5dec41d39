"""``lookout correlator``: the correlator's two stages in a process of their own. Wiring only.

With ``LOOKOUT_CORRELATOR_STAGES=apart`` the detection workers only publish to the correlator
(onsets, alerts and watermarks, as they always do) and leave its stage agents out; one or more
``lookout correlator`` processes run them, in their own consumer group
(:attr:`Settings.correlator_group <streams.settings.Settings.correlator_group>`) so that Faust
never hands them input partitions. The stages, their state topic, their restarts and their
output are those of :mod:`streams.correlation.agents`: only the process differs. A detection
worker then spends its CPU on detection (``python -m bench --only correlator --paired --apart``
measures both processes).

The process serves ``/metrics`` (the correlator's series, its dead letters, Faust's) and
``/healthz`` (503 until the customer catalogue is read, or once a stage failed); a stage that
fails stops it with exit status 70, like a worker's agent.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.config import CorrelatorConfig, load_config
from streams.correlation.agents import Correlation, contract_dead_letter, register_correlator
from streams.kafka.security import aiokafka_kwargs
from streams.pipeline.metrics import dlq_counter
from streams.settings import Settings
from streams.state.reader import StateReader

from .app import faust_app, faust_monitor, outage_watch
from .runtime import exit_after_failure

log = logging.getLogger("lookout.correlator")

__all__ = ["CorrelatorProcess", "create_correlator_app"]


@dataclass
class CorrelatorProcess:
    """What ``lookout correlator`` runs (handy for tests)."""

    settings: Settings
    app: faust.App
    registry: CollectorRegistry
    correlation: Correlation
    exit: Callable[[int], Any] = sys.exit
    problem: str | None = None  # a stage failed: unhealthy until the exit

    def fail(self, exc: BaseException, agent: str) -> None:
        """A stage failed for a reason that is not bad input: stop now, commit nothing more."""
        self.problem = f"agent {agent} failed: {exc!r}"
        exit_after_failure(exc, agent, self.exit, "correlator")

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        corr = self.correlation
        ready = corr.table.ready.is_set()
        reason = self.problem or ("ok" if ready else "reading the customer catalogue")
        ok = ready and self.problem is None
        return ok, {"status": "ok" if ok else "unhealthy", "reason": reason, "role": "correlator",
                    "customers": len(corr.table.catalogue), "onsets_partitions": sorted(corr.groups),
                    "stage_two": corr.parents is not None, "watermark_lag_s": corr.watermark_lag()}


def create_correlator_app(settings: Settings, *, config: CorrelatorConfig | None = None,
                          registry: CollectorRegistry | None = None,
                          clock: Callable[[], float] = time.time) -> CorrelatorProcess:
    """The stages' Faust app (consumer group ``settings.correlator_group``), its pages and timers."""
    registry = registry or CollectorRegistry()
    config = config or load_config(settings.detector_config).correlator
    app = faust_app(settings, app_id=settings.correlator_group)
    faust_monitor(app, settings, registry)
    dlq_topic = app.topic(settings.dlq_topic, partitions=1, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
    dlq = dlq_counter(registry)
    dlq.labels(settings.dlq_topic, "contract")  # at 0 from the start
    proc: list[CorrelatorProcess] = []
    dead_letter = contract_dead_letter(dlq_topic, dlq, settings.dlq_topic, clock)

    corr = register_correlator(settings, app, config, registry=registry,
                               reader=StateReader(settings.bootstrap, aiokafka_kwargs(settings)),
                               client_kwargs=aiokafka_kwargs(settings), caught_up=None,
                               dead_letter=dead_letter, fail=lambda exc, agent: proc[0].fail(exc, agent),
                               clock=clock, stages=True)
    proc.append(CorrelatorProcess(settings, app, registry, corr))
    outage_watch(app, settings)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def health(web, request):
        ok, body = proc[0].healthz()
        return web.json(body, status=200 if ok else 503)

    return proc[0]
