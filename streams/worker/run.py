"""``lookout worker`` without click: check the settings, wait for Kafka, run the Faust worker.

:func:`check` fails fast, in one line, on what would otherwise be a traceback from inside Faust
(a bad detector config, a missing initial state, a broker that does not answer or rejects our
TLS/SASL settings); :func:`run_worker` then runs the worker until it stops and says once on
stderr when it consumes.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, TextIO

from faust import Worker

from detectors.config import load_config
from streams.kafka.admin import create_topics, wait_for_kafka
from streams.kafka.security import kafka_python_kwargs
from streams.pipeline.processor import Processor
from streams.settings import Settings, SettingsError
from streams.state.rebuild import History

from .app import create_app

__all__ = ["check", "quiet_coordinator_search", "run_correlator", "run_worker", "say_when_ready"]

log = logging.getLogger("lookout")

#: aiokafka's loggers that report the search for the group coordinator
COORDINATOR_LOGGERS = ("aiokafka.consumer.group_coordinator", "aiokafka.consumer.consumer", "aiokafka")


def check(settings: Settings) -> None:
    """Raise :class:`~detectors.config.ConfigError`, :class:`~streams.settings.SettingsError` or
    :class:`~streams.kafka.admin.BrokerError` (one line each) unless the worker can start."""
    load_config(settings.detector_config)
    if settings.initial_state is not None and not settings.initial_state.is_file():
        raise SettingsError(f"--initial-state {settings.initial_state}: no such file")
    security = kafka_python_kwargs(settings)
    wait_for_kafka(settings.bootstrap, timeout=settings.kafka_timeout_s, security=security)


def run_worker(settings: Settings, ready_to: TextIO | None = None,
               history: Callable[[Processor], History] | None = None) -> None:
    """Check ``settings``, then run the worker until it stops (Faust exits the process).

    The line that says it consumes goes to ``ready_to`` (default: the process's real stderr;
    Faust redirects ``sys.stderr`` into its logger). ``history`` reads the input's history for
    ``settings.rebuild_from`` (see :func:`~streams.worker.app.create_app`).
    """
    check(settings)
    log.info("settings: %s", settings.masked())
    quiet_coordinator_search()
    lookout = create_app(settings, history=history)
    if lookout.correlation is not None:
        _create_correlator_topics(settings, lookout.correlation.topics)
    say_when_ready(lookout.app, settings, ready_to or sys.__stderr__)
    _execute(lookout.app, settings)


def run_correlator(settings: Settings, ready_to: TextIO | None = None) -> None:
    """Check ``settings``, then run the correlator's stages until they stop (``lookout correlator``)."""
    from .correlator_app import create_correlator_app

    check(settings)
    log.info("settings: %s", settings.masked())
    quiet_coordinator_search()
    proc = create_correlator_app(settings)
    _create_correlator_topics(settings, proc.correlation.topics)
    say_when_ready(proc.app, settings, ready_to or sys.__stderr__,
                   what=f"the correlator's stages ({settings.onsets_topic_name}, "
                        f"{settings.parents_topic_name})",
                   group=settings.correlator_group)
    _execute(proc.app, settings)


def _create_correlator_topics(settings: Settings, topics: dict[str, tuple[int, bool]]) -> None:
    # before Faust subscribes: a topic made later is seen only at the next metadata refresh
    # (5 minutes), and the sinks would not read the routed alerts until then
    create_topics(settings.bootstrap, {name: parts for name, (parts, _) in topics.items()},
                  connect_timeout=settings.kafka_timeout_s, security=kafka_python_kwargs(settings),
                  compacted=[name for name, (_, compact) in topics.items() if compact])


def _execute(app: Any, settings: Settings) -> None:
    w = Worker(app, loglevel=settings.log_level, quiet=True)
    w.spinner = None  # Faust's spinner writes cursor escape codes, even into a redirected log
    w.execute_from_commandline()


def say_when_ready(app: Any, settings: Settings, out: TextIO, what: str | None = None,
                   group: str | None = None) -> None:
    """Print one line to ``out`` the first time the worker has its partitions and consumes."""
    said = []

    @app.on_rebalance_complete.connect
    async def ready(sender, **_kwargs):
        if said:
            return
        said.append(True)
        print(f"ready: consuming {what or settings.input_topic} from {settings.bootstrap} as group "
              f"{group or settings.app_id}; metrics on http://{settings.web_host}:{settings.web_port}/metrics",
              file=out, flush=True)


class CoordinatorNotReady(logging.Filter):
    """Drops aiokafka's "coordinator not available" errors: a fresh broker creates its offsets topic
    while the first group joins, and aiokafka retries until it is there (a real failure to join
    still shows: the worker never prints its ready line and logs the errors that follow).

    >>> why = ("GroupCoordinatorNotAvailableError",)
    >>> CoordinatorNotReady().filter(logging.LogRecord("aiokafka", logging.ERROR, "", 0, "%s", why, None))
    False
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "GroupCoordinatorNotAvailableError" not in record.getMessage()


def quiet_coordinator_search() -> None:
    for name in COORDINATOR_LOGGERS:
        logging.getLogger(name).addFilter(CoordinatorNotReady())
