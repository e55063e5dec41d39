"""SOURCE and its options, shared by the commands that read history (``replay``, ``tune``).

:func:`source_options` adds the SOURCE argument, ``--map``, ``--format``, ``--bootstrap`` and the
``--kafka-*`` options, and hands the command one :class:`~streams.offline.source_spec.SourceSpec`
as its ``source`` argument instead of eight values.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..offline.source_spec import SourceSpec
from .kafka_options import kafka_security_options, pop_security

#: the file formats ``--format`` accepts
FORMATS = ("auto", "jsonl", "csv")


def source_options(f: Callable) -> Callable:
    """Decorator: SOURCE and the options that say how to read it, passed as ``source=SourceSpec(...)``."""

    @functools.wraps(f)
    def command(*args: Any, **opts: Any) -> Any:
        kafka = pop_security(opts)
        spec = SourceSpec(opts.pop("source"), maps=tuple(opts.pop("maps")), fmt=opts.pop("fmt"),
                          bootstrap=opts.pop("bootstrap"), kafka=kafka)
        return f(*args, source=spec, **opts)

    params = [
        click.argument("source"),
        click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN[,...]",
                     help="CSV only: which column holds each contract field, "
                     "e.g. --map requests=req_count,ts=time."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
                     help="File format (auto: .csv/.csv.gz or --map = CSV, otherwise JSON lines; "
                     "gzip is detected)."),
        click.option("--bootstrap", metavar="HOST:PORT",
                     help="Kafka bootstrap for kafka:// sources without bootstrap= [env LOOKOUT_BOOTSTRAP]."),
    ]
    command = kafka_security_options(command)  # listed after the others in --help
    for param in reversed(params):
        command = param(command)
    return command
