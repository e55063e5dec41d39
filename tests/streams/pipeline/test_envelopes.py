"""Envelopes ``{"events": [...]}``: many events of one partition in one message.

Each event is validated on its own (one bad event = one dead letter with its index, neighbours
processed), an event whose customer hashes to another partition is refused, a malformed envelope
is one dead letter, and the events of an envelope give the same alerts as the same events one per
message.
"""
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2
from prometheus_client import CollectorRegistry

from detectors.engine import Engine
from detectors.events import parse_ts
from detectors.synthetic import SimConfig, simulate
from streams.pipeline.codecs import (
    KIND_WRONG_PARTITION,
    MAX_ENVELOPE_EVENTS,
    json_depth,
    murmur2,
    partition_of,
)
from streams.pipeline.metrics import EVENT_OUTCOMES, WorkerMetrics
from streams.pipeline.processor import Processor

NOW = parse_ts("2026-06-01T00:00:00Z")
PARTITIONS = 4


def good(cid, ts, **fields):
    return {"customer_id": cid, "ts": ts, "interval_s": 300, "requests": 1000, "status_4xx": 10,
            "status_5xx": 2, "latency_p50_ms": 20.0, "latency_p99_ms": 300.0} | fields


def processor(**kw):
    metrics = WorkerMetrics(CollectorRegistry())
    return Processor(Engine(), metrics, clock=lambda: NOW, partitions=PARTITIONS, **kw), metrics


def customers_of(p, n=3):
    out, i = [], 0
    while len(out) < n:
        cid = f"cust-{i:04d}"
        if partition_of(cid, PARTITIONS) == p:
            out.append(cid)
        i += 1
    return out


def envelope(events):
    return json.dumps({"events": events}).encode()


def test_murmur2_agrees_with_kafka_python_default_partitioner():
    for n in range(300):
        key = os.urandom(n % 41)
        assert murmur2(key) & 0x7FFFFFFF == kafka_python_murmur2(key) & 0x7FFFFFFF
    # Java's Utils.murmur2 is signed: the known value of "21"
    assert murmur2(b"21") == -973932308


def test_one_bad_event_is_one_dead_letter_with_its_index_and_neighbours_are_processed():
    proc, metrics = processor()
    a, b = customers_of(2, 2)
    other = customers_of(1, 1)[0]
    events = [good(a, NOW - 3600), {"customer_id": a, "ts": "yesterday"}, good(b, NOW - 3600),
              good(other, NOW - 3600), "not an object"]
    out = proc.handle_many([(None, envelope(events), "t", 2, 17)])
    assert out.events == 5
    assert [d["index"] for d in out.dlq] == [1, 3, 4]
    assert all(d["partition"] == 2 and d["offset"] == 17 for d in out.dlq)
    assert out.dlq[1]["kind"] == KIND_WRONG_PARTITION and "partition 1" in out.dlq[1]["reason"]
    assert json.loads(out.dlq[1]["raw"]) == events[3]  # the event alone, not the whole envelope
    assert out.dlq[0]["reason"].startswith("envelope event 1: ")
    # the envelope is one message: its valid events share its offset
    assert out.positions == [(2, 17, a), (2, 17, b)]
    assert set(proc.engine.customers) == {a, b}
    assert metrics.events.labels("invalid")._value.get() == 3
    assert metrics.dlq.labels("request-metrics-dlq", KIND_WRONG_PARTITION)._value.get() == 1


def test_a_single_event_of_another_partition_s_customer_is_a_dead_letter_too():
    """Its customer's state lives with the partition its id hashes to: processed here it would
    start cold (and a topic that grew moves customers exactly like this)."""
    proc, metrics = processor()
    home, other = customers_of(2, 1)[0], customers_of(1, 1)[0]
    out = proc.handle_many([(other.encode(), json.dumps(good(other, NOW - 3600)).encode(), "t", 2, 5),
                            (home.encode(), json.dumps(good(home, NOW - 3600)).encode(), "t", 2, 6)])
    assert [d["kind"] for d in out.dlq] == [KIND_WRONG_PARTITION]
    assert "belongs to partition 1 of 4" in out.dlq[0]["reason"] and out.dlq[0]["offset"] == 5
    assert out.positions == [(2, 5, None), (2, 6, home)]  # the offset still advances
    assert set(proc.engine.customers) == {home}
    assert metrics.dlq.labels("request-metrics-dlq", KIND_WRONG_PARTITION)._value.get() == 1


