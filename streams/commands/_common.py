"""What several commands share: loading their inputs with one-line errors (``click.ClickException``)."""
from __future__ import annotations

import click

# re-exported: the commands parse durations too (it lives with the settings, which parse LOOKOUT_REBUILD_FROM)
from ..settings import parse_duration as parse_duration

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def load_labels(path: str | None) -> list:
    """Labelled incidents from ``path`` (JSON lines or CSV); ``[]`` without a path."""
    if not path:
        return []
    from streams.offline.simfiles import read_labels

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


def open_source_or_fail(spec: str, maps, fmt: str, bootstrap: str | None, kafka: dict | None = None):
    """A replay source for ``spec``; a Kafka source is connected now so errors come before any work.

    ``kafka``: the --kafka-* TLS/SASL options (Settings overrides) for a Kafka source.
    """
    from streams.kafka.security import kafka_python_kwargs
    from streams.offline import KafkaSource, SourceError, open_source, parse_mapping
    from streams.settings import Settings, SettingsError

    try:
        mapping = parse_mapping(maps)
        settings = Settings.from_env(**(kafka or {}))
        security = kafka_python_kwargs(settings) if spec.startswith("kafka://") else None
        src = open_source(spec, mapping=mapping, fmt=fmt, default_bootstrap=bootstrap or settings.bootstrap,
                          default_timeout_s=settings.kafka_timeout_s, kafka_security=security)
        if isinstance(src, KafkaSource):
            src.prepare()
        return src
    except (SourceError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from None


def make_out_dir(out):
    """Create the output directory ``out`` (a Path) or fail in one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"--out {out}: {exc.strerror or exc}") from None
    return out


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


def require_kafka(settings) -> None:
    """Fail with ``cannot reach Kafka at HOST:PORT within N s`` unless the broker of ``settings``
    answers in time; at once with one line if it rejects their TLS/SASL credentials."""
    from streams.kafka.admin import BrokerError, wait_for_kafka
    from streams.kafka.security import kafka_python_kwargs
    from streams.settings import SettingsError

    try:
        wait_for_kafka(
            settings.bootstrap, timeout=settings.kafka_timeout_s, security=kafka_python_kwargs(settings)
        )
    except (BrokerError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from None
