"""Detector config files: every mistake is reported at once, in one clear message, never a traceback."""
import pytest

from detectors.config import AlertingConfig, ConfigError, DetectorConfig, SignalConfig, load_config


def load(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return load_config(p)


def problems(tmp_path, text, name="cfg.yaml"):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, name)
    return str(info.value)


@pytest.mark.parametrize(
    "text, kind", [("- a\n- b\n", "a list"), ("just a string\n", "a string"), ("42\n", "int")]
)
def test_a_file_that_is_not_a_mapping_says_so(tmp_path, text, kind):
    msg = problems(tmp_path, text)
    assert (
        msg
        == f"{tmp_path / 'cfg.yaml'}: the config must be a mapping of sections "
        "(model, alerting, signals, correlator, feedback), "
        f"got {kind}"
    )


@pytest.mark.parametrize(
    "text, line, expect",
    [
        (
            "signals:\n  error_5xx:\n    threshold: 1.5\n",
            3,
            "signals.error_5xx.threshold must be in (0, 1], got 1.5",
        ),
        ("model:\n  warmup_s: -5\n", 2, "model.warmup_s must be >= 0, got -5"),
        (
            "alerting:\n  open_n: 5\n  open_m: 3\n",
            2,
            "alerting.open_n (5) must not exceed alerting.open_m (3)",
        ),
        (
            "alerting:\n  warning_magnitude: 8\n",
            2,
            "alerting.warning_magnitude (8) must not exceed alerting.critical_magnitude (4)",
        ),
        ("alerting:\n  open_n: many\n", 2, "alerting.open_n must be an integer, got 'many'"),
        ("model:\n  weekly: 1\n", 2, "model.weekly must be true or false, got 1"),
        ("model:\n  learn_threshold: .nan\n", 2, "model.learn_threshold must be in (0, 1], got nan"),
    ],
)
def test_out_of_range_and_inconsistent_values_are_rejected_with_their_line(tmp_path, text, line, expect):
    assert problems(tmp_path, text) == f"{tmp_path / 'cfg.yaml'}: line {line}: {expect}"


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    msg = problems(tmp_path, "alerting:\n  open_n: 0\n  colour: red\n  size: 3\nsignals:\n  nope: {}\n"
                             "  requests:\n    threshold: 2\nextra: 1\n")
    head, *rest = msg.splitlines()
    assert head.endswith("cfg.yaml: 5 problems:")
    assert [r.split(":")[0].strip() for r in rest] == ["line 2", "line 3", "line 6", "line 8", "line 9"]
    assert "unknown key(s) alerting.colour, alerting.size (known: open_n, open_m," in rest[1]
    assert "unknown signal 'nope'" in rest[2] and "unknown config section(s) extra" in rest[4]


@pytest.mark.parametrize("name, text, where", [
    ("cfg.yaml", "alerting:\n  open_n: [1\n", "line 3, column 1: cannot parse YAML"),
    ("cfg.yaml", "alerting:\n\topen_n: 2\n", "line 2, column 1: cannot parse YAML"),
    ("cfg.json", '{"alerting": {"open_n": 2,}}', "line 1, column 27: cannot parse JSON"),
    ("cfg.toml", "[alerting]\nopen_n = \n", "cannot parse TOML: Invalid value (at line 2, column 10)"),
])
def test_syntax_errors_give_line_and_column(tmp_path, name, text, where):
    assert problems(tmp_path, text, name).startswith(f"{tmp_path / name}: {where}")


def test_duplicate_yaml_keys_are_an_error_not_a_silent_override(tmp_path):
    msg = problems(tmp_path, "alerting:\n  open_n: 2\n  open_n: 3\n")
    assert msg.endswith("line 3: duplicate key alerting.open_n (first on line 2)")


def test_valid_files_and_empty_files_load(tmp_path):
    assert load(tmp_path, "") == DetectorConfig()
    cfg = load(tmp_path, "alerting:\n  open_n: 3\n  open_m: 3\nmodel:\n  warmup_s: 0\nsignals:\n  bytes:\n"
                         "    threshold: 1\n")
    assert cfg.alerting.open_n == 3 and cfg.model.warmup_s == 0.0 and isinstance(cfg.model.warmup_s, float)
    assert cfg.signals["bytes"].threshold == 1.0


def test_the_example_config_is_valid():
    from pathlib import Path

    load_config(Path(__file__).resolve().parents[2] / "examples" / "config.yaml")


def test_configs_built_in_code_are_checked_too():
    with pytest.raises(
        ConfigError, match=r"AlertingConfig.open_n \(4\) must not exceed AlertingConfig.open_m \(3\)"
    ):
        AlertingConfig(open_n=4)
    with pytest.raises(ConfigError, match=r"SignalConfig.min_events must be >= 0, got -1"):
        SignalConfig(min_events=-1)
    with pytest.raises(ConfigError, match="alerting.open_n"):
        DetectorConfig().with_overrides({"alerting.open_n": 9})
