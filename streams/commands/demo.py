"""``lookout demo``: the whole product on one machine in a couple of minutes."""
from __future__ import annotations

import click

from ..devtools.demo import Demo, DemoOptions
from ..kafka.admin import BrokerError
from ..settings import Settings, SettingsError
from ._common import stop_on_interrupt
from .kafka_options import kafka_security_options, pop_security


@click.command()
@click.option("--customers", default=30, show_default=True, help="Simulated customers.")
@click.option(
    "--days", default=3.0, show_default=True, help="Days of simulated history (models warm up for one day)."
)
@click.option("--interval", "interval_s", default=300, show_default=True, help="Seconds per event interval.")
@click.option(
    "--seed", default=7, show_default=True, help="Simulator seed (same seed, same traffic and incidents)."
)
@click.option("--kinds", default=",".join(("origin_outage", "partial_5xx", "latency", "traffic_drop",
                                            "traffic_surge", "cache_collapse")), show_default=True,
              help="Comma-separated incident kinds to inject, one incident each.")
@click.option("--speed", "live_intervals_per_s", default=8.0, show_default=True,
              help="Intervals per second in the live phase (the last hours, where the incidents are).")
@click.option("--web-port", default=6066, show_default=True, help="Worker /metrics port.")
@click.option("--bootstrap", help="Use this running Kafka instead of starting a local broker.")
@click.option("--broker-port", type=int, help="Port of the local broker the demo starts [default 9092].")
@click.option("--controller-port", type=int, help="KRaft controller port of that broker [default 9094].")
@click.option("--keep-broker", is_flag=True, help="Leave the local broker running afterwards.")
@kafka_security_options
def demo(customers, days, interval_s, seed, kinds, live_intervals_per_s, web_port, bootstrap, broker_port,
         controller_port, keep_broker, **kafka):
    """Run broker, worker and simulator together and watch alerts arrive live.

    Starts a local single-node Kafka (unless --bootstrap is given), creates run-specific
    topics, starts a detection worker, streams simulated traffic with one injected incident
    per kind and prints every alert as it arrives: what moved, observed vs expected, since
    when, and a first diagnosis for support. Ends with which injected incidents were
    detected and how fast, then stops everything it started.

    \b
    Examples:
      lookout demo
      lookout demo --customers 100 --kinds origin_outage,traffic_drop
      lookout demo --bootstrap 127.0.0.1:9092     # reuse a broker you run
      lookout demo --broker-port 29092 --controller-port 29094 --web-port 6166
      LOOKOUT_KAFKA_SASL_PASSWORD=alice-secret lookout demo --kafka-sasl-mechanism SCRAM-SHA-256 \\
          --kafka-sasl-username alice    # its own broker then requires that SASL user too
    """
    try:
        settings = Settings.from_env(broker_port=broker_port, broker_controller_port=controller_port,
                                     **pop_security(kafka))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    opts = DemoOptions(customers=customers, days=days, interval_s=interval_s, seed=seed,
                       kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
                       live_intervals_per_s=live_intervals_per_s, web_port=web_port,
                       bootstrap=bootstrap, keep_broker=keep_broker)
    try:
        with stop_on_interrupt() as stop:
            Demo(settings, opts, stop=stop).run()
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; everything the demo started has been stopped") from None
    except BrokerError as exc:
        hint = ""
        if "already in use" in str(exc):
            hint = ("\n  the demo starts its own broker: free the port, choose others with --broker-port/"
                    "--controller-port, or use a running Kafka with --bootstrap HOST:PORT")
        raise click.ClickException(f"{exc}{hint}") from None
    except (RuntimeError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
