"""Report building blocks: customer choice, figures are PNGs, HTML is self-contained."""
from detectors.config import DetectorConfig
from detectors.events import parse_event
from detectors.synthetic import SimConfig, simulate
from streams.offline import ReplayEngine
from streams.offline.report import Report, choose_customers, customer_figure, signals_for, tradeoff_figure

PNG = b"\x89PNG\r\n\x1a\n"


def test_choose_customers_covers_kinds_then_false_alerts():
    labels = [
        {"customer_id": c, "kind": k, "start": i, "end": i + 1}
        for i, (c, k) in enumerate(
            [("a", "latency"), ("b", "latency"), ("c", "traffic_drop"), ("d", "latency")]
        )
    ]
    alerts = [
        {"alert_id": x, "status": "firing", "customer_id": c}
        for x, c in [("1", "z"), ("2", "z"), ("3", "y"), ("4", "a")]
    ]
    labelled, extra = choose_customers(labels, alerts, limit=4, false_ids={"1", "2", "3"}, labelled_share=0.5)
    assert labelled == ["a", "c"] and extra == ["z", "y"]
    labelled, extra = choose_customers([], alerts, limit=2)
    assert labelled == [] and extra == ["z", "a"]


def test_customer_figure_and_tradeoff_are_pngs():
    sim = simulate(SimConfig(customers=2, duration_s=2 * 86400, interval_s=600, seed=3, incidents=1,
                             kinds=("latency",), size_min=5000, tiny_fraction=0.0))
    (inc,) = sim.incidents
    eng = ReplayEngine(DetectorConfig(), [inc.customer_id])
    alerts = []
    for e in sim.events():
        alerts += eng.process(parse_event(e)).alerts
    tr = eng.traces[inc.customer_id]
    sigs = signals_for(inc.customer_id, alerts, [inc], list(tr.series))
    assert "latency_p99" in sigs and "requests" in sigs
    png = customer_figure(tr, alerts, [inc], sigs, {"latency_p99": 0.9999})
    assert png.startswith(PNG)
    trials = [{"number": i, "recall": r, "false_per_customer_week": f} for i, (r, f) in
              enumerate([(0.5, 0.1), (0.8, 0.3), (0.6, 0.05), (None, None)])]
    assert tradeoff_figure(trials, 0.2, best=2, baseline=0).startswith(PNG)


def test_report_html_inlines_images_and_writes_files(tmp_path):
    rep = Report("t <&>")
    rep.kv({"a": 0.12345, "b": None})
    rep.table(["x", "y"], [[1, 2.5], ["<b>", True]], limit=1)
    rep.image("one.png", PNG + b"fake", "cap")
    path = rep.write(tmp_path)
    html = path.read_text()
    assert "t &lt;&amp;&gt;" in html and "data:image/png;base64," in html and "1 more rows" in html
    assert (tmp_path / "plots" / "one.png").read_bytes().startswith(PNG)
    assert "http" not in html.replace("charset", "")


def test_report_pages_show_numbers_for_people(tmp_path):
    from streams.offline.report import write_replay_report

    summary = {
        "source": {"path": "x.csv", "type": "csv", "inferred_interval_s": 300},
        "config": {"path": None, "fingerprint": "abc"},
        "records": 129600,
        "invalid": 0,
        "customers": 2,
        "first_ts": "2026-01-05T00:00:00Z",
        "last_ts": "2026-01-06T00:00:00Z",
        "span_days": 1.0,
        "interval_s": 300,
        "outcomes": {"scored": 129600, "warming": 1200},
        "alerts": {
            "alerts": 3,
            "opened_incidents": 1,
            "by_severity": {"critical": 1},
            "by_primary_signal": {"error_5xx": 1},
        },
        "events_per_s": 123456.7,
        "seconds": 1.05,
        "evaluation": {
            "labels": 1,
            "detected": 1,
            "recall": 1.0,
            "opened_incidents": 1,
            "precision": 1.0,
            "false_alerts": 0,
            "false_per_customer_week": 0.0,
            "ttd_median_intervals": 1.0,
            "ttd_p90_intervals": 2.0,
            "customers": 2,
            "span_s": 86400,
            "interval_s": 300,
            "by_kind": {},
            "by_size_decile": [
                {
                    "decile": "D1",
                    "customers": 1,
                    "size_min": 5.441,
                    "size_max": 209747.522,
                    "labels": 1,
                    "recall": 1.0,
                    "false_alerts": 0,
                    "false_per_customer_week": 0.0,
                }
            ],
            "label_results": [],
            "false_alert_incidents": [],
        },
    }
    page = write_replay_report(
        tmp_path, summary, traces={}, alerts=[], labels=[], thresholds={"error_5xx": 0.9999}, order=[]
    ).read_text()
    assert "{" not in page.split("<body>")[1]  # no raw Python dicts
    assert "<td>scored 129,600, warming 1,200</td>" in page and "<td>129,600</td>" in page
    assert "<td>5.4</td><td>209,748</td>" in page
    assert "<td>1 interval (5 min)</td>" in page and "<td>2 intervals (10 min)</td>" in page
    assert "300 s was told from the timestamps" in page
    assert "class=scroll" in page  # wide tables scroll instead of being cut off
