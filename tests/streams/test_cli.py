"""The command line as a user meets it: exit codes, the one line printed, flags named alike."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from detectors.synthetic import Incident, SimConfig, simulate
from streams.cli import cli
from streams.offline.simfiles import write_jsonl, write_labels
from tests.conftest import free_ports


def lookout(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    sim = simulate(SimConfig(customers=3, duration_s=2 * 86400, interval_s=300, seed=2, incidents=1,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    write_jsonl(sim.events(), d / "sim.jsonl")
    return d / "sim.jsonl"


# ----------------------------------------------------------------------------- exit codes


def test_replay_of_an_empty_file_exits_non_zero(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    res = lookout("replay", tmp_path / "empty.jsonl", "--out", tmp_path / "o", "--no-report", "-q")
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == "Error: no records in the source: nothing was replayed"


def test_replay_of_only_invalid_lines_exits_non_zero_and_keeps_the_dlq(tmp_path):
    lines = [json.dumps({"customer_id": "c1", "ts": 0, "requests": 1, "status_4xx": 3, "status_5xx": 0})] * 4
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    res = lookout("replay", tmp_path / "bad.jsonl", "--out", tmp_path / "o", "--no-report", "-q")
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        f"Error: no valid events: all 4 records were invalid (reasons in {tmp_path / 'o' / 'dlq.jsonl'})")
    assert len((tmp_path / "o" / "dlq.jsonl").read_text().splitlines()) == 4


def test_replay_with_labels_for_other_customers_exits_non_zero(sim_file, tmp_path):
    write_labels([Incident("nobody-here", 1.767e9, 1.767e9 + 3600, "latency")], tmp_path / "labels.jsonl")
    res = lookout("replay", sim_file, "--labels", tmp_path / "labels.jsonl", "--out", tmp_path / "o",
                  "--no-report")
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        "Error: none of the 1 labelled customer(s) appears in the data; wrong labels file?")
    assert "replayed 1,728 records" in res.output  # the summary is still printed above the error


def test_tune_with_labels_for_other_customers_exits_non_zero(sim_file, tmp_path):
    write_labels([Incident("nobody-here", 1.767e9, 1.767e9 + 3600, "latency")], tmp_path / "labels.jsonl")
    (tmp_path / "space.yaml").write_text("alerting.open_n: {choices: [1, 2]}\n")
    res = lookout("tune", sim_file, "--labels", tmp_path / "labels.jsonl", "--space", tmp_path / "space.yaml",
                  "--out", tmp_path / "o", "-q", "--trials", 1)
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: none of the 1 labelled customer(s) in {tmp_path / 'labels.jsonl'} "
                                  f"appears in {sim_file}; wrong labels file?")


# ----------------------------------------------------------------------------- flags


def test_version_short_and_long():
    for flag in ("-V", "--version"):
        res = lookout(flag)
        assert res.exit_code == 0
        assert res.output.startswith("lookout, version ")


def test_simulate_names_its_labels_output_labels_out_and_keeps_the_old_name(tmp_path):
    res = lookout("simulate", "--customers", 2, "--days", 1, "--out", tmp_path / "a.jsonl",
                  "--labels-out", tmp_path / "a-labels.jsonl", "-q", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["events"] == 2 * 288 and info["labels"] == str(tmp_path / "a-labels.jsonl")
    assert (tmp_path / "a-labels.jsonl").exists()
    res = lookout("simulate", "--customers", 2, "--days", 1, "--out", tmp_path / "b.jsonl",
                  "--labels", tmp_path / "b-labels.jsonl", "-q")
    assert res.exit_code == 0, res.output
    assert "Warning: --labels is deprecated; use --labels-out" in res.stderr
    assert (tmp_path / "b-labels.jsonl").exists()


def test_simulate_kafka_is_a_deprecated_alias_of_bootstrap(tmp_path):
    res = lookout("simulate", "--kafka", "127.0.0.1:9", "--out", tmp_path / "x.jsonl")
    assert res.exit_code == 1
    assert "Warning: --kafka is deprecated; use --bootstrap" in res.stderr
    assert (
        res.stderr.strip().splitlines()[-1]
        == "Error: give exactly one of --out FILE or --bootstrap HOST:PORT"
    )


def test_broker_port_flags_match_the_demo(tmp_path):
    for flag in ("--broker-port", "--port"):  # --port: deprecated alias
        res = lookout("broker", "status", "--data-dir", tmp_path / "d", flag, 29999, "--json")
        assert res.exit_code == 3  # not running
        assert json.loads(res.stdout)["bootstrap"] == "127.0.0.1:29999"
    res = lookout("broker", "start", "--help")
    assert "--broker-port" in res.output and "default 9094" in res.output
    assert "--broker-port" in lookout("demo", "--help").output


# ----------------------------------------------------------------------------- unreachable Kafka


def run_lookout(*args, **env):
    """``lookout ARGS`` as a separate process, the way a user runs it (stdout/stderr are not a TTY)."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", [["worker"], ["topics", "create"], ["alerts", "tail"]])
def test_commands_say_in_one_line_that_kafka_is_down(command, tmp_path):
    (port,) = free_ports(1)  # nothing listens there
    res = run_lookout(*command, "--bootstrap", f"127.0.0.1:{port}", LOOKOUT_KAFKA_TIMEOUT_S="1",
                      LOOKOUT_DATA_DIR=str(tmp_path / "w"))
    assert res.returncode == 1
    assert res.stderr == f"Error: cannot reach Kafka at 127.0.0.1:{port} within 1 s\n"
    assert res.stdout == ""


# ----------------------------------------------------------------------------- CSV without interval_s


def test_csv_without_interval_column_takes_the_interval_from_the_timestamps(sim_file, tmp_path):
    rows = [json.loads(line) for line in sim_file.read_text().splitlines()]
    cols = ["customer_id", "ts", "requests", "status_4xx", "status_5xx", "latency_p99_ms"]
    (tmp_path / "x.csv").write_text(
        "\n".join([",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]) + "\n")
    res = lookout("replay", tmp_path / "x.csv", "--out", tmp_path / "o", "--no-report")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[1].endswith("(2 days, 300 s interval)"), lines
    assert lines[2] == "note: no interval_s column; 300 s told from the timestamps"
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["interval_s"] == 300 and summary["source"]["inferred_interval_s"] == 300


def test_csv_with_one_row_per_customer_warns_that_it_assumes_60_s(tmp_path):
    (tmp_path / "x.csv").write_text("customer_id,ts,requests,status_4xx,status_5xx\n"
                                    "a,2026-01-05T00:00:00Z,100,1,0\nb,2026-01-05T00:00:00Z,100,1,0\n")
    res = lookout("replay", tmp_path / "x.csv", "--out", tmp_path / "o", "--no-report")
    assert res.exit_code == 0, res.output
    assert (
        "warning: no interval_s column and no customer with two rows to tell it from: every row counts as "
        "60 s (add the column or --map interval_s=COLUMN)"
    ) in res.stdout.splitlines()
