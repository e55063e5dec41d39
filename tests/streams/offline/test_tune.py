"""``lookout tune``: space parsing, objective, a few real trials, best.yaml usable by replay."""
import json

import pytest
from click.testing import CliRunner

from detectors.config import DetectorConfig, load_config
from streams.cli import cli
from streams.offline import open_source
from streams.offline.report import pareto_front
from streams.offline.tuning import SpaceError, load_dataset, objective_value, parse_space, run_config, tune


def test_parse_space_types_and_errors():
    ps = parse_space(
        {
            "alerting.open_n": {"low": 1, "high": 3},
            "signals.requests.alert": {"choices": [True, False]},
            "model.warmup_s": {"low": 3600, "high": 86400, "log": True},
        }
    )
    assert [(p.kind, p.low) for p in ps] == [("int", 1), ("categorical", None), ("float", 3600.0)]
    for bad, msg in [
        ({"alerting.nope": {"low": 1, "high": 2}}, "unknown config path"),
        ({"alerting": {"low": 1, "high": 2}}, "section"),
        ({"alerting.open_n": {"low": 1.5, "high": 3}}, "integer"),
        ({"alerting.open_n": {"low": 3, "high": 1}}, "below"),
        ({"alerting.open_n": {"choices": ["x"]}}, "open_n"),
        ({"alerting.open_n": {"lo": 1}}, "unknown key"),
        ({}, "non-empty"),
    ]:
        with pytest.raises(SpaceError, match=msg):
            parse_space(bad)


def test_objective_prefers_any_feasible_trial():
    assert objective_value(0.5, 0.0, 0.2) > objective_value(0.5, 0.2, 0.2) > objective_value(0.4, 0.0, 0.2)
    assert objective_value(0.0, 0.2, 0.2) > objective_value(1.0, 0.21, 0.2)
    assert objective_value(1.0, 0.3, 0.2) > objective_value(1.0, 0.6, 0.2)
    assert objective_value(None, None, 0.0) == 0.01


def test_pareto_front():
    assert pareto_front([]) == []
    assert pareto_front([(0.0, 0.5), (0.0, 0.5), (1.0, 0.4)]) == [0]


def test_tune_api_two_processes_base_first(files):
    d = files
    data = load_dataset(
        open_source(str(d / "sim.jsonl")),
        [json.loads(x) for x in (d / "labels.jsonl").read_text().splitlines()],
    )
    from streams.offline.tuning import load_space

    space = load_space(d / "space.yaml")
    res = tune(data, DetectorConfig(), space, trials=4, budget=0.5, jobs=2, seed=1)
    assert len(res.trials) == 4 and res.baseline_number == 0
    assert res.trials[0]["params"]["alerting.open_n"] == 2  # the base config's own values first
    _, ev = run_config(data, DetectorConfig(), 2.0)
    assert res.trials[0]["recall"] == ev.headline()["recall"]
    assert res.best is not None and res.best["value"] == max(t["value"] for t in res.trials)


def test_tune_cli_writes_best_config_and_report(files, tmp_path):
    d = files
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "tune",
            str(d / "sim.jsonl"),
            "--labels",
            str(d / "labels.jsonl"),
            "--space",
            str(d / "space.yaml"),
            "--trials",
            "3",
            "--jobs",
            "1",
            "--budget",
            "0.5",
            "--out",
            str(out),
            "-q",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    best = load_config(out / "best.yaml")
    assert best.fingerprint() == summary["best_fingerprint"]
    assert len(json.loads((out / "trials.json").read_text())) == 3
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and (out / "plots" / "tradeoff.png").is_file()
    # best.yaml is a full config replay accepts
    r = CliRunner().invoke(
        cli,
        [
            "replay",
            str(d / "sim.jsonl"),
            "--config",
            str(out / "best.yaml"),
            "--labels",
            str(d / "labels.jsonl"),
            "--out",
            str(tmp_path / "r"),
            "--no-report",
            "--json",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["evaluation"]["recall"] == summary["best_evaluation"]["recall"]


@pytest.mark.parametrize("space, message", [
    ("alerting.open_m: {low: x, high: 3}\n", "low and high must be numbers"),
    ("[1, 2\n", "cannot parse"),
])
def test_tune_bad_space_is_one_line(files, tmp_path, space, message):
    p = tmp_path / "space.yaml"
    p.write_text(space)
    res = CliRunner().invoke(cli, ["tune", str(files / "sim.jsonl"), "--labels", str(files / "labels.jsonl"),
                                   "--space", str(p), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_tune_needs_labels(files, tmp_path):
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    res = CliRunner().invoke(cli, ["tune", str(files / "sim.jsonl"), "--labels", str(empty), "--space",
                                   str(files / "space.yaml"), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 1 and "no labelled incidents" in res.output
