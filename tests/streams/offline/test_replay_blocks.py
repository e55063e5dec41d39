"""Replay of a JSON-lines file a block at a time gives what reading it record by record gives:
the same alerts, dead letters (line, kind, reason, raw), counts and summary."""
from __future__ import annotations

import json
import random
import re

import pytest

from detectors.config import DetectorConfig
from detectors.synthetic import SimConfig, simulate
from streams.offline import JsonlSource, Source, run_replay
from streams.offline.simfiles import write_jsonl
from tests.hostile import TEMPLATES, _event


class RecordByRecord(Source):
    """The same file through :meth:`JsonlSource.records` only (the runner's per-record loop)."""

    def __init__(self, inner: JsonlSource):
        self.inner, self.name, self.total = inner, inner.name, inner.total

    def records(self, progress=None):
        return self.inner.records(progress)

    def describe(self):
        return self.inner.describe()


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("blocks")
    sim = simulate(SimConfig(customers=8, duration_s=2 * 86400, interval_s=300, seed=11, incidents=5,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    write_jsonl(sim.events(), d / "sim.jsonl")
    lines = (d / "sim.jsonl").read_bytes().split(b"\n")[:-1]
    rng = random.Random(3)
    for i in range(3 * len(TEMPLATES)):  # every hostile kind, three times, anywhere
        _, _, make = TEMPLATES[i % len(TEMPLATES)]
        lines.insert(rng.randrange(len(lines)), make(rng, _event(rng, f"cust-{rng.randint(1, 8):04d}")))
    ev = json.loads(lines[100])
    extra = [b"", b" ", b"   ", json.dumps(ev).encode() + b"\r",  # blanks, a line of spaces, CRLF
             json.dumps({"events": [ev, ev | {"requests": -1}]}).encode(),  # an envelope (a duplicate inside)
             lines[200], lines[201]]  # redelivered events
    for x in extra:
        lines.insert(rng.randrange(len(lines)), x)
    path = d / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines))  # the last line has no newline
    return path


def outputs(out):
    alerts = (out / "alerts.jsonl").read_bytes()
    dlq = [json.loads(x) for x in (out / "dlq.jsonl").read_bytes().splitlines()]
    for d in dlq:  # (the wall clock moves between the two runs)
        d.pop("received_at")
        d["reason"] = re.sub(r"is [0-9,]+ s ahead of the wall clock", "is N s ahead", d["reason"])
    return alerts, (out / "baseline_alerts.jsonl").read_bytes(), dlq


@pytest.mark.parametrize("chunk", [97, 4096])
def test_blocks_and_records_give_the_same_replay(hostile_file, tmp_path, chunk):
    runs = []
    for name, src in (("blocks", JsonlSource(hostile_file)),
                      ("records", RecordByRecord(JsonlSource(hostile_file)))):
        res = run_replay(src, DetectorConfig(), baseline=DetectorConfig(), out_dir=tmp_path / name,
                         chunk_events=chunk, trace=["cust-0003"])
        eng = res.engine
        runs.append((res.records, res.invalid, res.source, eng.outcomes, eng.sizes, eng.intervals, eng.t_min,
                     eng.t_max, [a["alert_id"] for a in res.runs[0].alerts], outputs(tmp_path / name),
                     {c: list(t.ts) for c, t in eng.traces.items()}))
    assert runs[0] == runs[1]
    records, invalid, source, outcomes, *_ = runs[0]
    # (the empty template value is a blank line: no record)
    assert invalid == 3 * (len(TEMPLATES) - 1) + 2 and source["blank_lines"] == 2 + 3
    assert outcomes["duplicate"] >= 3 and runs[0][8]  # redeliveries seen, alerts fired
