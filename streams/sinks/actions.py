"""What a notification offers a support tool: the requests behind "false alarm" / "expected" buttons.

Every webhook payload carries ``actions`` and every Alertmanager alert ``*_url`` annotations
pointing at the worker's steering API (:mod:`streams.steering.http`; bearer token required).
Notifications a maintenance window mutes (``silenced_by``) are not sent at all.

>>> a = {"alert_id": "39b3b6ed530df191", "customer_id": "acme", "status": "firing"}
>>> acts = actions(a, "http://lookout:6066")
>>> acts["false_alarm"]["url"], acts["false_alarm"]["body"]
('http://lookout:6066/feedback', {'alert_id': '39b3b6ed530df191', 'verdict': 'false_alarm'})
>>> action_urls(a, "http://lookout:6066")["expected_url"]
'http://lookout:6066/feedback?alert_id=39b3b6ed530df191&verdict=expected'
>>> muted({"silenced_by": ["mw-1"]}), muted(a)
(True, False)
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlencode

from detectors.feedback import VERDICTS

__all__ = ["actions", "action_urls", "muted"]

#: how long the "silence" action proposes to mute a customer, by default
SILENCE_FOR = "4h"


def muted(alert: Mapping[str, Any]) -> bool:
    """Whether a maintenance window mutes this notification (it stays on the alerts topic)."""
    return bool(alert.get("silenced_by"))


def actions(alert: Mapping[str, Any], api_url: str) -> dict[str, Any]:
    """The requests a support tool can send about ``alert``: one per verdict, and a window."""
    base = api_url.rstrip("/")
    aid = alert["alert_id"]
    out: dict[str, Any] = {
        v: {"method": "POST", "url": f"{base}/feedback", "body": {"alert_id": aid, "verdict": v}}
        for v in VERDICTS
    }
    out["silence"] = {"method": "POST", "url": f"{base}/silences",
                      "body": {"customer_id": alert["customer_id"], "from": "now", "for": SILENCE_FOR}}
    return out


def action_urls(alert: Mapping[str, Any], api_url: str) -> dict[str, str]:
    """The same as POST-able URLs (parameters in the query), for Alertmanager annotations."""
    base = api_url.rstrip("/")
    return {f"{v}_url": f"{base}/feedback?" + urlencode({"alert_id": alert["alert_id"], "verdict": v})
            for v in VERDICTS}
