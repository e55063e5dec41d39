"""The correlator's Prometheus metrics (against the worker's injected registry).

Gauges are set by the stage that owns the state (stage two runs on one worker at a time: sum
over workers in the dashboards); counters count what this worker's stages sent. The watermark
lag is computed when scraped (:meth:`CorrelationMetrics.lag_from`): set after each batch, it
kept its last value while stage two stood still -- a stage waiting for ever on its producer
read 14 hours, unchanged for minutes, instead of a lag that grows.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["CorrelationMetrics"]

PARENT_STATES = ("pending", "firing")
ROUTES = ("folded", "alone")


class CorrelationMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.parents_open = Gauge(
            "lookout_parents_open", "Open parent incidents, by state (pending: no child alert yet; firing)",
            ["state"], registry=registry)
        self.parent_children = Gauge(
            "lookout_parent_children", "Child alerts grouped under open parents (still open ones)",
            registry=registry)
        self.parent_updates = Counter(
            "lookout_parent_updates_total", "Parent incident records written, by status (firing, resolved)",
            ["status"], registry=registry)
        self.routed = Counter(
            "lookout_alerts_routed_total",
            "Alert notifications routed by the correlator: folded under a parent, or alone (paging)",
            ["route"], registry=registry)
        self.held = Gauge(
            "lookout_correlator_held_alerts", "Alerts waiting for their hold to end (a parent may form)",
            registry=registry)
        self.customers = Gauge(
            "lookout_customers", "Customers in the catalogue (the customers topic)", registry=registry)
        self.watermark_lag = Gauge(
            "lookout_correlator_watermark_lag_seconds",
            "Wall clock minus the event time stage two has closed up to (what the hold and grace cost)",
            registry=registry)
        self.processes = Gauge(
            "lookout_correlator_processes",
            "Members of the `lookout correlator` consumer group, seen by a worker that leaves the stages "
            "to it (no series where the worker runs them itself)", ["group"], registry=registry)
        for s in PARENT_STATES:
            self.parents_open.labels(s).set(0)
        for r in ROUTES:
            self.routed.labels(r)
        for s in ("firing", "resolved"):
            self.parent_updates.labels(s)
        self.parent_children.set(0)
        self.held.set(0)
        self.customers.set(0)

    def observe(self, incidents: Iterable[dict[str, Any]], alerts: Iterable[dict[str, Any]]) -> None:
        for r in incidents:
            self.parent_updates.labels(r["status"]).inc()
        folded = alone = 0
        for a in alerts:
            if a.get("parent_id"):
                folded += 1
            else:
                alone += 1
        if folded:
            self.routed.labels("folded").inc(folded)
        if alone:
            self.routed.labels("alone").inc(alone)

    def lag_from(self, lag: Callable[[], float | None]) -> None:
        """Read the watermark lag from ``lag()`` at every scrape (None: no stage two here, or it
        has closed nothing yet: 0)."""
        self.watermark_lag.set_function(lambda: lag() or 0.0)

    def state(self, parents: Iterable[Any], held: int) -> None:
        counts = dict.fromkeys(PARENT_STATES, 0)
        children = 0
        for p in parents:
            counts[p.status] = counts.get(p.status, 0) + 1
            children += sum(1 for c in p.children.values() if c.status != "resolved")
        for s, n in counts.items():
            if s in PARENT_STATES:
                self.parents_open.labels(s).set(n)
        self.parent_children.set(children)
        self.held.set(held)
