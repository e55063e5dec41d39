from detectors import DetectorConfig, Engine, parse_event
from streams.checkpoint import Checkpoint


def engine_with_data(cfg=None):
    eng = Engine(cfg)
    for i in range(30):
        eng.process(parse_event({"customer_id": f"c{i % 3}", "ts": 300 * i, "requests": 100 + i,
                                 "status_4xx": 1, "status_5xx": 0}))
    return eng


def test_round_trip_restores_every_customer(tmp_path):
    eng = engine_with_data()
    ck = Checkpoint(tmp_path / "state.pickle", eng.config.model_fingerprint())
    assert ck.save(eng) > 0
    fresh = Engine()
    assert ck.load(fresh) == 3
    nxt = parse_event({"customer_id": "c1", "ts": 9000, "requests": 120, "status_4xx": 1, "status_5xx": 0})
    assert fresh.process(nxt) == eng.process(nxt)


def test_other_model_settings_start_fresh(tmp_path):
    eng = engine_with_data()
    Checkpoint(tmp_path / "s.pickle", eng.config.model_fingerprint()).save(eng)
    other = DetectorConfig().with_overrides({"model.warmup_s": 3600.0})
    assert Checkpoint(tmp_path / "s.pickle", other.model_fingerprint()).load(Engine(other)) == 0
    # alerting thresholds do not invalidate the models
    tweak = DetectorConfig().with_overrides({"alerting.open_n": 3})
    assert Checkpoint(tmp_path / "s.pickle", tweak.model_fingerprint()).load(Engine(tweak)) == 3


def test_a_torn_file_is_moved_aside_not_fatal(tmp_path):
    p = tmp_path / "s.pickle"
    p.write_bytes(b"\x80\x05garbage")
    eng = Engine()
    assert Checkpoint(p, eng.config.model_fingerprint()).load(eng) == 0
    assert not p.exists() and list(tmp_path.glob("s.unreadable-*"))


def test_missing_file_is_a_cold_start(tmp_path):
    assert Checkpoint(tmp_path / "none.pickle", "x").load(Engine()) == 0
