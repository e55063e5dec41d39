"""One WARNING per broker outage instead of thousands of client error lines.

While Kafka is unreachable, aiokafka and Faust log every failed connect, metadata refresh,
heartbeat and fetch (about 2,000 lines in 30 s were seen). :class:`OutageFilter`, installed on the
root handlers, turns the first of them into one line that says what happened, drops the rest,
and :meth:`OutageFilter.check_recovered` (called every second by the worker) logs one more
line when the broker answers again, with how long the outage lasted.

>>> import logging
>>> t = [0.0]
>>> f = OutageFilter("127.0.0.1:9092", clock=lambda: t[0], probe=lambda: False)
>>> rec = logging.LogRecord("aiokafka.conn", logging.ERROR, "", 0, "Unable connect to node %s", ("1",), None)
>>> f.filter(rec), rec.getMessage()
(True, 'Kafka at 127.0.0.1:9092 is unreachable (Unable connect to node 1); retrying quietly until it answers')
>>> t[0] = 2.0
>>> f.filter(logging.LogRecord("aiokafka", logging.WARNING, "", 0, "Heartbeat failed: coordinator", (), None))
False
>>> t[0] = 9.0
>>> f.check_recovered(reachable=True)
'Kafka at 127.0.0.1:9092 is reachable again after an outage of 9 s (1 client error lines suppressed)'
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from streams.kafka.admin import reachable

#: loggers whose warnings and errors describe the client's view of the broker
CLIENT_LOGGERS = ("aiokafka", "kafka", "faust.transport", "faust.app", "faust.tables", "faust.agents", "mode")
#: fragments of messages that mean "the broker is not answering" (matched case-insensitively)
CONNECTION_HINTS = (
    "unable connect", "unable to connect", "connection refused", "connect to node", "connection error",
    "kafkaconnectionerror", "nodenotready", "coordinator", "metadata", "timed out", "timeout",
    "heartbeat", "leader not available", "leadernotavailable", "not leader", "broker", "connection",
    "disconnected", "unknownerror", "requesttimedout", "failed fetch", "fetch request", "notleader",
    "error produce response", "not available",
)
#: the broker counts as back once no client error was seen for this long and it accepts connections
QUIET_S = 3.0
#: how long the recovery probe waits for each bootstrap server to accept a TCP connection
PROBE_TIMEOUT_S = 0.2


class OutageFilter(logging.Filter):
    def __init__(self, bootstrap: str, clock: Callable[[], float] = time.monotonic,
                 probe: Callable[[], bool] | None = None,
                 loggers: tuple[str, ...] = CLIENT_LOGGERS, hints: tuple[str, ...] = CONNECTION_HINTS,
                 quiet_s: float = QUIET_S):
        super().__init__()
        self.bootstrap = bootstrap
        self.clock = clock
        self.probe = probe or (lambda: reachable(bootstrap, PROBE_TIMEOUT_S))
        self.loggers = loggers
        self.hints = hints
        self.quiet_s = quiet_s
        self.down_since: float | None = None
        self.last_error = 0.0
        self.suppressed = 0
        self.outages = 0
        # Faust's consumer runs in its own thread: two first errors of one outage may arrive at once
        self._lock = threading.Lock()

    def _is_connection_error(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.loggers):
            return False
        try:
            text = record.getMessage()
        except Exception:  # a record whose args do not fit its format: not ours to judge
            return False
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + type(record.exc_info[1]).__name__ + " " + str(record.exc_info[1])
        text = text.lower()
        return any(h in text for h in self.hints)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._is_connection_error(record):
            return True
        with self._lock:
            now = self.clock()
            if self.down_since is not None:
                self.last_error = now
                self.suppressed += 1
                return False
            if self.probe():
                return True  # the broker answers: an ordinary client warning (a rebalance), not an outage
            self.last_error = now
            self.down_since = now
            self.suppressed = 0
            self.outages += 1
        first = (
            record.getMessage().strip().splitlines()[0][:200]
            if record.msg
            else type(record.exc_info[1]).__name__
        )
        record.msg = "Kafka at %s is unreachable (%s); retrying quietly until it answers"
        record.args = (self.bootstrap, first)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.name = "lookout.kafka"
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True

    def check_recovered(self, reachable: bool) -> str | None:
        """Log (and return) the end-of-outage line once the broker is back and the errors stopped."""
        if self.down_since is None or not reachable or self.clock() - self.last_error < self.quiet_s:
            return None
        took = self.clock() - self.down_since
        line = (f"Kafka at {self.bootstrap} is reachable again after an outage of {took:.0f} s "
                f"({self.suppressed} client error lines suppressed)")
        self.down_since = None
        logging.getLogger("lookout.kafka").warning(line)
        return line

    def install(self) -> None:
        """Attach to every handler of the root logger (records of child loggers reach those)."""
        for h in logging.getLogger().handlers:
            if self not in h.filters:
                h.addFilter(self)


