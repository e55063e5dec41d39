"""``lookout alerts tail`` with the correlator: parents shown with their children folded."""
from __future__ import annotations

from streams.sinks.alert_tail import Console, _NoTty, fold, format_alert


def parent(update, status="firing", notification=1, children=3):
    return {"schema": "lookout.incident/v1", "parent_id": "d1dba4c5a2bb7a85", "status": status,
            "notification": notification, "update": update, "severity": "critical",
            "event_ts": "2026-01-07T12:10:00Z", "children_open": children if status == "firing" else 0,
            "cause": "origin errors (522) for 42 of 180 customers with origin_provider=p1 since 12:05",
            "children": [{"customer_id": f"cust-{i}"} for i in range(children)], "customers": ["cust-0"]}


def child(status="firing"):
    return {"alert_id": "a1", "customer_id": "cust-0", "status": status, "severity": "warning",
            "signal": "origin_errors", "event_ts": "2026-01-07T12:10:00Z", "parent_id": "d1dba4c5a2bb7a85"}


def test_a_parent_is_shown_when_it_opens_escalates_and_resolves_with_its_children_folded():
    stream = [parent(1), child(), parent(2, children=12), parent(3, notification=2, children=12),
              child("resolved"), parent(4, "resolved", 3, 12)]
    shown = list(fold(iter(stream)))
    assert [x.get("update") for x in shown] == [1, None, 3, None, 4]  # update 2 (a child joined) folded
    con = Console(_NoTty())
    lines = [format_alert(x, con) for x in shown]
    assert lines[0].splitlines()[0].split()[2:4] == ["PARENT", "d1dba4c5a2"]
    assert "3 child alerts folded under it (3 open): cust-0, cust-1, cust-2" in lines[0]
    assert "+ cust-0" in lines[1]
    assert "(under parent d1dba4c5a2)" in lines[1]
    assert "ESCALATED" in lines[2] and "cust-7 and 4 more" in lines[2]
    assert "RESOLVED" in lines[4] and "all 12 child alerts resolved" in lines[4]
