"""The correlator's Kafka stages without Kafka: messages in, messages out, state, redeliveries."""
from __future__ import annotations

import json
from zlib import crc32

import pytest

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from detectors.correlator import Correlator, groups_of
from detectors.events import format_ts
from detectors.onsets import Onset
from streams.correlation.messages import (
    decode,
    encode_alert,
    encode_batches,
    encode_onset,
    encode_watermark,
    onset_item,
)
from streams.correlation.stages import GroupPartition, ParentsPartition, detector_source, group_source
from streams.correlation.watermarks import SourceMarks

IV = 300
T0 = 1_800_000_000.0
CAT = Catalogue({f"c{i:03d}": {"origin_provider": "p1" if i < 40 else "p2", "plan": "pro"}
                 for i in range(200)})
CFG = CorrelatorConfig()
PARTS = 3


def alert(cid: str, started: float, at: float, status: str = "firing", n: int = 1) -> dict:
    return {"alert_id": f"a-{cid}", "customer_id": cid, "status": status, "severity": "warning",
            "notification": n, "started_at": format_ts(started), "event_ts": format_ts(at),
            "resolved_at": format_ts(at) if status == "resolved" else None, "interval_s": IV}


def outage():
    """25 of p1's customers: onsets over two intervals, alerts one interval later, resolved later."""
    steps: dict[float, tuple[list[Onset], list[dict]]] = {}
    for i in range(25):
        cid, t = f"c{i:03d}", T0 + (10 + i % 2) * IV
        steps.setdefault(t, ([], []))[0].append(Onset(cid, t, IV, "origin:522"))
        steps.setdefault(t + IV, ([], []))[1].append(alert(cid, t, t + IV))
        steps.setdefault(t + 8 * IV, ([], []))[1].append(alert(cid, t, t + 8 * IV, "resolved", 2))
    return steps


class Pipe:
    """Two detector partitions, three stage-one partitions and stage two, wired as the topics are."""

    def __init__(self, now: list[float]):
        clock = lambda: now[0]  # noqa: E731
        self.groups = [GroupPartition(q, CFG, lambda g: CAT.size_of(g, CFG.group_by), idle_s=60, clock=clock)
                       for q in range(PARTS)]
        self.parents = ParentsPartition(CFG, CAT, PARTS, idle_s=60, clock=clock)
        self.onsets: list[list[tuple[int, bytes]]] = [[] for _ in range(PARTS)]
        self.parents_in: list[tuple[int, bytes]] = []
        self.incidents: list[dict] = []
        self.routed: list[dict] = []

    def send_onsets(self, onsets, alerts, wm: float, batched: bool = True) -> None:
        """As the publisher sends them: batch records, or (``batched=False``) one record each, as
        workers did before batches (still read: a fleet upgrades one worker at a time)."""
        if batched:
            marks = [(detector_source(p), wm) for p in range(2)]
            items: dict[int, list[bytes]] = {}
            for o in onsets:
                for g in groups_of(CAT, CFG, o.customer_id):
                    items.setdefault(crc32(g.encode()) % PARTS, []).append(onset_item(g, o))
            for q in range(PARTS):
                for value in encode_batches(items.get(q, []), marks):
                    self.onsets[q].append((len(self.onsets[q]), value))
            for value in encode_batches([json.dumps(a).encode() for a in alerts], marks, field="alerts"):
                self.parents_in.append((len(self.parents_in), value))
            return
        for o in onsets:
            for g in groups_of(CAT, CFG, o.customer_id):
                q = crc32(g.encode()) % PARTS
                self.onsets[q].append((len(self.onsets[q]), encode_onset(g, o)))
        for a in alerts:
            self.parents_in.append((len(self.parents_in), encode_alert(a)))
        for p in range(2):
            for q in range(PARTS):
                self.onsets[q].append((len(self.onsets[q]), encode_watermark(detector_source(p), wm)))
            self.parents_in.append((len(self.parents_in), encode_watermark(detector_source(p), wm)))

    def run(self, start: dict[int, int] | None = None) -> None:
        """Every stage over its whole input (stages skip what they processed before)."""
        for q, gp in enumerate(self.groups):
            out = gp.handle(self.onsets[q])
            assert out.dead == []
            for m in out.messages:
                self.parents_in.append((len(self.parents_in), m))
        out = self.parents.handle(self.parents_in)
        assert out.dead == []
        self.incidents += out.incidents
        self.routed += out.alerts


