"""Labelled evaluation of the correlator: parents against the shared causes that were injected.

Inputs: the labels (per-customer incidents; those of a shared cause carry its ``cause`` id and
``scope``, :mod:`detectors.synthetic_shared`), the detectors' alerts, the same alerts as the
correlator routed them (with ``parent_id``) and the parent incident records it wrote.

Definitions (``iv`` = interval, ``grace`` as in :mod:`detectors.evaluation`):

* A **cause** is all labels with one ``cause`` id; it *touches* as many customers as it has
  labels; its window is from its first label's start to its last label's end.
* Its **children** are the first firing alerts of its customers that match their label
  (``started_at`` or ``event_ts`` within ``[start - iv, end + grace iv]``); its **first child**
  is the earliest of them (by ``event_ts``).
* A published parent **belongs** to the cause that holds most of its children, if that is at
  least half of them; otherwise it is a **false parent**.
* A cause **has its parent** when exactly one parent belongs to it and that parent was
  published at most ``max_delay_intervals`` (2) after its first child; **parent recall** is the
  share of causes touching at least ``min_customers`` (20) that have their parent.
* The parent's scope is **right** when it is the cause's scope or a group with exactly the same
  customers (named in the parent's ``equivalent``), at publication and at the end.
* **Per-customer count**: the firing notifications (openings and escalations) of the cause's
  children: what the support queue gets without the correlator. **Notifications**: the firing
  notifications of its parents plus those of its children that were not folded.
* An **unrelated incident overlapping a parent**: a label without a cause, detected, whose
  window overlaps a published parent's life (publication to resolution); it **notified on its
  own** when its first matching alert was routed without a ``parent_id``.
* **Orphans**: resolutions the detectors made that the correlator did not pass on, and parents
  left open although all their children resolved. (At the sinks, across restarts, the
  integration tests check the same.)

>>> ev = evaluate_parents([], [], [], [], span_s=604800.0, interval_s=300)
>>> ev.headline()["false_parents_per_week"]
0.0
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .catalogue import Catalogue
from .evaluation import WEEK_S, format_delay, quantile
from .events import time_or_none

__all__ = ["ParentEvaluation", "evaluate_parents"]

#: causes touching at least this many customers are what the targets are about
MIN_CUSTOMERS = 20
#: a parent published at most this many intervals after its cause's first child is in time
MAX_DELAY_INTERVALS = 2.0
#: a parent belongs to the cause holding at least this share of its children
BELONG_SHARE = 0.5


def _share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


@dataclass
class _Cause:
    cause_id: str
    scope: str
    customers: dict[str, tuple[float, float]]  # customer -> its label window
    kind: str
    children: dict[str, float] = field(default_factory=dict)  # alert id -> event_ts of its first firing
    parents: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return min(s for s, _ in self.customers.values())

    @property
    def end(self) -> float:
        return max(e for _, e in self.customers.values())


@dataclass
class ParentEvaluation:
    """What :func:`evaluate_parents` measured (see the module docstring)."""

    interval_s: float
    span_s: float
    min_customers: int
    causes: list[dict[str, Any]]
    false_parents: list[dict[str, Any]]
    unrelated: dict[str, int]  # overlapping, notified_alone, in_scope, in_scope_alone
    orphans: dict[str, int]

    def _big(self) -> list[dict[str, Any]]:
        return [c for c in self.causes if c["customers"] >= self.min_customers]

    def headline(self) -> dict[str, Any]:
        big = self._big()
        n = len(big)

        def share(key: str) -> float | None:
            return round(sum(1 for c in big if c[key]) / n, 4) if n else None

        delays = [c["delay_intervals"] for c in big if c["delay_intervals"] is not None]
        per_customer = sum(c["per_customer"] for c in big)
        sent = sum(c["notifications"] for c in big)
        weeks = self.span_s / WEEK_S
        u = self.unrelated
        return {
            "causes": len(self.causes), "causes_targeted": n,
            "parent_recall": share("has_parent"),
            "localised_right": share("scope_right"),
            "localised_right_at_publish": share("scope_right_at_publish"),
            "time_to_parent_median_intervals": quantile(delays, 0.5),
            "time_to_parent_max_intervals": max(delays) if delays else None,
            "notifications": sent, "per_customer_notifications": per_customer,
            "notification_ratio": round(sent / per_customer, 4) if per_customer else None,
            "false_parents": len(self.false_parents),
            "false_parents_per_week": round(len(self.false_parents) / weeks, 3) if weeks > 0 else None,
            "unrelated_overlapping": u["overlapping"], "unrelated_notified_alone": u["notified_alone"],
            "unrelated_notified_share": _share(u["notified_alone"], u["overlapping"]),
            "unrelated_in_scope": u["in_scope"], "unrelated_in_scope_alone": u["in_scope_alone"],
            "unrelated_in_scope_share": _share(u["in_scope_alone"], u["in_scope"]),
            "orphan_children": self.orphans["children"], "notifications_lost": self.orphans["lost"],
            "orphan_parents": self.orphans["parents"],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.headline(), "interval_s": self.interval_s, "span_s": self.span_s,
                "cause_results": self.causes, "false_parent_list": self.false_parents}

    def format_table(self) -> str:
        """Plain text for terminals: the headline, then one line per cause."""
        h = self.headline()

        def pct(v: Any) -> str:
            return "n/a" if v is None else f"{v:.1%}"

        iv = self.interval_s
        lines = [
            f"shared causes {h['causes']} ({h['causes_targeted']} touching >= {self.min_customers} "
            "customers)",
            f"parent recall {pct(h['parent_recall'])}  localised right {pct(h['localised_right'])} "
            f"(at publication {pct(h['localised_right_at_publish'])})",
            f"time to parent: median {format_delay(h['time_to_parent_median_intervals'], iv)}, "
            f"max {format_delay(h['time_to_parent_max_intervals'], iv)}",
            f"notifications {h['notifications']} vs {h['per_customer_notifications']} per customer "
            f"({pct(h['notification_ratio'])})",
            f"false parents {h['false_parents']} ({h['false_parents_per_week']} per week)",
            f"unrelated incidents overlapping a parent {h['unrelated_overlapping']}, notified on their own "
            f"{h['unrelated_notified_alone']} ({pct(h['unrelated_notified_share'])}); in the parent's group "
            f"{h['unrelated_in_scope']}, on their own {h['unrelated_in_scope_alone']} "
            f"({pct(h['unrelated_in_scope_share'])})",
            f"orphaned children {h['orphan_children']} (notifications lost {h['notifications_lost']}), "
            f"orphaned parents {h['orphan_parents']}",
            "",
            f"{'cause':<11}{'scope':<40}{'touched':>8}{'parents':>8}{'delay':>7}{'right':>6}{'sent':>6}{'per-cust':>9}",
        ]
        for c in self.causes:
            delay = "-" if c["delay_intervals"] is None else f"{c['delay_intervals']:.0f}"
            lines.append(f"{c['cause_id']:<11}{c['scope'][:39]:<40}{c['customers']:>8}{len(c['parents']):>8}"
                         f"{delay:>7}{'yes' if c['scope_right'] else 'no':>6}{c['notifications']:>6}"
                         f"{c['per_customer']:>9}")
        return "\n".join(lines)


def _causes(labels: Iterable[Any]) -> tuple[dict[str, _Cause], list[tuple[str, float, float]]]:
    causes: dict[str, _Cause] = {}
    single: list[tuple[str, float, float]] = []
    for lab in labels:
        cid, s, e = _get(lab, "customer_id"), time_or_none(_get(lab, "start")), time_or_none(_get(lab, "end"))
        if cid is None or s is None or e is None:
            continue
        cause = _get(lab, "cause")
        if cause is None:
            single.append((cid, s, e))
            continue
        c = causes.setdefault(cause, _Cause(cause, _get(lab, "scope") or "", {}, _get(lab, "kind") or ""))
        c.customers[cid] = (s, e)
    return causes, single


def _matches(alert: Mapping[str, Any], window: tuple[float, float], iv: float, grace: float) -> bool:
    lo, hi = window[0] - iv, window[1] + grace * iv
    return any(t is not None and lo <= t <= hi
               for t in (time_or_none(alert.get("started_at")), time_or_none(alert.get("event_ts"))))


def _parents(incidents: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in incidents:
        out.setdefault(r["parent_id"], []).append(r)
    return out


def _pages(records: Sequence[Mapping[str, Any]]) -> int:
    """Firing notifications of one parent (publication and escalations; updates do not page)."""
    return len({r["notification"] for r in records if r["status"] == "firing"})


def evaluate_parents(labels: Iterable[Any], alerts: Iterable[Mapping[str, Any]],
                     routed: Iterable[Mapping[str, Any]], incidents: Iterable[Mapping[str, Any]], *,
                     span_s: float, interval_s: float, grace_intervals: float = 2,
                     min_customers: int = MIN_CUSTOMERS, data_end: float | None = None,
                     catalogue: Catalogue | None = None) -> ParentEvaluation:
    """Score the correlator's output against shared-cause labels (definitions in the module docstring).

    ``span_s`` is the evaluated time (for false parents per week); ``data_end`` the end of the
    data, default: the latest alert. With the ``catalogue``, unrelated incidents are also counted
    among the customers of the overlapping parents' groups (the harder case).
    """
    iv = float(interval_s)
    causes, single = _causes(labels)
    alerts, routed = list(alerts), list(routed)
    owner: dict[str, str] = {}  # child alert id -> cause id
    firings: dict[str, int] = {}  # alert id -> firing notifications
    for a in alerts:
        if a.get("status") != "firing":
            continue
        aid = a["alert_id"]
        firings[aid] = firings.get(aid, 0) + 1
        if a.get("notification") != 1:
            continue
        for c in causes.values():
            w = c.customers.get(str(a.get("customer_id")))
            if w is not None and _matches(a, w, iv, grace_intervals):
                c.children[aid] = time_or_none(a.get("event_ts")) or w[0]
                owner[aid] = c.cause_id
                break
    parents = _parents(incidents)
    false_parents = _assign(parents, causes, owner)
    results = [_cause_result(c, parents, routed, firings, iv) for c in
               sorted(causes.values(), key=lambda c: c.start)]
    end = data_end if data_end is not None else max(
        (t for a in alerts if (t := time_or_none(a.get("event_ts"))) is not None), default=0.0)
    return ParentEvaluation(iv, float(span_s), min_customers, results, false_parents,
                            _unrelated(single, alerts, routed, parents, iv, grace_intervals, end, catalogue),
                            _orphans(alerts, routed, parents))


def _assign(parents: Mapping[str, list[Mapping[str, Any]]], causes: Mapping[str, _Cause],
            owner: Mapping[str, str]) -> list[dict[str, Any]]:
    false = []
    for pid, recs in parents.items():
        kids = [k["alert_id"] for k in recs[-1]["children"]]
        votes: dict[str, int] = {}
        for k in kids:
            if k in owner:
                votes[owner[k]] = votes.get(owner[k], 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=None)
        if best is not None and best[1] >= BELONG_SHARE * len(kids):
            causes[best[0]].parents.append(pid)
        else:
            last = recs[-1]
            false.append({"parent_id": pid, "scope": last["scope"]["group"], "family": last["family"],
                          "customers": last["customers_affected"], "children": len(kids),
                          "published_at": recs[0]["published_at"], "cause": last["cause"]})
    return false


def _scope_right(record: Mapping[str, Any], scope: str) -> bool:
    s = record["scope"]
    return s["group"] == scope or scope in s.get("equivalent", ())


def _cause_result(c: _Cause, parents: Mapping[str, list[Mapping[str, Any]]], routed: list[Mapping[str, Any]],
                  firings: Mapping[str, int], iv: float) -> dict[str, Any]:
    first = min(c.children.values(), default=None)
    delay = None
    right = right_at_publish = False
    if len(c.parents) == 1 and first is not None:
        recs = parents[c.parents[0]]
        published = time_or_none(recs[0]["published_at"])
        delay = None if published is None else max(0.0, (published - first) / iv)
        right, right_at_publish = _scope_right(recs[-1], c.scope), _scope_right(recs[0], c.scope)
    alone = sum(1 for a in routed if a.get("alert_id") in c.children and a.get("status") == "firing"
                and a.get("parent_id") is None)
    sent = alone + sum(_pages(parents[pid]) for pid in c.parents)
    return {"cause_id": c.cause_id, "kind": c.kind, "scope": c.scope, "customers": len(c.customers),
            "children": len(c.children), "parents": list(c.parents), "delay_intervals": delay,
            "has_parent": delay is not None and delay <= MAX_DELAY_INTERVALS,
            "scope_right": right, "scope_right_at_publish": right_at_publish,
            "scope_found": parents[c.parents[0]][-1]["scope"]["group"] if c.parents else None,
            "per_customer": sum(firings.get(aid, 0) for aid in c.children), "notifications": sent,
            "children_alone": alone}


def _lives(parents: Mapping[str, list[Mapping[str, Any]]], end: float) -> list[tuple[float, float, str]]:
    out = []
    for recs in parents.values():
        start = time_or_none(recs[0]["published_at"])
        stop = time_or_none(recs[-1]["resolved_at"]) or end
        if start is not None:
            out.append((start, max(start, stop), recs[-1]["scope"]["group"]))
    return out


def _unrelated(single: list[tuple[str, float, float]], alerts: list[Mapping[str, Any]],
               routed: list[Mapping[str, Any]], parents: Mapping[str, list[Mapping[str, Any]]], iv: float,
               grace: float, end: float, catalogue: Catalogue | None) -> dict[str, int]:
    lives = _lives(parents, end)
    route = {a["alert_id"]: a.get("parent_id") for a in routed if a.get("status") == "firing"
             and a.get("notification") == 1}
    first_of: dict[str, list[Mapping[str, Any]]] = {}
    for a in alerts:
        if a.get("status") == "firing" and a.get("notification") == 1:
            first_of.setdefault(a["customer_id"], []).append(a)
    out = {"overlapping": 0, "notified_alone": 0, "in_scope": 0, "in_scope_alone": 0}
    for cid, s, e in single:
        over = [g for a, b, g in lives if s < b and a < e]
        if not over:
            continue
        hit = next((a for a in first_of.get(cid, ()) if _matches(a, (s, e), iv, grace)), None)
        if hit is None or hit["alert_id"] not in route:
            continue
        alone = route[hit["alert_id"]] is None
        out["overlapping"] += 1
        out["notified_alone"] += alone
        if catalogue is not None and any(catalogue.in_group(cid, g) for g in over):
            out["in_scope"] += 1
            out["in_scope_alone"] += alone
    return out


def _orphans(alerts: list[Mapping[str, Any]], routed: list[Mapping[str, Any]],
             parents: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, int]:
    """Notifications the detectors made that the correlator did not pass on (a resolution lost is an
    orphaned child), and parents left open although all their children resolved."""
    def key(a: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        return a.get("alert_id"), a.get("status"), a.get("notification")

    passed = {key(a) for a in routed}
    lost = [a for a in alerts if key(a) not in passed]
    stuck = sum(1 for recs in parents.values() if recs[-1]["status"] != "resolved"
                and all(k["status"] == "resolved" for k in recs[-1]["children"]))
    resolutions = sum(1 for a in lost if a.get("status") == "resolved")
    return {"children": resolutions, "lost": len(lost), "parents": stuck}
