"""The ``--kafka-*`` TLS/SASL options every command that talks to Kafka shares.

Each option sets the :class:`~streams.settings.Settings` field of the same name (``--kafka-sasl-username``
-> ``kafka_sasl_username``) and overrides its ``LOOKOUT_KAFKA_*`` variable. Passwords have no option
(a command line is visible to every user of the machine and lands in shell history): they come from
``LOOKOUT_KAFKA_SASL_PASSWORD`` / ``LOOKOUT_KAFKA_SSL_KEY_PASSWORD`` or ``--kafka-sasl-password-file``,
and no help text ever shows a value.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from ..settings import SASL_MECHANISMS, SECURITY_PROTOCOLS

#: the Settings fields these options set (what :func:`pop_security` takes out of a command's kwargs)
FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password_file",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "kafka_ssl_check_hostname",
)

_FILE = click.Path(path_type=Path, dir_okay=False)


def kafka_security_options(f: Callable) -> Callable:
    """Decorator: add the Kafka TLS/SASL options to a click command."""
    opts = [
        click.option(
            "--kafka-security-protocol",
            type=click.Choice(SECURITY_PROTOCOLS, case_sensitive=False),
            help="Kafka security protocol [env LOOKOUT_KAFKA_SECURITY_PROTOCOL; default: SASL_* when "
            "SASL is set, *SSL when a TLS file is set, else PLAINTEXT]",
        ),
        click.option(
            "--kafka-sasl-mechanism",
            type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
            help="SASL mechanism [env LOOKOUT_KAFKA_SASL_MECHANISM]",
        ),
        click.option(
            "--kafka-sasl-username", metavar="USER", help="SASL user [env LOOKOUT_KAFKA_SASL_USERNAME]"
        ),
        click.option(
            "--kafka-sasl-password-file",
            type=_FILE,
            metavar="FILE",
            help="Read the SASL password from FILE (trailing newline ignored); or set env "
            "LOOKOUT_KAFKA_SASL_PASSWORD. There is no password option: it would show in `ps`",
        ),
        click.option(
            "--kafka-ssl-cafile",
            type=_FILE,
            metavar="PEM",
            help="CA certificate(s) the broker's certificate is checked against "
            "[env LOOKOUT_KAFKA_SSL_CAFILE; default: the system CAs]",
        ),
        click.option(
            "--kafka-ssl-certfile",
            type=_FILE,
            metavar="PEM",
            help="Client certificate for mutual TLS [env LOOKOUT_KAFKA_SSL_CERTFILE]",
        ),
        click.option(
            "--kafka-ssl-keyfile",
            type=_FILE,
            metavar="PEM",
            help="Its private key [env LOOKOUT_KAFKA_SSL_KEYFILE; an encrypted key's password: "
            "env LOOKOUT_KAFKA_SSL_KEY_PASSWORD]",
        ),
        click.option(
            "--kafka-ssl-check-hostname/--kafka-ssl-no-check-hostname",
            default=None,
            help="Check that the broker's certificate names its host "
            "[env LOOKOUT_KAFKA_SSL_CHECK_HOSTNAME, default on]",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def pop_security(opts: dict[str, Any]) -> dict[str, Any]:
    """Remove the Kafka security options from ``opts``; return the ones given (Settings overrides)."""
    return {k: v for k in FIELDS if (v := opts.pop(k, None)) is not None}
