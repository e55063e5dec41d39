"""The one settings object.

Environment variables are read here and nowhere else, and only when
:meth:`Settings.from_env` is called (never at import time). Everything else
receives a :class:`Settings` (or plain arguments derived from it).

>>> s = Settings.from_env({"LOOKOUT_BOOTSTRAP": "127.0.0.1:19092", "LOOKOUT_WEBHOOK_TOKEN": "s3cret"})
>>> s.bootstrap
'127.0.0.1:19092'
>>> "s3cret" in repr(s)
False
>>> s.masked()["webhook_token"]
'***'
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from detectors.events import DEFAULT_MAX_FUTURE_S

PREFIX = "LOOKOUT_"
SECRET_FIELDS = frozenset({"webhook_token", "alertmanager_password"})


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def _default_home() -> Path:
    return Path.home() / ".cache" / "lookout"


@dataclass(frozen=True)
class Settings:
    # Kafka
    bootstrap: str = "127.0.0.1:9092"
    input_topic: str = "request-metrics"
    alerts_topic: str = "alerts"
    dlq_topic: str = "request-metrics-dlq"
    sink_dlq_topic: str = "alerts-dlq"
    partitions: int = 4
    #: how long every command waits for Kafka to answer before it says "cannot reach Kafka at ..."
    kafka_timeout_s: float = 10.0
    # worker
    app_id: str = "lookout"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = Path(".lookout/worker")
    detector_config: Path | None = None
    initial_state: Path | None = None  # `lookout replay --save-state` file: customers the state topic lacks start from it
    state_topic: str = ""  # compacted per-partition detector state; "" = "<app_id>-state"
    snapshot_interval_s: float = 10.0  # how much input a crash makes the worker re-run, at most
    stall_after_s: float = 60.0  # /healthz turns 503 after this long without progress while messages wait
    session_timeout_s: float = 10.0  # a killed worker's partitions move after this (Kafka group session)
    heartbeat_interval_s: float = 2.0
    batch_size: int = 500
    batch_within_s: float = 0.5
    log_level: str = "warn"
    #: events stamped more than this ahead of the wall clock are dead-lettered (kind ``future``)
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    # local broker (lookout broker ...)
    kafka_version: str = "4.0.2"
    kafka_home: Path = field(default_factory=_default_home)
    broker_port: int = 9092
    broker_controller_port: int = 9094  # 9093 is Alertmanager's usual port
    broker_data_dir: Path = Path(".lookout/broker")
    # sinks
    alertmanager_url: str | None = None
    alertmanager_user: str | None = None
    alertmanager_password: str | None = field(default=None, repr=False)
    webhook_url: str | None = None
    webhook_token: str | None = field(default=None, repr=False)
    alertmanager_resend_s: float = 60.0
    webhook_max_attempts: int = 8
    webhook_max_in_flight: int = 100
    webhook_base_delay_s: float = 0.5
    faust_metrics: bool = True
    grafana_url: str = "http://localhost:3000"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from ``LOOKOUT_*`` variables (``environ`` defaults to ``os.environ``).

        Keyword ``overrides`` win over the environment (the CLI passes its options here).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f, raw)
        for k, v in overrides.items():
            if v is not None:
                values[k] = v
        return cls(**values)

    def masked(self) -> dict[str, Any]:
        """All settings as a dict, secrets replaced by ``***`` (safe to log)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in SECRET_FIELDS and v:
                v = "***"
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @property
    def state_topic_name(self) -> str:
        return self.state_topic or f"{self.app_id}-state"

    @property
    def kafka_url(self) -> str:
        """Bootstrap servers in Faust's ``kafka://`` form."""
        return ";".join("kafka://" + b.strip() for b in self.bootstrap.split(",") if b.strip())


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    t = str(f.type)
    try:
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            return float(raw)
        if t.startswith("bool"):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if t.startswith("Path"):
            return Path(raw).expanduser()
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{f.name.upper()}={raw!r}: {exc}") from None
    return raw
