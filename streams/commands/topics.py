"""``lookout topics``: create the topics the worker uses."""
from __future__ import annotations

import json

import click

from ..kafka.admin import BrokerError, create_lookout_topics
from ..settings import Settings, SettingsError
from .kafka_options import kafka_security_options, pop_security


@click.group()
def topics():
    """Manage Lookout's Kafka topics (input, alerts and dead-letter topics).

    \b
    Example:
      lookout topics create --bootstrap 127.0.0.1:9092
    """


@topics.command("create")
@click.option("--bootstrap", help="Kafka bootstrap servers [env LOOKOUT_BOOTSTRAP, default 127.0.0.1:9092]")
@click.option("--partitions", type=int, help="Partitions of the input and alerts topics [default 4]")
@click.option("--json", "as_json", is_flag=True, help="Print {topic: {partitions, created}} as JSON.")
@kafka_security_options
def create(bootstrap, partitions, as_json, **kafka):
    """Create request-metrics, alerts and the dead-letter topics (existing ones are left alone).

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
