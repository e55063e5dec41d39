"""``lookout silence``: customer maintenance windows (:mod:`streams.steering.service`)."""
from __future__ import annotations

import getpass
import json
import time

import click

from detectors.events import format_ts
from detectors.signals import SIGNALS
from detectors.silences import MODES

from ..settings import Settings, SettingsError
from ..steering.service import (
    SteeringError,
    Topics,
    add_alertmanager_silence,
    add_window,
    expire_window,
    list_windows,
)
from ..steering.store import StoreError
from ._common import CONTEXT, RequestError, connect_store, load_detector_config, parse_duration, parse_when
from .kafka_options import kafka_security_options, pop_security


def _context(bootstrap, kafka):

    try:
        s = Settings.from_env(bootstrap=bootstrap, **pop_security(kafka))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return connect_store(s), Topics(s.feedback_topic, s.silences_topic)


def _run(fn, *args, **kwargs):

    try:
        return fn(*args, **kwargs)
    except SteeringError as exc:
        raise RequestError(str(exc)) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def describe(w, now: float) -> str:
    """One line per window: id, customer (signal), mode, current or next occurrence, rule, reason."""
    occ = w.occurrence_at(now)
    if occ is not None:
        when = f"NOW until {format_ts(occ[1])}"
    else:
        nxt = [o for o in w.occurrences(now, now + 366 * 86400.0) if o[0] >= now]
        when = f"next {format_ts(nxt[0][0])} - {format_ts(nxt[0][1])}" if nxt else (
            f"ended {format_ts(w.expired_at if w.expired_at is not None else w.end)}")
    who = f"{w.customer_id}" + (f" ({w.signal})" if w.signal else "")
    extra = (f" every {w.rrule}" if w.rrule else "") + (f"  {w.reason}" if w.reason else "")
    return f"{w.id:<16} {who:<28} {w.mode:<6} {when}{extra}  [by {w.by or '-'}]"


@click.group(context_settings=CONTEXT)
def silence():
    """Customer maintenance windows: mute notifications, keep an announced change out of the models.

    \b
    Modes:
      notify  no notifications for the customer; alerts still go to the topic with silenced_by,
              and an incident open when the window starts still resolves at the sinks
      learn   the models score but do not learn from the window (a migration, a load test)
      both    (default) both
    A customer still anomalous when a window ends alerts within 2 intervals.
    """


@silence.command(context_settings=CONTEXT)
@click.option("--customer", metavar="ID", help="The customer (required unless --alertmanager).")
@click.option("--signal", type=click.Choice(list(SIGNALS)), help="Only this signal [default: all].")
@click.option("--from", "start", default="now", show_default=True, metavar="TIME",
              help="Start: now, RFC 3339, epoch seconds, or from now (+2h, in 30m). A window that began "
              "before it is created applies from its start.")
@click.option("--until", metavar="TIME", help="End (as --from), or give --for.")
@click.option("--for", "duration", metavar="DURATION", help="Length instead of --until (4h, 90m, 1d).")
@click.option("--rrule", metavar="RULE", help="Repeat: an RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SU.")
@click.option("--mode", type=click.Choice(MODES), default="both", show_default=True)
@click.option("--reason", default="", metavar="TEXT", help="Why (shown by `silence list`).")
@click.option("--by", default=None, metavar="NAME", help="Who announces it [default: your user name].")
@click.option("--alertmanager", "am_file", type=click.File("r"), metavar="FILE",
              help="Read an Alertmanager silence (JSON: matchers on customer/signal, startsAt, endsAt, "
              "createdBy, comment) instead; '-' = stdin.")
@click.option("--config", metavar="FILE", help="Detector config: feedback.max_window_s, max_backdate_s.")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap [env LOOKOUT_BOOTSTRAP].")
@click.option("--json", "as_json", is_flag=True, help="Print the window written, as JSON.")
@kafka_security_options
def add(customer, signal, start, until, duration, rrule, mode, reason, by, am_file, config, bootstrap,
        as_json, **kafka):
    """Announce a maintenance window for one customer (topic `silences`).

    \b
    Examples:
      lookout silence add --customer acme --from 2026-01-10T22:00:00Z --for 4h --reason "origin migration"
      lookout silence add --customer acme --signal latency_p99 --from now --for 2h --mode notify
      lookout silence add --customer acme --from 2026-01-11T02:00:00Z --for 1h --rrule "FREQ=WEEKLY;BYDAY=SU"
      lookout silence add --alertmanager silence.json
    """

    fb = load_detector_config(config).feedback
    now = time.time()
    if am_file is not None:
        try:
            obj = json.load(am_file)
        except ValueError as exc:
            raise RequestError(f"--alertmanager: not JSON: {exc}") from None
        store, topics = _context(bootstrap, kafka)
        w = _run(add_alertmanager_silence, store, fb, obj, now=now, topics=topics)
    else:
        if not customer:
            raise click.UsageError("--customer is required (or --alertmanager FILE)")
        if (until is None) == (duration is None):
            raise click.UsageError("give --until or --for")
        t0 = parse_when(start, now, "--from")
        if duration is not None:
            try:
                t1 = t0 + parse_duration(duration)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--for") from None
        else:
            t1 = parse_when(until, now, "--until")
        store, topics = _context(bootstrap, kafka)
        w = _run(add_window, store, fb, customer_id=customer, start=t0, until=t1, now=now, signal=signal,
                 rrule=rrule, mode=mode, reason=reason, by=by if by is not None else getpass.getuser(),
                 topics=topics)
    click.echo(json.dumps(w.to_json(), sort_keys=True) if as_json else describe(w, now))


@silence.command("list", context_settings=CONTEXT)
@click.option("--customer", metavar="ID", help="Only this customer.")
@click.option("--all", "include_past", is_flag=True, help="Also windows that are over or expired.")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap [env LOOKOUT_BOOTSTRAP].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@kafka_security_options
def list_(customer, include_past, bootstrap, as_json, **kafka):
    """What is muted right now (NOW) and what is announced to come.

    \b
    Examples:
      lookout silence list
      lookout silence list --customer acme --all --json
    """

    store, topics = _context(bootstrap, kafka)
    now = time.time()
    windows = _run(list_windows, store, now=now, include_past=include_past, customer_id=customer,
                   topics=topics)
    for w in windows:
        click.echo(json.dumps(w.to_json(), sort_keys=True) if as_json else describe(w, now))
    if not windows and not as_json:
        click.echo("no maintenance windows" + (" for " + customer if customer else ""))


@silence.command(context_settings=CONTEXT)
@click.argument("window_id")
@click.option("--by", default=None, metavar="NAME", help="Who ends it [default: your user name].")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap [env LOOKOUT_BOOTSTRAP].")
@kafka_security_options
def expire(window_id, by, bootstrap, **kafka):
    """End a window now (an occurrence in progress ends now; a recurring one does not come back).

    \b
    Example:
      lookout silence expire mw-3eb688f2ce
    """

    store, topics = _context(bootstrap, kafka)
    now = time.time()
    w = _run(expire_window, store, window_id, now=now, by=by if by is not None else getpass.getuser(),
             topics=topics)
    click.echo(describe(w, now))

