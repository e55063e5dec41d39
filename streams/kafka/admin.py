"""kafka-python admin helpers every command and the worker's tools use: is a broker there, create topics.

Each waits a bounded time and fails with one line (:class:`BrokerError`, safe to show as a CLI
error); a secured broker that rejects our credentials or certificate fails at once
(:class:`KafkaAuthError`) instead of being waited for until the timeout. ``security`` arguments
are kafka-python's (:func:`streams.kafka.security.kafka_python_kwargs`).

>>> clip("a  very   long line", 10)
'a very ...'
"""
from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Iterable, Iterator, Mapping

from streams.settings import Settings

from .security import is_auth_error, kafka_python_kwargs, rejection

__all__ = [
    "AUTH_CHECK_S",
    "BrokerError",
    "KafkaAuthError",
    "answers",
    "auth_failure",
    "can_connect",
    "clip",
    "create_lookout_topics",
    "create_topics",
    "reachable",
    "wait_for_kafka",
]

#: the host of a bootstrap server given as ``:PORT``
DEFAULT_HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """A Kafka broker cannot be used: the local one failed, or one we connect to did not answer.

    ``str(exc)`` is one line (safe to show as a CLI error); ``exc.detail``
    holds extra context such as the tail of the broker log.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message

    def full(self) -> str:
        """Message plus detail (e.g. the broker log tail), for test output."""
        return f"{self.message}\n{self.detail}" if self.detail else self.message


@contextlib.contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs every refused connection at ERROR; we expect those while waiting."""
    lg = logging.getLogger("kafka")
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(old)


#: how long the authentication check of a secured broker waits for a connection
AUTH_CHECK_S = 5.0


class KafkaAuthError(BrokerError):
    """The broker rejected our credentials or certificate: retrying cannot help."""


def _admin(bootstrap: str, timeout: float, security: Mapping | None = None):
    from kafka.admin import KafkaAdminClient

    ms = max(int(timeout * 1000), 1000)
    kwargs = {
        "bootstrap_servers": bootstrap.split(","),
        "request_timeout_ms": ms,
        "client_id": "lookout-admin",
        **(security or {}),
    }
    # kafka-python >= 3 bounds the bootstrap separately; 2.x uses api_version_auto_timeout_ms
    if "bootstrap_timeout_ms" in getattr(KafkaAdminClient, "DEFAULT_CONFIG", {}):
        kwargs["bootstrap_timeout_ms"] = ms
    else:
        kwargs["api_version_auto_timeout_ms"] = ms
    return KafkaAdminClient(**kwargs)


def _connect_admin(bootstrap: str, timeout: float, security: Mapping | None = None):
    """An admin client; :class:`KafkaAuthError` at once if the broker rejects our credentials/certificate.

    (kafka-python would retry a rejected login until ``timeout`` and then call the broker
    unreachable, so a secured broker is asked first: :func:`streams.kafka.security.rejection`.)
    """
    reason = rejection(bootstrap, security, min(timeout, AUTH_CHECK_S))
    if reason:
        raise auth_failure(bootstrap, security, reason)
    with _quiet_kafka_logs():
        try:
            return _admin(bootstrap, timeout, security)
        except Exception:
            raise BrokerError(f"cannot reach Kafka at {bootstrap} within {timeout:g} s") from None


def auth_failure(bootstrap: str, security: Mapping | None, reason: str) -> KafkaAuthError:
    """One line for a broker that rejected our credentials or certificate (never with a secret)."""
    reason = " ".join(reason.split()) or "authentication failed"
    for secret in _secrets(security):
        reason = reason.replace(secret, "***")
    return KafkaAuthError(f"Kafka at {bootstrap} rejected the connection ({_describe_kwargs(security)}): "
                          f"{clip(reason, 200)}")


def _secrets(security: Mapping | None) -> list[str]:
    return [v for k, v in (security or {}).items() if "password" in k and isinstance(v, str) and v]


def _describe_kwargs(security: Mapping | None) -> str:
    sec = dict(security or {})
    proto = sec.get("security_protocol", "PLAINTEXT")
    if proto.startswith("SASL_"):
        return f"{proto}, {sec.get('sasl_mechanism')} as user {sec.get('sasl_plain_username')!r}"
    return proto


def answers(bootstrap: str, timeout: float, security: Mapping | None = None) -> bool:
    """True if the broker answers a metadata request; KafkaAuthError at once if it rejects who we are."""
    try:
        admin = _connect_admin(bootstrap, timeout, security)
    except KafkaAuthError:
        raise
    except BrokerError:
        return False
    with _quiet_kafka_logs():
        try:
            admin.list_topics()
            return True
        except Exception as exc:
            if is_auth_error(exc):
                raise auth_failure(bootstrap, security, str(exc)) from None
            return False
        finally:
            with contextlib.suppress(Exception):
                admin.close()


