"""The state format: encode -> decode -> continue gives identical results; bad input -> StateError only."""
import dataclasses
import json
import math
import os
import pickle
import random
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest

from detectors import DetectorConfig, Engine, make_detector, parse_event
from detectors.alerting import Finding, Incident, Tracker
from detectors.signals import SIGNALS, build_models
from detectors.state import (
    FILE_MAGIC,
    FORMAT_VERSION,
    RECORD_MAGIC,
    StateError,
    model_state,
    set_model_state,
    tracker_from_state,
    tracker_state,
)
from detectors.synthetic import SimConfig, simulate
from detectors.univariate import Assessment

STEP = 300.0
DAY = 86400.0
#: the budget of one customer's serialised state (issue 8)
MAX_BYTES_PER_CUSTOMER = 4096


def random_stream(kind, seed, n):
    """Seasonal series with noise, outliers, a level shift, gaps and repeated timestamps."""
    rnd = random.Random(seed)
    ts = 1767571200.0
    for i in range(n):
        ts += STEP if rnd.random() > 0.02 else rnd.choice([0.0, -STEP, 7 * STEP])  # duplicates, late, gaps
        daily = 1.0 + 0.5 * math.sin(2 * math.pi * (ts % DAY) / DAY)
        shift = 3.0 if i > n * 0.7 else 1.0
        spike = 8.0 if rnd.random() < 0.01 else 1.0
        if kind == "ratio":
            den = rnd.choice([0, 3, 40, 5000, 200000]) if rnd.random() < 0.1 else int(3000 * daily)
            num = (
                min(den, int(rnd.gauss(den * 0.01 * shift * spike, math.sqrt(den * 0.01 + 1)))) if den else 0
            )
            yield ts, float(max(num, 0)), float(den)
        else:
            base = {"volume": 2000.0, "latency": 250.0, "generic": 50.0}.get(kind, 500.0)
            v = max(0.0, base * daily * shift * spike * math.exp(rnd.gauss(0, 0.1)))
            yield ts, v, (float(rnd.randint(1, 5000)) if kind == "latency" else None)


def same(a, b):
    """Bit-identical assessments (NaN equals NaN: a ratio of 0 requests has no value)."""
    return [x if x == x else "nan" for x in a] == [x if x == x else "nan" for x in b]


def continue_identically(fresh, original, points):
    """Feed both the rest of the stream; every assessment must be bit-identical."""
    for p in points:
        assert same(fresh.step(*p), original.step(*p))
    assert model_state(fresh) == model_state(original)


def round_trip(model, fresh):
    set_model_state(fresh, msgpack.unpackb(msgpack.packb(model_state(model))))
    return fresh


def all_models():
    """Every detector the project builds: make_detector kinds and build_models per signal/config."""
    out = [(f"make_detector:{k}", lambda k=k: make_detector(k), "ratio" if k == "ratio" else k)
           for k in ("volume", "ratio", "latency", "generic")]
    for cfg_name, cfg in (("default", DetectorConfig()),
                          ("no-weekly", DetectorConfig().with_overrides({"model.weekly": False}))):
        for sig, kind in ((name, s.kind) for name, s in SIGNALS.items()):
            out.append(
                (f"build_models:{cfg_name}:{sig}", lambda c=cfg, s=sig: build_models(c.model)[s], kind)
            )
    return out


MODELS = all_models()


@pytest.mark.parametrize("name,make,kind", MODELS, ids=[m[0] for m in MODELS])
def test_encode_decode_continue_gives_identical_scores(name, make, kind):
    points = list(random_stream(kind, seed=zlib.crc32(name.encode()), n=2400))
    for cut in (0, 5, 300, 1500):  # cold, warming, just warm, after outliers and during a shift
        original = make()
        for p in points[:cut]:
            original.step(*p)
        copy = round_trip(original, make())
        continue_identically(copy, original, points[cut:cut + 600])


def _equal(a, b):
    return np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def _attributes(m):
    names = {a for cls in type(m).__mro__ for a in getattr(cls, "__slots__", ()) if hasattr(m, a)}
    return {a: getattr(m, a) for a in names | set(getattr(m, "__dict__", {}))}


