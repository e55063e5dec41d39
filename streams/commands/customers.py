"""``lookout customers``: the customer catalogue the correlator groups customers by."""
from __future__ import annotations

import json

import click

from detectors.events import CUSTOMER_ID_RE

from ..correlation.customers import publish_catalogue
from ..kafka.admin import BrokerError, create_topics, wait_for_kafka
from ..kafka.security import kafka_python_kwargs
from ..settings import Settings, SettingsError
from ._common import CONTEXT, load_catalogue
from .kafka_options import kafka_security_options, pop_security


@click.group(context_settings=CONTEXT)
def customers():
    """The customer catalogue: free-form attributes per customer on the compacted `customers` topic.

    The correlator groups customers by the attributes named in the detector config
    (correlator.group_by: origin_region, origin_provider, origin_asn, account_team, plan by
    default); every worker reads the whole topic and follows it.

    \b
    Example:
      lookout customers load customers.jsonl --bootstrap 127.0.0.1:9092
    """


@customers.command("load", context_settings=CONTEXT)
@click.argument("file")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap [env LOOKOUT_BOOTSTRAP].")
@click.option("--topic", metavar="NAME", help="Topic [env LOOKOUT_CUSTOMERS_TOPIC, default customers].")
@click.option("--remove", "remove", multiple=True, metavar="CUSTOMER",
              help="Also remove this customer (a tombstone; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {customers, removed, topic} as JSON.")
@kafka_security_options
def load(file, bootstrap, topic, remove, as_json, **kafka):
    """Publish FILE (JSON lines or CSV) to the customers topic: one record per customer.

    JSON lines: one object per customer, `customer_id` and its attributes
    ({"customer_id": "acme", "plan": "enterprise", "origin_provider": "provider-a"}).
    CSV: a header naming a `customer_id` column; the other columns are attributes, an empty
    cell is no value. Values are strings (numbers and booleans are kept as their text).
    A file with a bad line is not published at all: every bad line is listed with its number
    (exit status 1). Customers already on the topic and not in FILE are kept (--remove drops one).

    \b
    Examples:
      lookout customers load customers.jsonl
      lookout customers load export.csv --bootstrap kafka.example:9093 --kafka-security-protocol SSL
      lookout simulate --customers 200 --days 14 --shared-causes 6 --out sim.jsonl.gz
      lookout customers load sim.customers.jsonl
    """

    cat = load_catalogue(file)
    bad = [r for r in remove if not CUSTOMER_ID_RE.match(r)]
    if bad:
        raise click.BadParameter(f"not a customer id: {bad[0]!r}", param_hint="--remove")
    try:
        s = Settings.from_env(bootstrap=bootstrap, customers_topic=topic, **pop_security(kafka))
        security = kafka_python_kwargs(s)
        wait_for_kafka(s.bootstrap, timeout=s.kafka_timeout_s, security=security)
        create_topics(s.bootstrap, {s.customers_topic: s.partitions}, connect_timeout=s.kafka_timeout_s,
                      security=security, compacted=[s.customers_topic])
        n = publish_catalogue(cat, s.customers_topic, s.bootstrap, security, remove=remove,
                              timeout_s=max(30.0, s.kafka_timeout_s))
    except (SettingsError, BrokerError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"customers": len(cat), "removed": len(remove), "topic": s.customers_topic}))
    else:
        click.echo(f"published {len(cat):,} customers" + (f" and {len(remove)} removals" if remove else "")
                   + f" to {s.customers_topic} at {s.bootstrap} ({n:,} records)")
