"""``lookout feedback``: an engineer's verdict on an alert (:func:`streams.steering.service.give_verdict`)."""
from __future__ import annotations

import getpass
import json
import time

import click

from detectors.feedback import VERDICTS

from ..settings import Settings, SettingsError
from ..steering.service import SteeringError, Topics, give_verdict, withdraw_verdict
from ..steering.store import StoreError
from ._common import CONTEXT, RequestError, connect_store, parse_duration
from .kafka_options import kafka_security_options, pop_security


@click.command(context_settings=CONTEXT)
@click.argument("alert_id")
@click.option("--verdict", type=click.Choice(VERDICTS),
              help="What the alert was (required unless --withdraw).")
@click.option("--withdraw", is_flag=True, help="Withdraw the verdict given on ALERT_ID (its effects end).")
@click.option("--note", default="", metavar="TEXT", help="Why, for the audit trail (at most 500 characters).")
@click.option("--by", default=None, metavar="NAME", help="Who gives it [default: your user name].")
@click.option("--since", default="30d", show_default=True, metavar="DURATION",
              help="How far back to look for ALERT_ID on the alerts topic.")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap [env LOOKOUT_BOOTSTRAP].")
@click.option("--json", "as_json", is_flag=True, help="Print the record written, as JSON.")
@kafka_security_options
def feedback(alert_id, verdict, withdraw, note, by, since, bootstrap, as_json, **kafka):
    """Tell Lookout what an alert was; the worker that owns its customer applies it within one interval.

    \b
    false_alarm  the customer x signal needs more evidence next time (near that time of day
                 more than this alert had), fading over weeks; the incident resolves now
    expected     the incident's range is taken back out of the model; it resolves now
    new_normal   the model accepts the current level now instead of after 24 h
    confirmed    it was real (kept for evaluation; removes a false-alarm offset)

    The verdict goes to the compacted topic `feedback` (key = ALERT_ID) with who and when, and
    is recorded on the alert's resolved notification. Exit status 2 if the alert id is unknown.

    \b
    Examples:
      lookout feedback 39b3b6ed530df191 --verdict false_alarm --note "nightly crawler"
      lookout feedback 39b3b6ed530df191 --verdict expected --by alice
      lookout feedback 39b3b6ed530df191 --withdraw
    """

    if withdraw == (verdict is not None):
        raise click.UsageError("give either --verdict or --withdraw")
    try:
        lookback = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        s = Settings.from_env(bootstrap=bootstrap, **pop_security(kafka))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    store, topics, now = connect_store(s), Topics(s.feedback_topic, s.silences_topic), time.time()
    who = by if by is not None else getpass.getuser()
    try:
        if withdraw:
            v = withdraw_verdict(store, alert_id, now=now, by=who, topics=topics)
        else:
            v = give_verdict(store, alert_id, verdict, now=now, by=who, note=note, since=now - lookback,
                             topics=topics)
    except SteeringError as exc:
        raise RequestError(str(exc)) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:  # one line: append it to a file for `lookout replay --feedback`
        click.echo(json.dumps(v.to_json(), sort_keys=True))
        return
    what = f"{v.verdict} withdrawn" if v.withdrawn_at is not None else v.verdict
    click.echo(f"{alert_id}: {what} for {v.customer_id} ({', '.join(v.signals)}) by {v.by or '-'}")

