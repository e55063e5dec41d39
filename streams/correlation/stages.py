"""The two correlator stages as the Kafka agents run them: messages in, messages out, state.

Each wraps the pure stage of :mod:`detectors.correlator` with what a topic partition needs:
the offset it has processed (a redelivery after a restart is skipped), the watermarks of its
sources (:class:`~streams.correlation.watermarks.SourceMarks`) and its state as JSON. No I/O:
the agents (:mod:`streams.correlation.agents`) send what these return.

>>> from detectors.catalogue import Catalogue
>>> from detectors.config import CorrelatorConfig
>>> from streams.correlation.messages import encode_watermark
>>> g = GroupPartition(0, CorrelatorConfig(), lambda group: 10, idle_s=60, clock=lambda: 0.0)
>>> out = g.handle([(0, encode_watermark("d0", 600.0))])
>>> len(out.messages), out.dead
(1, [])
>>> g.handle([(0, encode_watermark("d0", 900.0))]).messages   # offset 0 again: a redelivery
[]
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from detectors.correlator import STATE_VERSION, GroupStage, ParentStage, check_version

from .messages import decode, encode_tests
from .watermarks import SourceMarks

log = logging.getLogger("lookout.correlation")

__all__ = ["GroupPartition", "ParentsPartition", "StageOutput", "detector_source", "group_source"]


def detector_source(partition: int) -> str:
    """The watermark source name of input partition ``partition``."""
    return f"d{partition}"


def group_source(partition: int) -> str:
    """The watermark source name of stage one's partition ``partition``."""
    return f"g{partition}"


@dataclass
class StageOutput:
    """What one batch of a stage produced."""

    messages: list[bytes] = field(default_factory=list)  # stage one: to the parents topic
    incidents: list[dict[str, Any]] = field(default_factory=list)  # stage two: parent updates
    alerts: list[dict[str, Any]] = field(default_factory=list)  # stage two: alerts with parent_id
    dead: list[tuple[bytes | None, str]] = field(default_factory=list)  # (message, why) not understood
    changed: bool = False  # the state moved (worth a snapshot)


