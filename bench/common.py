"""Small helpers the benchmarks share: a free port, a broker, a worker's processed-event count."""
from __future__ import annotations

import socket
import tempfile
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consumed(port: int, timeout: float = 2.0) -> float | None:
    """Events a worker processed (``lookout_events_total`` on its ``/metrics``); None if it does
    not answer within ``timeout`` (a slow answer is not "0 events")."""
    return metric_sum(port, "lookout_events_total", timeout)


def metric_sum(port: int, name: str, timeout: float = 2.0) -> float | None:
    """The sum of a labelled series' samples on a Lookout process's ``/metrics`` (None: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in r.read().decode().splitlines()
                if line.startswith(name + "{")
            )
    except OSError:
        return None


@contextmanager
def broker_or(bootstrap: str | None) -> Iterator[str]:
    """``bootstrap`` as given, or a throwaway local broker's (started here, stopped after)."""
    if bootstrap is not None:
        yield bootstrap
        return
    from streams.devtools.broker import LocalBroker
    from streams.settings import Settings

    port, cport = free_port(), free_port()
    broker = LocalBroker(Settings.from_env(broker_port=port, broker_controller_port=cport,
                                           broker_data_dir=Path(tempfile.mkdtemp(prefix="bench-kafka-"))))
    broker.start(timeout=120)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
