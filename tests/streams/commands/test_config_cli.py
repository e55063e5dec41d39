"""A bad detector config stops ``lookout replay`` with exit code 1 and one readable error, as a user
sees it."""

import subprocess
import sys
from pathlib import Path

import pytest


def lookout(*args, cwd):
    exe = Path(sys.executable).with_name("lookout")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from streams.cli import main; main()"]
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def events(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text('{"customer_id": "c1", "ts": 0, "requests": 10, "status_4xx": 0, "status_5xx": 0}\n')
    return p


@pytest.mark.parametrize(
    "text, lines",
    [
        (
            "signals:\n  error_5xx:\n    threshold: 1.5\nmodel:\n  warmup_s: -5\n  colour: red\n",
            [
                "Error: --config: bad.yaml: 3 problems:",
                "  line 3: signals.error_5xx.threshold must be in (0, 1], got 1.5",
                "  line 5: model.warmup_s must be >= 0, got -5",
                "  line 6: unknown key(s) model.colour (known: warmup_s, warmup_points, level_half_life_s, "
                "season_half_life_visits, scale_half_life_s, accept_shift_after_s, learn_threshold, "
                "ratio_half_life_s, weekly)",
            ],
        ),
        (
            "alerting:\n  open_n: 5\n  open_m: 3\n",
            ["Error: --config: bad.yaml: line 2: alerting.open_n (5) must not exceed alerting.open_m (3)"],
        ),
        (
            "- open_n: 2\n",
            [
                "Error: --config: bad.yaml: the config must be a mapping of sections "
                "(model, alerting, signals, correlator, feedback), got a list"
            ],
        ),
        (
            "alerting: {open_n: 2\n",
            [
                "Error: --config: bad.yaml: line 2, column 1: cannot parse YAML: "
                "expected ',' or '}', but got '<stream end>'"
            ],
        ),
    ],
)
def test_replay_with_a_bad_config_exits_1_with_the_problems(tmp_path, events, text, lines):
    (tmp_path / "bad.yaml").write_text(text)
    res = lookout("replay", events, "--config", "bad.yaml", "--out", tmp_path / "out", "-q", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.splitlines() == lines
    assert not (tmp_path / "out" / "alerts.jsonl").exists()
