"""Report building blocks: customer choice, figures are PNGs, HTML is self-contained."""
from detectors.config import DetectorConfig
from detectors.synthetic import SimConfig, simulate
from detectors.events import parse_event
from streams.replay import ReplayEngine
from streams.report import Report, choose_customers, customer_figure, signals_for, tradeoff_figure

PNG = b"\x89PNG\r\n\x1a\n"


def test_choose_customers_covers_kinds_then_false_alerts():
    labels = [{"customer_id": c, "kind": k, "start": i, "end": i + 1}
              for i, (c, k) in enumerate([("a", "latency"), ("b", "latency"), ("c", "traffic_drop"), ("d", "latency")])]
    alerts = [{"alert_id": x, "status": "firing", "customer_id": c} for x, c in [("1", "z"), ("2", "z"), ("3", "y"), ("4", "a")]]
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
