"""Kafka TLS/SASL: :class:`~streams.settings.Settings` -> the arguments of each Kafka client.

Every Kafka client Lookout creates gets its security arguments from here, so one set of
``LOOKOUT_KAFKA_*`` settings reaches all of them:

* :func:`faust_credentials` -- Faust's ``broker_credentials=`` (the worker; Faust hands it to
  aiokafka for its consumer, producer and admin client);
* :func:`aiokafka_kwargs` -- the same for the aiokafka clients the worker creates itself
  (the state-topic reader, :mod:`streams.state.reader`, and the state producer);
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

import asyncio
import gc
import logging
import re
import ssl
from typing import Any, Mapping

from streams.settings import Settings, SettingsError

log = logging.getLogger(__name__)

__all__ = [
    "aiokafka_kwargs",
    "describe",
    "faust_credentials",
    "is_auth_error",
    "kafka_python_kwargs",
    "rejection",
    "security_env",
    "ssl_context",
]

#: error names meaning "the broker will not accept who we are": retrying cannot help
AUTH_ERRORS = ("AuthenticationFailedError", "SaslAuthenticationFailed", "SaslAuthenticationFailedError",
               "UnsupportedSaslMechanismError", "IllegalSaslStateError", "SSLError")


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
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        )
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"LOOKOUT_KAFKA_SSL_CAFILE: {settings.kafka_ssl_cafile} is not a usable CA bundle "
            f"(PEM): {_ssl_reason(exc)}"
        ) from None
    ctx.check_hostname = bool(settings.kafka_ssl_check_hostname)
    if settings.kafka_ssl_certfile:
        try:
            # "" rather than None: OpenSSL would otherwise prompt on the terminal for an encrypted key
            ctx.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile),
                                password=settings.kafka_ssl_key_password or "")
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"LOOKOUT_KAFKA_SSL_CERTFILE/KEYFILE: cannot load the client certificate "
                f"{settings.kafka_ssl_certfile} with key {settings.kafka_ssl_keyfile}: {_ssl_reason(exc)} "
                f"(not PEM, a key that does not match, "
                "or an encrypted key without the right LOOKOUT_KAFKA_SSL_KEY_PASSWORD?)"
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
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return kwargs


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients Lookout creates itself (the state topic reader)."""
    kwargs = kafka_python_kwargs(settings)
    kwargs.pop("ssl_check_hostname", None)  # aiokafka takes it from the SSLContext only
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


def security_env(settings: Settings) -> dict[str, str]:
    """The ``LOOKOUT_KAFKA_*`` variables that give a child process (e.g. a worker) these settings.

    Passwords included: a child's environment is the way secrets are handed over (not its argv).
    """
    env: dict[str, str] = {"LOOKOUT_KAFKA_SECURITY_PROTOCOL": settings.kafka_protocol}
    for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "kafka_ssl_key_password",
                 "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
        value = getattr(settings, name)
        if value:
            env["LOOKOUT_" + name.upper()] = str(value)
    env["LOOKOUT_KAFKA_SSL_CHECK_HOSTNAME"] = "true" if settings.kafka_ssl_check_hostname else "false"
    return env


def describe(settings: Settings) -> str:
    """How Lookout connects, without secrets: ``"SASL_SSL, PLAIN as user 'bob'"``."""
    proto = settings.kafka_protocol
    if proto.startswith("SASL_"):
        return f"{proto}, {settings.kafka_sasl_mechanism} as user {settings.kafka_sasl_username!r}"
    if proto == "SSL" and settings.kafka_ssl_certfile:
        return f"SSL with client certificate {settings.kafka_ssl_certfile}"
    return proto


def is_auth_error(exc: BaseException) -> bool:
    """True if ``exc`` (from aiokafka, kafka-python or ssl) means the broker rejected who we are.

    Such a failure never heals by retrying, so callers stop at once instead of waiting.
    """
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & set(AUTH_ERRORS))


def auth_reason(exc: BaseException) -> str:
    """The human part of an authentication error.

    >>> from aiokafka.errors import SaslAuthenticationFailed
    >>> auth_reason(SaslAuthenticationFailed("Authentication failed: invalid credentials"))
    'Authentication failed: invalid credentials'
    """
    text = " ".join(str(exc).split())
    return re.sub(r"^\[Error \d+\] \w+: ", "", text) or type(exc).__name__


#: the aiokafka connection arguments a probe passes on (kafka-python ones it does not know are dropped)
_PROBE_ARGS = (
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


def rejection(bootstrap: str, security: Mapping[str, Any] | None, timeout: float = 5.0) -> str | None:
    """Connect and authenticate once to each bootstrap server; why the broker rejected us, or None.

    None also when no server answered within ``timeout`` (callers wait for an unreachable
    broker as they always did). kafka-python (3.x) cannot be asked this: it treats a rejected
    login like an unreachable broker and retries until its timeout, and whether it even logs
    the reason depends on a race with the broker closing the connection. aiokafka (Faust's
    client, so always installed) raises the broker's error from the handshake itself.
    """
    sec = {k: v for k, v in (security or {}).items() if k in _PROBE_ARGS}
    if sec.get("security_protocol", "PLAINTEXT") == "PLAINTEXT":
        return None
    conn_log = logging.getLogger("aiokafka.conn")
    level = conn_log.level
    conn_log.setLevel(logging.ERROR)  # its "password in the clear" warning would be a stray line per probe
    try:
        return asyncio.run(_rejection(bootstrap, sec, timeout))
    finally:
        conn_log.setLevel(level)


def _quiet_probe_leftovers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The probe loop's exception handler: a rejected connection's leftovers go to the debug log.

    When the broker rejects the TLS handshake, aiokafka's reader task and the stream's
    ``closed`` future both hold the broker's ``SSLError``; whether the future is retrieved
    before it is garbage-collected is a race, and the loser used to print "Future exception
    was never retrieved" and a traceback after the one-line error (seen in CI). The probe
    has already reported the rejection, so what is left over is only logged at debug.
    """
    log.debug("auth check: %s (%r)", context.get("message"), context.get("exception"))


async def _rejection(bootstrap: str, sec: dict[str, Any], timeout: float) -> str | None:
    asyncio.get_running_loop().set_exception_handler(_quiet_probe_leftovers)
    try:
        return await _probe(bootstrap, sec, timeout)
    finally:
        gc.collect()  # let a dropped connection's futures go while this loop's handler is theirs


async def _probe(bootstrap: str, sec: dict[str, Any], timeout: float) -> str | None:
    from aiokafka.conn import create_conn

    for server in (b.strip() for b in bootstrap.split(",") if b.strip()):
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host.strip("[]") or "localhost", int(port), client_id="lookout-auth-check",
                            request_timeout_ms=int(timeout * 1000), **sec), timeout)
        except Exception as exc:  # noqa: BLE001 -- anything but a rejection means "try the next one"
            cause = _auth_cause(exc)
            if cause is not None:
                return auth_reason(cause)
            continue
        conn.close()
        return None
    return None


def _auth_cause(exc: BaseException | None) -> BaseException | None:
    """``exc`` or what caused it, if that is a rejection (a TLS alert surfaces as "connection closed")."""
    seen = 0
    while exc is not None and seen < MAX_CAUSE_DEPTH:
        if is_auth_error(exc):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


#: how far down an exception's cause chain a rejection is looked for
MAX_CAUSE_DEPTH = 5
