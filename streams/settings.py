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

Kafka security: the protocol is derived from what is set when
``LOOKOUT_KAFKA_SECURITY_PROTOCOL`` is not given (SASL settings -> ``SASL_*``,
TLS files -> ``*SSL``):

>>> s = Settings.from_env({"LOOKOUT_KAFKA_SASL_MECHANISM": "scram-sha-256",
...                        "LOOKOUT_KAFKA_SASL_USERNAME": "alice", "LOOKOUT_KAFKA_SASL_PASSWORD": "pw"})
>>> s.kafka_protocol, s.kafka_sasl_mechanism
('SASL_PLAINTEXT', 'SCRAM-SHA-256')
>>> s.masked()["kafka_sasl_password"]
'***'
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from detectors.events import DEFAULT_MAX_FUTURE_S

PREFIX = "LOOKOUT_"
SECRET_FIELDS = frozenset(
    {"webhook_token", "alertmanager_password", "kafka_sasl_password", "kafka_ssl_key_password", "api_token"}
)

#: Kafka security protocols (the names every Kafka client uses)
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms Lookout supports (user name + password ones)
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: a record's value must stay under Kafka's default limit (1 MiB, with room for its key and headers)
MAX_STATE_CHUNK_BYTES = 1000 * 1000
#: where the correlator's stages may run (Settings.correlator_stages)
CORRELATOR_STAGES = ("here", "apart")


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> float:
    """``"2d"``, ``"6h"``, ``"1d12h"``, ``"90m"``, ``"3600"`` (seconds) -> seconds.

    >>> parse_duration("1d12h"), parse_duration("90m"), parse_duration("3600")
    (129600.0, 5400.0, 3600.0)
    """
    s = text.strip().lower().replace(" ", "")
    try:
        return float(s)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"invalid duration {text!r} (use e.g. 2d, 6h, 1d12h, 90m)")
    return total