@pytest.mark.parametrize("name,make,kind", MODELS[:4], ids=[m[0] for m in MODELS[:4]])
def test_a_detector_learns_only_into_its_state_row(name, make, kind):
    """Everything a detector learns is in its state row, whose fields its family declares (and
    state records write): nothing else changes, and another detector given the row continues
    identically."""
    m, fresh = make(), make()
    points = list(random_stream(kind, 1, 700))
    for p in points[:400]:
        m.step(*p)
    learned, untouched = _attributes(m), _attributes(fresh)
    assert set(learned) == set(untouched)
    changed = {a for a in learned if a not in ("state", "_out") and not _equal(learned[a], untouched[a])}
    assert not changed, f"learned outside the state row: {sorted(changed)}"
    fresh.state[:] = m.state
    for p in points[400:]:
        assert same(fresh.step(*p), m.step(*p))


def sim_engine(days=4, customers=30, seed=11):
    sim = simulate(SimConfig(customers=customers, duration_s=days * DAY, interval_s=300, seed=seed))
    events = [parse_event(e) for e in sim.events()]
    return events


@pytest.fixture(scope="module")
def sim_events():
    return sim_engine()


def test_a_customer_dumped_mid_stream_continues_exactly_alerts_included(sim_events):
    original = Engine()
    cut = None
    for i, e in enumerate(sim_events):  # cut while an incident is open: its lifecycle must survive too
        if original.process(e).alerts and i > len(sim_events) // 2:
            cut = i + 1
            break
    assert cut is not None and original.open_incidents()
    restored = Engine()
    for cid in original.customers:
        restored.load_customer(cid, original.dump_customer(cid))
    outcomes = {}
    for e in sim_events[cut:]:
        a, b = original.process(e), restored.process(e)
        assert a == b
        outcomes[a.outcome] = outcomes.get(a.outcome, 0) + 1
    assert outcomes.get("scored", 0) > 0


def test_state_stays_within_budget_after_a_few_days(sim_events):
    eng = Engine()
    for e in sim_events:
        eng.process(e)
    sizes = [len(eng.dump_customer(c)) for c in eng.customers]
    assert max(sizes) <= MAX_BYTES_PER_CUSTOMER
    # the file costs about the same per customer (one shared header)
    assert len(eng.dump_all()) <= MAX_BYTES_PER_CUSTOMER * len(sizes)


def test_tracker_with_open_incident_round_trips():
    a = Assessment(0.99999, 0.2, 0.01, 0.0, 0.03, 57.0)
    f1, f2 = Finding("error_5xx", 1000.0, a), Finding("origin_errors", 1300.0, a._replace(score=1.0))
    inc = Incident("acme", "0123456789abcdef", 1000.0, 300, "critical", notification=2, normal_run=1,
                   findings={"error_5xx": f1, "origin_errors": f2}, peak_score=1.0, primary="origin_errors")
    tr = Tracker(hist=0b101, recent=[(1000.0, [f1]), (1300.0, [f1, f2])], incident=inc)
    back = tracker_from_state(msgpack.unpackb(msgpack.packb(tracker_state(tr))), "acme")
    assert back == tr
    assert list(back.incident.findings) == ["error_5xx", "origin_errors"]  # order decides ties


def test_dirty_customers_are_those_changed_since_the_last_call():
    eng = Engine()

    def ev(c, ts):
        return parse_event({"customer_id": c, "ts": ts, "requests": 10, "status_4xx": 0, "status_5xx": 0})

    eng.process(ev("a", 0))
    eng.process(ev("b", 0))
    assert eng.pop_dirty() == {"a", "b"}
    assert eng.pop_dirty() == set()
    eng.process(ev("a", 0))  # duplicate: nothing changed
    assert eng.pop_dirty() == set()
    eng.process(ev("b", 300))
    eng.process(ev("a", 300))
    eng.drop_customer("a")
    assert eng.pop_dirty() == {"b"} and "a" not in eng.customers
    eng.drop_customer("never-seen")
    eng.load_customer("c", eng.dump_customer("b"))  # loading is not a change
    assert eng.pop_dirty() == set() and eng.last_ts_of("c") == 300.0


