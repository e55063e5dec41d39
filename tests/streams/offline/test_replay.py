"""``lookout replay`` on files: same alerts as the processor path, DLQ, CSV mapping, diff, report, errors."""
import gzip
import json

import pytest
from click.testing import CliRunner

from detectors.config import DetectorConfig, dump_config
from detectors.engine import Engine
from detectors.synthetic import SimConfig, simulate
from streams.cli import cli
from streams.offline import CsvSource, JsonlSource, SourceError, diff_alerts, open_source, run_replay
from streams.offline.simfiles import write_jsonl, write_labels
from streams.pipeline.processor import Processor


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    sim = simulate(SimConfig(customers=6, duration_s=3 * 86400, interval_s=300, seed=5, incidents=4,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    events = list(sim.events())
    write_jsonl(events, d / "sim.jsonl")
    write_labels(sim.incidents, d / "labels.jsonl")
    return d, events, sim


def run(*args):
    res = CliRunner().invoke(cli, ["replay", *map(str, args)], catch_exceptions=False)
    return res


def expected_alerts(lines):
    p = Processor(Engine())
    out = None
    for ln in lines:
        out = p.handle(ln, out=out)
    return out.alerts


def test_replay_matches_the_processor_path_and_parks_bad_lines(sim_files, tmp_path):
    d, events, sim = sim_files
    lines = [json.dumps(e) for e in events]
    bad = {10: "{not json", 20: json.dumps({"customer_id": "c1", "ts": 0, "requests": 1, "status_4xx": 3,
                                             "status_5xx": 0}), 30: "[1, 2]"}
    for ln in sorted(bad):  # 1-based line numbers in the final file
        lines.insert(ln - 1, bad[ln])
    lines.insert(40, "")  # blank lines are not records
    src = tmp_path / "events.jsonl.gz"
    with gzip.open(src, "wt") as f:  # .gz detected from the magic bytes
        f.write("\n".join(lines) + "\n")
    out = tmp_path / "out"
    res = run(src, "--out", out, "--labels", d / "labels.jsonl", "--no-report", "-q")
    assert res.exit_code == 0, res.output
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    want = expected_alerts([ln for ln in lines if ln])
    assert alerts == want and any(a["status"] == "firing" for a in alerts)
    dlq = [json.loads(x) for x in (out / "dlq.jsonl").read_text().splitlines()]
    assert [x["line"] for x in dlq] == [10, 20, 30]
    assert (
        "invalid JSON" in dlq[0]["reason"]
        and "exceeds requests" in dlq[1]["reason"]
        and dlq[0]["raw"] == "{not json"
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["invalid"] == 3 and summary["records"] == len(events) + 3 and summary["customers"] == 6
    assert summary["source"]["gzip"] is True and summary["source"]["blank_lines"] == 1
    ev = summary["evaluation"]
    assert (
        ev["labels"] == len(sim.incidents)
        and 0 <= ev["recall"] <= 1
        and ev["by_kind"]
        and ev["by_size_decile"]
    )


def test_json_output_and_text_summary(sim_files, tmp_path):
    d, _, _ = sim_files
    res = run(
        d / "sim.jsonl",
        "--out",
        tmp_path / "o",
        "--labels",
        d / "labels.jsonl",
        "--json",
        "--no-report",
        "-q",
    )
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["evaluation"]["recall"] is not None and data["alerts"]["opened_incidents"] >= 1
    res = run(d / "sim.jsonl", "--out", tmp_path / "o", "--labels", d / "labels.jsonl", "--no-report", "-q")
    assert res.output == ""
    res = CliRunner().invoke(cli, ["replay", str(d / "sim.jsonl"), "--out", str(tmp_path / "o"),
                                                   "--labels", str(d / "labels.jsonl"), "--no-report"])
    assert "recall" in res.stdout and "size decile" in res.stdout and "incidents opened" in res.stdout


def test_csv_with_column_mapping(sim_files, tmp_path):
    _, events, _ = sim_files
    rows = ["account,time,req_count,status_4xx,status_5xx,latency_p99_ms,origin_errors.522,extra"]
    for e in events[:3000]:
        rows.append(f"{e['customer_id']},{e['ts']},{e['requests']},{e['status_4xx']},{e['status_5xx']},"
                    f"{e.get('latency_p99_ms', '')},{e.get('origin_errors', {}).get('522', '')},x")
    rows.insert(5, "cust-0001,2026-01-05T00:00:00Z,notanumber,0,0,,,x")
    rows.insert(7, "cust-0001,too,few")
    src = tmp_path / "export.csv"
    src.write_text("\n".join(rows) + "\n")
    res = run(
        src,
        "--map",
        "customer_id=account,ts=time",
        "--map",
        "requests=req_count",
        "--out",
        tmp_path / "o",
        "--no-report",
        "-q",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["records"] == 3002 and summary["invalid"] == 2 and summary["customers"] == 6
    assert summary["source"]["columns"]["requests"] == "req_count"
    dlq = [json.loads(x) for x in (tmp_path / "o" / "dlq.jsonl").read_text().splitlines()]
    assert [x["line"] for x in dlq] == [6, 8]
    assert "requests" in dlq[0]["reason"] and "columns" in dlq[1]["reason"]


@pytest.mark.parametrize("args, message", [
    (["--map", "requests=req"], "no column 'req'"),
    (["--map", "reqs=req_count"], "unknown field 'reqs'"),
    ([], "requests"),  # no column for a required field
])
def test_csv_mapping_errors_are_one_line(tmp_path, args, message):
    src = tmp_path / "x.csv"
    src.write_text("customer_id,ts,req_count,status_4xx,status_5xx\nc1,0,1,0,0\n")
    res = run(src, *args, "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("a,b,c\n1,2,3\n"), "is not JSON lines"),
    (lambda p: p.write_bytes(b"\x00\x01\xff" * 50), "is not JSON lines"),
])
def test_bad_sources_fail_with_one_line(tmp_path, make, message):
    p = tmp_path / "events.jsonl"
    make(p)
    res = run(p, "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_bad_config_and_labels_fail_with_one_line(sim_files, tmp_path):
    d, _, _ = sim_files
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("alerting:\n  open_n: many\n")
    res = run(d / "sim.jsonl", "--config", cfg, "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and "open_n" in res.output
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"customer_id": "a", "start": "yesterday", "end": 5}\n')
    res = run(d / "sim.jsonl", "--labels", labels, "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and "labels" in res.output and "Traceback" not in res.output


def test_unreachable_kafka_is_a_clear_error(tmp_path):
    res = run("kafka://request-metrics?bootstrap=127.0.0.1:1&timeout=1", "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and "cannot reach Kafka at 127.0.0.1:1" in res.output
    res = run("kafka://request-metrics?from=yesterday", "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and "from=yesterday" in res.output
    res = run("kafka://t?frm=1", "--out", tmp_path / "o", "-q")
    assert res.exit_code == 1 and "unknown parameter" in res.output


def test_diff_against_baseline(sim_files, tmp_path):
    d, _, _ = sim_files
    new, old = tmp_path / "new.yaml", tmp_path / "old.yaml"
    base = DetectorConfig()
    dump_config(base, old)
    # a much more sensitive config: surely different incidents
    dump_config(
        base.with_overrides(
            {
                "alerting.open_n": 1,
                "alerting.recovery_intervals": 6,
                "signals.requests.threshold": 0.9,
                "signals.requests.min_rel_change": 0.05,
                "signals.latency_p99.threshold": 0.9,
                "signals.latency_p99.min_abs_change": 1.0,
                "signals.latency_p99.min_rel_change": 0.05,
            }
        ),
        new,
    )
    out = tmp_path / "o"
    res = CliRunner().invoke(
        cli,
        [
            "replay",
            str(d / "sim.jsonl"),
            "--config",
            str(new),
            "--baseline",
            str(old),
            "--labels",
            str(d / "labels.jsonl"),
            "--out",
            str(out),
            "--no-report",
        ],
    )
    assert res.exit_code == 0, res.output
    diff = json.loads((out / "diff.json").read_text())
    assert diff["gained"] and diff["counts"]["new"] > diff["counts"]["baseline"]
    assert set(diff["metrics"]) >= {"recall", "false_per_customer_week"}
    assert "alerts vs baseline" in res.stdout and "delta" in res.stdout
    # each side equals a plain single-config replay
    solo = tmp_path / "solo"
    assert run(d / "sim.jsonl", "--config", old, "--out", solo, "--no-report", "-q").exit_code == 0
    assert (out / "baseline_alerts.jsonl").read_text() == (solo / "alerts.jsonl").read_text()


def test_diff_alerts_classifies_gained_lost_changed():
    def a(aid, status="firing", sev="warning", sig="error_5xx", resolved=None):
        return {"alert_id": aid, "status": status, "customer_id": "c", "signal": sig, "signals": [sig],
                "severity": sev, "started_at": "2026-01-05T00:00:00Z", "event_ts": "2026-01-05T00:05:00Z",
                "resolved_at": resolved}

    new = [a("same"), a("chg", sev="critical"), a("new")]
    old = [a("same"), a("chg"), a("gone"), a("gone", status="resolved", resolved="2026-01-05T01:00:00Z")]
    d = diff_alerts(new, old, matched_new={"new"})
    assert [r["alert_id"] for r in d["gained"]] == ["new"] and d["gained"][0]["matches_label"] is True
    assert [r["alert_id"] for r in d["lost"]] == ["gone"] and d["lost"][0][
        "resolved_at"
    ] == "2026-01-05T01:00:00Z"
    assert d["changed"][0]["changes"] == {"severity": ["warning", "critical"]} and d["unchanged"] == 1


def test_report_has_plots(sim_files, tmp_path):
    d, _, sim = sim_files
    out = tmp_path / "o"
    res = run(d / "sim.jsonl", "--labels", d / "labels.jsonl", "--out", out, "-q", "--max-plots", "3")
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    pngs = sorted((out / "plots").glob("*.png"))
    assert 1 <= len(pngs) <= 3 and html.count("data:image/png;base64,") == len(pngs)
    assert "<script" not in html and "recall" in html
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_sources_stream_and_are_rereadable(sim_files):
    d, events, _ = sim_files
    src = open_source(str(d / "sim.jsonl"))
    assert isinstance(src, JsonlSource)
    first = [r for _, r in zip(range(5), src.records())]
    again = [r for _, r in zip(range(5), src.records())]
    assert first == again and first[0][3] == 1
    with pytest.raises(SourceError):
        open_source(str(d / "sim.jsonl"), mapping={"requests": "x"}, fmt="jsonl")


def test_run_replay_api_counts(sim_files):
    d, events, _ = sim_files
    res = run_replay(open_source(str(d / "sim.jsonl")), DetectorConfig(), trace=["cust-0001"])
    assert res.records == len(events) and res.invalid == 0
    assert sum(res.engine.outcomes.values()) == len(events)
    tr = res.engine.traces["cust-0001"]
    assert len(tr) == len(events) // 6 and set(tr.series) >= {"requests", "error_5xx"}
    assert res.engine.interval_s == 300 and abs(res.engine.span_s - 3 * 86400) < 1


def test_csv_source_header_only(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("customer_id,ts,requests,status_4xx,status_5xx\n")
    assert list(CsvSource(p).records()) == []


def test_chunked_replay_traces_and_counts_equal_one_event_at_a_time(sim_files, tmp_path):
    """Replay feeds the engines in batches, split only before a traced customer's events: the
    traces (models assessed before each event is learned), counts and alerts are those of one
    event at a time, redelivered (duplicate) events included."""
    import math

    from detectors.events import parse_event
    from streams.offline import Trace

    _, events, _ = sim_files
    lines = [json.dumps(e) for e in events]
    lines[500:500] = lines[480:490]  # a redelivery: ten duplicates, traced customers' among them
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    traced = ["cust-0002", "cust-0005"]
    res = run_replay(open_source(str(tmp_path / "in.jsonl")), DetectorConfig(), trace=traced,
                     baseline=DetectorConfig(), chunk_events=97)

    ref = Engine()
    order = list(res.engine.traces[traced[0]].series)
    want = {c: Trace(c, order) for c in traced}
    last: dict[str, float] = {}
    alerts, outcomes = [], {}
    for ln in lines:
        e = parse_event(json.loads(ln))
        if e.customer_id in want and e.ts > last.get(e.customer_id, -math.inf):
            want[e.customer_id].add(e, ref.models_of(e.customer_id))
        last[e.customer_id] = max(e.ts, last.get(e.customer_id, -math.inf))
        v = ref.process(e)
        outcomes[v.outcome] = outcomes.get(v.outcome, 0) + 1
        alerts += v.alerts
    assert res.engine.outcomes == outcomes and outcomes["duplicate"] == 10
    assert [a["alert_id"] for a in res.runs[0].alerts] == [a["alert_id"] for a in alerts]
    assert res.runs[1].alerts == res.runs[0].alerts  # the baseline run saw the same batches
    for c in traced:
        got, exp = res.engine.traces[c], want[c]
        assert len(got) == len(exp) == len(events) // 6
        assert list(got.ts) == list(exp.ts)
        for sig in order:
            for f in Trace.FIELDS:
                a, b = list(got.series[sig][f]), list(exp.series[sig][f])
                assert [x if x == x else "nan" for x in a] == [x if x == x else "nan" for x in b], (c, sig, f)
        assert any(x == x for x in got.series["requests"]["score"])  # warm points were assessed


def test_traces_continue_from_loaded_state(sim_files):
    """A ReplayEngine given saved state traces the next events as the uninterrupted one does."""
    from detectors.events import parse_event
    from streams.offline import ReplayEngine

    _, events, _ = sim_files
    evs = [parse_event(e) for e in events]
    half = len(evs) // 2
    whole = ReplayEngine(DetectorConfig(), ["cust-0003"])
    whole.process_many(evs[:half])
    first = ReplayEngine(DetectorConfig(), ["cust-0003"])
    first.process_many(evs[:half])
    resumed = ReplayEngine(DetectorConfig(), ["cust-0003"])
    resumed.load_all(first.dump_all())
    for eng in (whole, resumed):
        for i in range(half, len(evs), 50):
            eng.process_many(evs[i:i + 50])
    got, want = resumed.traces["cust-0003"], whole.traces["cust-0003"]
    n = len(got)
    assert n == len(evs) // 12 and list(got.ts) == list(want.ts)[-n:]
    scores = list(got.series["requests"]["score"])
    assert scores == list(want.series["requests"]["score"])[-n:] and all(x == x for x in scores)