@pytest.mark.parametrize("fmt", ["batch", "single", "upgrade"])
def test_the_kafka_stages_give_the_in_process_result_and_survive_a_restart(fmt):
    steps = outage()
    want = Correlator(CFG, CAT)
    inc, routed = [], []
    now = [0.0]
    pipe = Pipe(now)
    for k in range(40):
        t = T0 + k * IV
        ons, als = steps.get(t, ([], []))
        step = want.add_alerts(als)
        want.add_onsets(ons)
        step.extend(want.advance(t))
        inc += step.incidents
        routed += step.alerts
        pipe.send_onsets(ons, als, t, batched=fmt == "batch" or (fmt == "upgrade" and k >= 11))
        pipe.run()
        if k == 20:  # a restart of every stage: state through JSON, everything redelivered
            old = pipe
            pipe = Pipe(now)
            for q, gp in enumerate(old.groups):
                pipe.groups[q].load_state(json.loads(json.dumps(gp.to_state())))
            pipe.parents.load_state(json.loads(json.dumps(old.parents.to_state())))
            pipe.onsets, pipe.parents_in = old.onsets, old.parents_in
            pipe.incidents, pipe.routed = old.incidents, old.routed
            pipe.run()  # the redelivery adds nothing
    assert inc and pipe.incidents == inc
    assert sorted(map(json.dumps, pipe.routed)) == sorted(map(json.dumps, routed))
    assert {a["parent_id"] for a in pipe.routed} == {inc[0]["parent_id"]}


def test_without_a_catalogue_alerts_pass_at_once():
    pp = ParentsPartition(CFG, Catalogue(), PARTS, idle_s=60, clock=lambda: 0.0)
    out = pp.handle([(0, encode_alert(alert("c001", T0, T0)))])
    assert [a["parent_id"] for a in out.alerts] == [None] and out.changed


def test_messages_that_do_not_belong_are_dead_letters_not_crashes():
    gp = GroupPartition(0, CFG, lambda g: 10, idle_s=60, clock=lambda: 0.0)
    out = gp.handle([(0, b"not json"), (1, b'{"k": "onset", "group": "x"}'),
                     (2, encode_alert(alert("c", T0, T0)))])
    assert [why.split(":")[0] for _, why in out.dead] == [
        "undecodable", "onset message needs group and onset",
        "a alert message does not belong on the onsets topic"]
    assert gp.offset == 2  # (and never seen again)
    [alerts] = encode_batches([json.dumps(alert("c", T0, T0)).encode()], [], field="alerts")
    out = gp.handle([(3, alerts), (4, b'{"k": "batch", "onsets": [["g", {"customer_id": "c"}]]}'),
                     (5, b'{"k": "batch", "wm": [["d0"]]}')])
    assert [why.split(":")[0] for _, why in out.dead] == [
        "a batch of alerts does not belong on the onsets topic", "undecodable",
        "batch wm must be a list of [src, numeric ts]"]
    pp = ParentsPartition(CFG, CAT, PARTS, idle_s=60, clock=lambda: 0.0)
    [onsets] = encode_batches([onset_item("*", Onset("c", T0, IV, "latency"))], [])
    assert pp.handle([(0, onsets)]).dead == [(None, "a batch of onsets does not belong on the parents topic")]
    assert decode(b'{"k": "wm", "src": "d0", "ts": "soon"}') == (None, "watermark needs src and a numeric ts")


def test_an_unusable_state_starts_afresh_with_a_reason():
    gp = GroupPartition(1, CFG, lambda g: 10, idle_s=60, clock=lambda: 0.0)
    for bad in ({"version": 0}, {"version": 1, "offset": 5, "stage": {"clock": []}}):
        try:
            gp.load_state(bad)
        except ValueError as exc:
            assert "state" in str(exc)
        else:
            raise AssertionError("accepted an unusable state")


def test_stage_two_waits_for_every_stage_one_partition():
    pp = ParentsPartition(CFG, CAT, 2, idle_s=60, clock=lambda: 0.0)
    marks: SourceMarks = pp.marks
    marks.report(group_source(0), T0, 0.0)
    assert marks.watermark(0.0) is None  # g1 never reported
    marks.report(group_source(1), T0 - IV, 0.0)
    assert marks.watermark(10_000.0) == T0 - IV  # a required source is waited for, however long
