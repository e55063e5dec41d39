import logging
import os
import pickle

import msgpack
import pytest

from detectors import DetectorConfig, Engine, parse_event
from detectors.state import FILE_MAGIC
from streams.state.checkpoint import LEGACY_FILENAMES, discard_legacy, load_initial_state, write_atomically


def engine_with_data(cfg=None):
    eng = Engine(cfg)
    for i in range(30):
        eng.process(parse_event({"customer_id": f"c{i % 3}", "ts": 300 * i, "requests": 100 + i,
                                 "status_4xx": 1, "status_5xx": 0}))
    return eng


NEXT = {"customer_id": "c1", "ts": 9000, "requests": 120, "status_4xx": 1, "status_5xx": 0}


def test_initial_state_round_trip_restores_every_customer(tmp_path):
    eng = engine_with_data()
    path = tmp_path / "state.lookout"
    write_atomically(path, eng.dump_all())
    assert not list(tmp_path.glob("*.tmp"))
    fresh = Engine()
    assert load_initial_state(fresh, path) == 3
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
def test_an_unusable_initial_state_gives_one_warning_a_cold_start_and_runs_nothing(kind, tmp_path, caplog):
    make, said = BAD_FILES[kind]
    path = tmp_path / "bootstrap.lookout"
    path.write_bytes(make(tmp_path))
    eng = Engine()
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert load_initial_state(eng, path) == 0
    (line,) = warnings_of(caplog)
    assert said in line.getMessage() and "starting fresh" in line.getMessage()
    assert path.exists(), "the operator's file is left where it is"
    assert not (tmp_path / "pwned").exists() and not eng.customers
    assert eng.process(parse_event(NEXT)).outcome == "warming"  # the worker carries on, cold


@pytest.mark.parametrize("name", LEGACY_FILENAMES)
def test_state_files_in_the_data_dir_are_moved_aside_unread(name, tmp_path, caplog):
    old = tmp_path / name
    old.write_bytes(pickle.dumps({"format": 1, "state": Boom(tmp_path / "pwned")}))
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        moved = discard_legacy(tmp_path, "lookout-state")
    (line,) = warnings_of(caplog)
    assert "never loaded" in line.getMessage() and "lookout-state" in line.getMessage()
    assert not old.exists() and moved and moved[0].exists()
    assert not (tmp_path / "pwned").exists()


def test_alerting_settings_do_not_invalidate_the_models(tmp_path):
    path = tmp_path / "s.lookout"
    write_atomically(path, engine_with_data().dump_all())
    tweak = DetectorConfig().with_overrides({"alerting.open_n": 3})
    assert load_initial_state(Engine(tweak), path) == 3


def test_no_initial_state_is_a_quiet_cold_start(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="lookout.checkpoint"):
        assert load_initial_state(Engine(), None) == 0
        assert discard_legacy(tmp_path, "x") == []
    assert not warnings_of(caplog)
