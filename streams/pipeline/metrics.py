"""Prometheus metrics of the worker, built against an injected registry.

Names are in base units; labels are bounded (outcome, signal, severity, status -- never one
value per customer for every customer).
"""
from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from detectors.alerting import SEVERITIES
from detectors.engine import OUTCOMES
from detectors.signals import SIGNALS

#: outcome of a message that never reached the engine (it was parked on the dead-letter topic)
INVALID_OUTCOME = "invalid"
#: outcome of a duplicate that is a re-read after a restore, not a duplicate the producer sent: an
#: event of a message below the offset up to which the partition's previous owner may have
#: processed it (the restored state already has it)
REREAD = "reread"
#: every value of the ``outcome`` label of ``lookout_events_total``
EVENT_OUTCOMES = (*OUTCOMES, REREAD, INVALID_OUTCOME)
#: alert notification statuses (the ``status`` label of ``lookout_alerts_total``)
STATUSES = ("firing", "resolved")

#: from this many values a batch is counted into buckets by numpy, not value by value
NUMPY_FROM = 64

SCORE_BUCKETS = (0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999, 1.0)
LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400, 259200, 604800, float("inf"))
SINK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
PROC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


def dlq_counter(registry: CollectorRegistry) -> Counter:
    """``lookout_dlq_messages_total``: what a process parked on a dead-letter topic (the worker's
    and ``lookout correlator``'s)."""
    return Counter("lookout_dlq_messages_total",
                   "Messages parked on a dead-letter topic, by topic and reason kind", ["topic", "kind"],
                   registry=registry)


