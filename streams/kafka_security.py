"""Kafka TLS/SASL: :class:`~streams.settings.Settings` -> the arguments of each Kafka client.

Every Kafka client Lookout creates gets its security arguments from here, so one set of
``LOOKOUT_KAFKA_*`` settings reaches all of them:

* :func:`faust_credentials` -- Faust's ``broker_credentials=`` (the worker; Faust hands it to
  aiokafka for its consumer, producer and admin client);
* :func:`kafka_python_kwargs` -- keyword arguments for kafka-python's ``KafkaProducer``,
  ``KafkaConsumer`` and ``KafkaAdminClient`` (topics, replay, simulate, demo, broker helpers);
* :func:`ssl_context` -- the one :class:`ssl.SSLContext` both of them use.

Passwords are only ever passed to the clients, never formatted into a message:
:func:`describe` says *who* connects and how, for error messages.

>>> from streams.settings import Settings
>>> kafka_python_kwargs(Settings())
{'security_protocol': 'PLAINTEXT'}
>>> s = Settings(kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="alice", kafka_sasl_password="pw")
>>> sorted(kafka_python_kwargs(s).items())  # doctest: +NORMALIZE_WHITESPACE
[('sasl_mechanism', 'SCRAM-SHA-512'), ('sasl_plain_password', 'pw'), ('sasl_plain_username', 'alice'),
 ('security_protocol', 'SASL_PLAINTEXT')]
>>> describe(s)
"SASL_PLAINTEXT, SCRAM-SHA-512 as user 'alice'"
"""
from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any, Iterator

from .settings import Settings, SettingsError

__all__ = ["describe", "faust_credentials", "is_auth_error", "kafka_python_kwargs", "ssl_context",
           "watch_auth_errors"]

#: error names meaning "the broker will not accept who we are": retrying cannot help
AUTH_ERRORS = ("AuthenticationFailedError", "SaslAuthenticationFailedError", "UnsupportedSaslMechanismError",
               "IllegalSaslStateError", "SSLCertVerificationError")
#: the same, as they appear in kafka-python's connection log lines
AUTH_LOG_MARKERS = (*AUTH_ERRORS, "CERTIFICATE_VERIFY_FAILED")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context for ``SSL``/``SASL_SSL`` (None for the plaintext protocols).

    Verifies the broker's certificate against ``kafka_ssl_cafile`` (the system CAs when it is
    not set), checks the host name unless ``kafka_ssl_check_hostname`` is off, and presents
    ``kafka_ssl_certfile``/``kafka_ssl_keyfile`` for mutual TLS. A file that is readable but
    not a usable PEM raises :class:`SettingsError` naming the setting.
    """
    if not settings.kafka_protocol.endswith("SSL"):
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"LOOKOUT_KAFKA_SSL_CAFILE: {settings.kafka_ssl_cafile} is not a usable CA bundle "
                            f"(PEM): {_ssl_reason(exc)}") from None
    ctx.check_hostname = bool(settings.kafka_ssl_check_hostname)
    if settings.kafka_ssl_certfile:
        try:
            ctx.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile),
                                password=settings.kafka_ssl_key_password)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"LOOKOUT_KAFKA_SSL_CERTFILE/KEYFILE: cannot load the client certificate {settings.kafka_ssl_certfile} "
                f"with key {settings.kafka_ssl_keyfile}: {_ssl_reason(exc)} (wrong key password, or not PEM?)"
            ) from None
    return ctx


def _ssl_reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python clients (``KafkaProducer(**kwargs, ...)`` etc.)."""
    proto = settings.kafka_protocol
    kwargs: dict[str, Any] = {"security_protocol": proto}
    ctx = ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx  # kafka-python then ignores its other ssl_* options
        kwargs["ssl_check_hostname"] = ctx.check_hostname
    if proto.startswith("SASL_"):
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password)
    return kwargs


def faust_credentials(settings: Settings):
    """Faust's ``broker_credentials=``: SASLCredentials, SSLCredentials, or None for PLAINTEXT."""
    proto = settings.kafka_protocol
    if proto == "PLAINTEXT":
        return None
    import faust

    ctx = ssl_context(settings)
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
                                 mechanism=settings.kafka_sasl_mechanism, ssl_context=ctx)


def describe(settings: Settings) -> str:
    """How Lookout connects, without secrets: ``"SASL_SSL, PLAIN as user 'bob'"``."""
    proto = settings.kafka_protocol
    if proto.startswith("SASL_"):
        return f"{proto}, {settings.kafka_sasl_mechanism} as user {settings.kafka_sasl_username!r}"
    if proto == "SSL" and settings.kafka_ssl_certfile:
        return f"SSL with client certificate {settings.kafka_ssl_certfile}"
    return proto


def is_auth_error(exc: BaseException) -> bool:
    """True if ``exc`` (from kafka-python or aiokafka) means the broker rejected who we are.

    Such a failure never heals by retrying, so callers stop at once instead of waiting.
    """
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & set(AUTH_ERRORS))


class _AuthLogWatcher(logging.Handler):
    def __init__(self, seen: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.seen = seen

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 -- a malformed log call must not break the client
            return
        if not self.seen and any(m in msg for m in AUTH_LOG_MARKERS):
            self.seen.append(auth_reason(msg))


def auth_reason(message: str) -> str:
    """The human part of a kafka-python auth failure line.

    >>> auth_reason("Bootstrap connection to b-0 failed: [Error 58] SaslAuthenticationFailedError: "
    ...             "SaslAuthenticationFailedError: Authentication failed: invalid credentials (backoff 0.05 secs)")
    'Authentication failed: invalid credentials'
    """
    message = message.split(" (backoff ", 1)[0]
    reason = " ".join(message.rsplit("Error: ", 1)[-1].split())
    while reason.endswith(")") and reason.count(")") > reason.count("("):  # "Abort ([Error 58] ...)"
        reason = reason[:-1]
    return reason


@contextlib.contextmanager
def watch_auth_errors() -> Iterator[list[str]]:
    """Collect the first "credentials/certificate rejected" reason kafka-python logs meanwhile.

    kafka-python (3.x) treats a rejected SASL login or certificate like an unreachable broker:
    it keeps retrying until its bootstrap timeout and then raises a bare timeout. Its log says
    why, so while this context is active the ``kafka`` loggers' warnings are captured (not
    printed) and the reason is appended to the yielded list, for one clear error line.
    """
    seen: list[str] = []
    handler = _AuthLogWatcher(seen)
    lg = logging.getLogger("kafka")
    level, propagate = lg.level, lg.propagate
    lg.addHandler(handler)
    lg.setLevel(logging.WARNING)
    lg.propagate = False
    try:
        yield seen
    finally:
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate
