"""The detection worker's side of the correlator: what it sends, where, and when."""
from __future__ import annotations

import asyncio
import json

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from detectors.onsets import Onset
from streams.correlation.customers import CustomerTable, decode_customer
from streams.correlation.publisher import CorrelationPublisher
from streams.correlation.watermarks import SourceMarks
from streams.pipeline.processor import Output

IV = 300
T0 = 1_800_000_000.0


class Topic:
    def __init__(self):
        self.sent: list[tuple[bytes, dict, int | None]] = []

    async def send(self, key=None, value=None, partition=None):
        self.sent.append((key, json.loads(value), partition))


def publisher(now: list[float]):
    onsets, parents = Topic(), Topic()
    cat = Catalogue({"a": {"origin_provider": "p1", "plan": "pro"}})
    pub = CorrelationPublisher(onsets_topic=onsets, parents_topic=parents, onset_partitions=3, catalogue=cat,
                               config=CorrelatorConfig(), grace_s=5.0, clock=lambda: now[0])
    return pub, onsets, parents


def test_onsets_go_once_per_group_and_alerts_and_watermarks_follow():
    now = [0.0]
    pub, onsets, parents = publisher(now)
    out = Output(onsets=[Onset("a", T0, IV, "origin:522")], alerts=[{"alert_id": "x", "customer_id": "a"}],
                 event_time={0: (T0, IV), 1: (T0 - IV, IV)})
    asyncio.run(pub.publish(out))
    keys = [k for k, v, _ in onsets.sent if v["k"] == "onset"]
    assert keys == [b"origin_provider=p1", b"plan=pro", b"*"]
    wms = [(v["src"], v["ts"], p) for _, v, p in onsets.sent if v["k"] == "wm"]
    assert wms == [("d0", T0, 0), ("d0", T0, 1), ("d0", T0, 2), ("d1", T0 - IV, 0), ("d1", T0 - IV, 1),
                   ("d1", T0 - IV, 2)]
    kinds = [v["k"] for _, v, p in parents.sent]
    assert kinds == ["alert", "wm", "wm"] and all(p == 0 for *_, p in parents.sent)  # the alert first
    # the same interval again: no new watermark
    asyncio.run(pub.publish(Output(event_time={0: (T0, IV)})))
    assert len(parents.sent) == 3


def test_a_caught_up_live_partition_closes_its_interval_after_the_grace():
    now = [T0 + IV + 2.0]  # the interval [T0, T0 + IV) ended 2 s ago
    pub, _, parents = publisher(now)
    asyncio.run(pub.publish(Output(event_time={0: (T0, IV)}), caught_up=lambda p: True))
    assert parents.sent[-1][1]["ts"] == T0  # within the grace: the interval is not complete yet
    now[0] = T0 + IV + 6.0
    assert asyncio.run(pub.watermarks(lambda p: True)) == 1
    assert parents.sent[-1][1]["ts"] == T0 + IV + 1.0  # wall clock minus grace
    assert pub.watermark(0, caught_up=False) == T0  # lagging: only its events count
    now[0] = T0 + 10 * IV  # history, long over: the wall clock says nothing about it
    assert pub.watermark(0, caught_up=True) == T0


def test_idle_sources_are_not_waited_for_but_required_ones_are():
    marks = SourceMarks(idle_s=30, required=["g0"])
    marks.report("d0", 100.0, now=0.0)
    assert marks.watermark(0.0) is None  # g0 has not reported
    marks.report("g0", 500.0, now=0.0)
    marks.report("d1", 900.0, now=0.0)
    assert marks.watermark(0.0) == 100.0
    marks.report("d1", 1200.0, now=40.0)
    marks.report("g0", 1200.0, now=40.0)
    assert marks.watermark(40.0) == 1200.0  # d0 silent for 40 s while others moved on
    marks.report("d0", 1000.0, now=41.0)
    assert marks.watermark(41.0) == 1000.0  # it spoke again: waited for again


def test_customer_records_are_validated_and_bad_ones_parked():
    got = decode_customer(b"acme", b'{"plan": "pro", "asn": 64512}')
    assert got == ("acme", {"plan": "pro", "asn": "64512"})
    parked = []

    async def on_bad(key, value, reason):
        parked.append(reason)

    table = CustomerTable("customers", "unused:1", on_bad=on_bad)

    async def feed():
        await table.apply(b"acme", b'{"plan": "pro"}')
        await table.apply(b"bad id!", b"{}")
        await table.apply(b"beta", b"[1, 2]")
        await table.apply(b"gamma", b"not json")
        await table.apply(b"acme", None)  # tombstone

    asyncio.run(feed())
    assert len(table.catalogue) == 0 and table.bad == 3
    assert [r.split(":")[0] for r in parked] == ["not a customer record"] * 3
    assert "customer id" in parked[0] and "JSON object" in parked[1] and "not JSON" in parked[2]
