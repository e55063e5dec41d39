"""What several commands share: loading their inputs with one-line errors (``click.ClickException``),
and stopping a command that follows something on Ctrl-C (:func:`stop_on_interrupt`)."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

import click

from detectors.catalogue import CatalogueError
from detectors.config import ConfigError, load_config
from detectors.events import InvalidEvent, parse_time
from detectors.feedback import InvalidRecord
from detectors.steering import Steering

from ..kafka.admin import BrokerError
from ..offline.catalogue_files import read_catalogue
from ..offline.simfiles import read_labels

# re-exported: the commands parse durations too (it lives with the settings, which parse LOOKOUT_REBUILD_FROM)
from ..settings import parse_duration as parse_duration
from ..steering.records import FEEDBACK, SILENCES, SteeringFeed, load_lines
from ..steering.store import KafkaStore

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) sets, for a command that follows something until interrupted;
    Ctrl-C still raises ``KeyboardInterrupt`` as well.

    kafka-python 3 runs its network tasks in a loop that catches every exception, so a
    ``KeyboardInterrupt`` raised while one of them ran was swallowed and ``lookout alerts tail``
    went on following (seen under load). The event cannot be swallowed: a loop that checks it
    at every poll stops either way.
    """
    stop = threading.Event()

    def interrupted(signum, frame):
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_when(text: str, now: float, what: str) -> float:
    """A point in time on the command line: ``now``, RFC 3339, epoch seconds, or a duration from
    now: ``+2h`` / ``in 2h`` ahead, ``-30m`` / ``30m ago`` back.

    >>> parse_when("+2h", 1000.0, "--from"), parse_when("30m ago", 7200.0, "--from")
    (8200.0, 5400.0)
    >>> parse_when("2026-01-05T10:00:00Z", 0.0, "--until")
    1767607200.0
    """

    t = text.strip().lower()
    if t == "now":
        return now
    sign = 0
    if t.startswith(("+", "in ")):
        sign, t = 1, t.removeprefix("+").removeprefix("in ").strip()
    elif t.startswith("-") or t.endswith(" ago"):
        sign, t = -1, t.removeprefix("-").removesuffix(" ago").strip()
    if sign:
        try:
            return now + sign * parse_duration(t)
        except ValueError:
            pass
    else:
        try:
            return parse_time(text.strip())
        except InvalidEvent:
            pass
    raise click.BadParameter("expected now, RFC 3339 (2026-01-05T10:00:00Z), epoch seconds, or a time from "
                             "now (+2h, in 30m, 1h ago)", param_hint=what)


class RequestError(click.ClickException):
    """A request the command cannot carry out because of what was asked: exit status 2, one line."""

    exit_code = 2


def load_labels(path: str | None) -> list:
    """Labelled incidents from ``path`` (JSON lines or CSV); ``[]`` without a path."""
    if not path:
        return []
    try:
        return read_labels(path)
    except FileNotFoundError:
        raise click.ClickException(f"labels file not found: {path}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"labels: {exc}") from None


def load_catalogue(path: str | None, option: str = "FILE"):
    """The customer catalogue in ``path`` (JSON lines or CSV, gzip ok); every bad line in the error."""
    if not path:
        return None

    try:
        return read_catalogue(path)
    except FileNotFoundError:
        raise click.ClickException(f"{option}: customers file not found: {path}") from None
    except CatalogueError as exc:
        raise click.ClickException(f"{option}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{option}: cannot read {path}: {exc}") from None


def load_detector_config(path: str | None, what: str = "config"):
    """The detector config at ``path`` (defaults without one); errors name the option ``--what``."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"--{what}: {exc}") from None


def deprecated_alias(old: str, new: str, **attrs):
    """A hidden option ``old`` kept working for ``new`` (warns on stderr); read it with :func:`aliased`.

    Its value is kept aside (not passed to the command) so that the two names never overwrite
    each other; :func:`aliased` returns the new option's value, else the old one's.
    """

    def remember(ctx: click.Context, _param: click.Parameter, value):
        if value is not None:
            click.echo(f"Warning: {old} is deprecated; use {new}", err=True)
            ctx.meta.setdefault("lookout.aliases", {})[new] = value
        return value

    return click.option(old, hidden=True, expose_value=False, callback=remember, **attrs)


def aliased(new: str, value):
    """``value`` of option ``new``, or the value given under its deprecated alias."""
    if value is not None:
        return value
    return click.get_current_context().meta.get("lookout.aliases", {}).get(new)


def load_steering(config, feedback_path: str | None, silences_path: str | None):
    """The verdicts and windows of the ``--feedback``/``--silences`` files (None without either)."""
    if not feedback_path and not silences_path:
        return None

    feed = SteeringFeed(Steering(config))
    files = ((feedback_path, FEEDBACK, "--feedback"), (silences_path, SILENCES, "--silences"))
    for path, topic, opt in files:
        if not path:
            continue
        try:
            with open(path, "rb") as fh:
                load_lines(feed, topic, fh, name=f"{opt} {path}")
        except OSError as exc:
            raise RequestError(f"{opt} {path}: {exc.strerror or exc}") from None
        except InvalidRecord as exc:
            raise RequestError(str(exc)) from None
    return feed.steering


def connect_store(settings):
    """The verdicts' and windows' store (:class:`~streams.steering.store.KafkaStore`) once the
    broker answers; one line (exit 1) when it does not or rejects the TLS/SASL settings."""

    try:
        return KafkaStore.connect(settings)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
