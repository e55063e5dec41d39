"""``lookout broker``: a local single-node Kafka (KRaft) broker for development and tests."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..devtools.broker import LocalBroker
from ..kafka.admin import BrokerError
from ..settings import Settings, SettingsError
from ._common import aliased, deprecated_alias
from .kafka_options import kafka_security_options, pop_security


def _options(fn=None, *, fresh: bool = False, ports: bool = True, data_dir: bool = True):
    """The options every sub-command shares (they override LOOKOUT_* variables)."""

    def deco(f):
        opts = [
            click.option("--kafka-version", "kafka_version", metavar="VERSION",
                         help="Kafka version [env LOOKOUT_KAFKA_VERSION, default 4.0.2]"),
            deprecated_alias("--version", "--kafka-version", metavar="VERSION"),
        ]
        if data_dir:
            opts.insert(0, click.option(
                "--data-dir", type=click.Path(path_type=Path, file_okay=False),
                help="Broker data dir: config, logs, pid file, Kafka data "
                     "[env LOOKOUT_BROKER_DATA_DIR, default .lookout/broker]"))
        if ports:
            opts = [
                click.option(
                    "--broker-port",
                    "broker_port",
                    type=click.IntRange(1, 65535),
                    help="Client (PLAINTEXT) port on 127.0.0.1 [env LOOKOUT_BROKER_PORT, default 9092]",
                ),
                deprecated_alias("--port", "--broker-port", type=click.IntRange(1, 65535)),
                click.option(
                    "--controller-port",
                    "broker_controller_port",
                    type=click.IntRange(1, 65535),
                    help="KRaft controller port [env LOOKOUT_BROKER_CONTROLLER_PORT, default 9094; "
                    "9093 is Alertmanager's]",
                ),
            ] + opts
        if fresh:
            opts.append(click.option("--fresh", is_flag=True,
                                     help="Stop this data dir's broker if running and wipe its data first"))
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco(fn) if fn is not None else deco


def _broker(opts: dict):
    opts = dict(opts, broker_port=aliased("--broker-port", opts.get("broker_port")),
                kafka_version=aliased("--kafka-version", opts.get("kafka_version")))
    overrides = {k: v for k, v in opts.items() if k in {
        "broker_port", "broker_controller_port", "kafka_version"} and v is not None}
    overrides.update(pop_security(opts))
    for opt, name in (("ssl_certfile", "broker_ssl_certfile"), ("ssl_keyfile", "broker_ssl_keyfile")):
        if opts.get(opt) is not None:
            overrides[name] = opts[opt]
    if opts.get("data_dir") is not None:
        overrides["broker_data_dir"] = opts["data_dir"]
    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return _call(LocalBroker, settings, progress=lambda msg: click.echo(msg, err=True))


def _call(fn, *args, **kwargs):
    """Run ``fn``; turn BrokerError into a one-line CLI error (exit code 1, no traceback)."""
    try:
        return fn(*args, **kwargs)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def broker():
    """Run a local single-node Kafka broker (KRaft mode, no Docker needed).

    Needs Java 17+; the Kafka jars are downloaded once with Maven into
    ~/.cache/lookout/kafka-VERSION/libs (LOOKOUT_KAFKA_HOME moves it). The broker
    listens on 127.0.0.1 only; everything it writes lives in --data-dir.

    \b
    Examples:
      lookout broker start                  # 127.0.0.1:9092, data in .lookout/broker
      lookout broker status
      lookout broker stop
      lookout broker start --broker-port 29092 --controller-port 29094 --data-dir /tmp/k2 --fresh
    """


@broker.command()
@_options(fresh=True)
@click.option("--timeout", type=float, default=90.0, show_default=True,
              help="Seconds to wait for the broker to answer")
@click.option("--ssl-certfile", type=click.Path(path_type=Path, dir_okay=False), metavar="PEM",
              help="Server certificate when the broker serves SSL/SASL_SSL [env LOOKOUT_BROKER_SSL_CERTFILE]")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path, dir_okay=False), metavar="PEM",
              help="Its unencrypted PKCS#8 key [env LOOKOUT_BROKER_SSL_KEYFILE]")
@kafka_security_options
def start(fresh, timeout, **opts):
    """Start the broker in the background and wait until it answers.

    Downloads the jars first if needed, formats the storage on first use, and
    writes a pid file into the data dir. Does nothing if this data dir's broker
    is already running; fails if the port is taken by anything else.

    With SASL settings (--kafka-sasl-mechanism, --kafka-sasl-username and the password from
    LOOKOUT_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file) the client port is a
    SASL_PLAINTEXT listener accepting PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for that one
    user, so the same LOOKOUT_KAFKA_* settings configure the broker and its clients. SCRAM
    users are created when the storage is formatted: other credentials later need --fresh.
    With --kafka-security-protocol SSL or SASL_SSL (or --kafka-ssl-cafile) it serves TLS with
    --ssl-certfile/--ssl-keyfile; with a client certificate (--kafka-ssl-certfile) configured
    it requires clients to present one signed by --kafka-ssl-cafile (mutual TLS).

    \b
    Examples:
      lookout broker start
      lookout broker start --broker-port 29092 --controller-port 29094 --data-dir /tmp/kafka-test --fresh
      LOOKOUT_KAFKA_SASL_PASSWORD=alice-secret lookout broker start --fresh \\
          --kafka-sasl-mechanism SCRAM-SHA-256 --kafka-sasl-username alice
    """
    b = _broker(opts)
    was = b.status()
    st = _call(b.start, timeout=timeout, fresh=fresh)
    state = "already running" if was.running and st.pid == was.pid else "running"
    click.echo(
        f"Kafka {st.version} {state} on {st.bootstrap} (pid {st.pid}, data {st.data_dir}, log {st.log_file})"
    )


@broker.command()
@_options(ports=False)
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL")
def stop(timeout, **opts):
    """Stop the broker started from this data dir.

    Only the process recorded in the data dir's pid file is signalled, and only
    if it really is that broker; other Kafka processes are never touched.
    Stopping a broker that is not running is not an error.

    \b
    Examples:
      lookout broker stop
      lookout broker stop --data-dir /tmp/kafka-test
    """
    b = _broker(opts)
    pid = _call(b.stop, timeout=timeout)
    if pid:
        click.echo(f"stopped Kafka (pid {pid}, data {b.data_dir})")
    else:
        click.echo(f"no broker running from {b.data_dir}")


@broker.command()
@_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON")
def status(as_json, **opts):
    """Show whether this data dir's broker runs (pid, port, data dir, version).

    Exit code 0 if it is running, 3 if not.

    \b
    Examples:
      lookout broker status
      lookout broker status --data-dir /tmp/kafka-test --json
    """
    st = _call(_broker(opts).status)
    if as_json:
        click.echo(json.dumps(st.as_dict(), indent=2))
    else:
        click.echo(f"{'running' if st.running else 'not running'}: Kafka {st.version}")
        if st.running:
            click.echo(f"  pid        {st.pid}")
            click.echo(f"  bootstrap  {st.bootstrap} (controller port {st.controller_port})")
        click.echo(f"  data dir   {st.data_dir}")
        click.echo(f"  log        {st.log_file}")
        if st.note:
            click.echo(f"  note       {st.note}")
    raise SystemExit(0 if st.running else 3)


@broker.command()
@_options(ports=False, data_dir=False)
def fetch(**opts):
    """Download the Kafka jars (once; later calls use the cache) and print their directory.

    Uses Maven (mvn) and Java; jars go to ~/.cache/lookout/kafka-VERSION/libs
    (or LOOKOUT_KAFKA_HOME/kafka-VERSION/libs).

    \b
    Examples:
      lookout broker fetch
      LOOKOUT_KAFKA_HOME=/opt/lookout lookout broker fetch --kafka-version 4.0.2
    """
    b = _broker(opts)
    click.echo(str(_call(b.ensure_jars)))


if __name__ == "__main__":  # python -m streams.commands.broker ...
    broker(prog_name="lookout broker")
