"""``lookout simulate --shared-causes`` then ``lookout replay --customers``: the same correlator as
the worker, over a file, scored against the shared causes."""
from __future__ import annotations

import json

from click.testing import CliRunner

from detectors.correlator import Correlator
from detectors.engine import Engine
from detectors.events import parse_batch
from detectors.synthetic import SimConfig, simulate
from streams.cli import cli

SIM = ["--customers", "400", "--days", "4", "--shared-causes", "4", "--seed", "5", "-q"]


def test_simulate_then_replay_with_customers_reports_parents(tmp_path):
    sim_path = tmp_path / "sim.jsonl.gz"
    r = CliRunner().invoke(cli, ["simulate", *SIM, "--out", str(sim_path)])
    assert r.exit_code == 0, r.output
    customers, labels = tmp_path / "sim.customers.jsonl", tmp_path / "sim.labels.jsonl"
    assert customers.exists() and any("cause" in json.loads(x) for x in labels.read_text().splitlines())
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["replay", str(sim_path), "--customers", str(customers), "--labels",
                                 str(labels), "--out", str(out), "--no-report", "-q", "--json"])
    assert r.exit_code == 0, r.output
    parents = json.loads(r.output)["parents"]
    assert parents["customers_in_catalogue"] == 400 and parents["parents"] >= 3
    ev = parents["evaluation"]
    assert ev["parent_recall"] == 1.0 and ev["localised_right"] == 1.0 and ev["false_parents"] == 0
    # the files: what the worker's topics would carry
    incidents = [json.loads(x) for x in (out / "incidents.jsonl").read_text().splitlines()]
    routed = [json.loads(x) for x in (out / "alerts-routed.jsonl").read_text().splitlines()]
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert {r["schema"] for r in incidents} == {"lookout.incident/v1"}
    key = sorted((a["alert_id"], a["status"], a["notification"]) for a in alerts)
    assert sorted((a["alert_id"], a["status"], a["notification"]) for a in routed) == key  # every alert, once
    # the same as the in-process correlator over the same simulation (one code path)
    sim = simulate(SimConfig(customers=400, duration_s=4 * 86400, shared_causes=4, seed=5))
    corr, eng, want = Correlator(None, sim.catalogue), Engine(), []
    for ts, batch in sim.intervals():
        v = eng.process_many(parse_batch(batch))
        corr.add_onsets(v.onsets)
        corr.add_alerts(v.alerts)
        want += corr.advance(ts).incidents
    want += corr.flush().incidents
    assert [r["parent_id"] for r in incidents] == [r["parent_id"] for r in want]


def test_a_bad_customers_file_names_its_lines(tmp_path):
    bad = tmp_path / "customers.jsonl"
    bad.write_text('{"customer_id": "a", "plan": "pro"}\n{"plan": "x"}\n')
    r = CliRunner().invoke(cli, ["replay", str(tmp_path / "nothing.jsonl"), "--customers", str(bad)])
    assert r.exit_code == 1 and "--customers: " in r.output and "line 2: customer_id is required" in r.output
