"""A customer's past for a rebuild, read through replay's source and decoder, and the checkpoints
the worker writes for it."""
from __future__ import annotations

import asyncio
import json

from detectors.engine import Engine
from detectors.events import parse_event
from streams.offline.relearn import checkpoint_before, customer_events
from streams.offline.sources import Source
from streams.state.book import PartitionBook
from streams.state.history import HistoryWriter


class Records(Source):
    def __init__(self, records):
        self._records = records

    def records(self, progress=None):
        return iter(self._records)


def ev(cid, ts, requests=100):
    return {"customer_id": cid, "ts": ts, "interval_s": 300, "requests": requests, "status_4xx": 0,
            "status_5xx": 0}


def test_customer_events_reads_one_customer_single_and_in_envelopes_and_skips_bad_messages():
    recs = [
        (json.dumps(ev("a", 300)).encode(), b"a", 0, 0),
        (json.dumps(ev("b", 300)).encode(), b"b", 0, 1),  # another customer: skipped unread
        (b"{not json", b"a", 0, 2),  # a dead letter: skipped
        (json.dumps({"events": [ev("a", 600), ev("b", 600), ev("a", 900)]}).encode(), None, 0, 3),
        (json.dumps(ev("a", 900, requests=7)).encode(), b"a", 0, 4),  # the same time: the last counts
        (json.dumps(ev("a", 1200)).encode(), b"a", 0, 5),
    ]
    got = customer_events(Records(recs), "a", after=300, before=1200)
    assert [(e.ts, e.requests) for e in got] == [(600.0, 100), (900.0, 7)]


def test_checkpoint_before_takes_the_newest_record_older_than_the_time():
    eng = Engine()
    blobs = []
    for i in range(6):
        eng.process_many([parse_event(ev("a", 300 * i))])
        blobs.append(eng.dump_customer("a"))
    recs = [(b, b"a", 0, k) for k, b in enumerate(blobs)]
    recs += [(b"garbage", b"a", 0, 9), (blobs[5], b"b", 0, 10)]
    assert checkpoint_before(Records(recs), "a", before=1000.0, engine=eng) == blobs[3]  # last_ts 900
    assert checkpoint_before(Records(recs), "a", before=0.0, engine=eng) is None


class Sink:
    def __init__(self):
        self.sent = []

    async def send(self, key, value, partition, timestamp_ms=None):
        self.sent.append((key, partition, timestamp_ms))

    async def flush(self):
        pass


def test_the_history_writer_checkpoints_every_owned_customer_at_its_event_time():
    eng = Engine()
    eng.process_many([parse_event(ev(c, 600)) for c in ("a", "b", "c")])
    book = PartitionBook()
    book.assign(0, committable=None)
    book.assign(1, committable=None)
    for c, p in (("a", 0), ("b", 1), ("c", 0)):
        book.owner[c] = p
    sink = Sink()
    n = asyncio.run(HistoryWriter(eng, book, asyncio.Lock(), sink).write())
    assert n == 3 and sorted(sink.sent) == [(b"a", 0, 600000), (b"b", 1, 600000), (b"c", 0, 600000)]
