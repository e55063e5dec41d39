"""``replay_job`` and ``tune_job`` (what ``lookout replay`` and ``tune`` run), called without click."""
import json
import re

import pytest

from detectors.config import DetectorConfig, load_config
from detectors.engine import Engine
from streams.offline import JsonlSource, SourceError
from streams.offline.jobs import JobError, Plots, replay_job, tune_job, write_outputs
from streams.offline.simfiles import read_labels
from streams.offline.source_spec import SourceSpec
from streams.offline.summary import format_outcome, problem
from streams.offline.tuning import load_space


def test_replay_job_writes_every_output_and_plots_the_traced_customer_first(files, tmp_path):
    d = files
    labels = read_labels(d / "labels.jsonl")
    out = tmp_path / "out"
    outcome = replay_job(SourceSpec(str(d / "sim.jsonl")), DetectorConfig(), out, labels=labels,
                         trace=["cust-0004", "cust-0004"], max_plots=4, save_state=tmp_path / "state.lookout")
    summary = json.loads((out / "summary.json").read_text())
    assert summary == outcome.summary
    assert summary["records"] == 5 * 720 and summary["invalid"] == 0
    assert len(summary["evaluation"]["label_results"]) == len(labels)
    assert set(summary["outputs"]) == {"alerts", "dlq", "summary", "report", "state"}
    assert (out / "alerts.jsonl").exists() and (out / "dlq.jsonl").read_text() == ""
    page = (out / "report.html").read_text()
    plotted = re.findall(r'alt="customer-([^"]+)\.png"', page)
    assert plotted and plotted[0] == "cust-0004" and len(plotted) == len(set(plotted))
    learned = Engine()
    learned.load_all((tmp_path / "state.lookout").read_bytes())
    assert len(learned.customers) == 5
    text = format_outcome(outcome)
    assert "replayed 3,600 records from " in text and str(d / "sim.jsonl") in text
    assert problem(outcome) is None


def test_replay_job_checks_the_state_path_before_reading_the_source(tmp_path):
    never = SourceSpec(str(tmp_path / "missing.jsonl"))  # would fail if it were opened
    with pytest.raises(JobError, match="is a directory"):
        replay_job(never, DetectorConfig(), tmp_path / "out", save_state=tmp_path)
    with pytest.raises(JobError, match="its directory does not exist"):
        replay_job(never, DetectorConfig(), tmp_path / "out", save_state=tmp_path / "no" / "state")
    with pytest.raises(SourceError, match="missing.jsonl"):
        replay_job(never, DetectorConfig(), tmp_path / "out")


def test_replay_job_with_a_baseline_writes_the_diff(files, tmp_path):
    d = files
    out = tmp_path / "out"
    strict = DetectorConfig().with_overrides({"alerting.open_n": 3})
    outcome = replay_job(JsonlSource(str(d / "sim.jsonl")), DetectorConfig(), out, baseline=strict,
                         labels=read_labels(d / "labels.jsonl"), report=False)
    diff = json.loads((out / "diff.json").read_text())
    assert diff == outcome.diff and "gained" in diff and "metrics" in diff
    assert not (out / "report.html").exists() and "report" not in outcome.summary["outputs"]


def test_write_outputs_traces_only_what_the_run_did_not(tmp_path):
    labels = [{"customer_id": c, "kind": "latency", "start": i} for i, c in enumerate("ab")]
    alerts = [{"customer_id": "x", "alert_id": "1", "status": "firing"}]
    asked, written = [], []
    summary = {"outputs": {}}

    def trace(more):
        asked.append(list(more))
        return {c: f"trace of {c}" for c in more}

    write_outputs(tmp_path, summary, plots=Plots(labels, limit=4, first=("z",)), alerts=alerts,
                  evaluation=None, traces={c: f"trace of {c}" for c in "zab"}, traced=["z", "a", "b"],
                  trace=trace, write_report=lambda traces, order: written.append((dict(traces), order)))
    assert asked == [["x"]]
    assert written == [({c: f"trace of {c}" for c in "zabx"}, ["z", "a", "b", "x"])]
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "outputs": {"report": str(tmp_path / "report.html")}}

    asked.clear()
    write_outputs(tmp_path, {"outputs": {}}, plots=None, alerts=alerts, evaluation=None, trace=trace,
                  write_report=lambda *_: pytest.fail("no report without plots"))
    assert asked == [] and json.loads((tmp_path / "summary.json").read_text()) == {"outputs": {}}


def test_source_spec_errors_are_source_errors(tmp_path, monkeypatch):
    with pytest.raises(SourceError, match="expected FIELD=COLUMN"):
        SourceSpec(str(tmp_path / "x.csv"), maps=("requests",)).open()
    with pytest.raises(SourceError, match="CSV files only"):
        SourceSpec(str(tmp_path / "x.jsonl"), maps=("requests=r",), fmt="jsonl").open()
    monkeypatch.setenv("LOOKOUT_KAFKA_TIMEOUT_S", "soon")
    with pytest.raises(SourceError, match="LOOKOUT_KAFKA_TIMEOUT_S"):
        SourceSpec(str(tmp_path / "x.jsonl")).open()


def test_tune_job_writes_the_best_config_and_says_what_it_found(files, tmp_path):
    d = files
    labels = read_labels(d / "labels.jsonl")
    space = load_space(d / "space.yaml")
    out = tmp_path / "tune"
    outcome = tune_job(SourceSpec(str(d / "sim.jsonl")), labels, space, DetectorConfig(), out, trials=3,
                       budget=0.5, jobs=1, seed=2, max_plots=2)
    assert outcome.best_path == out / "best.yaml"
    best = load_config(out / "best.yaml")
    assert best.fingerprint() == outcome.summary["best_fingerprint"]
    assert len(json.loads((out / "trials.json").read_text())) == 3
    assert json.loads((out / "summary.json").read_text()) == outcome.summary
    assert (out / "report.html").exists() and outcome.summary["outputs"]["report"] == str(out / "report.html")
    assert outcome.headline()["best_evaluation"] == outcome.best_evaluation.headline()
    assert "best trial" in outcome.text()


def test_tune_job_refuses_what_cannot_measure_recall(files, tmp_path):
    d = files
    space = load_space(d / "space.yaml")
    with pytest.raises(JobError, match="empty.jsonl: no labelled incidents"):
        tune_job(SourceSpec(str(d / "sim.jsonl")), [], space, DetectorConfig(), tmp_path,
                 labels_name="empty.jsonl")
    strangers = [lab.__class__("someone-else", lab.start, lab.end, lab.kind)
                 for lab in read_labels(d / "labels.jsonl")]
    with pytest.raises(JobError, match="none of the 1 labelled customer"):
        tune_job(SourceSpec(str(d / "sim.jsonl")), strangers, space, DetectorConfig(), tmp_path)
