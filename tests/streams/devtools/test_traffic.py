"""``simulate_traffic`` (what ``lookout simulate`` runs) and the envelope batching, called without click."""
import json

import pytest

from detectors.events import parse_event, parse_ts
from detectors.synthetic import SimConfig, simulate
from streams.devtools import traffic
from streams.devtools.producer import envelopes
from streams.devtools.traffic import TrafficError, TrafficOptions, simulate_traffic
from streams.offline.simfiles import read_labels
from streams.pipeline.codecs import partition_of


def test_events_and_labels_go_to_files(tmp_path):
    out = tmp_path / "deep" / "sim.jsonl"
    res = simulate_traffic(TrafficOptions(customers=3, duration_s=86400, interval_s=600, incidents=2, seed=5,
                                          out=str(out)))
    lines = out.read_text().splitlines()
    assert len(lines) == res.sim.n_events == 3 * 144
    assert [json.loads(line) for line in lines] == list(res.sim.events())
    parse_event(json.loads(lines[0]))
    assert res.labels_path == str(tmp_path / "deep" / "sim.labels.jsonl")
    assert read_labels(res.labels_path) == res.sim.incidents
    assert not res.interrupted and res.sent == res.sim.n_events
    assert res.to_json()["events"] == 3 * 144 and res.to_json()["labels"] == res.labels_path
    assert "432 events (3 customers x 144 intervals of 600 s" in res.text()


@pytest.mark.parametrize("opts, message", [
    (dict(days=1, duration_s=86400, out="x"), "either --days or --duration"),
    (dict(duration_s=60, out="x"), "at least one interval"),
    (dict(start="2026-01-05T00:00:00Z", end_now=True, out="x"), "either --start or --end-now"),
    (dict(), "exactly one of --out FILE or --bootstrap"),
    (dict(out="x", bootstrap="h:1"), "exactly one of --out FILE or --bootstrap"),
    (dict(out="x", batch=10), "--batch needs --bootstrap"),
    (dict(out="x", start="monday"), "--start: "),
    (dict(out="x", kinds="meteor"), "unknown incident kind(s) meteor"),
    (dict(out="x", min_size=10, max_size=5), "--min-size must not exceed --max-size"),
])
def test_options_that_cannot_work_are_one_line_errors(opts, message, tmp_path):
    with pytest.raises(TrafficError) as err:
        simulate_traffic(TrafficOptions(**opts))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_end_now_ends_at_the_interval_the_clock_is_in(tmp_path):
    now = parse_ts("2026-03-02T10:07:30Z")
    opts = TrafficOptions(customers=1, duration_s=7200, end_now=True, out=str(tmp_path / "e.jsonl"))
    res = simulate_traffic(opts, now=lambda: now)
    assert res.sim.end == parse_ts("2026-03-02T10:05:00Z")
    assert res.sim.start == res.sim.end - 7200


def test_ctrl_c_while_streaming_is_reported_with_what_was_sent(tmp_path, monkeypatch):
    def interrupted_writer(events, out):
        for n, _ in enumerate(events, 1):
            if n == 50:
                raise KeyboardInterrupt

    monkeypatch.setattr(traffic, "write_jsonl", interrupted_writer)
    res = simulate_traffic(TrafficOptions(customers=10, duration_s=86400, out=str(tmp_path / "e.jsonl"),
                                          incidents=1))
    assert res.interrupted and 0 < res.sent < res.sim.n_events
    assert res.interruption().startswith(f"interrupted after {res.sent:,} of 2,880 events")
    assert len(read_labels(res.labels_path)) == 1  # the labels were written before the stream


def test_envelopes_hold_one_partitions_events_flushed_every_interval():
    sim = simulate(SimConfig(customers=40, duration_s=3 * 3600, interval_s=300, seed=3))
    events = list(sim.events())
    got = list(envelopes(events, partitions=4, size=7))
    assert [e for _, batch in got for e in batch] != []
    assert sorted(json.dumps(e, sort_keys=True) for _, b in got for e in b) == sorted(
        json.dumps(e, sort_keys=True) for e in events)
    for p, batch in got:
        assert 1 <= len(batch) <= 7
        assert {partition_of(e["customer_id"], 4) for e in batch} == {p}
        assert len({e["ts"] for e in batch}) == 1  # an interval's events never wait for the next one
