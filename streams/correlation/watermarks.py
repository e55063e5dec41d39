"""How far event time got at each source of a stage: the watermark a stage may close up to.

A stage closes interval ``[t, t + iv)`` once every source it waits for has reported event time
``>= t + iv``. Sources report as they progress; a source that has not reported anything new for
``idle_s`` seconds of wall clock while others moved on (an input partition without traffic) is
not waited for until it reports again, and *required* sources (stage one's partitions, for
stage two) are always waited for once they are known.

>>> marks = SourceMarks(idle_s=60)
>>> marks.report("p0", 600.0, now=0.0); marks.report("p1", 900.0, now=0.0)
>>> marks.watermark(now=10.0)
600.0
>>> marks.report("p1", 1200.0, now=100.0)
>>> marks.watermark(now=100.0)   # p0 silent for 100 s while p1 moved on: not waited for
1200.0
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["SourceMarks"]


@dataclass(slots=True)
class _Mark:
    ts: float  # event time reported
    moved: float  # wall clock when it last moved forward


class SourceMarks:
    """Latest event time per source; the minimum over the sources worth waiting for."""

    def __init__(self, idle_s: float, required: Iterable[str] = ()):
        self.idle_s = idle_s
        self.required = set(required)
        self._marks: dict[str, _Mark] = {}

    def report(self, source: str, ts: float, now: float) -> None:
        """``source`` reached event time ``ts`` (older reports change nothing)."""
        m = self._marks.get(source)
        if m is None:
            self._marks[source] = _Mark(ts, now)
        elif ts > m.ts:
            m.ts, m.moved = ts, now

    def watermark(self, now: float) -> float | None:
        """Event time every source worth waiting for has reached (None: nothing known, or a
        required source has not reported yet)."""
        if any(r not in self._marks for r in self.required):
            return None
        if not self._marks:
            return None
        latest_move = max(m.moved for m in self._marks.values())

        def idle(m: _Mark) -> bool:  # silent for idle_s while another source moved on
            return latest_move - m.moved > self.idle_s and now - m.moved > self.idle_s

        waited = [m.ts for s, m in self._marks.items() if s in self.required or not idle(m)]
        return min(waited) if waited else None

    def to_state(self) -> dict[str, Any]:
        return {s: [m.ts, m.moved] for s, m in self._marks.items()}

    def load_state(self, state: Mapping[str, Any], now: float) -> None:
        """Reload marks; their wall-clock ages restart from ``now`` (the clock of another process)."""
        self._marks = {str(s): _Mark(float(v[0]), now) for s, v in state.items()
                       if isinstance(v, (list, tuple)) and v and math.isfinite(float(v[0]))}
