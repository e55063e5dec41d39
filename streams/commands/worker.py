"""``lookout worker``: run the Faust detection worker."""
from __future__ import annotations

from pathlib import Path

import click

from detectors.config import ConfigError

from ..kafka.admin import BrokerError
from ..settings import Settings, SettingsError
from .kafka_options import kafka_security_options


@click.command()
@click.option("--bootstrap", help="Kafka bootstrap servers [env LOOKOUT_BOOTSTRAP, default 127.0.0.1:9092]")
@click.option(
    "--web-port", type=int, help="Port of /metrics and /healthz [env LOOKOUT_WEB_PORT, default 6066]"
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Worker data dir; one per worker on a machine"
)
@click.option("--config", "detector_config", type=click.Path(path_type=Path, dir_okay=False),
              help="Detector config (YAML/TOML), the same format replay reads")
@click.option("--initial-state", type=click.Path(path_type=Path, dir_okay=False),
              help="Start from this learned state (`lookout replay --save-state FILE`); customers with "
                   "state in the state topic use that instead [env LOOKOUT_INITIAL_STATE]")
@click.option("--app-id", help="Faust app id = Kafka consumer group [default lookout]")
@click.option("--alertmanager-url", help="Send alerts to this Alertmanager (e.g. http://127.0.0.1:9093)")
@click.option(
    "--webhook-url", help="POST alerts to this ticketing webhook (token: env LOOKOUT_WEBHOOK_TOKEN)"
)
@click.option("--loglevel", "log_level", type=click.Choice(["crit", "error", "warn", "info", "debug"]),
              help="Log level [default warn]")
@kafka_security_options
def worker(**opts):
    """Consume `request-metrics`, detect anomalies per customer, emit alerts.

    Alerts go to topic `alerts` (key = customer id), invalid events to `request-metrics-dlq`
    with the reason. Prometheus metrics are served on http://HOST:WEB_PORT/metrics.
    Every worker on one machine needs its own --web-port and --data-dir. Detector state is
    snapshotted per input partition into the compacted topic `<app-id>-state` (every
    LOOKOUT_SNAPSHOT_INTERVAL_S, on rebalance and on shutdown) and restored when a partition is
    assigned, on this host or another, so neither a restart nor a fail-over starts the warm-up
    again, loses an alert or sends one twice. A failure that is not bad input stops the worker
    with exit status 70 (restart it; it resumes at the last snapshot). /healthz answers 503
    while the agent is not running or consumption has stalled. With --alertmanager-url /
    --webhook-url the worker also delivers alerts to those sinks (failed webhook deliveries end
    up on the `alerts-dlq` topic after the last retry). --initial-state bootstraps a new
    deployment from history, so it is neither blind nor noisy for its first weeks.

    \b
    Examples:
      lookout worker --bootstrap 127.0.0.1:9092 --web-port 6066 --data-dir .lookout/w1
      lookout worker --config detectors.yaml --alertmanager-url http://127.0.0.1:9093
      lookout replay history.jsonl.gz --save-state state.lookout
      lookout worker --initial-state state.lookout
      LOOKOUT_WEBHOOK_TOKEN=... lookout worker --webhook-url https://tickets.example/api/alerts
      LOOKOUT_KAFKA_SASL_PASSWORD=... lookout worker --bootstrap kafka.example:9093 \\
          --kafka-security-protocol SASL_SSL --kafka-sasl-mechanism SCRAM-SHA-512 \\
          --kafka-sasl-username lookout

    Before starting, the worker checks that the broker answers and, with TLS or SASL settings,
    accepts them: if not it exits at once with one line (unreachable, wrong password,
    untrusted certificate).
    """
    # imported here, not at the top: the worker pulls in Faust and aiokafka (~1 s), which
    # `lookout worker --help` does not need
    from ..worker.run import run_worker

    try:
        run_worker(Settings.from_env(**opts))
    except (SettingsError, ConfigError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None
