"""The repartition drain's alerts reach the sinks whichever topic the sinks read (no broker)."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from streams.correlation.messages import decode
from streams.correlation.publisher import PARENTS_KEY
from streams.pipeline.codecs import partition_of
from streams.pipeline.processor import Output
from streams.settings import Settings
from streams.state.book import alert_key
from streams.worker.repartition import Report, _send


class Producer:
    def __init__(self):
        self.sent = []

    async def send(self, topic, key=None, value=None, partition=None):
        self.sent.append((topic, key, value, partition))


def _alert(cid: str, n: int, status: str = "firing") -> dict:
    return {"alert_id": f"{cid}-a", "customer_id": cid, "status": status, "notification": n,
            "event_ts": "2026-12-01T00:00:00Z", "severity": "warning", "signal": "error_5xx"}


@pytest.mark.parametrize("correlator", [True, False], ids=["correlator-on", "correlator-off"])
def test_drained_alerts_go_where_the_sinks_read_them_in_order(correlator):
    s = Settings(correlator=correlator)
    kafka = SimpleNamespace(producer=Producer())
    out = Output(alerts=[_alert("c1", 1), _alert("c2", 1), _alert("c1", 2, "resolved")])
    already = {alert_key(out.alerts[1])}  # on the alerts topic since the marker: not again
    report = Report(old=8, new=12)
    asyncio.run(_send(kafka, s, out, 12, already, report))

    on_alerts = [(json.loads(v), p) for t, _, v, p in kafka.producer.sent if t == s.alerts_topic]
    assert [(a["customer_id"], a["status"]) for a, _ in on_alerts] == [("c1", "firing"), ("c1", "resolved")]
    assert all(p == partition_of("c1", 12) for _, p in on_alerts)
    to_stage_two = [(k, v, p) for t, k, v, p in kafka.producer.sent if t == s.parents_topic_name]
    if not correlator:
        assert to_stage_two == []
        return
    # the sinks read the correlator's routed alerts: the same notifications go to its stage two,
    # as a worker's publisher sends them (one partition, in order)
    assert all(k == PARENTS_KEY and p == 0 for k, _, p in to_stage_two)
    kinds, bodies = zip(*(decode(v) for _, v, _ in to_stage_two))
    assert set(kinds) == {"batch"}
    assert [a for b in bodies for a in b.alerts] == [a for a, _ in on_alerts]
    assert report.alerts == 2 and report.suppressed == 1
