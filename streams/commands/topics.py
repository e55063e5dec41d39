"""``lookout topics``: create the topics the worker uses."""
from __future__ import annotations

import json

import click

from ..kafka.admin import BrokerError, create_lookout_topics
from ..settings import Settings, SettingsError
from ..worker.repartition import RepartitionError, repartition_topics
from ._common import load_detector_config
from .kafka_options import kafka_security_options, pop_security


@click.group()
def topics():
    """Manage Lookout's Kafka topics (input, alerts and dead-letter topics).

    \b
    Examples:
      lookout topics create --bootstrap 127.0.0.1:9092
      lookout topics repartition --partitions 12      # after growing the input topic, workers stopped
    """


@topics.command("create")
@click.option("--bootstrap", help="Kafka bootstrap servers [env LOOKOUT_BOOTSTRAP, default 127.0.0.1:9092]")
@click.option("--partitions", type=int, help="Partitions of the input and alerts topics [default 4]")
@click.option("--json", "as_json", is_flag=True, help="Print {topic: {partitions, created}} as JSON.")
@kafka_security_options
def create(bootstrap, partitions, as_json, **kafka):
    """Create request-metrics, alerts, the dead-letter topics and the correlator's (existing ones are left
    alone).

    Topic names come from settings (LOOKOUT_INPUT_TOPIC, LOOKOUT_ALERTS_TOPIC,
    LOOKOUT_DLQ_TOPIC, LOOKOUT_SINK_DLQ_TOPIC).

    \b
    Example:
      lookout topics create --bootstrap 127.0.0.1:9092 --partitions 8
      LOOKOUT_KAFKA_SASL_PASSWORD=... lookout topics create --bootstrap kafka.example:9093 \\
          --kafka-security-protocol SASL_SSL --kafka-sasl-mechanism SCRAM-SHA-512 \\
          --kafka-sasl-username lookout
    """
    try:
        s = Settings.from_env(bootstrap=bootstrap, partitions=partitions, **pop_security(kafka))
        topics = create_lookout_topics(s)
    except (SettingsError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        as_dict = {name: {"partitions": parts, "created": made} for name, (parts, made) in topics.items()}
        click.echo(json.dumps(as_dict, indent=2))
        return
    for name, (parts, made) in topics.items():
        click.echo(f"{name:<28} {parts} partition(s)  {'created' if made else 'exists'}")


@topics.command("repartition")
@click.option("--partitions", type=click.IntRange(min=1), required=True,
              help="The input topic's partition count to lay everything out for (at least its current one)")
@click.option("--bootstrap", help="Kafka bootstrap servers [env LOOKOUT_BOOTSTRAP, default 127.0.0.1:9092]")
@click.option("--app-id", help="The workers' app id = consumer group; the state topic is <app-id>-state "
                               "[env LOOKOUT_APP_ID, default lookout]")
@click.option("--config", "detector_config", type=click.Path(dir_okay=False),
              help="The workers' detector config (YAML/TOML) [env LOOKOUT_DETECTOR_CONFIG]")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@kafka_security_options
def repartition(partitions, bootstrap, app_id, detector_config, as_json, **kafka):
    """Lay alerts and detector state out for N input partitions, with the workers stopped.

    A customer's events, state and alerts live in the partition its id hashes to, so when the
    input topic grows, most customers move. The workers notice and stop (exit status 78) rather
    than split a customer. With every worker of the group stopped, this grows the input, alerts
    and state topics to N partitions, runs the events after the last snapshot through the
    detectors in an order that keeps each customer's events in order, moves every customer's
    state to its new partition and writes new snapshot markers and committed offsets: no alert
    lost, repeated or added, no customer warming up again. Then start the workers. Safe to run
    again if interrupted. Producers should use the new count before the workers start (Kafka
    clients pick it up within 5 minutes, or restart them).

    \b
    Examples:
      lookout topics repartition --partitions 12 --bootstrap 127.0.0.1:9092
      lookout topics repartition --partitions 12 --app-id lookout --config detectors.yaml
    """
    try:
        s = Settings.from_env(bootstrap=bootstrap, app_id=app_id, detector_config=detector_config,
                              **pop_security(kafka))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    load_detector_config(s.detector_config)  # one line on a bad config, before any change
    progress = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        report = repartition_topics(s, partitions, progress=progress)
    except (RepartitionError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.__dict__, indent=2))
        return
    for line in report.lines():
        click.echo(line)
