"""StateReader without a broker: a read that makes no progress ends, it does not hang a rebalance."""
from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from streams.state.reader import StateReader


class _StuckConsumer:
    """A consumer whose fetches return nothing and whose position never moves (a broker that
    stopped answering fetches, or offsets between ``lo`` and the end it cannot serve)."""

    def __init__(self, end: int, records=()):
        self.end, self.records, self.pos = end, list(records), 0

    async def start(self):
        pass

    async def stop(self):
        pass

    def assign(self, tps):
        pass

    async def end_offsets(self, tps):
        return {tp: self.end for tp in tps}

    async def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def seek(self, tp, offset):
        self.pos = offset

    async def getmany(self, tp, timeout_ms):
        got = [m for m in self.records if m.offset >= self.pos]
        if got:
            self.pos = got[-1].offset + 1
        return {tp: got}

    async def position(self, tp):
        return self.pos


def _reader(consumer) -> StateReader:
    ticks = itertools.count()
    reader = StateReader("127.0.0.1:1", clock=lambda: float(next(ticks)), timeout_s=5.0)
    reader._consumer = lambda: consumer
    return reader


def test_reading_the_last_marker_backwards_gives_up_when_the_fetch_makes_no_progress():
    # the end says 40 records, the fetch serves none: waiting for ever would hold every
    # partition of the worker inside the rebalance (still_own reads markers there)
    reader = _reader(_StuckConsumer(end=40))
    with pytest.raises(TimeoutError, match="stalled at offset"):
        asyncio.run(reader.last_values("state", b"m", [0]))


def test_the_last_marker_is_found_backwards_when_the_fetches_progress():
    recs = [SimpleNamespace(offset=i, key=b"m" if i % 10 == 0 else b"c", value=str(i).encode())
            for i in range(40)]
    reader = _reader(_StuckConsumer(end=40, records=recs))
    assert asyncio.run(reader.last_values("state", b"m", [0])) == {0: b"30"}
