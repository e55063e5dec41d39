"""The Alertmanager sink's open alerts when partitions change (no broker: topics in memory).

The worker lays its store out like the topics it reads (:class:`streams.worker.sinks.OpenLayout`),
and ``lookout topics repartition`` moves each moved customer's record to its new partition with
the alerts the sinks had not acknowledged applied (:mod:`streams.worker.open_alerts`). The same
on a real broker, against Alertmanager: tests/integration/test_repartition_sinks.py.
"""
from __future__ import annotations

import asyncio
import json

from streams.pipeline.codecs import partition_of
from streams.settings import Settings
from streams.state.reader import StateReader
from streams.worker.open_alerts import move_open_alerts
from streams.worker.sinks import OpenLayout

OLD, NEW = 8, 12
#: the sink reads ``alerts``
S = Settings(app_id="lk", alerts_topic="alerts", input_topic="in", correlator=False,
             alertmanager_url="http://am:9093")
STORE = S.alertmanager_open_topic_name


class Topics:
    """Topics as lists of (key, value) per partition, a consumer group's commits; what
    :class:`~streams.state.reader.StateReader` and a producer's ``send`` do with them."""

    def __init__(self, **counts: int):
        self.logs = {t: [[] for _ in range(n)] for t, n in counts.items()}
        self.committed: dict[tuple[str, int], int] = {}

    async def partition_count(self, topic):
        return len(self.logs[topic]) if topic in self.logs else None

    async def ensure_topics(self, wanted):
        for t, (n, _) in wanted.items():
            self.logs.setdefault(t, [[] for _ in range(n)])
        return {t: len(self.logs[t]) for t in wanted}

    async def grow(self, topic, n):
        assert n > len(self.logs[topic])
        self.logs[topic] += [[] for _ in range(n - len(self.logs[topic]))]

    ensure_partitions = StateReader.ensure_partitions  # (on the two calls above)

    async def read_partition(self, topic, p, start=None):
        log = self.logs[topic][p]
        return log[start or 0:], len(log)

    async def committed_offset(self, group, topic, p):
        assert group == S.app_id
        return self.committed.get((topic, p))

    async def send(self, topic, key=None, value=None, partition=None):
        self.logs[topic][partition].append((key, value))

    def latest(self, topic) -> dict[bytes, tuple[int, bytes | None]]:
        """key -> (partition, value) of its newest record, where it is not a tombstone."""
        out = {}
        for p, log in enumerate(self.logs[topic]):
            for k, v in log:
                if v is None:
                    out.pop((k, p), None)
                else:
                    out[(k, p)] = v
        return {k: (p, v) for (k, p), v in out.items()}


def customer(moved: bool, start: int = 0) -> str:
    """A customer id whose partition under NEW differs from (or equals) the one under OLD."""
    i = start
    while (partition_of(f"c{i}", OLD) != partition_of(f"c{i}", NEW)) != moved:
        i += 1
    return f"c{i}"


def alert(cid: str, aid: str, status: str = "firing", **kw) -> dict:
    return {"customer_id": cid, "alert_id": aid, "status": status, **kw}


def persist(topics: Topics, cid: str, alerts: dict | None, source: str = "alerts", partitions: int = OLD):
    """What the sink's OpenStore writes under the old layout."""
    value = json.dumps(alerts).encode() if alerts else None
    topics.logs[STORE][partition_of(cid, partitions)].append((f"{source}|{cid}".encode(), value))


def publish(topics: Topics, a: dict, partitions: int = OLD) -> None:
    """An alert the old worker wrote to its customer's partition of ``alerts``."""
    topics.logs["alerts"][partition_of(a["customer_id"], partitions)].append(
        (a["customer_id"].encode(), json.dumps(a).encode()))


def test_a_moved_customer_s_open_alerts_follow_it_with_what_the_sinks_had_not_read():
    t = Topics(alerts=NEW, **{STORE: OLD})
    moved, stayed, resolving, late = customer(True), customer(False), customer(True, 100), customer(True, 200)
    persist(t, moved, {"a1": alert(moved, "a1")})
    persist(t, stayed, {"b1": alert(stayed, "b1")})
    persist(t, resolving, {"r1": alert(resolving, "r1")})
    persist(t, "cx", {"p": alert("cx", "p")}, source="routed", partitions=4)  # the correlator's: stays
    for p in range(OLD):  # what the sinks read and committed before the workers stopped
        t.committed[("alerts", p)] = len(t.logs["alerts"][p])
    publish(t, alert(resolving, "r1", "resolved"))  # not read by the sink before the stop
    publish(t, alert(late, "l1"))
    publish(t, alert(stayed, "b1", "resolved"))  # the sink reads this one as usual, in its partition

    written = asyncio.run(move_open_alerts(t, t.send, S, OLD, NEW))

    assert len(t.logs[STORE]) == NEW
    now = {k.decode(): (p, json.loads(v)) for k, (p, v) in t.latest(STORE).items()}
    assert now[f"alerts|{moved}"] == (partition_of(moved, NEW), {"a1": alert(moved, "a1")})
    assert now[f"alerts|{late}"] == (partition_of(late, NEW), {"l1": alert(late, "l1")})
    assert f"alerts|{resolving}" not in now  # resolved: nothing left to re-send anywhere
    assert now[f"alerts|{stayed}"][0] == partition_of(stayed, OLD)  # untouched
    assert now["routed|cx"][0] == partition_of("cx", 4)
    assert written == 3

    # an interrupted run is run again: the same records
    before = t.latest(STORE)
    asyncio.run(move_open_alerts(t, t.send, S, OLD, NEW))
    assert t.latest(STORE) == before


def test_alerts_no_sink_had_read_yet_are_open_in_the_new_partition():
    # the workers stopped seconds after they started: no record written (no store topic yet), no
    # offset committed
    t = Topics(alerts=NEW)
    c = customer(True)
    publish(t, alert(c, "a1"))
    publish(t, alert(c, "a1", severity="critical", notification=2))
    publish(t, alert(customer(False), "b1"))  # read by the sink in its own partition, as usual
    assert asyncio.run(move_open_alerts(t, t.send, S, OLD, NEW)) == 1
    ((key, (p, value)),) = t.latest(STORE).items()
    assert (key, p) == (f"alerts|{c}".encode(), partition_of(c, NEW))
    assert json.loads(value) == {"a1": alert(c, "a1", severity="critical", notification=2)}


def test_nothing_to_move_where_the_sink_reads_the_correlator_s_topics():
    t = Topics(alerts=NEW, **{STORE: OLD})
    persist(t, "cx", {"p": alert("cx", "p")}, source="routed", partitions=OLD)
    publish(t, alert(customer(True), "x"))  # on ``alerts``, which no sink of this group reads
    assert asyncio.run(move_open_alerts(t, t.send, S.replace(correlator=True), OLD, NEW)) == 0
    assert t.latest(STORE) == {b"routed|cx": (partition_of("cx", OLD), json.dumps({"p": alert("cx", "p")})
                                              .encode())}


def test_the_worker_grows_the_store_to_the_topics_it_follows_and_knows_strays():
    # made with LOOKOUT_PARTITIONS=4 before the repartition (or with a smaller setting)
    t = Topics(**{"in": NEW, "alerts": NEW, "routed": 4, STORE: 4})
    layout = OpenLayout(t, STORE, {"alerts": "in", "routed": "routed"}, fallback=4)
    asyncio.run(layout.ensure(10))
    assert len(t.logs[STORE]) == NEW and layout.store_partitions == NEW
    c = customer(True)
    assert not layout.stray("alerts", partition_of(c, NEW), c.encode())
    assert layout.stray("alerts", partition_of(c, OLD), c.encode())  # written before the repartition
    assert not layout.stray("routed", partition_of(c, 4), c.encode())
    assert not layout.stray("alerts", 3, None)
