"""Bootstrapping from history: `lookout replay --save-state` -> a fresh engine scores at once."""
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from detectors import Engine, parse_event
from detectors.synthetic import SimConfig, simulate
from streams.cli import cli
from streams.offline.simfiles import write_jsonl

DAY = 86400.0
HISTORY_DAYS = 3


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    d = tmp_path_factory.mktemp("boot")
    sim = simulate(SimConfig(customers=8, duration_s=(HISTORY_DAYS + 1) * DAY, interval_s=300, seed=9,
                             incidents=3, holidays=False))
    events = list(sim.events())
    parsed = [parse_event(e) for e in events]
    t0 = min(e.ts for e in parsed)
    cut = t0 + HISTORY_DAYS * DAY
    past = [e for e, p in zip(events, parsed) if p.ts < cut]
    nxt = [p for p in parsed if p.ts >= cut]
    write_jsonl(past, d / "history.jsonl")
    return d, [p for p in parsed if p.ts < cut], nxt


def outcomes(verdicts):
    out = {}
    for v in verdicts:
        out[v.outcome] = out.get(v.outcome, 0) + 1
    return out


def test_saved_state_scores_the_next_day_like_the_engine_that_learned_it(history, tmp_path):
    d, past, nxt = history
    state = tmp_path / "state.lookout"
    res = CliRunner().invoke(cli, ["replay", str(d / "history.jsonl"), "--out", str(tmp_path / "out"),
                                   "--no-report", "--save-state", str(state)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"saved the learned state of 8 customers to {state}" in res.output

    booted = Engine()
    assert booted.load_all(state.read_bytes()) == 8
    original = Engine()  # the same history, learned in-process and continued
    for e in past:
        original.process(e)
    cold = Engine()

    got = [booted.process(e) for e in nxt]
    assert got == [original.process(e) for e in nxt]
    assert outcomes(got) == {"scored": len(nxt)}  # no warming
    assert outcomes(cold.process(e) for e in nxt).get("warming", 0) > len(nxt) // 2


def test_the_commands_as_a_user_runs_them(history, tmp_path):
    d, _, _ = history
    state = tmp_path / "boot.lookout"
    cmd = [
        sys.executable,
        "-m",
        "streams.cli",
        "replay",
        str(d / "history.jsonl"),
        "--out",
        str(tmp_path / "o"),
        "--no-report",
        "--save-state",
        str(state),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3])
    assert p.returncode == 0, p.stderr
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("saved the learned state")]
    assert line == f"saved the learned state of 8 customers to {state} ({state.stat().st_size:,} bytes)"

    bad = cmd[:-1] + [str(tmp_path / "o")]  # a directory: cannot be written as a file
    p = subprocess.run(bad, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3])
    assert p.returncode == 1 and p.stderr.strip() == f"Error: --save-state {tmp_path / 'o'}: is a directory"

    p = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--initial-state", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "--initial-state" in p.stderr and "no such file" in p.stderr
