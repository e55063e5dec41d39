"""Labelled evaluation: matching alerts to labels, precision, TTD, breakdowns."""
import json
from typing import NamedTuple

import pytest

from detectors.evaluation import WEEK_S, evaluate, metric_deltas, quantile
from detectors.events import format_ts


class Incident(NamedTuple):  # same shape as detectors.synthetic.Incident
    customer_id: str
    start: float
    end: float
    kind: str


IV = 300
T0 = 1767571200.0  # 2026-01-05T00:00:00Z


def fire(aid, cid, started, event=None, status="firing", **extra):
    return {"alert_id": aid, "status": status, "customer_id": cid, "started_at": format_ts(started),
            "event_ts": format_ts(started + IV if event is None else event), "interval_s": IV, **extra}


def lab(cid, start, end, kind="origin_outage"):
    return Incident(cid, start, end, kind)


def ev(alerts, labels, customers=None, span=WEEK_S, **kw):
    return evaluate(alerts, labels, customers=customers or {"a": 10.0, "b": 1000.0}, span_s=span,
                    interval_s=IV, **kw)


def test_empty_inputs():
    e = ev([], [])
    assert e.recall is None and e.precision is None and e.false_alerts == 0
    assert e.false_per_customer_week == 0.0 and e.ttd_median is None and e.ttd_p90 is None
    json.dumps(e.to_dict())
    assert "recall n/a" in e.format_table()


def test_empty_alerts_misses_every_label():
    e = ev([], [lab("a", T0, T0 + 3600)])
    assert e.recall == 0.0 and e.precision is None and e.missed[0].customer_id == "a"


def test_alert_slightly_before_the_label_counts_with_ttd_zero():
    # started one interval before the label start (inside the tolerance), emitted at the start
    e = ev([fire("x", "a", T0 - IV, event=T0)], [lab("a", T0, T0 + 3600)])
    assert e.recall == 1.0 and e.precision == 1.0 and e.ttd == [0.0]


def test_alert_too_early_is_false_and_misses():
    e = ev([fire("x", "a", T0 - 3 * IV, event=T0 - 2 * IV)], [lab("a", T0, T0 + 3600)])
    assert e.recall == 0.0 and e.false_alerts == 1 and e.precision == 0.0


def test_alert_within_grace_after_end_counts_but_long_after_does_not():
    label = lab("a", T0, T0 + 3600)
    late_ok = ev([fire("x", "a", T0 + 3600 + IV, event=T0 + 3600 + 2 * IV)], [label])
    assert late_ok.recall == 1.0 and late_ok.ttd == [(3600 + 2 * IV) / IV]
    too_late = ev([fire("x", "a", T0 + 3600 + 3 * IV, event=T0 + 3600 + 4 * IV)], [label])
    assert too_late.recall == 0.0 and too_late.false_alerts == 1


def test_two_alerts_for_one_label_count_once_and_ttd_is_the_first():
    alerts = [fire("y", "a", T0 + 4 * IV), fire("x", "a", T0 + IV)]
    e = ev(alerts, [lab("a", T0, T0 + 3600)])
    assert e.detected == 1 and e.opened == 2 and e.matched == 2 and e.precision == 1.0
    assert e.ttd == [2.0] and e.labels[0].alert_id == "x"


def test_escalation_and_resolution_of_one_incident_are_one_opened_incident():
    alerts = [fire("x", "a", T0), fire("x", "a", T0, event=T0 + 3 * IV, severity="critical"),
              fire("x", "a", T0, event=T0 + 9 * IV, status="resolved"),
              fire("r", "a", T0 + 20 * IV, status="resolved")]  # a resolved alert alone opens nothing
    e = ev(alerts, [lab("a", T0, T0 + 3600)])
    assert e.opened == 1 and e.false_alerts == 0 and e.precision == 1.0


def test_alert_for_another_customer_does_not_match():
    e = ev([fire("x", "b", T0 + IV)], [lab("a", T0, T0 + 3600)])
    assert e.recall == 0.0 and e.false_alerts == 1
    assert e.false_alert_ids == [{"alert_id": "x", "customer_id": "b", "started_at": format_ts(T0 + IV)}]


def test_false_alerts_per_customer_week_and_size_deciles():
    customers = {f"c{i:02d}": float(10 ** (i // 4)) for i in range(20)}  # 20 customers, 2 per decile
    alerts = [fire("f1", "c00", T0), fire("f2", "c19", T0), fire("f3", "c19", T0 + 50 * IV),
              fire("t1", "c10", T0 + IV)]
    labels = [lab("c10", T0, T0 + 3600, "latency"), lab("c11", T0, T0 + 3600, "traffic_drop")]
    e = evaluate(alerts, labels, customers=customers, span_s=2 * WEEK_S, interval_s=IV)
    assert e.false_alerts == 3 and e.false_per_customer_week == pytest.approx(3 / 40)
    assert (
        e.recall == 0.5
        and e.by_kind["latency"]["recall"] == 1.0
        and e.by_kind["traffic_drop"]["recall"] == 0.0
    )
    deciles = {d["decile"]: d for d in e.by_size_decile}
    assert len(deciles) == 10 and all(d["customers"] == 2 for d in deciles.values())
    assert deciles["D1"]["false_alerts"] == 1 and deciles["D1"]["size_min"] == 1.0
    assert deciles["D10"]["false_alerts"] == 2 and deciles["D10"]["false_per_customer_week"] == pytest.approx(
        0.5
    )
    assert deciles["D6"]["labels"] == 2 and deciles["D6"]["recall"] == 0.5
    text = e.format_table()
    assert "D10" in text and "traffic_drop" in text
    d = json.loads(json.dumps(e.to_dict()))
    assert d["recall"] == 0.5 and len(d["label_results"]) == 2


def test_few_customers_and_unknown_customers():
    e = evaluate(
        [fire("x", "zz", T0)], [], customers={"a": 1.0, "b": 2.0, "c": 3.0}, span_s=WEEK_S, interval_s=IV
    )
    names = [d["decile"] for d in e.by_size_decile]
    assert names[-1] == "unsized" and len(names) == 4
    assert e.false_per_customer_week == pytest.approx(1 / 3)


def test_labels_as_mappings_and_interval_from_alerts():
    e = evaluate(
        [fire("x", "a", T0 + 2 * IV)],
        [{"customer_id": "a", "start": format_ts(T0), "end": T0 + 3600}],
        span_s=WEEK_S,
    )
    assert e.interval_s == IV and e.ttd == [3.0] and e.n_customers == 1 and e.labels[0].kind == "unknown"


def test_quantile_and_deltas():
    assert quantile([5.0], 0.9) == 5.0
    assert quantile(range(11), 0.9) == pytest.approx(9.0)
    d = metric_deltas({"recall": 0.5, "precision": None}, {"recall": 0.25, "precision": 0.5})
    assert d["recall"]["delta"] == 0.25 and d["precision"]["delta"] is None