def rebuild_seconds(text: str | None) -> float | None:
    """How far back a rebuild reads (``--rebuild-from``), in seconds; None when not set.

    >>> rebuild_seconds("7d"), rebuild_seconds("36h"), rebuild_seconds(None), rebuild_seconds("")
    (604800.0, 129600.0, None, None)
    >>> rebuild_seconds("7 days")
    Traceback (most recent call last):
    ...
    ValueError: invalid duration '7 days' (use e.g. 2d, 6h, 1d12h, 90m)
    >>> rebuild_seconds("0h")
    Traceback (most recent call last):
    ...
    ValueError: duration '0h' must be more than 0 s
    """
    if text is None or not str(text).strip():
        return None
    seconds = parse_duration(str(text))
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration {text!r} must be more than 0 s" if math.isfinite(seconds)
                         else f"invalid duration {text!r} (use e.g. 2d, 6h, 1d12h, 90m)")
    return seconds


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
    # Kafka security (TLS and SASL); every Kafka client gets these via streams/kafka/security.py
    kafka_security_protocol: str | None = None  # None = derived from the settings below
    kafka_ssl_cafile: Path | None = None  # CA bundle (PEM) that signed the broker's certificate
    kafka_ssl_certfile: Path | None = None  # client certificate (PEM), for brokers requiring mutual TLS
    kafka_ssl_keyfile: Path | None = None  # its private key (PEM)
    kafka_ssl_key_password: str | None = field(default=None, repr=False)
    kafka_ssl_check_hostname: bool = True
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_sasl_password_file: Path | None = None  # read once; wins over nothing, must agree with the above
    # worker
    app_id: str = "lookout"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = Path(".lookout/worker")
    detector_config: Path | None = None
    initial_state: Path | None = (
        None  # `lookout replay --save-state` file: customers the state topic lacks start from it
    )
    #: e.g. "7d": partitions whose saved state is refused (model change) or missing are rebuilt from
    #: this much of the input topic's retained history before going live ("" = start them cold)
    rebuild_from: str = ""
    state_topic: str = ""  # compacted per-partition detector state; "" = "<app_id>-state"
    snapshot_interval_s: float = 10.0  # how much input a crash makes the worker re-run, at most
    stall_after_s: float = 60.0  # /healthz turns 503 after this long without progress while messages wait
    session_timeout_s: float = 10.0  # a killed worker's partitions move after this (Kafka group session)
    heartbeat_interval_s: float = 2.0
    #: how often the worker asks whether the input topic's partition count changed (the consumer
    #: refreshes its metadata only every 5 minutes); a change stops it (streams/worker/layout.py)
    partition_check_s: float = 10.0
    batch_size: int = 500  # messages per agent batch (an envelope is one message)
    batch_events: int = 5000  # a batch is processed in chunks of about this many events (envelopes' count)
    batch_within_s: float = 0.1  # a batch waits at most this for more messages (latency at low load)
    fetch_max_wait_s: float = 0.1  # broker holds an empty fetch this long (Faust's driver: 1.5 s)
    #: how long the worker's producer waits for the broker to answer one request before it gives up
    #: on that request and retries (Faust's own: 20 minutes, during which an unanswered metadata
    #: request froze every send of the worker); what it sends is still retried for 20 minutes
    producer_request_timeout_s: float = 30.0
    log_level: str = "warn"
    #: events stamped more than this ahead of the wall clock are dead-lettered (kind ``future``)
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    # local broker (lookout broker ...)
    kafka_version: str = "4.0.2"
    kafka_home: Path = field(default_factory=_default_home)
    broker_port: int = 9092
    broker_controller_port: int = 9094  # 9093 is Alertmanager's usual port
    broker_data_dir: Path = Path(".lookout/broker")
    broker_ssl_certfile: Path | None = None  # server certificate (PEM) when the local broker serves TLS
    broker_ssl_keyfile: Path | None = None  # its unencrypted PKCS#8 private key (PEM)
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
    faust_metrics: bool = False  # True: Faust's full per-message monitor; False: LeanMonitor's series
    grafana_url: str = "http://localhost:3000"
    # engineers' verdicts and maintenance windows (streams/steering/)
    feedback_topic: str = "feedback"  # compacted, key = alert id
    silences_topic: str = "silences"  # compacted, key = window id
    #: bearer token of the worker's POST /feedback, POST and GET /silences (unset: those answer 503)
    api_token: str | None = field(default=None, repr=False)
    api_token_file: Path | None = None  # ...or read it from a file (e.g. a mounted secret)
    #: base URL support tools reach the worker's API at (the links in notifications);
    #: "" = http://web_host:web_port
    public_url: str = ""
    #: rebuilds (an "expected" verdict, a window created after it began) start from a checkpoint of
    #: the customer's state this old at most: the worker writes one per customer every
    #: history_interval_s to the state history topic, kept history_retention_s
    state_history_topic: str = ""  # "" = "<app_id>-state-history"
    history_interval_s: float = 3600.0
    history_retention_s: float = 2 * 86400.0
    # the correlator: parent incidents across customers (streams/correlation)
    correlator: bool = True  # run it; the sinks then read the routed alerts and the incidents
    #: where the correlator's two stages run: "here" (in this worker's process) or "apart" (in
    #: ``lookout correlator`` processes, their own consumer group; this worker only publishes to them)
    correlator_stages: str = "here"
    customers_topic: str = "customers"  # compacted: customer id -> attributes (lookout customers load)
    incidents_topic: str = "incidents"  # parent incidents, lookout.incident/v1
    routed_topic: str = "alerts-routed"  # every alert with its parent_id (what the sinks send)
    #: a caught-up input partition's interval is complete this long after it ends (the hold's extra)
    correlator_grace_s: float = 5.0
    #: an input partition that reported nothing new this long (while others moved on) is not waited for
    correlator_idle_s: float = 60.0
    #: a correlator stage's state larger than this is written in parts (Kafka's default record
    #: limit is 1 MiB: streams.correlation.chunks)
    correlator_state_chunk_bytes: int = 512 * 1024

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

    def __post_init__(self) -> None:
        _check_kafka_security(self)
        if not 0 < self.correlator_state_chunk_bytes <= MAX_STATE_CHUNK_BYTES:
            raise SettingsError(f"{PREFIX}CORRELATOR_STATE_CHUNK_BYTES: {self.correlator_state_chunk_bytes} "
                                f"is not in 1..{MAX_STATE_CHUNK_BYTES}")
        if self.correlator_stages not in CORRELATOR_STAGES:
            raise SettingsError(f"{PREFIX}CORRELATOR_STAGES: {self.correlator_stages!r} is not one of "
                                f"{', '.join(CORRELATOR_STAGES)}")
        if not 1.0 <= self.producer_request_timeout_s <= 1200.0:
            raise SettingsError(f"{PREFIX}PRODUCER_REQUEST_TIMEOUT_S: {self.producer_request_timeout_s} "
                                "is not in 1..1200 seconds")
        try:
            rebuild_seconds(self.rebuild_from)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}REBUILD_FROM (--rebuild-from): {exc}") from None
        _read_api_token(self)

    @property
    def rebuild_from_s(self) -> float | None:
        """:attr:`rebuild_from` in seconds (None: no rebuild)."""
        return rebuild_seconds(self.rebuild_from)

    @property
    def kafka_protocol(self) -> str:
        """The effective security protocol: the one given, else derived from the TLS/SASL settings."""
        if self.kafka_security_protocol:
            return self.kafka_security_protocol
        sasl = bool(self.kafka_sasl_mechanism or self.kafka_sasl_username)
        tls = bool(self.kafka_ssl_cafile or self.kafka_ssl_certfile or self.kafka_ssl_keyfile)
        return ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT")

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
    def state_history_topic_name(self) -> str:
        return self.state_history_topic or f"{self.app_id}-state-history"

    @property
    def alertmanager_open_topic_name(self) -> str:
        """The Alertmanager sink's open alerts (compacted, partitioned like the topics it reads)."""
        return f"{self.app_id}-alertmanager-open"

    @property
    def api_url(self) -> str:
        """Where support tools reach the worker's API (no trailing slash)."""
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def onsets_topic_name(self) -> str:
        """The correlator's repartition topic (onsets keyed by group)."""
        return f"{self.app_id}-onsets"

    @property
    def parents_topic_name(self) -> str:
        """Stage two's input (one partition): group tests, alerts, watermarks."""
        return f"{self.app_id}-parents"

    @property
    def correlator_group(self) -> str:
        """The consumer group (Faust app id) of ``lookout correlator`` processes."""
        return f"{self.app_id}-correlator"

    @property
    def correlator_state_topic_name(self) -> str:
        """The correlator stages' state (compacted)."""
        return f"{self.app_id}-correlator-state"

    @property
    def kafka_url(self) -> str:
        """Bootstrap servers in Faust's ``kafka://`` form."""
        return ";".join("kafka://" + b.strip() for b in self.bootstrap.split(",") if b.strip())


