"""``lookout alerts``: watch the alerts the workers send."""
from __future__ import annotations

import sys
import time

import click

from detectors.events import InvalidEvent, parse_time

from ..kafka.admin import BrokerError
from ..settings import Settings, SettingsError
from ..sinks.alert_tail import TailError
from ..sinks.alert_tail import tail as tail_alerts
from ._common import CONTEXT, parse_duration, stop_on_interrupt
from .kafka_options import kafka_security_options, pop_security


def parse_since(text: str, now: float) -> float:
    """``--since``: RFC 3339 or epoch seconds, or a duration back from ``now`` (``2h``, ``30m``, ``1d12h``).

    >>> parse_since("2h", now=1_000_000.0)
    992800.0
    >>> parse_since("2026-01-05T10:00:00Z", now=0.0)
    1767607200.0
    """
    t = text.strip()
    if t[-1:].isalpha() and not t.upper().endswith("Z"):
        try:
            return now - parse_duration(t)
        except ValueError:
            pass
    try:
        return parse_time(t)
    except InvalidEvent:
        raise click.BadParameter("expected RFC 3339 (2026-01-05T10:00:00Z), epoch seconds, or a duration "
                                 "back from now (2h, 30m, 1d12h)", param_hint="--since") from None


@click.group(context_settings=CONTEXT)
def alerts():
    """Watch the alerts the workers send (topic `alerts`, or with the correlator its routed alerts
    and parent incidents)."""


@alerts.command(context_settings=CONTEXT)
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap [env LOOKOUT_BOOTSTRAP, default 127.0.0.1:9092].",
)
@click.option("--topic", metavar="TOPIC", help="Alerts topic [env LOOKOUT_ALERTS_TOPIC, default alerts].")
@click.option("--customer", "customers", multiple=True, metavar="ID", help="Only this customer (repeatable).")
@click.option(
    "--since",
    default="1h",
    show_default=True,
    metavar="TIME",
    help="Start with alerts sent since TIME: RFC 3339, epoch seconds, or back from now (2h, 30m, 1d); "
    "'now' = only new ones.",
)
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep waiting for new alerts (Ctrl-C stops), or stop at the end of the topic.")
@click.option("--parents/--no-parents", default=None,
              help="Follow the correlator's routed alerts and parent incidents, children folded under "
              "their parents [default: on unless LOOKOUT_CORRELATOR=false], or the raw alerts topic.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the alerts topic schema).")
@kafka_security_options
def tail(bootstrap, topic, customers, since, follow, parents, as_json, **kafka):
    """Print alerts as they arrive, like the demo does (or as JSON lines for scripts).

    Reads without a consumer group and never commits offsets, so it disturbs nobody.

    \b
    Examples:
      lookout alerts tail                              # the last hour, then follow
      lookout alerts tail --customer acme-prod --since 2026-01-05T08:00:00Z
      lookout alerts tail --since now --json | jq -r .summary
      lookout alerts tail --since 1d --no-follow       # what fired today, then exit
      lookout alerts tail --no-parents                 # the raw alerts topic, nothing folded

    With the correlator (the default), it follows the routed alerts and the parent incidents:
    a parent is shown with its children (two lines) when it opens, escalates and resolves, and
    each alert folded under it is one short indented line.
    """
    try:
        settings = Settings.from_env(bootstrap=bootstrap, alerts_topic=topic, **pop_security(kafka))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    start = None if since.strip().lower() == "now" else parse_since(since, time.time())
    try:
        with stop_on_interrupt() as stop:  # set even where the Kafka client swallows the interrupt
            tail_alerts(settings, start, customers, follow=follow, as_json=as_json, stop=stop,
                        # --topic: that topic, raw
                        parents=(settings.correlator if parents is None else parents) and not topic)
    except (TailError, BrokerError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl-C is how one stops following: not an error
        pass
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
