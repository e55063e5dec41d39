"""The correlator: one parent incident for a shared cause, and the child alerts folded under it.

Fed onsets (:mod:`detectors.onsets`) and alerts as the engine produces them, and told how far
event time has progressed (:meth:`Correlator.advance`, a watermark), it closes one interval at
a time: stage one counts each group's onsets against the group's learned background
(:mod:`detectors.group_counts`), stage two opens, grows, publishes and resolves parents and
routes every alert (:mod:`detectors.parents`). Replay and tests run the two stages in one
process through this class; the Kafka worker runs the same two classes, stage one partitioned
by group behind a repartition topic.

A correlator with no catalogue (or ``correlator.enabled: false``) routes every alert at once,
unchanged but for ``parent_id: null``: there are no groups to correlate and nothing to wait for.

>>> from detectors.catalogue import Catalogue
>>> from detectors.onsets import Onset
>>> cat = Catalogue({f"c{i}": {"origin_provider": "p1" if i < 20 else "p2"} for i in range(200)})
>>> corr = Correlator(CorrelatorConfig(), cat)
>>> corr.add_onsets([Onset(f"c{i}", 3000.0, 300, "origin:522") for i in range(8)])
>>> out = corr.add_alerts([{"alert_id": "x", "status": "firing", "customer_id": "c1", "severity": "warning",
...                         "started_at": "1970-01-01T00:50:00Z", "event_ts": "1970-01-01T00:50:00Z"}])
>>> out.alerts   # held: a parent may still form
[]
>>> out = corr.advance(3600.0)   # intervals up to 3300 closed: the hold of one interval is over
>>> [(a["alert_id"], a["parent_id"]) for a in out.alerts]
[('x', '30f59acdb0444a96')]
>>> out.incidents[0]["cause"]
'origin errors (522) for 8 of 20 customers with origin_provider=p1 since 1970-01-01T00:50:00Z; expected 0.006'
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .catalogue import FLEET, Catalogue
from .config import CorrelatorConfig, DetectorConfig
from .events import DEFAULT_INTERVAL_S, time_or_none
from .group_counts import GroupCounter, GroupTest
from .onsets import Onset
from .parents import ParentBook

__all__ = ["STATE_VERSION", "Correlator", "CorrelatorOutput", "GroupStage", "IntervalClock", "ParentStage",
           "correlate", "groups_of"]

#: version of :meth:`Correlator.to_state`'s layout (a state of another version starts afresh)
STATE_VERSION = 1


@dataclass
class CorrelatorOutput:
    """What one call hands out: parent updates first, then the alerts with their ``parent_id``."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: "CorrelatorOutput") -> None:
        self.incidents.extend(other.incidents)
        self.alerts.extend(other.alerts)


class IntervalClock:
    """Which intervals a watermark closes: interval ``[t, t + iv)`` is complete once the
    watermark (event time every input has reached) is at least ``t + iv``.

    The interval length is the first one seen (onsets and alerts carry theirs); a fleet that
    mixes interval lengths is correlated on that one.

    >>> clock = IntervalClock()
    >>> clock.see(600.0, 300)
    >>> list(clock.due(1500.0))
    [600.0, 900.0, 1200.0]
    >>> list(clock.due(1500.0))
    []

    Until it has closed anything, the clock starts at the earliest interval seen, not the first:
    an alert from a partition ahead of the watermark must not skip the intervals before it.

    >>> clock = IntervalClock()
    >>> clock.see(1200.0, 300); clock.see(600.0, 300)
    >>> list(clock.due(1200.0))
    [600.0, 900.0]
    """

    def __init__(self, iv: int | None = None, next_close: float | None = None, closed: bool | None = None):
        self.iv = iv
        self.next_close = next_close
        #: whether an interval was closed (or skipped) yet: the start is fixed from then on
        self.closed = next_close is not None if closed is None else closed

    def see(self, ts: float, iv: int) -> None:
        """An input for the interval starting at ``ts``: start the clock (or, while nothing is
        closed yet, move it back to it)."""
        if self.iv is None:
            self.iv = iv
        start = float(math.floor(ts / self.iv) * self.iv)
        if self.next_close is None or (not self.closed and start < self.next_close):
            self.next_close = start

    def to_state(self) -> list[Any]:
        return [self.iv, self.next_close, self.closed]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> "IntervalClock":
        """:meth:`to_state`'s list; a state without the third item (older) counts as started."""
        iv, nxt, *rest = state
        return cls(iv, nxt, bool(rest[0]) if rest else None)

    def due(self, watermark: float, skip_to: float | None = None):
        """Interval starts now complete, oldest first (after a jump to ``skip_to``, if given)."""
        if self.iv is None or self.next_close is None:
            return
        if skip_to is not None and skip_to > self.next_close:
            self.next_close = float(math.floor(skip_to / self.iv) * self.iv)
            self.closed = True
        while self.next_close + self.iv <= watermark:
            t = self.next_close
            self.next_close = t + self.iv
            self.closed = True
            yield t


