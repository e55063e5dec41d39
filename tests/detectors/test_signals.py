"""The signal registry is the one source of per-signal facts."""
import pytest

from detectors import Engine, parse_event
from detectors.config import DetectorConfig, SignalConfig
from detectors.signals import SIGNALS, Signal, build_models, derive

EVENT = {"customer_id": "c1", "ts": 0, "requests": 200, "status_4xx": 4, "status_5xx": 2,
         "origin_errors": {"522": 1}, "cache_hits": 150, "latency_p99_ms": 90.0, "bytes_out": 1000}


def test_every_signal_gets_a_model_config_and_input():
    cfg = DetectorConfig()
    models = build_models(cfg.model)
    x = derive(parse_event(EVENT))
    assert list(models) == list(SIGNALS) == list(cfg.signals) == list(x)
    for name, sig in SIGNALS.items():
        assert models[name].direction == sig.direction
        for key, value in sig.defaults.items():
            assert getattr(cfg.signals[name], key) == value


def test_defaults_name_only_signalconfig_fields():
    fields = set(SignalConfig.__dataclass_fields__)
    for sig in SIGNALS.values():
        assert set(sig.defaults) <= fields, sig.name


def test_disabled_signals_get_no_model():
    cfg = DetectorConfig.from_mapping({"signals": {"bytes": {"enabled": False}}})
    eng = Engine(cfg)
    eng.process(parse_event(EVENT))
    assert "bytes" not in eng.models_of("c1")
    assert "bytes" not in build_models(cfg.model, {"requests"}) and "requests" in build_models(
        cfg.model, {"requests"}
    )


def test_absent_fields_give_no_input():
    e = parse_event({"customer_id": "c1", "ts": 0, "requests": 0, "status_4xx": 0, "status_5xx": 0,
                     "latency_p99_ms": 50.0})
    assert SIGNALS["latency_p99"].args(e) is None  # no requests: a p99 of nothing
    assert SIGNALS["cache_hit"].args(e) is None and SIGNALS["bytes"].args(e) is None


def test_bad_entries_are_rejected():
    with pytest.raises(ValueError, match="unknown model kind"):
        Signal("x", "x", "ratio", "x", "nope", "up", lambda e: None)
    with pytest.raises(ValueError, match="unknown direction"):
        Signal("x", "x", "ratio", "x", "ratio", "sideways", lambda e: None)
