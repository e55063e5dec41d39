"""``lookout worker``: run the Faust detection worker."""
from __future__ import annotations

from pathlib import Path

import click

from detectors.config import ConfigError

from ..kafka.admin import BrokerError
from ..settings import Settings, SettingsError, rebuild_seconds
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
@click.option("--rebuild-from", envvar="LOOKOUT_REBUILD_FROM", callback=lambda ctx, param, v: _duration(v),
              metavar="DURATION",
              help="After a model change (or with no saved state): rebuild the partitions whose saved state "
                   "is refused or missing from this much of the input topic's history, e.g. 7d, 36h, "
                   "before going live [env LOOKOUT_REBUILD_FROM]")
@click.option("--app-id", help="Faust app id = Kafka consumer group [default lookout]")
@click.option("--alertmanager-url", help="Send alerts to this Alertmanager (e.g. http://127.0.0.1:9093)")
@click.option(
    "--webhook-url", help="POST alerts to this ticketing webhook (token: env LOOKOUT_WEBHOOK_TOKEN)"
)
@click.option("--correlator-stages", type=click.Choice(["here", "apart"]),
              help="Run the correlator's stages in this worker (here, the default) or leave them to "
                   "`lookout correlator` processes (apart) [env LOOKOUT_CORRELATOR_STAGES]")
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

    After an upgrade that changes the models (their fingerprint), the saved state is refused;
    --rebuild-from 7d rebuilds each assigned partition's customers from the input topic's last
    7 days (replay's code path, no alerts for the past) before its first live event, keeps what
    the state format could carry over, snapshots the result and goes live where the old worker
    stopped. Progress is in the log; /healthz answers 503 "rebuilding partition N: x %" meanwhile.

    \b
    Examples:
      lookout worker --bootstrap 127.0.0.1:9092 --web-port 6066 --data-dir .lookout/w1
      lookout worker --config detectors.yaml --alertmanager-url http://127.0.0.1:9093
      lookout replay history.jsonl.gz --save-state state.lookout
      lookout worker --initial-state state.lookout
      lookout worker --config detectors-v2.yaml --rebuild-from 7d     # upgrade across a model change
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
        settings = Settings.from_env(**opts)
        run_worker(settings, history=_history(settings))
    except (SettingsError, ConfigError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None


def _duration(value: str | None) -> str | None:
    """--rebuild-from checked now: a bad duration is a usage error (exit status 2)."""
    try:
        rebuild_seconds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _history(settings: Settings):
    """What a rebuild reads the input's history with: replay's Kafka source (see streams.offline.history)."""
    from ..kafka.security import kafka_python_kwargs
    from ..offline.history import PartitionHistory

    def make(processor):
        return PartitionHistory(settings.input_topic, settings.bootstrap, processor,
                                security=kafka_python_kwargs(settings), timeout_s=settings.kafka_timeout_s)

    return make