# -- refusals ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def warm_engine(sim_events):
    eng = Engine()
    for e in sim_events[: len(sim_events) // 2]:
        eng.process(e)
    return eng


def reheader(blob, magic, **changes):
    v = msgpack.unpackb(blob[4:])
    for k, idx in (("version", 0), ("fingerprint", 1), ("layout", 2)):
        if k in changes:
            v[idx] = changes[k]
    return magic + msgpack.packb(v)


def test_other_version_settings_or_layout_are_refused_with_a_clear_message(warm_engine):
    cid = next(iter(warm_engine.customers))
    blob = warm_engine.dump_customer(cid)
    eng = Engine()
    with pytest.raises(StateError, match=f"format version {FORMAT_VERSION + 1}"):
        eng.load_customer(cid, reheader(blob, RECORD_MAGIC, version=FORMAT_VERSION + 1))
    with pytest.raises(StateError, match="written with other model settings"):
        Engine(DetectorConfig().with_overrides({"model.warmup_s": 3600.0})).load_customer(cid, blob)
    with pytest.raises(StateError, match="other state"):
        eng.load_customer(cid, reheader(blob, RECORD_MAGIC, layout="0" * 12))
    assert not eng.customers
    # alerting thresholds are not model settings: the state stays usable
    Engine(DetectorConfig().with_overrides({"alerting.open_n": 3})).load_customer(cid, blob)
    file_blob = warm_engine.dump_all()
    with pytest.raises(StateError, match="written with other model settings"):
        Engine(DetectorConfig().with_overrides({"model.weekly": False})).load_all(file_blob)
    with pytest.raises(StateError, match="format version 0"):
        eng.load_all(FILE_MAGIC + msgpack.packb([0, "x", "y", 0]))


class Boom:
    """Unpickling this runs a shell command: the classic hostile checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    hostile = pickle.dumps({"format": 1, "state": Boom(marker)})
    eng = Engine()
    with pytest.raises(StateError, match="pickle"):
        eng.load_all(hostile)
    with pytest.raises(StateError, match="pickle"):
        eng.load_customer("c1", hostile)
    with pytest.raises(StateError):  # the same bytes behind our magic: still only data
        eng.load_customer("c1", RECORD_MAGIC + hostile)
    assert not marker.exists() and not eng.customers


def test_a_truncated_file_loads_nothing(warm_engine):
    blob = warm_engine.dump_all()
    eng = Engine()
    for cut in (3, 10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(StateError):
            eng.load_all(blob[:cut])
    with pytest.raises(StateError, match="more customers"):
        eng.load_all(blob + msgpack.packb(["extra", []]))
    # which message depends on the bytes
    with pytest.raises(StateError, match="incomplete entry|corrupt"):
        eng.load_all(blob + blob[-len(blob) // 4 :])
    assert not eng.customers
    assert eng.load_all(blob) == len(warm_engine.customers)


def test_invalid_values_are_named(warm_engine):
    cid = next(iter(warm_engine.customers))
    v = msgpack.unpackb(warm_engine.dump_customer(cid)[4:])
    eng = Engine()

    def load(mutate):
        w = msgpack.unpackb(msgpack.packb(v))
        mutate(w[3])
        eng.load_customer(cid, RECORD_MAGIC + msgpack.packb(w))

    def set_state(sig_index, attr_index, value):
        return lambda c: c[2][sig_index].__setitem__(attr_index, value)

    with pytest.raises(StateError, match=r"SeasonalDetector\._level: expected a finite float"):
        load(set_state(0, 3, float("nan")))
    with pytest.raises(StateError, match=r"_hod: array of 16 bytes, expected 24 doubles"):
        load(set_state(0, 4, b"\0" * 16))
    with pytest.raises(StateError, match=r"_hod: non-finite"):
        load(set_state(0, 4, b"\0" * 184 + b"\0\0\0\0\0\0\xf0\x7f"))  # +inf last
    with pytest.raises(StateError, match=r"_n: expected int"):
        load(set_state(0, 0, "12"))
    with pytest.raises(StateError, match=r"_warm: expected bool"):
        load(set_state(1, 11, 1))
    with pytest.raises(StateError, match="models"):
        load(lambda c: c[2].pop())
    with pytest.raises(StateError, match="unknown signal"):
        load(lambda c: c[3].__setitem__(1, [[1.0, [["rm -rf /", 1.0, [0.0] * 6]]]]))
    with pytest.raises(StateError, match="interval_s"):
        load(lambda c: c.__setitem__(1, -5))
    assert not eng.customers


def test_random_corruption_raises_state_error_and_nothing_else(warm_engine):
    rnd = random.Random(3)
    cid = next(iter(warm_engine.customers))
    record = warm_engine.dump_customer(cid)
    file_blob = warm_engine.dump_all()[:20000]
    eng = Engine()
    loaded = 0
    for i in range(1500):
        base = record if i % 2 else file_blob
        b = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.random()
            pos = rnd.randrange(4, len(b))
            if op < 0.6:
                b[pos] = rnd.randrange(256)
            elif op < 0.8:
                del b[pos : pos + rnd.randint(1, 50)]
            else:
                b[pos:pos] = rnd.randbytes(rnd.randint(1, 50))
        try:
            if i % 2:
                eng.load_customer(cid, bytes(b))
            else:
                eng.load_all(bytes(b))
            loaded += 1
        except StateError:
            pass
    for junk in (
        b"",
        b"LKSR",
        b"LKSF",
        b"LKSR\xc1",
        b"LKSF\x91\x01",
        RECORD_MAGIC + msgpack.packb({"a": 1}),
        RECORD_MAGIC + msgpack.packb([FORMAT_VERSION] + [[[]]] * 3000),
        b"\x00" * 100,
        "text",
    ):
        with pytest.raises(StateError):
            eng.load_customer(cid, junk)
        with pytest.raises(StateError):
            eng.load_all(junk)
    # whatever loaded is usable: scoring it never crashes
    for c in list(eng.customers):
        eng.process(
            parse_event({"customer_id": c, "ts": 4e9, "requests": 100, "status_4xx": 1, "status_5xx": 1})
        )


def test_the_state_is_plain_data():
    """Every value in a record is a msgpack primitive: no ext types, no maps, nothing to execute."""
    eng = Engine()
    for i in range(400):
        eng.process(
            parse_event(
                {
                    "customer_id": "c",
                    "ts": 300 * i,
                    "requests": 1000 + i % 7,
                    "status_4xx": 3,
                    "status_5xx": i % 2,
                    "latency_p99_ms": 120.0,
                    "cache_hits": 800,
                    "bytes_out": 10**6,
                }
            )
        )

    def walk(v):
        if isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert v is None or isinstance(v, (bool, int, float, str, bytes)), type(v)

    walk(msgpack.unpackb(eng.dump_customer("c")[4:]))
    assert dataclasses.is_dataclass(Tracker)


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("version, new_fields", [
    # written by the model before the calibrated tail (the fixture's .json says what that Lookout
    # had: customers, the open incident) ...
    (1, ("_tail", "_ar_")),
    # ... and before the seasonal short-term term (main at 62f49a6: 8 simulated customers, seed 1,
    # 3 days, saved while an incident is open)
    (2, ("_ar_",)),
])
def test_a_state_file_of_an_older_format_version_loads_warm_with_its_incident_open(version, new_fields):
    # an upgrade must not go back to warming
    meta = json.loads((FIXTURES / f"state-v{version}.json").read_text())
    blob = (FIXTURES / f"state-v{version}.lksf").read_bytes()
    assert blob[:4] == FILE_MAGIC
    eng = Engine()
    assert eng.load_all(blob) == len(meta["customers"])
    assert sorted(eng.customers) == meta["customers"]
    assert [i.customer_id for i in eng.open_incidents()] == meta["open"]
    for cid in meta["customers"]:
        for name, model in eng.models_of(cid).items():
            # carried over: warm flag, level, profiles, scale; new fields: their priors
            assert model.warm, (cid, name)
            fresh = model.family.fresh_row()
            for f in model.family.persisted:
                if f.name.startswith(new_fields):
                    assert model.state[f.offset] == fresh[f.offset], (cid, name, f.name)
    # the next event of each customer is scored, not warming
    ts = meta["next"][meta["customers"][1]]["ts"]
    e = parse_event({"customer_id": meta["customers"][1], "ts": ts, "interval_s": 300, "requests": 900,
                     "status_4xx": 5, "status_5xx": 1})
    assert eng.process(e).outcome == "scored"


def test_a_version_1_record_with_other_model_settings_is_still_refused():
    blob = (FIXTURES / "state-v1.lksf").read_bytes()
    with pytest.raises(StateError, match="written with other model settings"):
        Engine(DetectorConfig().with_overrides({"model.warmup_s": 3600.0})).load_all(blob)
    v = msgpack.Unpacker()
    v.feed(blob[4:])
    head = next(iter(v))
    assert head[0] == 1
