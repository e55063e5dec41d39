"""What several commands share: loading their inputs with one-line errors (``click.ClickException``)."""
from __future__ import annotations

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def load_labels(path: str | None) -> list:
    """Labelled incidents from ``path`` (JSON lines or CSV); ``[]`` without a path."""
    if not path:
        return []
    from detectors.synthetic import read_labels

    try:
        return read_labels(path)
    except FileNotFoundError:
        raise click.ClickException(f"labels file not found: {path}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"labels: {exc}") from None


def load_detector_config(path: str | None, what: str = "config"):
    """The detector config at ``path`` (defaults without one); errors name the option ``--what``."""
    from detectors.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"--{what}: {exc}") from None


def open_source_or_fail(spec: str, maps, fmt: str, bootstrap: str | None):
    """A replay source for ``spec``; a Kafka source is connected now so errors come before any work."""
    from streams.replay import KafkaSource, SourceError, open_source, parse_mapping
    from streams.settings import Settings

    try:
        mapping = parse_mapping(maps)
        src = open_source(spec, mapping=mapping, fmt=fmt,
                          default_bootstrap=bootstrap or Settings.from_env().bootstrap)
        if isinstance(src, KafkaSource):
            src.prepare()
        return src
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None


def make_out_dir(out):
    """Create the output directory ``out`` (a Path) or fail in one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"--out {out}: {exc.strerror or exc}") from None
    return out
