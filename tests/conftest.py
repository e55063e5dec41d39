"""Shared fixtures: a real Kafka broker for tests marked ``integration``.

The broker starts lazily, only when a test asks for ``kafka_bootstrap`` (or
``kafka_broker`` / ``kafka_topics``), once per session, on free ports with a
fresh temporary data dir, and is stopped at the end of the session.

Set ``LOOKOUT_TEST_BOOTSTRAP=host:port`` to run against an existing broker
instead (nothing is started or stopped then).
"""
from __future__ import annotations

import atexit
import os
import socket
import uuid
from typing import Callable, Iterator

import pytest

from streams.devtools.broker import LocalBroker
from streams.kafka.admin import BrokerError, create_topics, wait_for_kafka
from streams.settings import Settings

EXTERNAL_ENV = "LOOKOUT_TEST_BOOTSTRAP"
START_TIMEOUT_S = 120.0


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> Iterator[LocalBroker | None]:
    """The session's LocalBroker, or None when LOOKOUT_TEST_BOOTSTRAP points at an external one."""
    if os.environ.get(EXTERNAL_ENV):
        yield None
        return
    last: BrokerError | None = None
    for _attempt in range(3):  # a free port can be grabbed by someone else before Kafka binds it
        port, cport = free_ports(2)
        settings = Settings.from_env(
            broker_port=port,
            broker_controller_port=cport,
            broker_data_dir=tmp_path_factory.mktemp("kafka"),
        )
        broker = LocalBroker(settings)
        atexit.register(broker.stop)  # in case the session is interrupted before teardown
        try:
            broker.start(timeout=START_TIMEOUT_S)
        except BrokerError as exc:
            last = exc
            if "already in use" in str(exc):
                continue
            break
        try:
            yield broker
        finally:
            broker.stop()
        return
    assert last is not None
    pytest.fail(f"could not start the test Kafka broker: {last.full()}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker | None) -> str:
    """``"127.0.0.1:PORT"`` of a running Kafka broker (session-wide, shared by all tests)."""
    if kafka_broker is not None:
        return kafka_broker.bootstrap
    bootstrap = os.environ[EXTERNAL_ENV]
    try:
        wait_for_kafka(bootstrap, timeout=60)
    except BrokerError as exc:
        pytest.fail(f"{EXTERNAL_ENV}: {exc}", pytrace=False)
    return bootstrap


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> Callable[..., str]:
    """Factory: ``make(prefix="test", partitions=1) -> name`` creates a uniquely named topic.

    Names get a random suffix, so tests sharing the session broker never collide.
    """

    def make(prefix: str = "test", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topics(kafka_bootstrap, {name: partitions}, timeout=30)
        return name

    return make