def _name(field_name: str) -> str:
    """How a user sets a field: the env variable and, for Kafka security, the CLI option."""
    env = PREFIX + field_name.upper()
    return f"{env} (--{field_name.replace('_', '-')})" if field_name.startswith("kafka_s") else env


def _readable(settings: Settings, field_name: str) -> None:
    path = getattr(settings, field_name)
    if path is None:
        return
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise SettingsError(f"{_name(field_name)}: cannot read {path}: {exc.strerror or exc}") from None


def _check_kafka_security(s: Settings) -> None:
    """Normalise and validate the Kafka TLS/SASL settings (raises :class:`SettingsError`)."""
    set_ = object.__setattr__  # frozen dataclass: normalise in place once, at construction
    if s.kafka_security_protocol:
        proto = s.kafka_security_protocol.strip().upper().replace("-", "_")
        if proto not in SECURITY_PROTOCOLS:
            raise SettingsError(f"{_name('kafka_security_protocol')}={s.kafka_security_protocol!r}: "
                                f"expected one of {', '.join(SECURITY_PROTOCOLS)}")
        set_(s, "kafka_security_protocol", proto)
    if s.kafka_sasl_mechanism:
        mech = s.kafka_sasl_mechanism.strip().upper().replace("_", "-")
        if mech not in SASL_MECHANISMS:
            raise SettingsError(f"{_name('kafka_sasl_mechanism')}={s.kafka_sasl_mechanism!r}: "
                                f"expected one of {', '.join(SASL_MECHANISMS)}")
        set_(s, "kafka_sasl_mechanism", mech)
    if s.kafka_sasl_password_file is not None:
        _readable(s, "kafka_sasl_password_file")
        try:
            secret = Path(s.kafka_sasl_password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{_name('kafka_sasl_password_file')}: cannot read "
                                f"{s.kafka_sasl_password_file}: {exc}") from None
        if not secret:
            raise SettingsError(f"{_name('kafka_sasl_password_file')}: {s.kafka_sasl_password_file} is empty")
        if s.kafka_sasl_password and s.kafka_sasl_password != secret:
            raise SettingsError(
                f"both {_name('kafka_sasl_password')} and {_name('kafka_sasl_password_file')} "
                "are set and they differ: set only one"
            )
        set_(s, "kafka_sasl_password", secret)
    proto = s.kafka_protocol
    sasl_given = [n for n in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                  if getattr(s, n)]
    if proto.startswith("SASL_"):
        for needed in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
            if not getattr(s, needed):
                why = f"security protocol {proto}" if s.kafka_security_protocol else _name(sasl_given[0])
                raise SettingsError(
                    f"{why} needs {_name(needed)}"
                    + (" (or --kafka-sasl-password-file)" if needed == "kafka_sasl_password" else "")
                )
    elif sasl_given:
        raise SettingsError(f"{_name(sasl_given[0])} is set but the security protocol is {proto}: "
                            "use SASL_PLAINTEXT or SASL_SSL")
    tls_files = [n for n in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile") if getattr(s, n)]
    if not proto.endswith("SSL") and tls_files:
        raise SettingsError(f"{_name(tls_files[0])} is set but the security protocol is {proto}: "
                            "use SSL or SASL_SSL")
    if bool(s.kafka_ssl_certfile) != bool(s.kafka_ssl_keyfile):
        have, missing = (("kafka_ssl_certfile", "kafka_ssl_keyfile") if s.kafka_ssl_certfile
                         else ("kafka_ssl_keyfile", "kafka_ssl_certfile"))
        raise SettingsError(f"{_name(have)} is set but {_name(missing)} is not: "
                            "a client certificate and its private key go together")
    if s.kafka_ssl_key_password and not s.kafka_ssl_keyfile:
        raise SettingsError(
            f"{_name('kafka_ssl_key_password')} is set but {_name('kafka_ssl_keyfile')} is not"
        )
    for n in tls_files:
        _readable(s, n)


def _read_api_token(s: Settings) -> None:
    """``api_token_file`` -> ``api_token`` (read once, trailing newline dropped; must agree with one
    given)."""
    if s.api_token_file is None:
        return
    _readable(s, "api_token_file")
    try:
        secret = Path(s.api_token_file).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{_name('api_token_file')}: cannot read {s.api_token_file}: {exc}") from None
    if not secret:
        raise SettingsError(f"{_name('api_token_file')}: {s.api_token_file} is empty")
    if s.api_token and s.api_token != secret:
        raise SettingsError(f"both {_name('api_token')} and {_name('api_token_file')} are set and they "
                            "differ: set only one")
    object.__setattr__(s, "api_token", secret)


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
