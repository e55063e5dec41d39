"""The replay report with parent incidents renders in a real browser (headless Debian chromium)."""
from __future__ import annotations

import html

from streams.offline.report import write_replay_report
from tests.services import render_in_chromium

SUMMARY = {
    "source": {"path": "sim.jsonl.gz"}, "config": {"path": None, "fingerprint": "abc"}, "records": 10,
    "invalid": 0, "customers": 3, "first_ts": "2026-01-05T00:00:00Z", "last_ts": "2026-01-06T00:00:00Z",
    "span_days": 1, "interval_s": 300, "outcomes": {"scored": 10}, "events_per_s": 100.0, "seconds": 0.1,
    "alerts": {"alerts": 2, "opened_incidents": 1, "by_severity": {}, "by_primary_signal": {}},
    "parents": {"customers_in_catalogue": 3, "parents": 1, "resolved": 1, "children": 2,
                "notifications_folded": 2, "notifications_alone": 0, "parent_notifications": 1,
                "evaluation": None},
}
CAUSE = "origin errors (522) for 2 of 3 customers with origin_provider=p<1> & co since 2026-01-05T10:00:00Z"
INCIDENT = {
    "parent_id": "p1", "status": "resolved", "severity": "critical", "cause": CAUSE,
    "published_at": "2026-01-05T10:10:00Z", "children_open": 0,
    "children": [{"customer_id": c, "alert_id": f"a-{c}", "severity": "warning", "status": "resolved",
                  "started_at": "2026-01-05T10:05:00Z", "resolved_at": "2026-01-05T11:00:00Z"} for c in "xy"],
}


def test_the_report_shows_parents_with_their_children_and_no_console_errors(tmp_path):
    page = write_replay_report(tmp_path / "out", SUMMARY, traces={}, alerts=[], labels=[], thresholds={},
                               order=[], incidents=[INCIDENT])
    dom, console = render_in_chromium(page, tmp_path / "profile")
    assert console == [], console
    assert "Parent incidents (shared causes)" in dom
    assert "<details>" in dom and html.escape(CAUSE) in dom  # escaped, not markup
    assert dom.count("a-x") == 1 and "a-y" in dom  # its children, in its table


def test_the_browser_check_sees_a_console_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><p>x</p><script>console.error('boom'); undefinedCall();</script>")
    _, console = render_in_chromium(page, tmp_path / "profile")
    assert any("boom" in line for line in console) and any("undefinedCall" in line for line in console)
