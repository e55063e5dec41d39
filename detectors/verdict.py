"""What the engines return for events: outcome codes and names, :class:`Verdict`, :class:`BatchVerdict`.

A leaf module (it imports nothing of the project), so that every engine and the worker's
metrics share these types without importing one another.

>>> OUTCOMES
('scored', 'warming', 'duplicate')
>>> OUTCOMES[Outcome.DUPLICATE]
'duplicate'
"""
from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

if TYPE_CHECKING:  # a leaf at run time
    from .onsets import Onset


class Outcome(IntEnum):
    """What became of one event (the compiled kernel writes these codes)."""

    SCORED = 0  # at least one of its signals is warm: it was scored and learned
    WARMING = 1  # learned, but no signal is warm yet
    DUPLICATE = 2  # not newer than the customer's last event: ignored


#: outcome names, indexed by code (also the ``outcome`` label of the worker's events counter)
OUTCOMES = tuple(o.name.lower() for o in sorted(Outcome))


class Verdict(NamedTuple):
    """What :meth:`~detectors.engine.Engine.process` returns for one event."""

    outcome: str  # one of OUTCOMES
    scores: dict[str, float]  # calibrated score per *warm* signal
    alerts: list[dict[str, Any]]  # alerts to emit (``alerts`` topic schema)
    onsets: Sequence[Onset] = ()  # a family newly anomalous (the correlator's input)


class BatchVerdict(NamedTuple):
    """What :meth:`~detectors.engine.Engine.process_many` returns for a batch of events."""

    outcomes: list[str]  # one of OUTCOMES per event, in order
    alerts: list[dict[str, Any]]  # every alert of the batch, in event order
    scores: dict[str, list[float]]  # signal -> calibrated scores of its warm points (for metrics)
    onsets: Sequence[Onset] = ()  # every onset of the batch, in event order (detectors.onsets)
