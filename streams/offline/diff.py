"""Two configurations compared: incidents gained, lost and changed.

Incidents are grouped from alerts by :func:`detectors.evaluation.incidents`, as everywhere else.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from detectors.evaluation import incidents

DIFF_FIELDS = ("severity", "signal", "resolved_at")


def diff_alerts(new: Iterable[Mapping[str, Any]], old: Iterable[Mapping[str, Any]],
                matched_new: set[str] | None = None, matched_old: set[str] | None = None) -> dict[str, Any]:
    """Incidents gained, lost and changed (same alert_id, different severity/signal/resolved_at).

    ``matched_*`` (alert ids that match a label) annotate rows with ``matches_label``.
    """
    a, b = incidents(new), incidents(old)

    def row(inc, matched):
        r = {
            k: getattr(inc, k)
            for k in ("alert_id", "customer_id", "started_at", "signal", "severity", "resolved_at")
        }
        if matched is not None:
            r["matches_label"] = inc.alert_id in matched
        return r

    gained = [row(a[k], matched_new) for k in a if k not in b]
    lost = [row(b[k], matched_old) for k in b if k not in a]
    changed = []
    for k in a:
        if k in b:
            ch = {f: [getattr(b[k], f), getattr(a[k], f)] for f in DIFF_FIELDS
                  if getattr(a[k], f) != getattr(b[k], f)}
            if ch:
                r = row(a[k], matched_new)
                r["changes"] = ch
                changed.append(r)

    def key(r):
        return r["started_at"] or "", r["customer_id"]

    return {
        "gained": sorted(gained, key=key),
        "lost": sorted(lost, key=key),
        "changed": sorted(changed, key=key),
        "unchanged": sum(1 for k in a if k in b) - len(changed),
        "counts": {"new": len(a), "baseline": len(b)},
    }


def format_diff(diff: Mapping[str, Any], limit: int = 20) -> str:
    g, l_, c = diff["gained"], diff["lost"], diff["changed"]
    lines = [
        f"alerts vs baseline: {len(g)} gained, {len(l_)} lost, {len(c)} changed, "
        f"{diff['unchanged']} unchanged "
        f"(incidents: baseline {diff['counts']['baseline']}, new {diff['counts']['new']})"
    ]

    def lab(r):
        if "matches_label" not in r:
            return ""
        return "  [labelled]" if r["matches_label"] else "  [no label]"

    for mark, title, rows in (("+", "gained", g), ("-", "lost", l_), ("~", "changed", c)):
        for r in rows[:limit]:
            text = (f"  {mark} {title:<8}{r['customer_id']:<20}{r['started_at']:<22}{r['severity']:<9}"
                    f"{r['signal']:<14}")
            if "changes" in r:
                text += "; ".join(f"{f} {o} -> {n}" for f, (o, n) in r["changes"].items())
            lines.append(text.rstrip() + lab(r))
        if len(rows) > limit:
            lines.append(f"    ... {len(rows) - limit} more {title} (see diff.json)")
    return "\n".join(lines)
