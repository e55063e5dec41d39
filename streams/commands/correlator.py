"""``lookout correlator``: run the correlator's stages in a process of their own."""
from __future__ import annotations

from pathlib import Path

import click

from detectors.config import ConfigError

from ..kafka.admin import BrokerError
from ..settings import Settings, SettingsError
from .kafka_options import kafka_security_options


@click.command()
@click.option("--bootstrap", help="Kafka bootstrap servers [env LOOKOUT_BOOTSTRAP, default 127.0.0.1:9092]")
@click.option("--web-port", type=int,
              help="Port of /metrics and /healthz [env LOOKOUT_WEB_PORT]; not a worker's port on the "
                   "same machine")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data dir; its own, not a worker's")
@click.option("--config", "detector_config", type=click.Path(path_type=Path, dir_okay=False),
              help="Detector config (YAML/TOML): its `correlator` section, the same the workers read")
@click.option("--app-id", help="The workers' app id [default lookout]: the topics are theirs, the consumer "
                               "group is <app-id>-correlator")
@click.option("--loglevel", "log_level", type=click.Choice(["crit", "error", "warn", "info", "debug"]),
              help="Log level [default warn]")
@kafka_security_options
def correlator(**opts):
    """Run the correlator's stages apart from the detection workers.

    By default every `lookout worker` runs the whole correlator inside itself: it publishes its
    alerts' onsets by group (topic `<app-id>-onsets`), counts them per group (stage one), and tests
    them and forms parent incidents (stage two, topic `<app-id>-parents`), which it writes to
    `incidents` and, with every alert and its `parent_id`, to `alerts-routed` (what the sinks read).

    The stages cost a detection worker ~10 % of its events per CPU-second at full load. Start the
    workers with `--correlator-stages apart` (env LOOKOUT_CORRELATOR_STAGES=apart) and run the stages
    here instead: the workers then only publish (~3 %), and the stages' CPU is this process's. Run
    one or more (their consumer group is `<app-id>-correlator`: they share the onsets partitions;
    stage two runs on one of them at a time). Their state is in `<app-id>-correlator-state`, the
    same topic a worker's stages write, so moving the stages in or out of the workers keeps every
    open parent. While no correlator runs, alerts wait (they reach the sinks when it starts): run
    it under a supervisor, like the workers. A stage that fails exits with status 70. Give it the
    workers' LOOKOUT_* settings (app id, partitions, topic names, Kafka security): it reads their
    topics. The workers count it: `lookout_correlator_processes` on their /metrics, and a WARNING
    in their log while none runs.

    \b
    Examples:
      lookout worker --correlator-stages apart --web-port 6066 --data-dir .lookout/w1
      lookout correlator --web-port 6070 --data-dir .lookout/correlator
    """
    from ..worker.run import run_correlator

    try:
        settings = Settings.from_env(**opts)
        if not settings.correlator:
            raise SettingsError("LOOKOUT_CORRELATOR is false: there is nothing for `lookout correlator` "
                                "to run")
        run_correlator(settings)
    except (SettingsError, ConfigError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None
