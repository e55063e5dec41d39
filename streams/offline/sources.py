"""What a replay source is: an iterable of :data:`Record` with a name and a size for progress.

A source yields :data:`Record` tuples -- raw message values exactly as the worker would receive
them -- so that the runner can hand them to the live :class:`~streams.pipeline.processor.Processor`.
The sources themselves are :mod:`streams.offline.files` and :mod:`streams.offline.kafka_source`;
:func:`streams.offline.source_spec.open_source` picks one for a command-line spec.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

#: (value, key, partition, offset-or-line-number)
Record = tuple[Any, Any, "int | None", "int | None"]


class SourceError(Exception):
    """A source cannot be read; ``str(exc)`` is one line for the user."""



class Source:
    """Iterable of :data:`Record`; ``total`` (for progress) is in ``unit``s, or None."""

    name: str = ""
    unit: str = "B"
    total: int | None = None

    def records(self, progress: Callable[[int], None] | None = None) -> Iterator[Record]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError
