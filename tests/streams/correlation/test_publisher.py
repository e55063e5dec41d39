"""The detection worker's side of the correlator: what it sends, where, and when."""
from __future__ import annotations

import asyncio
import json

from detectors.catalogue import Catalogue
from detectors.config import CorrelatorConfig
from detectors.onsets import Onset
from streams.correlation.customers import CustomerTable, decode_customer
from streams.correlation.messages import MAX_RECORD_BYTES
from streams.correlation.publisher import HISTORY_MARKS_EVERY_S, MARKS_EVERY_S, CorrelationPublisher
from streams.correlation.watermarks import SourceMarks
from streams.pipeline.codecs import partition_of
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
    # one batch record per onsets partition: each group's onset in the partition its key hashes to
    assert sorted(p for *_, p in onsets.sent) == [0, 1, 2]
    assert all(v["k"] == "batch" for _, v, _ in onsets.sent)
    groups = {(g, p) for _, v, p in onsets.sent for g, _ in v.get("onsets", [])}
    assert groups == {(g, partition_of(g, 3)) for g in ("origin_provider=p1", "plan=pro", "*")}
    assert all(o["customer_id"] == "a" and o["family"] == "origin:522"
               for _, v, _ in onsets.sent for _, o in v.get("onsets", []))
    # every partition learns both watermarks, after the onsets of the same record
    assert all(v["wm"] == [["d0", T0], ["d1", T0 - IV]] for _, v, _ in onsets.sent)
    [(key, record, partition)] = parents.sent  # the alert, then the watermarks
    assert (key, partition, record["alerts"], record["wm"]) == (
        b"parents", 0, [{"alert_id": "x", "customer_id": "a"}], [["d0", T0], ["d1", T0 - IV]])
    # the same interval again, later: no new watermark, nothing sent
    now[0] += MARKS_EVERY_S
    asyncio.run(pub.publish(Output(event_time={0: (T0, IV)})))
    assert len(parents.sent) == 1 and len(onsets.sent) == 3


def test_watermarks_ride_with_chunks_at_most_every_half_second_and_the_tick_sends_the_rest():
    now = [0.0]
    pub, onsets, parents = publisher(now)
    asyncio.run(pub.publish(Output(event_time={0: (T0, IV)})))
    assert [v["wm"] for _, v, _ in parents.sent] == [[["d0", T0]]]
    # a backlog: the next intervals' chunks a few milliseconds apart carry no watermark...
    for k in range(1, 4):
        now[0] += 0.01
        asyncio.run(pub.publish(Output(event_time={0: (T0 + k * IV, IV)}, alerts=[
            {"alert_id": f"x{k}", "customer_id": "a"}])))
    assert [len(v["alerts"]) for _, v, _ in parents.sent[1:]] == [1, 1, 1]
    assert all("wm" not in v for _, v, _ in parents.sent[1:]) and len(onsets.sent) == 3
    # ...the tick sends the latest, to every partition
    assert asyncio.run(pub.watermarks()) == 1
    assert parents.sent[-1][1] == {"k": "batch", "alerts": [], "wm": [["d0", T0 + 3 * IV]]}
    assert [v["wm"] for _, v, _ in onsets.sent[3:]] == [[["d0", T0 + 3 * IV]]] * 3
    # half a second after it, a chunk carries its watermark again
    now[0] += MARKS_EVERY_S
    asyncio.run(pub.publish(Output(event_time={0: (T0 + 4 * IV, IV)})))
    assert parents.sent[-1][1]["wm"] == [["d0", T0 + 4 * IV]]


def test_history_being_replayed_sends_its_watermarks_less_often_until_live_data_arrives():
    now = [T0 + 1000 * IV]  # the data is days old: a backlog being replayed
    pub, onsets, parents = publisher(now)
    asyncio.run(pub.publish(Output(event_time={0: (T0, IV)})))
    assert [v["wm"] for _, v, _ in parents.sent] == [[["d0", T0]]]
    # the next intervals, half a second apart: neither the chunks nor the tick send their watermarks...
    for k in range(1, 4):
        now[0] += MARKS_EVERY_S
        asyncio.run(pub.publish(Output(event_time={0: (T0 + k * IV, IV)})))
        assert asyncio.run(pub.watermarks()) == 0
    assert len(parents.sent) == 1 and len(onsets.sent) == 3
    # ...until HISTORY_MARKS_EVERY_S passed since the last: then the latest, to every partition
    now[0] = T0 + 1000 * IV + HISTORY_MARKS_EVERY_S
    assert asyncio.run(pub.watermarks()) == 1
    assert parents.sent[-1][1]["wm"] == [["d0", T0 + 3 * IV]]
    assert [v["wm"] for _, v, _ in onsets.sent[3:]] == [[["d0", T0 + 3 * IV]]] * 3
    # the replay reached the present: its watermarks ride with the chunks every half second again
    now[0] += MARKS_EVERY_S
    live = now[0] - IV
    asyncio.run(pub.publish(Output(event_time={1: (live, IV)})))
    assert parents.sent[-1][1]["wm"] == [["d1", live]]


def test_a_big_chunk_is_cut_into_records_kafka_takes_in_order_the_watermarks_last():
    now = [0.0]
    pub, _, parents = publisher(now)
    alerts = [{"alert_id": f"x{i}", "customer_id": "a", "pad": "p" * 1000} for i in range(1500)]
    asyncio.run(pub.publish(Output(alerts=alerts, event_time={0: (T0, IV)})))
    records = [v for _, v, _ in parents.sent]
    assert len(records) > 2
    assert all(len(json.dumps(v, separators=(",", ":"))) <= MAX_RECORD_BYTES for v in records)
    assert [a["alert_id"] for v in records for a in v["alerts"]] == [a["alert_id"] for a in alerts]
    assert ["wm" in v for v in records] == [False] * (len(records) - 1) + [True]


def test_a_caught_up_live_partition_closes_its_interval_after_the_grace():
    now = [T0 + IV + 2.0]  # the interval [T0, T0 + IV) ended 2 s ago
    pub, _, parents = publisher(now)
    asyncio.run(pub.publish(Output(event_time={0: (T0, IV)}), caught_up=lambda p: True))
    assert parents.sent[-1][1]["wm"] == [["d0", T0]]  # within the grace: the interval is not complete yet
    now[0] = T0 + IV + 6.0
    assert asyncio.run(pub.watermarks(lambda p: True)) == 1
    assert parents.sent[-1][1]["wm"] == [["d0", T0 + IV + 1.0]]  # wall clock minus grace
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