@pytest.mark.parametrize("value, kind", [
    (b'{"events": [1, 2', "undecodable"),
    (b'{"events": "x"}', "contract"),
    (b'{"events": [], "partition": 3}', "contract"),
    (json.dumps({"events": [{}] * (MAX_ENVELOPE_EVENTS + 1)}).encode(), "oversized"),
])
def test_a_malformed_envelope_is_one_dead_letter(value, kind):
    proc, _ = processor()
    out = proc.handle_many([(None, value, "t", 0, 5)])
    assert len(out.dlq) == 1 and out.dlq[0]["kind"] == kind and "index" not in out.dlq[0]
    assert out.positions == [(0, 5, None)]  # the offset still advances


def test_single_event_messages_keep_the_64_kib_limit_envelopes_may_be_larger():
    proc, _ = processor()
    big = good(customers_of(0, 1)[0], NOW - 3600, pad="x" * 70_000)
    assert proc.handle(json.dumps(big)).dlq[0]["kind"] == "oversized"
    ok = [good(c, NOW - 3 * 86400 + 300 * i) for i in range(500) for c in customers_of(0, 1)]
    out = proc.handle(envelope(ok), partition=0, offset=0)
    assert len(envelope(ok)) > 64 * 1024 and out.dlq == []


def test_depth_is_measured_outside_strings_only():
    assert json_depth(json.dumps({"a": ['x\\"[[', [[{}]]]})) == 5
    assert json_depth(json.dumps({"events": [{"a": "]]]]{{{{"}] * 100})) == 3


def _depth(v):
    if isinstance(v, list):
        return 1 + max(map(_depth, v), default=0)
    if isinstance(v, dict):
        return 1 + max(map(_depth, v.values()), default=0)
    return 0


_brackety = st.text(alphabet='[]{}"\\\n aé', max_size=8)
_nested = st.recursive(
    st.none() | st.integers() | _brackety,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_brackety, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, database=None)
@given(_nested, st.booleans(), st.booleans())
def test_depth_of_any_json_text_is_the_nesting_of_its_value(value, ascii_only, as_bytes):
    """Strings with brackets, quotes and escapes of every kind do not count."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text.encode() if as_bytes else text) == _depth(value)


def test_envelopes_give_the_alerts_of_the_same_events_one_per_message():
    sim = simulate(SimConfig(customers=12, duration_s=4 * 86400, interval_s=300, seed=4, incidents=4))
    events = list(sim.events())
    single, _ = processor(max_future_s=None)
    batched, _ = processor(max_future_s=None)
    a = single.handle_many([(None, json.dumps(e).encode(), "t", None, None) for e in events])
    by_p: dict[int, list] = {}
    records = []
    for e in events:  # an aggregation tier flushing every 50 events per partition
        p = partition_of(e["customer_id"], PARTITIONS)
        by_p.setdefault(p, []).append(e)
        if len(by_p[p]) == 50:
            records.append((None, envelope(by_p.pop(p)), "t", p, len(records)))
    records += [(None, envelope(v), "t", p, len(records) + i) for i, (p, v) in enumerate(by_p.items())]
    b = batched.handle_many(records)
    assert b.dlq == [] and a.dlq == []
    assert a.alerts and sorted(x["alert_id"] + x["status"] for x in a.alerts) == \
        sorted(x["alert_id"] + x["status"] for x in b.alerts)


def test_metrics_are_applied_per_batch_with_the_same_totals():
    proc, metrics = processor()
    cids = customers_of(3, 5)
    records = [(None, json.dumps(good(c, NOW - 7200 + 300 * i)).encode(), "t", 3, i)
               for i in range(4) for c in cids]
    records.append((None, b"{", "t", 3, 99))
    out = proc.handle_many(records)
    assert sum(metrics.events.labels(o)._value.get() for o in EVENT_OUTCOMES) == out.events == 21
    lag_count = [s.value for s in metrics.lag.collect()[0].samples if s.name.endswith("_count")][0]
    assert lag_count == 20


def test_the_envelope_schema_and_the_decoder_agree():
    from pathlib import Path

    import jsonschema
    from referencing import Registry, Resource

    from streams.pipeline.codecs import decode_message

    root = Path(__file__).parents[3] / "schemas"
    event_schema = json.loads((root / "request-metrics.schema.json").read_text())
    env_schema = json.loads((root / "request-metrics-envelope.schema.json").read_text())
    registry = Registry().with_resource(event_schema["$id"], Resource.from_contents(event_schema))
    v = jsonschema.Draft202012Validator(env_schema, registry=registry)
    ok = {"events": [good("c1", NOW - 3600), good("c2", NOW - 3600)]}
    v.validate(ok)
    assert len(decode_message(json.dumps(ok))) == 2
    for bad in ({"events": "x"}, {"events": [], "extra": 1}, {"events": [{"customer_id": "c"}]}):
        assert not v.is_valid(bad)
    assert not v.is_valid({"events": [], "customer_id": "c1"})  # that is a (broken) single event


def test_crashes_mid_envelope_stream_lose_repeat_and_add_nothing():
    """Envelopes through the worker runtime with SIGKILLs between snapshots: an envelope is one
    offset, so a crash re-runs it whole and the final states and alerts equal one clean pass."""
    import asyncio
    import random
    from collections import Counter

    from tests.streams.worker.test_runtime import (
        Log,
        alert_keys_on_topic,
        replay,
        run_with_crashes,
        sim_events,
    )
    from tests.streams.worker.test_runtime import partition_of as rt_partition_of

    values = sim_events(seed=8)
    truth, truth_engine = replay(values)
    assert truth
    log, committed = Log(), {}
    rng = random.Random(11)
    pending: dict[int, list] = {}
    for v in values:  # envelopes of 1..40 events per partition
        p = rt_partition_of(v)
        pending.setdefault(p, []).append(json.loads(v))
        if len(pending[p]) >= rng.randint(1, 40):
            log.append("input", p, None, envelope(pending.pop(p)))
    for p, evs in pending.items():
        log.append("input", p, None, envelope(evs))

    crashes, w = asyncio.run(run_with_crashes(log, committed, rng, step_max=6, snapshot_p=0.2,
                                              crash_rounds=(10, 25, 45)))
    assert crashes == 3
    for c in truth_engine.customers:
        assert w.rt.engine.dump_customer(c) == truth_engine.dump_customer(c), c
    live = alert_keys_on_topic(log)
    assert [k for k, n in Counter(live).items() if n > 1] == []
    assert set(live) == set(truth)


def samples(registry):
    """Every sample of the worker's registry, by (name, labels): the metrics a dashboard sees."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for m in registry.collect() for s in m.samples if not s.name.endswith("_created")}


