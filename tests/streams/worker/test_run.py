"""``run_worker``'s checks (what ``lookout worker`` does before Faust starts), called without click."""
from __future__ import annotations

import asyncio
import io
import socket
from types import SimpleNamespace

import pytest

from detectors.config import ConfigError
from streams.kafka.admin import BrokerError
from streams.settings import Settings, SettingsError
from streams.worker.run import check, say_when_ready


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(tmp_path, **overrides) -> Settings:
    return Settings.from_env({}, bootstrap=f"127.0.0.1:{closed_port()}", kafka_timeout_s=0.5,
                             data_dir=tmp_path / "w", **overrides)


def test_a_bad_config_or_a_missing_initial_state_fails_before_kafka_is_asked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("signals: {requests: {threshold: 7}}\n")
    with pytest.raises(ConfigError, match="threshold"):
        check(settings(tmp_path, detector_config=bad))
    with pytest.raises(SettingsError, match="--initial-state .*nothing.lookout: no such file"):
        check(settings(tmp_path, initial_state=tmp_path / "nothing.lookout"))


def test_an_unreachable_broker_is_one_line(tmp_path):
    s = settings(tmp_path)
    with pytest.raises(BrokerError) as err:
        check(s)
    assert str(err.value) == f"cannot reach Kafka at {s.bootstrap} within 0.5 s"


def test_the_ready_line_is_said_once(tmp_path):
    handlers = []
    app = SimpleNamespace(on_rebalance_complete=SimpleNamespace(connect=lambda fn: handlers.append(fn) or fn))
    out = io.StringIO()
    s = settings(tmp_path, web_port=6166)
    say_when_ready(app, s, out)
    for _ in range(3):  # every rebalance completes the same signal
        asyncio.run(handlers[0](None))
    assert out.getvalue() == (f"ready: consuming request-metrics from {s.bootstrap} as group lookout; "
                              f"metrics on http://{s.web_host}:6166/metrics\n")