class WorkerMetrics:
    """All metrics of one worker. Give tests their own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._customer_labels: dict[str, list[tuple[Gauge, tuple[str, ...]]]] = {}
        self._pipeline(registry)
        self._sinks(registry)
        self._customers(registry)
        self._health_and_state(registry)
        self._steering(registry)
        self._known_series_at_zero()

    def _pipeline(self, r: CollectorRegistry) -> None:
        self.events = Counter(
            "lookout_events_total", f"Events consumed, by outcome ({', '.join(EVENT_OUTCOMES)})",
            ["outcome"], registry=r)
        self.dlq = dlq_counter(r)
        self.batch_seconds = Histogram(
            "lookout_batch_processing_seconds", "Wall time to process one batch of events",
            buckets=PROC_BUCKETS, registry=r)
        self.batch_events = Histogram(
            "lookout_batch_size_events", "Events per processed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, float("inf")), registry=r)
        self.lag = Histogram(
            "lookout_event_lag_seconds",
            "Processing time minus the end of the event's interval (event-time lag)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "lookout_anomaly_score", "Calibrated anomaly score (1 - tail probability) per signal",
            ["signal"], buckets=SCORE_BUCKETS, registry=r)
        self.alerts = Counter(
            "lookout_alerts_total", "Alert notifications emitted, by status, severity and primary signal",
            ["status", "severity", "signal"], registry=r)
        self.firing = Gauge(
            "lookout_alerts_firing", "Open incidents by severity", ["severity"], registry=r)
        self.series = Gauge(
            "lookout_series", "Per-customer signal series held in memory, by state (tracked, warming)",
            ["state"], registry=r)

    def _sinks(self, r: CollectorRegistry) -> None:
        self.sink_deliveries = Counter(
            "lookout_sink_deliveries_total",
            "Alert notifications handed to a sink, by sink and result (delivered, failed)",
            ["sink", "result"],
            registry=r,
        )
        self.sink_retries = Counter(
            "lookout_sink_retries_total", "Delivery attempts that are retried after a failure", ["sink"],
            registry=r)
        self.sink_queue = Gauge(
            "lookout_sink_queue_alerts", "Alerts waiting in a sink's bounded in-flight queue", ["sink"],
            registry=r)
        self.sink_request_seconds = Histogram(
            "lookout_sink_request_seconds",
            "Duration of one HTTP request to a sink (every attempt, failed ones too)",
            ["sink"],
            buckets=SINK_BUCKETS,
            registry=r,
        )

    def _customers(self, r: CollectorRegistry) -> None:
        # per-customer series exist only while the customer has an open incident
        self.customer_score = Gauge(
            "lookout_customer_alert_score", "Score of each signal of a customer's open incident",
            ["customer_id", "signal", "severity"], registry=r)
        self.customer_observed = Gauge(
            "lookout_customer_signal_observed",
            "Last observed value of a signal of an open incident (signal's unit)",
            ["customer_id", "signal", "unit"],
            registry=r,
        )
        self.customer_expected = Gauge(
            "lookout_customer_signal_expected",
            "Expected value of a signal of an open incident (signal's unit)",
            ["customer_id", "signal", "unit"],
            registry=r,
        )

    def _health_and_state(self, r: CollectorRegistry) -> None:
        self.healthy = Gauge(
            "lookout_worker_healthy",
            "1 while the detection agent runs and consumes (what /healthz says), else 0",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "lookout_consumer_lag_messages", "Input messages of the owned partitions not processed yet",
            registry=r)
        self.alerts_suppressed = Counter(
            "lookout_alerts_suppressed_total",
            "Alert notifications a re-run after a restore reproduced and that were already on the "
            "alerts topic",
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            "lookout_state_snapshot_seconds",
            "Wall time of one state snapshot (all its slices and the flush)",
            buckets=SINK_BUCKETS,
            registry=r,
        )
        self.snapshot_customers = Counter(
            "lookout_state_snapshot_customers_total",
            "Customer states written to the state topic",
            registry=r,
        )
        self.state_bytes = Counter(
            "lookout_state_snapshot_bytes_total", "Bytes of customer state written to the state topic",
            registry=r)
        self.restore_seconds = Histogram(
            "lookout_state_restore_seconds", "Wall time to restore one input partition's state on assignment",
            buckets=SINK_BUCKETS, registry=r)
        self.restored_customers = Counter(
            "lookout_state_restored_customers_total", "Customer states restored from the state topic",
            registry=r)

    def _steering(self, r: CollectorRegistry) -> None:
        # engineers' verdicts and maintenance windows (detectors.steering)
        self.steering_records = Counter(
            "lookout_steering_records_total",
            "Verdict and window records read from the feedback and silences topics, by kind (verdict, "
            "window) and result (applied, withdrawn, expired, removed, invalid)",
            ["kind", "result"], registry=r)
        self.steering_effects = Counter(
            "lookout_steering_effects_total",
            "Effects of verdicts and windows applied to a customer this worker owns (resolve, accept, "
            "rebuild, window_end; rebuild_unavailable: no state history old enough)",
            ["effect"], registry=r)
        self.alerts_silenced = Counter(
            "lookout_alerts_silenced_total",
            "Alert notifications produced with silenced_by (a notify window): on the topic, not sent "
            "to sinks",
            registry=r)
        self.silenced_customers = Gauge(
            "lookout_silenced_customers",
            "Customers in a maintenance window right now, by mode (notify, learn)",
            ["mode"], registry=r)
        self.verdicts = Gauge(
            "lookout_verdicts", "Verdicts standing (not withdrawn) on alerts, by verdict", ["verdict"],
            registry=r)

    def _known_series_at_zero(self) -> None:
        # label sets known in advance start at 0, so rate()/increase() see their first increment
        for s in SIGNALS:
            self.scores.labels(s)
            for status in STATUSES:
                for sev in SEVERITIES:
                    self.alerts.labels(status, sev, s)
        for o in EVENT_OUTCOMES:
            self.events.labels(o)
        for sink in ("alertmanager", "webhook"):
            for result in ("delivered", "failed"):
                self.sink_deliveries.labels(sink, result)
            self.sink_retries.labels(sink)
            self.sink_request_seconds.labels(sink)
        self.sink_queue.labels("webhook")  # the Alertmanager sink posts inline: it has no queue
        for kind in ("verdict", "window"):
            for result in ("applied", "invalid"):
                self.steering_records.labels(kind, result)
        for effect in ("resolve", "accept", "rebuild", "window_end", "rebuild_unavailable"):
            self.steering_effects.labels(effect)

    def expect_dlq(self, topic: str, kinds) -> None:
        """Create the ``lookout_dlq_messages_total`` series of a dead-letter topic at 0."""
        for kind in kinds:
            self.dlq.labels(topic, kind)

    def observe_alert(self, alert: dict) -> None:
        """Count one notification; keep per-customer gauges exactly while the incident is open."""
        self.alerts.labels(alert["status"], alert["severity"], alert["signal"]).inc()
        if alert.get("silenced_by"):
            self.alerts_silenced.inc()
        cid = alert["customer_id"]
        for gauge, labels in self._customer_labels.pop(cid, []):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        if alert["status"] != "firing":
            return
        kept = []
        for sig, d in (alert.get("details") or {}).items():
            for gauge, labels, value in (
                (self.customer_score, (cid, sig, alert["severity"]), d.get("score")),
                (self.customer_observed, (cid, sig, d.get("unit", "")), d.get("observed")),
                (self.customer_expected, (cid, sig, d.get("unit", "")), d.get("expected")),
            ):
                if value is not None:
                    gauge.labels(*labels).set(value)
                    kept.append((gauge, labels))
        self._customer_labels[cid] = kept

    def bind_worker_gauges(self, healthy: Callable[[], bool], lag: Callable[[], int | None]) -> None:
        """Health and lag, computed at scrape time."""
        self.healthy.set_function(lambda: 1.0 if healthy() else 0.0)
        self.consumer_lag.set_function(lambda: _unknown_as_nan(lag()))

    def bind_engine_gauges(
        self, series_counts: Callable[[], tuple[int, int]], open_by_severity: Callable[[], dict[str, int]]
    ) -> None:
        """Make the series and firing gauges read the engine at scrape time."""
        self.series.labels("tracked").set_function(lambda: series_counts()[0])
        self.series.labels("warming").set_function(lambda: series_counts()[1])
        for sev in SEVERITIES:
            self.firing.labels(sev).set_function(lambda sev=sev: open_by_severity().get(sev, 0))


    def bind_steering_gauges(self, silenced: Callable[[], dict[str, int]],
                             verdicts: Callable[[], dict[str, int]], verdict_names: Sequence[str]) -> None:
        """Customers in a window and standing verdicts, computed at scrape time."""
        for mode in ("notify", "learn"):
            self.silenced_customers.labels(mode).set_function(lambda mode=mode: silenced().get(mode, 0))
        for name in verdict_names:
            self.verdicts.labels(name).set_function(lambda name=name: verdicts().get(name, 0))


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every ``v`` in ``values``, with one update per bucket.

    Same result as observing one by one (a value goes to the first bucket whose upper bound is
    >= it), without a lock round trip per value; large batches (a warm fleet's scores: seven per
    event) are counted by numpy. Falls back to :meth:`Histogram.observe` should a
    prometheus_client version lack the internals used.

    >>> from prometheus_client import CollectorRegistry
    >>> h = Histogram("h", "h", buckets=(1, 5), registry=CollectorRegistry())
    >>> observe_many(h, [0.5, 1, 3, 9])
    >>> [(s.labels.get("le"), s.value) for s in h.collect()[0].samples if s.name == "h_bucket"]
    [('1.0', 2.0), ('5.0', 3.0), ('+Inf', 4.0)]
    """
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    if len(values) >= NUMPY_FROM:
        arr = np.asarray(values, dtype=float)
        if not np.isnan(arr).any():  # (NaN: bisect's own answer, below)
            counts = np.bincount(np.searchsorted(bounds, arr, side="left"), minlength=len(bounds)).tolist()
            total.inc(sum(values))
            for i, n in enumerate(counts):
                if n:
                    buckets[i].inc(n)
            return
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1
    total.inc(sum(values))
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


def _unknown_as_nan(n: int | None) -> float:
    """A gauge's value for a count that may not be known yet (NaN: no sample, not "0")."""
    return math.nan if n is None else float(n)