def wait_for_kafka(bootstrap: str, timeout: float = 60.0, security: Mapping | None = None) -> None:
    """Block until a broker at ``bootstrap`` answers a metadata request; BrokerError on timeout.

    ``security`` are kafka-python security arguments (:func:`streams.kafka.security.kafka_python_kwargs`);
    a broker that rejects them raises BrokerError at once instead of being waited for.
    """
    deadline = time.monotonic() + timeout
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"cannot reach Kafka at {bootstrap} within {timeout:g} s")
        if ((not port.isdigit() or can_connect(host or DEFAULT_HOST, int(port)))
                and answers(bootstrap, min(10.0, max(remaining, 1.0)), security)):
            return
        time.sleep(0.25)


def create_topics(bootstrap: str, topics: Mapping[str, int], timeout: float = 30.0,
                  connect_timeout: float | None = None, security: Mapping | None = None,
                  compacted: Iterable[str] = ()) -> list[str]:
    """Create ``{name: partitions}`` topics (replication 1) unless they exist; return the newly created.

    Topics named in ``compacted`` get ``cleanup.policy=compact`` (latest value per key kept).

    ``connect_timeout`` (default ``timeout``) bounds reaching the broker; ``timeout`` the creation.
    ``security``: kafka-python security arguments, as for :func:`wait_for_kafka`. Topics named in
    ``compacted`` are created with ``cleanup.policy=compact`` (the latest record per key is kept).

    Idempotent: existing topics (including ones created concurrently) are
    left alone, whatever their partition count. Returns once every requested
    topic has a leader for each partition.
    """
    from kafka.errors import TopicAlreadyExistsError

    if not topics:
        return []
    admin = _connect_admin(bootstrap, timeout if connect_timeout is None else connect_timeout, security)
    compact = set(compacted)
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        missing = {name: int(n) for name, n in topics.items() if name not in existing}
        for name, partitions in missing.items():
            try:
                admin.create_topics(_new_topics_arg(admin, {name: partitions}, name in compact),
                                    timeout_ms=int(timeout * 1000))
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        _wait_for_leaders(admin, list(topics), timeout)
    finally:
        with contextlib.suppress(Exception):
            admin.close()
    return created


def _new_topics_arg(admin, topics: Mapping[str, int], compact: bool = False):
    import inspect

    configs = {"cleanup.policy": "compact"} if compact else {}
    if "wait_for_metadata" in inspect.signature(admin.create_topics).parameters:  # kafka-python >= 3
        return {name: {"num_partitions": n, "replication_factor": 1, "configs": configs}
                for name, n in topics.items()}
    from kafka.admin import NewTopic

    return [NewTopic(name=name, num_partitions=n, replication_factor=1, topic_configs=configs)
            for name, n in topics.items()]


def _wait_for_leaders(admin, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            desc = admin.describe_topics(names)
            if len(desc) == len(names) and all(
                t.get("error_code", 0) == 0 and t.get("partitions")
                and all(p.get("leader", p.get("leader_id", -1)) >= 0 for p in t["partitions"])
                for t in desc
            ):
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {', '.join(names)} have no leaders after {timeout:.0f}s")
        time.sleep(0.2)


def create_lookout_topics(settings: Settings) -> dict[str, tuple[int, bool]]:
    """Create the input, alerts and dead-letter topics of ``settings``, the correlator's (the
    compacted customer catalogue, parent incidents, routed alerts) and the compacted feedback and
    silences topics (``lookout topics create``);
    ``{name: (partitions, created now)}``, existing ones left alone.

    Raises :class:`BrokerError` or :class:`~streams.settings.SettingsError` (bad TLS/SASL
    settings), one line each.
    """
    wanted = {
        settings.input_topic: settings.partitions,
        settings.alerts_topic: settings.partitions,
        settings.dlq_topic: 1,
        settings.sink_dlq_topic: 1,
        settings.customers_topic: settings.partitions,
        settings.incidents_topic: settings.partitions,
        settings.routed_topic: settings.partitions,
        settings.feedback_topic: 1,
        settings.silences_topic: 1,
    }
    made = create_topics(settings.bootstrap, wanted, connect_timeout=settings.kafka_timeout_s,
                         security=kafka_python_kwargs(settings),
                         compacted=(settings.customers_topic, settings.feedback_topic,
                                    settings.silences_topic))
    return {name: (partitions, name in made) for name, partitions in wanted.items()}


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    """Does ``host:port`` accept a TCP connection within ``timeout``?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def reachable(bootstrap: str, timeout: float = 0.5) -> bool:
    """Does any server of ``bootstrap`` (``HOST:PORT[,...]``) accept a TCP connection right now?

    Blocking, at most ``timeout`` per server; a server that is not ``HOST:PORT`` counts as down.

    >>> reachable("127.0.0.1:notaport,:0", timeout=0.1)
    False
    """
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and can_connect(host or DEFAULT_HOST, int(port), timeout):
            return True
    return False


def clip(s: str, n: int = 300) -> str:
    """``s`` on one line (whitespace runs become one space), at most ``n`` characters."""
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."