class _Partition:
    """Offset bookkeeping and state framing shared by both stages."""

    def __init__(self, idle_s: float, required: Iterable[str], clock: Callable[[], float]):
        self.clock = clock
        self.marks = SourceMarks(idle_s, required)
        self.offset = -1  # the last input offset processed (and covered by the state)
        self.advanced: float | None = None  # the watermark the stage last advanced to

    def _fresh(self, records: Iterable[tuple[int, Any]], out: StageOutput):
        for offset, value in records:
            if offset <= self.offset:
                continue  # processed before a restart: the state has it
            self.offset = offset
            out.changed = True
            kind, body = decode(value)
            if kind is None:
                out.dead.append((value if isinstance(value, bytes) else None, body))
                continue
            yield kind, body

    def tick(self) -> StageOutput:
        """No messages, but time passed: an idle source may no longer hold the watermark back."""
        out = StageOutput()
        self._advance(out)
        return out

    def _report(self, marks: Iterable[tuple[str, float]]) -> None:
        now = self.clock()
        for source, ts in marks:
            self.marks.report(source, ts, now)

    def _advance(self, out: StageOutput) -> None:
        """Advance the stage to the watermark if it moved (each stage says what that emits)."""
        raise NotImplementedError

    def _due(self) -> float | None:
        w = self.marks.watermark(self.clock())
        if w is None or (self.advanced is not None and w <= self.advanced):
            return None
        self.advanced = w
        return w

    def restart(self) -> None:
        """Forget everything but the offset (a state that could not be loaded: start afresh there)."""
        self.marks = SourceMarks(self.marks.idle_s, self.marks.required)
        self.advanced = None

    def frame(self, stage: dict[str, Any]) -> dict[str, Any]:
        return {"version": STATE_VERSION, "offset": self.offset, "advanced": self.advanced,
                "marks": self.marks.to_state(), "stage": stage}

    def unframe(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        check_version(state)
        self.offset = int(state["offset"])
        self.advanced = state.get("advanced")
        self.marks.load_state(state.get("marks") or {}, self.clock())
        return state["stage"]


class GroupPartition(_Partition):
    """Stage one for the groups of one onsets-topic partition.

    Parameters
    ----------
    partition : int
        Its partition of the onsets topic (its name as a source of stage two).
    config : CorrelatorConfig
        The correlator settings.
    size_of : callable
        Group -> customers in it (the catalogue).
    idle_s : float
        An input partition that reported nothing new for this long is not waited for.
    """

    def __init__(self, partition: int, config: CorrelatorConfig, size_of: Callable[[str], int], *,
                 idle_s: float, clock: Callable[[], float] = time.time):
        super().__init__(idle_s, (), clock)
        self.partition = partition
        self.config = config
        self.size_of = size_of
        self.stage = GroupStage(config, size_of)

    def handle(self, records: Iterable[tuple[int, Any]]) -> StageOutput:
        """A batch of (offset, value) of the onsets topic; then close what the watermark completes."""
        out = StageOutput()
        for kind, body in self._fresh(records, out):
            if kind == "batch":
                if body.alerts:
                    out.dead.append((None, "a batch of alerts does not belong on the onsets topic"))
                for group, onset in body.onsets:
                    self.stage.add(onset, [group])
                self._report(body.marks)
            elif kind == "onset":
                group, onset = body
                self.stage.add(onset, [group])
            elif kind == "wm":
                self._report([body])
            else:
                out.dead.append((None, f"a {kind} message does not belong on the onsets topic"))
        self._advance(out)
        return out

    def _advance(self, out: StageOutput) -> None:
        w = self._due()
        if w is None:
            return
        closed = self.stage.advance(w)
        out.messages.append(encode_tests(group_source(self.partition), w, self.stage.clock.iv, closed))
        out.changed = True

    def to_state(self) -> dict[str, Any]:
        return self.frame(self.stage.to_state())

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`to_state`'s output; ``ValueError`` (and a fresh start) if unusable."""
        try:
            self.stage.load_state(self.unframe(state))
        except (KeyError, TypeError, ValueError) as exc:
            self.stage = GroupStage(self.config, self.size_of)
            self.restart()
            raise ValueError(f"unusable stage-one state of partition {self.partition}: {exc}") from None


class ParentsPartition(_Partition):
    """Stage two: all the group tests and alerts; parents and routed alerts out.

    Parameters
    ----------
    config : CorrelatorConfig
        The correlator settings.
    catalogue : Catalogue
        Who is in which group (kept up to date by the ``customers`` topic reader).
    group_partitions : int
        Stage one's partitions, the onsets topic's partition count: all of them are waited for.
    idle_s : float
        An input partition that reported nothing new for this long is not waited for.
    """

    def __init__(self, config: CorrelatorConfig, catalogue: Catalogue, group_partitions: int, *,
                 idle_s: float, clock: Callable[[], float] = time.time):
        super().__init__(idle_s, [group_source(q) for q in range(group_partitions)], clock)
        self.config = config
        self.catalogue = catalogue
        self.group_partitions = group_partitions
        self.stage = ParentStage(config, catalogue)

    def wait_for(self, group_partitions: int) -> None:
        """Stage one now has ``group_partitions`` partitions (the onsets topic grew): wait for each
        of them too, or the groups that moved to a new one would have their tests come too late."""
        self.group_partitions = group_partitions
        self.marks.required = {group_source(q) for q in range(group_partitions)}

    @property
    def active(self) -> bool:
        """Correlating at all (else every alert passes at once, ``parent_id`` null)."""
        return self.config.enabled and len(self.catalogue) > 0

    def handle(self, records: Iterable[tuple[int, Any]]) -> StageOutput:
        """A batch of (offset, value) of the parents topic; then close what every source completed."""
        out = StageOutput()
        for kind, body in self._fresh(records, out):
            if kind == "batch":
                if body.onsets:
                    out.dead.append((None, "a batch of onsets does not belong on the parents topic"))
                self._alerts(body.alerts, out)
                self._report(body.marks)
            elif kind == "alert":
                self._alerts([body], out)
            elif kind == "wm":
                self._report([body])
            elif kind == "tests":
                src, ts, iv, closed = body
                for t, tests in closed:
                    if iv is not None and tests:
                        self.stage.add_tests(t, iv, tests)
                self._report([(src, ts)])
            else:
                out.dead.append((None, f"a {kind} message does not belong on the parents topic"))
        self._advance(out)
        return out

    def _alerts(self, alerts: list[dict[str, Any]], out: StageOutput) -> None:
        if self.active:
            self.stage.add_alerts(alerts)
        else:
            out.alerts.extend(dict(a, parent_id=None) for a in alerts)

    def _advance(self, out: StageOutput) -> None:
        w = self._due()
        if w is None:
            return
        step = self.stage.advance(w)
        out.incidents.extend(step.incidents)
        out.alerts.extend(step.alerts)
        out.changed = True

    def open_parents(self) -> list[Any]:
        """The open parents (pending ones included), for the metrics."""
        return list(self.stage.book.parents.values())

    def to_state(self) -> dict[str, Any]:
        return self.frame(self.stage.to_state())

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`to_state`'s output; ``ValueError`` (and a fresh start) if unusable."""
        try:
            self.stage.load_state(self.unframe(state))
        except (KeyError, TypeError, ValueError) as exc:
            self.stage = ParentStage(self.config, self.catalogue)
            self.restart()
            raise ValueError(f"unusable stage-two state: {exc}") from None
