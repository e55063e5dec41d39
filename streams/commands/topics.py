"""``lookout topics``: create the topics the worker uses."""
from __future__ import annotations

import json

import click

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
    """Create request-metrics, alerts, the dead-letter topics and the compacted feedback and silences
    topics (existing ones are left alone).

    Topic names come from settings (LOOKOUT_INPUT_TOPIC, LOOKOUT_ALERTS_TOPIC,
    LOOKOUT_DLQ_TOPIC, LOOKOUT_SINK_DLQ_TOPIC, LOOKOUT_FEEDBACK_TOPIC, LOOKOUT_SILENCES_TOPIC).

    \b
    Example:
      lookout topics create --bootstrap 127.0.0.1:9092 --partitions 8
      LOOKOUT_KAFKA_SASL_PASSWORD=... lookout topics create --bootstrap kafka.example:9093 \\
          --kafka-security-protocol SASL_SSL --kafka-sasl-mechanism SCRAM-SHA-512 \\
          --kafka-sasl-username lookout
    """
    from streams.kafka.admin import BrokerError, create_topics
    from streams.kafka.security import kafka_python_kwargs

    try:
        s = Settings.from_env(bootstrap=bootstrap, partitions=partitions, **pop_security(kafka))
        wanted = {
            s.input_topic: s.partitions,
            s.alerts_topic: s.partitions,
            s.dlq_topic: 1,
            s.sink_dlq_topic: 1,
            s.feedback_topic: 1,
            s.silences_topic: 1,
        }
        made = create_topics(
            s.bootstrap, wanted, connect_timeout=s.kafka_timeout_s, security=kafka_python_kwargs(s),
            compacted=(s.feedback_topic, s.silences_topic),
        )
    except (SettingsError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps(
                {name: {"partitions": parts, "created": name in made} for name, parts in wanted.items()},
                indent=2,
            )
        )
        return
    for name, parts in wanted.items():
        click.echo(f"{name:<28} {parts} partition(s)  {'created' if name in made else 'exists'}")
