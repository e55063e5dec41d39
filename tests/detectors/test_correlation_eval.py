"""Parent evaluation: each definition of the module docstring on a small hand-made case."""
from __future__ import annotations

from detectors.catalogue import Catalogue
from detectors.correlation_eval import evaluate_parents
from detectors.events import format_ts
from detectors.synthetic import Incident

IV = 300
T = 1_800_000_000.0
CAT = Catalogue({**{f"a{i}": {"origin_region": "r1"} for i in range(30)},
                 **{f"b{i}": {"origin_region": "r2"} for i in range(30)}})


def fired(cid, start, at, aid=None, n=1, status="firing", parent=None):
    a = {"alert_id": aid or f"x-{cid}", "customer_id": cid, "status": status, "notification": n,
         "started_at": format_ts(start), "event_ts": format_ts(at), "interval_s": IV,
         "resolved_at": format_ts(at) if status == "resolved" else None}
    return a, dict(a, parent_id=parent)


def record(pid, status, n, published, children, scope="origin_region=r1", resolved=None, equivalent=()):
    return {"parent_id": pid, "status": status, "notification": n, "published_at": format_ts(published),
            "resolved_at": None if resolved is None else format_ts(resolved), "family": "origin:522",
            "scope": {"group": scope, "equivalent": list(equivalent)}, "customers": children,
            "customers_affected": len(children), "cause": "x",
            "children": [{"alert_id": f"x-{c}", "status": "resolved" if status == "resolved" else "firing"}
                         for c in children]}


def case():
    labels = [Incident(f"a{i}", T, T + 10 * IV, "origin_outage", "cause-1", "origin_region=r1")
              for i in range(25)]
    labels.append(Incident("b0", T + IV, T + 5 * IV, "latency"))  # unrelated, other region
    labels.append(Incident("a29", T + IV, T + 5 * IV, "latency"))  # unrelated, same region
    alerts, routed = [], []
    for i in range(25):
        pid = None if i == 0 else "P"  # the first child paged before the parent
        a, r = fired(f"a{i}", T, T + IV + (i % 3) * IV, parent=pid)
        alerts.append(a)
        routed.append(r)
        if i == 1:  # an escalation of a folded child: not a notification
            a2, r2 = fired("a1", T, T + 3 * IV, n=2, parent="P")
            alerts.append(a2)
            routed.append(r2)
        a3, r3 = fired(f"a{i}", T, T + 12 * IV, n=3 if i == 1 else 2, status="resolved", parent=pid)
        alerts.append(a3)
        routed.append(r3)
    for cid, pid in (("b0", None), ("a29", "P")):
        a, r = fired(cid, T + IV, T + 2 * IV, parent=pid)
        alerts.append(a)
        routed.append(r)
    kids = [f"a{i}" for i in range(1, 25)]
    incidents = [record("P", "firing", 1, T + 2 * IV, kids[:5]), record("P", "firing", 1, T + 2 * IV, kids),
                 record("P", "resolved", 2, T + 2 * IV, kids, resolved=T + 12 * IV),
                 record("F", "firing", 1, T + 500 * IV, ["b5", "b6"], scope="origin_region=r2")]
    return labels, alerts, routed, incidents


def test_every_figure_of_a_small_case():
    labels, alerts, routed, incidents = case()
    ev = evaluate_parents(labels, alerts, routed, incidents, span_s=7 * 86400, interval_s=IV, catalogue=CAT,
                          min_customers=20)
    h = ev.headline()
    assert h["causes"] == 1 and h["causes_targeted"] == 1
    assert h["parent_recall"] == 1.0 and h["localised_right"] == 1.0
    assert h["time_to_parent_median_intervals"] == 1.0  # first child at T+IV, published at T+2IV
    # per customer: 25 openings + 1 escalation; sent: the parent once + the child that paged alone
    assert (h["per_customer_notifications"], h["notifications"]) == (26, 2)
    assert h["false_parents"] == 1 and h["false_parents_per_week"] == 1.0
    assert (h["unrelated_overlapping"], h["unrelated_notified_alone"]) == (2, 1)
    assert (h["unrelated_in_scope"], h["unrelated_in_scope_alone"]) == (1, 0)
    # F is open with open children: not orphaned
    assert h["orphan_children"] == 0 and h["orphan_parents"] == 0
    assert "parent recall 100.0%" in ev.format_table()
    for k in incidents[-1]["children"]:
        k["status"] = "resolved"  # ... but a parent left firing after all its children resolved is
    h = evaluate_parents(labels, alerts, routed, incidents, span_s=7 * 86400, interval_s=IV).headline()
    assert h["orphan_parents"] == 1


def test_a_late_parent_a_wrong_scope_and_a_lost_resolution_count_against():
    labels, alerts, routed, incidents = case()
    for r in incidents[:3]:
        r["published_at"] = format_ts(T + 4 * IV)  # 3 intervals after the first child
        r["scope"] = {"group": "origin_region=r2", "equivalent": []}
    routed = [r for r in routed if not (r["alert_id"] == "x-a3" and r["status"] == "resolved")]
    h = evaluate_parents(labels, alerts, routed, incidents, span_s=7 * 86400, interval_s=IV).headline()
    assert h["parent_recall"] == 0.0 and h["localised_right"] == 0.0
    assert h["orphan_children"] == 1 and h["notifications_lost"] == 1


def test_an_equivalent_group_is_the_right_scope():
    labels, alerts, routed, incidents = case()
    for r in incidents[:3]:
        r["scope"] = {"group": "origin_asn=A1", "equivalent": ["origin_region=r1"]}
    assert evaluate_parents(labels, alerts, routed, incidents, span_s=86400.0, interval_s=IV).headline()[
        "localised_right"] == 1.0


def test_two_parents_for_one_cause_is_no_recall():
    labels, alerts, routed, incidents = case()
    second = record("Q", "firing", 1, T + 3 * IV, ["a2", "a3"])
    for r in routed:
        if r["customer_id"] in ("a2", "a3"):
            r["parent_id"] = "Q"
    incidents = incidents[:3] + [second]
    for r in incidents[:3]:
        r["children"] = [k for k in r["children"] if k["alert_id"] not in ("x-a2", "x-a3")]
    h = evaluate_parents(labels, alerts, routed, incidents, span_s=86400.0, interval_s=IV).headline()
    assert h["parent_recall"] == 0.0 and h["false_parents"] == 0
