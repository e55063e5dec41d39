"""``lookout replay --feedback FILE --silences FILE``: the worker's steering, applied at its times."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from detectors.engine import Engine
from detectors.events import parse_event, parse_ts
from detectors.feedback import verdict_from_alert
from detectors.history import MemoryHistory
from detectors.silences import parse_window
from detectors.steering import SteeredEngine, Steering
from detectors.synthetic import SimConfig, simulate
from streams.cli import cli
from streams.offline import JsonlSource, run_replay
from streams.offline.simfiles import write_jsonl

IV = 300


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("steer")
    sim = simulate(SimConfig(customers=6, duration_s=4 * 86400, interval_s=IV, seed=5, incidents=6,
                             size_min=2000, small_fraction=0.0, holidays=False))
    events = list(sim.events())
    write_jsonl(events, d / "sim.jsonl")
    plain = run_replay(JsonlSource(d / "sim.jsonl"), Engine().config, keep_alerts=True).runs[0].alerts
    full = [json.loads(x) for x in _alert_lines(d, events)]
    firing = [a for a in full if a["status"] == "firing" and a["notification"] == 1]
    assert len(firing) >= 2 and len(plain) == len(full)
    verdict = verdict_from_alert(firing[0], "false_alarm", at=parse_ts(firing[0]["event_ts"]) + IV + 60,
                                 by="alice")
    second = firing[1]
    start = parse_ts(second["started_at"])
    window = parse_window({"id": "mw-1", "customer_id": second["customer_id"], "from": start - 3600,
                           "until": start + 5 * 3600, "mode": "both", "created_at": start - 7200})
    (d / "feedback.jsonl").write_text(json.dumps(verdict.to_json()) + "\n")
    (d / "silences.jsonl").write_text("\n" + json.dumps(window.to_json()) + "\n")
    return d, events, verdict, window


def _alert_lines(d, events):
    from streams.pipeline.processor import Output, Processor

    p, out = Processor(Engine()), Output()
    p.process_events([parse_event(e) for e in events], out)
    return [json.dumps(a) for a in out.alerts]


def test_replay_applies_verdicts_and_windows_as_the_steered_engine_does(files, tmp_path):
    d, events, verdict, window = files
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["replay", str(d / "sim.jsonl"), "--feedback", str(d / "feedback.jsonl"),
                                   "--silences", str(d / "silences.jsonl"), "--out", str(out), "--no-report",
                                   "--json", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    # the same code path in process: the steered engine, fed the events as they come
    st = Steering()
    st.put_verdict(verdict)
    st.put_window(window)
    eng = SteeredEngine(Engine(), st, MemoryHistory())
    want = eng.process_many([parse_event(e) for e in events]).alerts
    assert alerts == want
    c = summary["alerts"]
    assert c["silenced"] == sum(1 for a in alerts if a.get("silenced_by")) > 0
    assert c["sent"] == c["alerts"] - c["silenced"]
    assert c["withdrawn_by_feedback"] == 1
    assert summary["steering"]["verdicts"] == 1 and summary["steering"]["effects"]["resolve"] == 1
    resolved = [a for a in alerts if a["alert_id"] == verdict.alert_id and a["status"] == "resolved"]
    assert resolved[0]["feedback"]["verdict"] == "false_alarm"


def test_a_bad_line_in_a_steering_file_stops_replay_with_its_line(files, tmp_path):
    d, _, _, _ = files
    bad = tmp_path / "silences.jsonl"
    bad.write_text(json.dumps({"id": "mw-1", "customer_id": "acme", "from": 0, "until": 60}) + "\n"
                   + json.dumps({"id": "mw-2", "customer_id": "acme", "from": 60, "until": 0}) + "\n")
    res = CliRunner().invoke(cli, ["replay", str(d / "sim.jsonl"), "--silences", str(bad), "--out",
                                   str(tmp_path / "o"), "--no-report", "-q"])
    assert res.exit_code == 2
    assert f"--silences {bad} line 2: until (1970-01-01T00:00:00Z) must be after from" in res.output


def test_tuning_applies_the_same_verdicts_and_windows_and_counts_what_was_sent(files):
    from detectors.config import DetectorConfig
    from detectors.synthetic import Incident
    from streams.commands._common import load_steering
    from streams.offline.tuning import load_dataset, run_config

    d, events, verdict, window = files
    labels = [Incident(window.customer_id, window.start, window.end, "announced")]
    data = load_dataset(JsonlSource(d / "sim.jsonl"), labels)
    plain_alerts, plain_ev = run_config(data, DetectorConfig())
    data.steering = load_steering(DetectorConfig(), str(d / "feedback.jsonl"), str(d / "silences.jsonl"))
    alerts, ev = run_config(data, DetectorConfig())
    assert any(a.get("silenced_by") for a in alerts) and not any(a.get("silenced_by") for a in plain_alerts)
    # the incident inside the window was detected without it; muted, it is not a detection any more
    assert plain_ev.recall == 1.0 and ev.recall == 0.0
