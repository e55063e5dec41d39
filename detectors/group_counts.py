"""Stage one of the correlator: per group, onsets against the group's learned background rate.

Every onset (:mod:`detectors.onsets`) is counted in each group its customer belongs to
(:meth:`detectors.catalogue.Catalogue.groups_of`). When an interval closes, each group with
onsets in the window (the last ``window_intervals`` intervals) reports one
:class:`GroupTest` per family: ``k`` distinct customers with an onset of that family out of
``n`` in the group, the background probability ``p`` that one customer has such an onset in
a window, and how surprising ``k`` is under it (:func:`detectors.stats.binomial_surprise`).

The background rate of a family in a group is learned online, per customer and interval, with
an exponential memory of ``rate_half_life_s`` of event time and a prior (``prior_rate``
worth ``prior_weight`` customer-intervals), so a small group borrows strength from the prior
and a large one from its own history. An interval whose count is already surprising
(``learn_max_surprise``) is learned as what the background expected: an outage never becomes
its group's normal.

Groups are independent of each other: this stage partitions by group (the Kafka correlator
re-keys onsets by group through a repartition topic), and only the tests go on to the parent
stage (:mod:`detectors.parents`).

>>> from detectors.config import CorrelatorConfig
>>> from detectors.onsets import Onset
>>> gc = GroupCounter(CorrelatorConfig(window_intervals=2))
>>> for c in ("a", "b", "c", "d"):
...     gc.add(Onset(c, 600.0, 300, "origin:522"), ["origin_provider=p1", "*"])
>>> tests = gc.close(600.0, 300, {"origin_provider=p1": 40, "*": 1000}.get)
>>> [(t.group, t.k, t.n, round(t.surprise, 1)) for t in tests]
[('origin_provider=p1', 4, 40, 9.8), ('*', 4, 1000, 4.2)]
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .config import CorrelatorConfig
from .onsets import Onset
from .stats import binomial_surprise

__all__ = ["GroupCounter", "GroupTest"]

#: a group without onsets for this many half-lives of its rates is forgotten (bounded memory)
FORGET_HALF_LIVES = 10


@dataclass(frozen=True, slots=True)
class GroupTest:
    """One group's onsets of one family in the window ending with the interval at ``ts``.

    ``onsets`` maps each customer to the start of the interval of its onset (the latest one in
    the window); ``p`` is the background probability of a customer's onset in a window.
    """

    group: str
    family: str
    ts: float
    n: int
    p: float
    surprise: float
    onsets: Mapping[str, float]

    @property
    def k(self) -> int:
        return len(self.onsets)

    @property
    def expected(self) -> float:
        return self.n * self.p

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "family": self.family, "ts": self.ts, "n": self.n, "p": self.p,
                "surprise": self.surprise, "onsets": dict(self.onsets)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "GroupTest":
        return cls(str(obj["group"]), str(obj["family"]), float(obj["ts"]), int(obj["n"]), float(obj["p"]),
                   float(obj["surprise"]), {str(c): float(t) for c, t in obj["onsets"].items()})


@dataclass(slots=True)
class _Memory:
    """Exponentially weighted onsets per family and customer-intervals of exposure."""

    exposure: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)

    def forget(self, dk: float, added_exposure: float) -> None:
        self.exposure = self.exposure * dk + added_exposure
        for fam in self.counts:
            self.counts[fam] *= dk

    def rate(self, family: str, prior: float, weight: float) -> float:
        return (self.counts.get(family, 0.0) + prior * weight) / (self.exposure + weight)

    def to_json(self) -> list[Any]:
        return [self.exposure, self.counts]

    @classmethod
    def from_json(cls, v: Any) -> "_Memory":
        return cls(float(v[0]), {f: float(x) for f, x in v[1].items()})


@dataclass(slots=True)
class _Group:
    last: float  # start of the last interval learned
    long: _Memory = field(default_factory=_Memory)  # the background over days (rate_half_life_s)
    recent: _Memory = field(default_factory=_Memory)  # ... and over hours (recent_half_life_s)
    fresh: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # family -> onsets to learn
    window: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # family -> customer -> onsets
    #: onsets of intervals no close has reached yet, by interval: (arrival, family, customer); they
    #: join ``fresh`` and ``window`` when a close reaches them, so a close touches only its own
    #: interval's onsets, not every onset of the hundreds of intervals a replayed backlog sends
    #: ahead of its watermark (each close scanned them all: quadratic in the watermark's step)
    ahead: dict[float, list[tuple[int, str, str]]] = field(default_factory=dict)
    ahead_ts: list[float] = field(default_factory=list)  # heap of ``ahead``'s keys

    def hold(self, seq: int, family: str, customer: str, ts: float) -> None:
        """An onset for a close to come (:meth:`admit` moves it in)."""
        items = self.ahead.get(ts)
        if items is None:
            items = self.ahead[ts] = []
            heapq.heappush(self.ahead_ts, ts)
        items.append((seq, family, customer))

    def admit(self, t: float) -> None:
        """Move the held onsets of intervals up to ``t`` into ``fresh`` and ``window``, in arrival order."""
        if not self.ahead_ts or self.ahead_ts[0] > t:
            return
        due: list[tuple[int, str, str, float]] = []
        while self.ahead_ts and self.ahead_ts[0] <= t:
            ts = heapq.heappop(self.ahead_ts)
            due.extend((seq, fam, c, ts) for seq, fam, c in self.ahead.pop(ts))
        due.sort()
        for _, fam, c, ts in due:
            self.fresh.setdefault(fam, []).append((c, ts))
            _remember(self.window, fam, c, ts)

    def held(self) -> list[tuple[str, str, float]]:
        """The held onsets as (family, customer, ts), in arrival order."""
        return [(fam, c, ts) for _, fam, c, ts in sorted((seq, fam, c, ts) for ts, items in self.ahead.items()
                                                          for seq, fam, c in items)]


def _remember(window: dict[str, dict[str, list[float]]], fam: str, customer: str, ts: float) -> None:
    """Add an onset time to a window (once; each customer's times sorted)."""
    times = window.setdefault(fam, {}).setdefault(customer, [])
    if ts not in times:
        times.append(ts)
        times.sort()


class GroupCounter:
    """Onset counts and background rates of many groups (see the module docstring).

    Parameters
    ----------
    config : CorrelatorConfig
        Window, prior and learning settings.
    """

    def __init__(self, config: CorrelatorConfig):
        self.config = config
        self._groups: dict[str, _Group] = {}
        self._seq = 0  # arrival order of onsets held for a close to come

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, onset: Onset, groups: Iterable[str]) -> None:
        """Count ``onset`` in each of ``groups``."""
        for g in groups:
            st = self._groups.get(g)
            if st is None:  # learned from the interval before its first onset on, whoever else counts
                st = self._groups[g] = _Group(math.floor(onset.ts / onset.interval_s - 1) * onset.interval_s)
            st.hold(self._seq, onset.family, onset.customer_id, onset.ts)
            self._seq += 1

    def busy(self) -> bool:
        """Whether any group has onsets in its window or not learned yet."""
        return any(st.window or st.fresh or st.ahead for st in self._groups.values())

    def rate(self, group: str, family: str) -> float:
        """Background onsets per customer and interval: the larger of the learned rate over days
        (shrunk to the prior for a group with little history) and over the last hours (shrunk to
        the former), so a slow fleet-wide swell (weekend traffic in one time zone after another)
        raises the bar instead of opening a parent."""
        cfg = self.config
        st = self._groups.get(group)
        if st is None:
            return cfg.prior_rate
        long = st.long.rate(family, cfg.prior_rate, cfg.prior_weight)
        return max(long, st.recent.rate(family, long, cfg.recent_weight))

    def _decays(self, iv: int) -> tuple[float, float]:
        cfg = self.config
        return 0.5 ** (iv / cfg.rate_half_life_s), 0.5 ** (iv / cfg.recent_half_life_s)

    def _catch_up(self, st: _Group, t: float, iv: int, n: int) -> None:
        """Learn the quiet intervals from ``st.last`` to the one before ``t`` (no onsets, ``n`` customers)."""
        steps = int(round((t - iv - st.last) / iv))
        if steps <= 0:
            return
        for mem, d in zip((st.long, st.recent), self._decays(iv)):
            dk = d ** steps
            mem.forget(dk, n * (1.0 - dk) / (1.0 - d))
        st.last = t - iv

    def close(self, t: float, iv: int, size_of: Callable[[str], int | None]) -> list[GroupTest]:
        """The interval starting at ``t`` is complete: test every group with onsets in the window, learn.

        ``size_of(group)`` is the group's customer count (from the catalogue; None or 0 for a
        group nobody is in any more, whose onsets still count: the size is at least them).
        """
        cfg = self.config
        horizon = t - (cfg.window_intervals - 1) * iv
        tests: list[GroupTest] = []
        idle: list[str] = []
        for g, st in self._groups.items():
            st.admit(t)
            for fam in [f for f, win in st.window.items() if any(ts[0] < horizon for ts in win.values())]:
                kept = {c: [x for x in ts if x >= horizon] for c, ts in st.window[fam].items()}
                kept = {c: ts for c, ts in kept.items() if ts}
                if kept:
                    st.window[fam] = kept
                else:
                    del st.window[fam]
            if not st.window and not st.fresh and not st.ahead:
                idle.append(g)
                continue
            if st.last >= t:  # its onsets are all of intervals still open (it was learned up to here)
                continue
            n = size_of(g) or 0
            self._catch_up(st, t, iv, n)
            tests.extend(self._test_and_learn(g, st, t, iv, n))
        for g in idle:  # nothing in the window: learned lazily when the group is next touched...
            if t - self._groups[g].last > FORGET_HALF_LIVES * cfg.rate_half_life_s:
                del self._groups[g]  # ...or forgotten, once its history is worth no more than the prior
        return tests

    def _test_and_learn(self, g: str, st: _Group, t: float, iv: int, n: int) -> list[GroupTest]:
        cfg = self.config
        W = cfg.window_intervals
        out = []
        expected: dict[str, tuple[float, float]] = {}  # family -> (rate, surprise)
        for fam, everything in st.window.items():
            # each customer with an onset in the window (not in intervals still open), at its first
            win = {c: ts[0] for c, ts in everything.items() if ts[0] <= t}
            if not win:
                continue
            size = max(n, len(win))
            r = self.rate(g, fam)
            p = -math.expm1(W * math.log1p(-min(r, 0.5)))  # 1 - (1 - r)^W
            surprise = binomial_surprise(len(win), size, p)
            out.append(GroupTest(g, fam, t, size, p, surprise, win))
            expected[fam] = (size * r, surprise)
        # learn the interval: its exposure and its onsets -- a surprising count as what the
        # background expected (over days from learn_max_surprise, over hours from min_surprise),
        # so an outage never becomes its group's normal
        for mem, d, guard in zip((st.long, st.recent), self._decays(iv),
                                 (cfg.learn_max_surprise, cfg.min_surprise)):
            mem.forget(d, n)
            for fam, who in st.fresh.items():
                k = float(len({c for c, ts in who if ts <= t}))
                ex, surprise = expected.get(fam, (k, 0.0))
                mem.counts[fam] = mem.counts.get(fam, 0.0) + (min(k, ex) if surprise >= guard else k)
        later = {f: [(c, ts) for c, ts in who if ts > t] for f, who in st.fresh.items()}
        st.fresh = {f: who for f, who in later.items() if who}
        st.last = t
        return out

    # -- state (the Kafka correlator keeps it in a compacted topic) ----------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything learned, as JSON-able data."""
        return {"groups": {g: self._group_state(st) for g, st in self._groups.items()}}

    @staticmethod
    def _group_state(st: _Group) -> dict[str, Any]:
        """One group's state; held onsets are in ``fresh`` and ``window`` as if they had joined at once
        (the layout is the same as before they were held apart, and reads back either way)."""
        fresh = {f: [list(x) for x in who] for f, who in st.fresh.items()}
        window = st.window
        if st.ahead:
            window = {f: {c: list(ts) for c, ts in w.items()} for f, w in window.items()}
            for fam, c, ts in st.held():
                fresh.setdefault(fam, []).append([c, ts])
                _remember(window, fam, c, ts)
        return {"last": st.last, "long": st.long.to_json(), "recent": st.recent.to_json(),
                "fresh": fresh, "window": window}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace what was learned by :meth:`to_state`'s output.

        Every onset not learned yet is held until a close reaches its interval (those of intervals
        closed already join at the next close, as they would have); the window may hold some of
        them already, which is harmless (an onset time is in a window once).
        """
        self._groups, self._seq = {}, 0
        for g, v in state.get("groups", {}).items():
            window = {f: {c: [float(x) for x in ts] for c, ts in w.items()} for f, w in v["window"].items()}
            st = self._groups[g] = _Group(float(v["last"]), _Memory.from_json(v["long"]),
                                          _Memory.from_json(v["recent"]), window=window)
            for f, who in v["fresh"].items():
                for c, ts in who:
                    st.hold(self._seq, f, str(c), float(ts))
                    self._seq += 1
