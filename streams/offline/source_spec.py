"""A command-line source spec -> a replay source: a file path (JSON lines or CSV) or ``kafka://TOPIC?...``.

:class:`SourceSpec` is what ``lookout replay`` and ``lookout tune`` are told about their SOURCE
(the argument plus ``--map``, ``--format``, ``--bootstrap`` and the ``--kafka-*`` options);
:func:`open_source` opens a spec. Sits above the sources it opens (:mod:`.files`,
:mod:`.kafka_source`), so they never import it.

>>> parse_mapping(["requests=req_count,ts=time", "customer_id=cust"])
{'requests': 'req_count', 'ts': 'time', 'customer_id': 'cust'}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from streams.kafka.security import kafka_python_kwargs
from streams.settings import Settings, SettingsError

from .files import CsvSource, JsonlSource
from .kafka_source import KafkaSource
from .sources import Source, SourceError


def parse_mapping(items: Iterable[str] | None) -> dict[str, str]:
    """``["requests=req_count,ts=time", ...]`` -> ``{"requests": "req_count", "ts": "time"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            field_, sep, column = part.partition("=")
            if not sep or not field_.strip() or not column.strip():
                raise SourceError(f"--map {part!r}: expected FIELD=COLUMN, e.g. requests=req_count")
            out[field_.strip()] = column.strip()
    return out


def open_source(spec: str, *, mapping: Mapping[str, str] | None = None, fmt: str = "auto",
                default_bootstrap: str | None = None, default_timeout_s: float = 10.0,
                kafka_security: Mapping[str, Any] | None = None) -> Source:
    """A source from a command-line spec: a file path or ``kafka://TOPIC?...``.

    ``kafka_security``: kafka-python TLS/SASL arguments for a Kafka source.
    """
    if spec.startswith("kafka://"):
        if mapping:
            raise SourceError("--map applies to CSV files only")
        return KafkaSource.from_url(spec, default_bootstrap, default_timeout_s, kafka_security)
    base = spec[:-3] if spec.endswith(".gz") else spec
    if fmt == "csv" or (fmt == "auto" and (base.lower().endswith(".csv") or mapping)):
        return CsvSource(spec, mapping)
    if mapping:
        raise SourceError("--map applies to CSV files only (name the file .csv or pass --format csv)")
    return JsonlSource(spec)


@dataclass(frozen=True)
class SourceSpec:
    """A source as the command line names it.

    ``kafka`` holds the ``--kafka-*`` TLS/SASL options given (:class:`~streams.settings.Settings`
    overrides); ``bootstrap`` is the broker of a ``kafka://`` spec without ``bootstrap=``
    (default: the settings' one).
    """

    spec: str
    maps: tuple[str, ...] = ()
    fmt: str = "auto"
    bootstrap: str | None = None
    kafka: Mapping[str, Any] = field(default_factory=dict)

    def open(self) -> Source:
        """The source; a Kafka one is connected now, so that its errors come before any work.

        Every problem (a bad ``--map``, an unreadable file, an unreachable broker, bad TLS/SASL
        settings) is a one-line :class:`SourceError`.
        """
        try:
            mapping = parse_mapping(self.maps)
            settings = Settings.from_env(**self.kafka)
            kafka = self.spec.startswith("kafka://")
            src = open_source(self.spec, mapping=mapping, fmt=self.fmt,
                              default_bootstrap=self.bootstrap or settings.bootstrap,
                              default_timeout_s=settings.kafka_timeout_s,
                              kafka_security=kafka_python_kwargs(settings) if kafka else None)
        except SettingsError as exc:
            raise SourceError(str(exc)) from None
        if isinstance(src, KafkaSource):
            src.prepare()
        return src
