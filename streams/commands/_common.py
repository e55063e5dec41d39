"""What several commands share: loading their inputs with one-line errors (``click.ClickException``)."""
from __future__ import annotations

import click

from detectors.config import ConfigError, load_config

from ..offline.simfiles import read_labels

# re-exported: the commands parse durations too (it lives with the settings, which parse LOOKOUT_REBUILD_FROM)
from ..settings import parse_duration as parse_duration

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
    from detectors.catalogue import CatalogueError
    from streams.offline.catalogue_files import read_catalogue

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
