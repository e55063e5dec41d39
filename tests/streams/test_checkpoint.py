import logging
import os
import pickle

import msgpack
import pytest

from detectors import DetectorConfig, Engine, parse_event
from detectors.state import FILE_MAGIC
from streams.checkpoint import FILENAME, Checkpoint, restore


def engine_with_data(cfg=None):
    eng = Engine(cfg)
    for i in range(30):
        eng.process(parse_event({"customer_id": f"c{i % 3}", "ts": 300 * i, "requests": 100 + i,
                                 "status_4xx": 1, "status_5xx": 0}))
    return eng


NEXT = {"customer_id": "c1", "ts": 9000, "requests": 120, "status_4xx": 1, "status_5xx": 0}


def test_round_trip_restores_every_customer(tmp_path):
    eng = engine_with_data()
    ck = Checkpoint(tmp_path / FILENAME)
    assert ck.save(eng) > 0
    assert not list(tmp_path.glob("*.tmp"))
    fresh = Engine()
    assert ck.load(fresh) == 3
    assert fresh.process(parse_event(NEXT)) == eng.process(parse_event(NEXT))


def warnings_of(caplog):
    return [r for r in caplog.records if r.name == "lookout.checkpoint" and r.levelno >= logging.WARNING]


class Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def other_version(tmp_path):
    return FILE_MAGIC + msgpack.packb([99, "x", "y", 0])


BAD_FILES = {
    "hostile pickle": (lambda tmp: pickle.dumps({"format": 1, "state": Boom(tmp / "pwned")}), "pickle"),
    "truncated": (lambda tmp: engine_with_data().dump_all()[:-100], "truncated"),
    "other version": (other_version, "format version 99"),
    "other model settings": (lambda tmp: engine_with_data(DetectorConfig().with_overrides(
        {"model.warmup_s": 3600.0})).dump_all(), "other model settings"),
    "random bytes": (lambda tmp: os.urandom(3000), "not a Lookout state file"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_an_unusable_checkpoint_is_moved_aside_with_one_warning_and_runs_nothing(kind, tmp_path, caplog):
    make, said = BAD_FILES[kind]
    path = tmp_path / FILENAME
    path.write_bytes(make(tmp_path))
    eng = Engine()
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert restore(eng, Checkpoint(path)) == 0
    (line,) = warnings_of(caplog)
    assert said in line.getMessage() and "starting fresh" in line.getMessage()
    assert not path.exists() and list(tmp_path.glob(FILENAME + ".unusable-*"))
    assert not (tmp_path / "pwned").exists() and not eng.customers
    assert eng.process(parse_event(NEXT)).outcome == "warming"  # the worker carries on, cold


def test_an_old_pickle_checkpoint_is_never_loaded(tmp_path, caplog):
    old = tmp_path / "engine-state.pickle"
    old.write_bytes(pickle.dumps({"format": 1, "state": Boom(tmp_path / "pwned")}))
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert restore(Engine(), Checkpoint(tmp_path / FILENAME)) == 0
    (line,) = warnings_of(caplog)
    assert "pickle" in line.getMessage() and "starting fresh" in line.getMessage()
    assert not old.exists() and not (tmp_path / "pwned").exists()


def test_alerting_settings_do_not_invalidate_the_models(tmp_path):
    Checkpoint(tmp_path / FILENAME).save(engine_with_data())
    tweak = DetectorConfig().with_overrides({"alerting.open_n": 3})
    assert Checkpoint(tmp_path / FILENAME).load(Engine(tweak)) == 3


def test_missing_file_is_a_cold_start(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert restore(Engine(), Checkpoint(tmp_path / FILENAME)) == 0
    assert not warnings_of(caplog)


def test_initial_state_is_used_unless_a_newer_checkpoint_exists(tmp_path, caplog):
    initial = tmp_path / "bootstrap.lookout"
    initial.write_bytes(engine_with_data().dump_all())
    ck = Checkpoint(tmp_path / "data" / FILENAME)
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert restore(Engine(), ck, initial) == 3
    (line,) = warnings_of(caplog)
    assert line.getMessage() == f"loaded initial detector state of 3 customers from {initial}"

    one = Engine()
    one.process(parse_event(NEXT))
    ck.save(one)  # the worker ran since: its checkpoint is newer than the bootstrap file
    os.utime(initial, (1, 1))
    eng = Engine()
    assert restore(eng, ck, initial) == 1 and list(eng.customers) == ["c1"]
    os.utime(initial, None)  # a newer bootstrap file wins (re-bootstrapping on purpose)
    os.utime(ck.path, (1, 1))
    assert restore(Engine(), ck, initial) == 3


def test_a_bad_initial_state_is_reported_and_left_alone(tmp_path, caplog):
    initial = tmp_path / "bootstrap.lookout"
    initial.write_bytes(b"LKSF junk")
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert restore(Engine(), Checkpoint(tmp_path / FILENAME), initial) == 0
    (line,) = warnings_of(caplog)
    assert "not used" in line.getMessage() and "starting fresh" in line.getMessage()
    assert initial.exists()
