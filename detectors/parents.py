"""Stage two of the correlator: parent incidents, and which child alerts page on their own.

Fed, per closed interval, the group tests of stage one (:mod:`detectors.group_counts`) and
every alert of the detectors, :class:`ParentBook` keeps the parent incidents:

* **Open.** For each family, among the groups whose count is significant (at least
  ``min_customers`` customers and ``min_surprise``), the group that explains its customers best
  opens a parent: the largest binomial log-likelihood ratio (:func:`detectors.stats.binomial_llr`),
  which prefers the most specific group holding the customers (a region over its provider when
  only the region is hit, the provider when its regions all are). Its customers are then
  explained; the rest may open another parent (two causes at once). Groups with exactly the
  same customers are named as equivalent.
* **Grow.** While open, customers of its group with an onset of its family join it; if a
  larger group that holds all of them becomes a better explanation, the parent widens to it
  (same id). ``parent_id`` hashes the group it opened on, the family and the interval it
  opened in: a replay or a redelivery gives the same ids.
* **Publish.** A parent is silent (``pending``) until a child alert joins it; then it fires:
  one notification for all of them. It escalates with its children's severity (and is critical
  from ``critical_customers`` affected customers), and it resolves when all its children have
  (and no new onset came in the window). A pending parent no child joined expires silently.
* **Route.** A new alert waits ``hold_intervals`` intervals. Then, if its customer is one of an
  open parent's and its incident did not start more than ``join_slack_intervals`` before the
  parent's first onset, it is *folded*: it carries ``parent_id`` and does not page; otherwise
  it pages on its own (``parent_id`` null). Its later notifications (escalation, resolution)
  follow the same route at once.

Output: incident records (schema ``lookout.incident/v1``, one per parent update) and the
alerts with their ``parent_id``.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .alerting import SEVERITIES
from .catalogue import FLEET, Catalogue, group_label, split_group
from .config import CorrelatorConfig
from .events import format_ts, time_or_none
from .group_counts import GroupTest
from .onsets import family_label
from .stats import binomial_llr, binomial_surprise

__all__ = ["SCHEMA", "ParentBook", "parent_id"]

SCHEMA = "lookout.incident/v1"
PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"
#: a significant burst whose customers are at least this share of an open parent's joins it
#: (the same cause seen through another family: an origin outage shows latency too)
HOST_SHARE = 0.5


def parent_id(group: str, family: str, opened_at: float) -> str:
    """Deterministic parent id: the group it opened on, the family, the interval it opened in.

    >>> parent_id("origin_provider=provider-a", "origin:522", 1767607200.0)
    'a5aea215f4e5dca9'
    """
    return hashlib.sha256(f"parent|{group}|{family}|{int(opened_at)}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class Child:
    """One folded child alert, as its parent lists it."""

    alert_id: str
    customer_id: str
    severity: str
    status: str
    started_at: float | None
    resolved_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "customer_id": self.customer_id, "severity": self.severity,
                "status": self.status, "started_at": _ts(self.started_at),
                "resolved_at": _ts(self.resolved_at)}


def _state_child(c: Child) -> list[Any]:
    return [c.alert_id, c.customer_id, c.severity, c.status, c.started_at, c.resolved_at]


def _state_parent(p: Parent) -> dict[str, Any]:
    return {"id": p.parent_id, "family": p.family, "group": p.group, "n": p.n, "p": p.p,
            "surprise": p.surprise, "opened_at": p.opened_at, "members": p.members,
            "equivalent": list(p.equivalent), "also": sorted(p.also), "last_burst": p.last_burst,
            "children": [_state_child(c) for c in p.children.values()], "status": p.status,
            "severity": p.severity, "notification": p.notification, "update": p.update,
            "published_at": p.published_at, "resolved_at": p.resolved_at, "changed": p.changed}


def _load_parent(v: Mapping[str, Any]) -> Parent:
    kids = [Child(*c) for c in v["children"]]
    return Parent(v["id"], v["family"], v["group"], int(v["n"]), float(v["p"]), float(v["surprise"]),
                  float(v["opened_at"]), {c: float(t) for c, t in v["members"].items()},
                  tuple(v["equivalent"]), set(v["also"]), float(v["last_burst"]),
                  {c.alert_id: c for c in kids}, v["status"], v["severity"], int(v["notification"]),
                  int(v["update"]), v["published_at"], v["resolved_at"], bool(v["changed"]))


def _ts(t: float | None) -> str | None:
    return None if t is None else format_ts(t)


@dataclass(slots=True)
class Parent:
    """One parent incident (see the module docstring for its lifecycle)."""

    parent_id: str
    family: str  # the family it opened on
    group: str
    n: int  # customers in the group
    p: float  # background probability of an onset per customer and window, when it opened
    surprise: float  # of its count, when it opened (or widened)
    opened_at: float  # interval it opened in
    members: dict[str, float]  # affected customer -> its onset
    equivalent: tuple[str, ...] = ()
    also: set[str] = field(default_factory=set)  # other families its customers showed, absorbed
    last_burst: float = 0.0  # the last interval its group's count was still elevated
    children: dict[str, Child] = field(default_factory=dict)
    status: str = PENDING
    severity: str = SEVERITIES[0]
    notification: int = 0
    update: int = 0
    published_at: float | None = None
    resolved_at: float | None = None
    changed: bool = False

    @property
    def families(self) -> set[str]:
        return {self.family} | self.also

    @property
    def since(self) -> float:
        return min(self.members.values())

    @property
    def last_onset(self) -> float:
        return max(self.members.values())

    def cause(self) -> str:
        """The cause in words."""
        scope = "in the whole fleet" if self.group == FLEET else f"with {self.group}"
        return (f"{family_label(self.family)} for {len(self.members):,} of {self.n:,} customers {scope} "
                f"since {format_ts(self.since)}; expected {self.n * self.p:.2g}")

    def record(self, ts: float) -> dict[str, Any]:
        """This parent as a ``lookout.incident/v1`` record (one update)."""
        attr, value = split_group(self.group)
        kids = sorted(self.children.values(), key=lambda c: (c.started_at or 0.0, c.customer_id))
        return {
            "schema": SCHEMA, "parent_id": self.parent_id, "status": self.status,
            "notification": self.notification, "update": self.update, "severity": self.severity,
            "family": self.family, "also": sorted(self.also),
            "scope": {"group": self.group, "attribute": attr, "value": value,
                      "label": group_label(self.group), "size": self.n, "equivalent": list(self.equivalent)},
            "summary": f"{self.severity}: {self.cause()}", "cause": self.cause(),
            "customers_affected": len(self.members), "expected": round(self.n * self.p, 6),
            "surprise": round(self.surprise, 2),
            "since": format_ts(self.since), "opened_at": format_ts(self.opened_at),
            "published_at": _ts(self.published_at), "event_ts": format_ts(ts),
            "resolved_at": _ts(self.resolved_at),
            "children": [c.to_json() for c in kids],
            "children_open": sum(1 for c in kids if c.status != RESOLVED),
            "customers": sorted(self.members),
        }


@dataclass(slots=True)
class _Held:
    decide_at: float
    alert: dict[str, Any]
    at: float = 0.0  # its own interval (event time)


def _baseline(tests: Sequence[GroupTest]) -> float:
    """The background probability groups are compared against when localising: the fleet's
    (the largest group tested), so a group with more history (a lower learned rate) does not
    win over a better-fitting one just for that."""
    return max(tests, key=lambda x: (x.n, x.group == FLEET)).p


def _rank(sev: Any) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else 0


class ParentBook:
    """Parent incidents and alert routes (see the module docstring).

    Parameters
    ----------
    config : CorrelatorConfig
        Thresholds and the hold.
    catalogue : Catalogue
        Who is in which group (to widen parents and name equivalent groups).
    """

    def __init__(self, config: CorrelatorConfig, catalogue: Catalogue):
        self.config = config
        self.catalogue = catalogue
        self.parents: dict[str, Parent] = {}  # open ones (pending or firing), in opening order
        self._held: dict[str, list[_Held]] = {}  # alert id -> its notifications waiting, in order
        self._routes: dict[str, str | None] = {}  # alert id -> parent id (None: pages on its own)
        self._rank = {a: i for i, a in enumerate(config.group_by)}
        #: what a second explanation (another parent) must add to the likelihood ratio: as much
        #: evidence as opening a parent needs (``min_surprise`` decades, in nats)
        self._penalty = config.min_surprise * math.log(10.0)
        #: parents dropped because no child alert ever joined them (a metric)
        self.expired = 0

    # -- alerts -------------------------------------------------------------------------------
    def offer(self, alert: Mapping[str, Any], iv: int) -> None:
        """Take one alert. Every alert leaves at a close, so the output depends on event time only:
        a new one when its hold is over (``hold_intervals`` after its own interval), a later
        notification of a decided one when its own interval closes, in order behind any earlier."""
        aid = alert.get("alert_id")
        ts = time_or_none(alert.get("event_ts"))
        own = ts if ts is not None else 0.0  # (an alert always has one; 0: decide at once)
        queue = self._held.get(aid) if isinstance(aid, str) else None
        if queue is not None:
            queue.append(_Held(max(own, queue[-1].decide_at), dict(alert), own))
        elif isinstance(aid, str) and aid not in self._routes and alert.get("status") == "firing":
            self._held[aid] = [_Held(own + self.config.hold_intervals * iv, dict(alert), own)]
        else:  # decided already (or nothing to decide: no id, or its firing was before our time)
            self._held[str(aid)] = [_Held(own, dict(alert), own)]

    def _follow(self, alert: Mapping[str, Any], pid: str | None) -> dict[str, Any]:
        """Route a later notification of a decided alert the way its first one went."""
        aid = alert["alert_id"]
        parent = self.parents.get(pid) if pid is not None else None
        child = parent.children.get(aid) if parent is not None else None
        if child is not None:
            assert parent is not None
            if _rank(alert.get("severity")) > _rank(child.severity):
                child.severity = alert["severity"]
            if alert.get("status") == RESOLVED:
                child.status = RESOLVED
                child.resolved_at = time_or_none(alert.get("resolved_at"))
            parent.changed = True
        if alert.get("status") == RESOLVED:
            self._routes.pop(aid, None)
        return dict(alert, parent_id=pid)

    def _decide(self, alert: dict[str, Any], iv: int) -> str | None:
        """The parent a new alert folds into, if any (and record it as that parent's child)."""
        cid = alert.get("customer_id")
        started = time_or_none(alert.get("started_at"))
        slack = self.config.join_slack_intervals * iv
        for p in self.parents.values():
            if cid in p.members and (started is None or started >= p.since - slack):
                p.children[alert["alert_id"]] = Child(alert["alert_id"], str(cid),
                                                      alert.get("severity") or SEVERITIES[0], FIRING, started)
                p.changed = True
                return p.parent_id
        return None

    def _release(self, t: float, iv: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        due = sorted((q[0].decide_at, aid) for aid, q in self._held.items() if q[0].decide_at <= t)
        for _, aid in due:
            queue = self._held.pop(aid)
            while queue and queue[0].decide_at <= t:
                alert = queue.pop(0).alert
                if aid in self._routes:
                    out.append(self._follow(alert, self._routes[aid]))
                elif alert.get("status") == "firing" and alert.get("alert_id") == aid:
                    pid = self._routes[aid] = self._decide(alert, iv)
                    out.append(dict(alert, parent_id=pid))
                else:
                    out.append(dict(alert, parent_id=None))
            if queue:
                self._held[aid] = queue
        return out

    def held(self) -> int:
        """Alerts waiting for their hold to end."""
        return sum(len(q) for q in self._held.values())

    def last_decision(self) -> float | None:
        """The latest interval a held alert waits for (None: none waits)."""
        return max((q[0].decide_at for q in self._held.values()), default=None)

    # -- parents -------------------------------------------------------------------------------
    def close(self, t: float, iv: int,
              tests: Sequence[GroupTest]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Interval ``t`` is closed and ``tests`` are its group tests: grow and open parents, release the
        held alerts that are due, publish, escalate, resolve. Returns (incident records, routed alerts)."""
        by_family: dict[str, list[GroupTest]] = {}
        # in a fixed order: however many stage-one instances sent them, in whatever order
        for test in sorted(tests, key=lambda x: (x.family, x.group)):
            by_family.setdefault(test.family, []).append(test)
        baseline = {fam: _baseline(fam_tests) for fam, fam_tests in by_family.items()}
        for p in self.parents.values():
            self._grow(p, t, iv, by_family, baseline)
        for fam, fam_tests in by_family.items():
            self._open(t, fam, fam_tests, baseline[fam])
        routed = self._release(t, iv)
        return self._lifecycle(t, iv), routed

    def _significant(self, test: GroupTest, taken: set[str]) -> tuple[dict[str, float], float] | None:
        """The customers of ``test`` not explained yet, and their surprise, if still significant."""
        cfg = self.config
        left = {c: ts for c, ts in test.onsets.items() if c not in taken}
        if len(left) < cfg.min_customers:
            return None
        s = test.surprise if len(left) == test.k else binomial_surprise(len(left), test.n, test.p)
        return (left, s) if s >= cfg.min_surprise else None

    def _grow(self, p: Parent, t: float, iv: int, by_family: Mapping[str, list[GroupTest]],
              baseline: Mapping[str, float]) -> None:
        """Customers of ``p``'s group join it while the group's count stays elevated; ``p`` widens
        to a larger group that holds all its customers when that explains them and the new ones better."""
        cfg = self.config
        if t - p.last_burst > cfg.expire_intervals * iv:
            return
        for fam, tests in by_family.items():
            own = next((x for x in tests if x.group == p.group), None)
            if own is None:
                continue
            if own.surprise >= cfg.join_surprise:
                p.last_burst = t
                if fam not in p.families and own.k >= cfg.min_customers:
                    p.also.add(fam)  # its customers show the cause another way too
            if fam not in p.families:
                continue
            if not own.onsets.keys() <= p.members.keys():
                for c, ts in own.onsets.items():
                    p.members.setdefault(c, ts)
                p.changed = True
            if fam == p.family:
                self._widen(p, tests, baseline[fam])

    def _widen(self, p: Parent, tests: list[GroupTest], p0: float) -> None:
        """Widen ``p`` to a group holding all its customers and new ones, when that explains them
        better than ``p``'s group plus the best group of the new ones on their own (one cause
        over a whole provider, not two outages at once). Other parents' customers are theirs."""
        others = {c for q in self.parents.values() if q is not p and p.family in q.families
                  for c in q.members}
        mine = binomial_llr(len(p.members), p.n, p0)
        for test in tests:
            new = test.onsets.keys() - p.members.keys() - others
            if test.group == p.group or not new:
                continue
            union = len(p.members) + len(new)
            # the new ones on their own: background, or a second cause that must earn its own parent
            extra = max(binomial_llr(len(x.onsets.keys() - p.members.keys() - others), x.n, p0)
                        for x in tests)
            apart = mine + max(0.0, extra - self._penalty)
            if binomial_llr(union, test.n, p0) > apart and all(
                    self.catalogue.in_group(c, test.group) for c in p.members):
                p.group, p.n, p.p, p.surprise = test.group, test.n, test.p, test.surprise
                p.equivalent = self._equivalent(test, tests)
                for c in new:
                    p.members[c] = test.onsets[c]
                p.changed = True
                mine = binomial_llr(len(p.members), p.n, p0)

    def _order(self, group: str) -> int:
        attr, _ = split_group(group)
        return len(self._rank) if attr is None else self._rank.get(attr, len(self._rank))

    def _equivalent(self, chosen: GroupTest, tests: Iterable[GroupTest]) -> tuple[str, ...]:
        members = self.catalogue.members(chosen.group)
        return tuple(sorted(t.group for t in tests if t.group != chosen.group and t.n == chosen.n
                            and t.onsets.keys() == chosen.onsets.keys()
                            and self.catalogue.members(t.group) == members))

    def _open(self, t: float, fam: str, tests: list[GroupTest], p0: float) -> None:
        """Open parents for ``fam``'s significant groups, best explanation first; a burst that is
        mostly an open parent's customers (another family of the same cause) joins that parent."""
        taken = {c for p in self.parents.values() if fam in p.families for c in p.members}
        while True:
            cands = []
            for test in tests:
                sig = self._significant(test, taken)
                if sig is not None:
                    left, s = sig
                    cands.append(((-binomial_llr(len(left), test.n, p0), self._order(test.group), test.n,
                                   test.group), test, left, s))
            if not cands:
                return
            _, test, left, s = self._split(min(cands, key=lambda c: c[0]), cands, tests, p0, self._penalty)
            taken.update(left)
            host = self._host(test, left)
            if host is not None:
                host.also.add(fam)
                for c, ts in left.items():
                    host.members.setdefault(c, ts)
                host.changed = True
                continue
            pid = parent_id(test.group, fam, t)
            self.parents[pid] = Parent(pid, fam, test.group, test.n, test.p, s, t, dict(left),
                                       self._equivalent(test, tests), last_burst=t, changed=True)

    @staticmethod
    def _split(best: tuple, cands: list[tuple], tests: list[GroupTest], p0: float, penalty: float) -> tuple:
        """The best candidate, or the part of it that, with the best group for the rest, explains
        its customers best, by more than ``penalty`` (two outages at once are not one fleet-wide
        cause; one provider's outage is not one per region)."""
        while True:
            whole = set(best[2])
            score, chosen = -best[0][0], None
            for cand in cands:
                part = set(cand[2])
                if not part < whole:
                    continue
                rest = whole - part
                alone = max(binomial_llr(len(rest & x.onsets.keys()), x.n, p0) for x in tests)
                s = -cand[0][0] + max(0.0, alone - penalty)
                if s > score or (chosen is not None and s == score and cand[0] < chosen[0]):
                    score, chosen = s, cand
            if chosen is None:
                return best
            best = chosen

    def _host(self, test: GroupTest, left: Mapping[str, float]) -> Parent | None:
        """An open parent a new burst belongs to: same group, or mostly the same customers."""
        for p in self.parents.values():
            shared = sum(1 for c in left if c in p.members)
            if p.group == test.group or test.group in p.equivalent or shared >= HOST_SHARE * len(left):
                return p
        return None

    def _lifecycle(self, t: float, iv: int) -> list[dict[str, Any]]:
        cfg = self.config
        recent = t - (cfg.window_intervals - 1) * iv
        # customers with an alert of a closed interval still on hold (not of intervals still open)
        waiting = {q[0].alert.get("customer_id") for q in self._held.values() if q[0].at <= t}
        records: list[dict[str, Any]] = []
        for pid in list(self.parents):
            p = self.parents[pid]
            if p.status == PENDING:
                if p.children:
                    p.status, p.published_at = FIRING, t
                    p.severity, p.notification = self._severity(p), 1
                elif t - p.last_onset >= cfg.expire_intervals * iv and not waiting & p.members.keys():
                    del self.parents[pid]
                    self.expired += 1
                    continue
            elif p.status == FIRING:
                sev = self._severity(p)
                if _rank(sev) > _rank(p.severity):
                    p.severity, p.notification, p.changed = sev, p.notification + 1, True
                if (all(c.status == RESOLVED for c in p.children.values()) and p.last_onset < recent
                        and not waiting & p.members.keys()):
                    p.status, p.notification, p.changed = RESOLVED, p.notification + 1, True
                    p.resolved_at = max((c.resolved_at for c in p.children.values() if c.resolved_at),
                                        default=t)
            if p.status != PENDING and p.changed:
                p.update += 1
                p.changed = False
                records.append(p.record(t))
            if p.status == RESOLVED:
                del self.parents[pid]
        return records

    # -- state (the Kafka correlator keeps it in a compacted topic) ----------------------------
    def to_state(self) -> dict[str, Any]:
        """Open parents, held alerts and decided routes, as JSON-able data."""
        return {"parents": [_state_parent(p) for p in self.parents.values()],
                "held": {aid: [[h.decide_at, h.alert, h.at] for h in q] for aid, q in self._held.items()},
                "routes": self._routes, "expired": self.expired}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace everything by :meth:`to_state`'s output."""
        self.parents = {p.parent_id: p for p in map(_load_parent, state.get("parents", []))}
        held = state.get("held", {})
        self._held = {aid: [_Held(float(d), dict(a), float(at)) for d, a, at in q] for aid, q in held.items()}
        self._routes = dict(state.get("routes", {}))
        self.expired = int(state.get("expired", 0))

    def _severity(self, p: Parent) -> str:
        if len(p.members) >= self.config.critical_customers:
            return SEVERITIES[-1]
        return SEVERITIES[max((_rank(c.severity) for c in p.children.values()), default=0)]