class GroupStage:
    """Stage one for a set of groups (all of them, or one partition's): onsets in, tests out.

    Parameters
    ----------
    config : CorrelatorConfig
        Window and background settings.
    size_of : callable
        Group key -> customers in it (the catalogue).
    """

    def __init__(self, config: CorrelatorConfig, size_of: Callable[[str], int]):
        self.config = config
        self.size_of = size_of
        self.counter = GroupCounter(config)
        self.clock = IntervalClock()

    def add(self, onset: Onset, groups: Iterable[str]) -> None:
        """Count ``onset`` in ``groups`` (any order within the window)."""
        self.clock.see(onset.ts, onset.interval_s)
        self.counter.add(onset, groups)

    @property
    def closed_until(self) -> float | None:
        """Every interval starting before this is closed (None: none seen yet)."""
        return self.clock.next_close

    def advance(self, watermark: float) -> list[tuple[float, list[GroupTest]]]:
        """Close the intervals ``watermark`` completes; (interval, its tests) for those with any."""
        iv, nxt = self.clock.iv, self.clock.next_close
        if iv is None or nxt is None:
            return []
        # nothing in any window: the quiet intervals change only the exposure, learned lazily
        skip = None if self.counter.busy() else watermark - iv
        out = []
        for t in self.clock.due(watermark, skip_to=skip):
            tests = self.counter.close(t, iv, self.size_of)
            if tests:
                out.append((t, tests))
        return out

    def to_state(self) -> dict[str, Any]:
        return {"clock": self.clock.to_state(), "counter": self.counter.to_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.clock = IntervalClock.from_state(state["clock"])
        self.counter.load_state(state["counter"])


class ParentStage:
    """Stage two: every group test and every alert in, parent incidents and routed alerts out.

    Parameters
    ----------
    config : CorrelatorConfig
        Thresholds and the hold.
    catalogue : Catalogue
        Who is in which group.
    """

    def __init__(self, config: CorrelatorConfig, catalogue: Catalogue):
        self.config = config
        self.book = ParentBook(config, catalogue)
        self.clock = IntervalClock()
        self._tests: dict[float, list[GroupTest]] = {}  # interval -> its tests, until it closes

    def add_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """Hold the detectors' alerts until their interval (and the hold) closes."""
        for a in alerts:
            ts, iv = time_or_none(a.get("event_ts")), a.get("interval_s")
            if ts is not None and isinstance(iv, int) and iv > 0:
                self.clock.see(ts, iv)
            self.book.offer(a, self.clock.iv or DEFAULT_INTERVAL_S)

    def add_tests(self, t: float, iv: int, tests: Iterable[GroupTest]) -> None:
        """Group tests of interval ``t`` (from any number of stage-one instances)."""
        self.clock.see(t, iv)
        self._tests.setdefault(t, []).extend(tests)

    def advance(self, watermark: float) -> CorrelatorOutput:
        """Every stage one closed, and every alert arrived, up to ``watermark``: close those intervals."""
        out = CorrelatorOutput()
        iv = self.clock.iv
        if iv is None:
            return out
        skip = None
        if not (self.book.parents or self.book.held()):  # nothing can change in the quiet intervals
            skip = min(self._tests, default=watermark - iv)
        for t in self.clock.due(watermark, skip_to=skip):
            incidents, alerts = self.book.close(t, iv, self._tests.pop(t, []))
            out.incidents.extend(incidents)
            out.alerts.extend(alerts)
        for t in [t for t in self._tests if t < (self.clock.next_close or t + 1)]:
            del self._tests[t]  # tests of an interval closed already (a late stage one): too late
        return out

    def to_state(self) -> dict[str, Any]:
        return {"clock": self.clock.to_state(), "book": self.book.to_state(),
                "tests": [[t, [x.to_json() for x in xs]] for t, xs in self._tests.items()]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.clock = IntervalClock.from_state(state["clock"])
        self.book.load_state(state["book"])
        self._tests = {float(t): [GroupTest.from_json(x) for x in xs] for t, xs in state.get("tests", [])}


class Correlator:
    """Both correlator stages in one process (replay, tests); see the module docstring.

    Parameters
    ----------
    config : CorrelatorConfig or DetectorConfig
        The ``correlator`` section (or a whole detector configuration).
    catalogue : Catalogue
        Customer attributes; groups and their sizes come from it.
    """

    def __init__(self, config: CorrelatorConfig | DetectorConfig | None = None,
                 catalogue: Catalogue | None = None):
        if isinstance(config, DetectorConfig):
            config = config.correlator
        self.config = config or CorrelatorConfig()
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self.groups = GroupStage(self.config, self.size_of)
        self.parents = ParentStage(self.config, self.catalogue)

    @property
    def book(self) -> ParentBook:
        return self.parents.book

    @property
    def counter(self) -> GroupCounter:
        return self.groups.counter

    @property
    def active(self) -> bool:
        """Correlating at all: enabled, with a catalogue to group customers by."""
        return self.config.enabled and len(self.catalogue) > 0

    def groups_of(self, cid: str) -> tuple[str, ...]:
        return groups_of(self.catalogue, self.config, cid)

    def size_of(self, group: str) -> int:
        return self.catalogue.size_of(group, self.config.group_by)

    def add_onsets(self, onsets: Iterable[Onset]) -> None:
        """Count onsets (any order within the window; later than that they only teach the background)."""
        if not self.active:
            return
        for o in onsets:
            self.groups.add(o, self.groups_of(o.customer_id))

    def add_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> CorrelatorOutput:
        """Take the engine's alerts. They come back from :meth:`advance` when their interval closes
        (a new one after the hold); with the correlator inactive, at once."""
        out = CorrelatorOutput()
        if not self.active:
            out.alerts.extend(dict(a, parent_id=None) for a in alerts)
        else:
            self.parents.add_alerts(alerts)
        return out

    def advance(self, watermark: float) -> CorrelatorOutput:
        """Event time reached ``watermark`` everywhere: close every interval that is complete."""
        if not self.active:
            return CorrelatorOutput()
        for t, tests in self.groups.advance(watermark):
            assert self.groups.clock.iv is not None
            self.parents.add_tests(t, self.groups.clock.iv, tests)
        return self.parents.advance(watermark)

    # -- state ---------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything the correlator knows, as JSON-able data (:meth:`load_state` reads it back)."""
        return {"version": STATE_VERSION, "groups": self.groups.to_state(),
                "parents": self.parents.to_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`to_state`'s output; ``ValueError`` for another version or a bad record."""
        check_version(state)
        try:
            self.groups.load_state(state["groups"])
            self.parents.load_state(state["parents"])
        except (KeyError, TypeError, ValueError) as exc:
            self.groups = GroupStage(self.config, self.size_of)
            self.parents = ParentStage(self.config, self.catalogue)
            raise ValueError(f"unusable correlator state: {exc!r}") from None

    def flush(self) -> CorrelatorOutput:
        """End of input (replay): close far enough that every held alert is decided."""
        clock = self.parents.clock
        if not self.active or clock.next_close is None or clock.iv is None:
            return CorrelatorOutput()
        iv = clock.iv
        last_onset = self.groups.closed_until or clock.next_close
        end = max(clock.next_close, last_onset) + (self.config.hold_intervals + 1) * iv
        last = self.book.last_decision()
        return self.advance(max(end, last + iv if last is not None else end))


def groups_of(catalogue: Catalogue, config: CorrelatorConfig, cid: str) -> tuple[str, ...]:
    """The groups a customer's onsets count in: its grouping attributes' values, and the fleet."""
    groups = catalogue.groups_of(cid, config.group_by)
    return groups if config.fleet else tuple(g for g in groups if g != FLEET)


def check_version(state: Any) -> None:
    """``ValueError`` unless ``state`` is a mapping of :data:`STATE_VERSION`."""
    if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
        got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"correlator state version {got!r} is not {STATE_VERSION}")


def correlate(correlator: Correlator, onsets: Iterable[Onset], alerts: Iterable[Mapping[str, Any]],
              watermark: float | None) -> CorrelatorOutput:
    """One batch of the engine's output through the correlator: count its onsets, offer its alerts,
    then close what ``watermark`` completes (None: nothing yet). Replay calls this per batch."""
    correlator.add_onsets(onsets)
    out = correlator.add_alerts(alerts)
    if watermark is not None:
        out.extend(correlator.advance(watermark))
    return out