def test_a_batch_gives_what_its_messages_give_one_at_a_time_with_one_engine_call():
    """handle_many decodes the whole batch first and runs its valid events through ONE
    process_many: alerts, dead letters, positions and every metric value are those of handling
    each message on its own, in order."""
    sim = simulate(SimConfig(customers=8, duration_s=3 * 86400, interval_s=300, seed=6, incidents=3,
                             size_min=2000, tiny_fraction=0.0))
    events = [e for e in sim.events() if partition_of(e["customer_id"], PARTITIONS) == 1]
    records = []
    for i in range(0, len(events), 7):  # envelopes of 7, every 5th as single messages instead
        chunk = events[i:i + 7]
        if i // 7 % 5 == 0:
            records += [(None, json.dumps(e).encode(), "t", 1, 0) for e in chunk]
        else:
            records.append((None, envelope(chunk), "t", 1, 0))
    records[3] = (None, b"{", "t", 1, 0)  # undecodable
    records.insert(9, records[8])  # redelivered: its events are duplicates
    wrong = good(customers_of(2, 1)[0], NOW - 3600)  # another partition's customer
    records.insert(20, (None, envelope([events[0], {"customer_id": "c1"}, wrong]), "t", 1, 0))
    records = [(k, v, s, p, off) for off, (k, v, s, p, _) in enumerate(records)]

    calls = []

    class Counting(Engine):
        def process_many(self, evs):
            calls.append(len(evs))
            return super().process_many(evs)

    reg_a, reg_b = CollectorRegistry(), CollectorRegistry()
    single = Processor(Engine(), WorkerMetrics(reg_a), clock=lambda: NOW, partitions=PARTITIONS)
    batched = Processor(Counting(), WorkerMetrics(reg_b), clock=lambda: NOW, partitions=PARTITIONS)
    a = None
    for k, v, s, p, off in records:
        a = single.handle(v, key=k, source=s, partition=p, offset=off, out=a)
    b = batched.handle_many(records)
    valid = len(b.positions) - sum(1 for *_, c in b.positions if c is None)
    assert calls == [valid]
    assert b.alerts and b.alerts == a.alerts
    assert b.dlq == a.dlq and len(b.dlq) == 3
    assert b.positions == a.positions and b.events == a.events
    got, want = samples(reg_b), samples(reg_a)
    assert want[("lookout_events_total", (("outcome", "duplicate"),))] == 8
    batch_only = "lookout_batch_"  # one batch vs one per message: these differ by design
    want = {k: v for k, v in want.items() if not k[0].startswith(batch_only)}
    # (sums of scores and lags: equal up to the order of the float additions)
    assert {k: v for k, v in got.items() if not k[0].startswith(batch_only)} == pytest.approx(want, rel=1e-12)
