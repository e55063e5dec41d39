"""The traffic simulator: determinism, contract, realism, incident labels, files and CLI."""
from __future__ import annotations

import gzip
import inspect
import json
import math
import time
from collections import defaultdict

import pytest

from detectors.events import parse_event, parse_ts
from detectors.synthetic import (
    ALL_KINDS,
    DEFAULT_START,
    INCIDENT_KINDS,
    Incident,
    SimConfig,
    simulate,
    warmup_seconds,
)
from streams.offline.simfiles import read_labels, write_jsonl, write_labels

DAY = 86400


def small(**kw) -> SimConfig:
    base = dict(customers=6, duration_s=DAY, interval_s=300, seed=11)
    base.update(kw)
    return SimConfig(**base)


# ------------------------------------------------------------------ determinism and contract


def test_same_seed_same_events_and_labels():
    a, b = simulate(small(incidents=3)), simulate(small(incidents=3))
    assert list(a.events()) == list(b.events())
    assert a.incidents == b.incidents
    assert list(a.events()) == list(a.events())  # events() can be replayed


def test_different_seed_different_events():
    a = list(simulate(small(seed=1)).events())
    b = list(simulate(small(seed=2)).events())
    assert len(a) == len(b)
    assert a != b
    assert [e["requests"] for e in a] != [e["requests"] for e in b]


def test_a_customer_does_not_depend_on_how_many_others_are_simulated():
    few = [e for e in simulate(small(customers=2)).events()]
    many = [
        e for e in simulate(small(customers=5)).events() if e["customer_id"] in ("cust-0001", "cust-0002")
    ]
    assert few == many


def test_every_event_passes_the_contract_including_all_incident_kinds():
    sim = simulate(SimConfig(customers=14, duration_s=3 * DAY, interval_s=600, seed=5,
                             incidents=14, kinds=ALL_KINDS, tiny_fraction=0.3))
    assert set(sim.incidents_by_kind()) == set(ALL_KINDS)
    n = 0
    for ev in sim.events():
        e = parse_event(ev)
        assert e.interval_s == 600
        assert e.origin_errors_total <= e.status_5xx
        assert e.latency_p50_ms is None or e.latency_p99_ms >= e.latency_p50_ms
        n += 1
    assert n == sim.n_events == 14 * 3 * 144


def test_events_are_in_timestamp_order_all_customers_per_interval():
    sim = simulate(small(customers=4, duration_s=6 * 3600))
    ids = [p.customer_id for p in sim.customers]
    evs = list(sim.events())
    ts = [parse_ts(e["ts"]) for e in evs]
    assert ts == sorted(ts)
    assert ts[0] == DEFAULT_START and ts[-1] == sim.end - 300
    for i in range(0, len(evs), 4):
        assert [e["customer_id"] for e in evs[i:i + 4]] == ids
        assert len({e["ts"] for e in evs[i:i + 4]}) == 1


def test_events_are_generated_lazily():
    sim = simulate(SimConfig(customers=50, duration_s=365 * DAY, interval_s=60, seed=1))
    assert sim.n_events > 25_000_000
    gen = sim.events()
    assert inspect.isgenerator(gen)
    t0 = time.monotonic()
    first = [next(gen) for _ in range(120)]
    assert time.monotonic() - t0 < 2.0
    assert first[-1]["ts"] == "2026-01-05T00:02:00Z"


def test_generation_speed_is_reasonable():
    sim = simulate(SimConfig(customers=100, duration_s=2 * DAY, seed=3))
    t0 = time.monotonic()
    n = sum(1 for _ in sim.events())
    rate = n / (time.monotonic() - t0)
    assert n == 100 * 576
    assert rate > 20_000, f"only {rate:,.0f} events/s"  # ~150k/s on a laptop; loose for slow CI


def test_config_is_validated():
    with pytest.raises(ValueError, match="unknown incident kind"):
        SimConfig(kinds=("meteor",))
    with pytest.raises(ValueError, match="at least one interval"):
        SimConfig(duration_s=10, interval_s=300)
    with pytest.raises(ValueError, match="seed"):
        SimConfig(seed=-1)


# ------------------------------------------------------------------ realism


def test_sizes_span_orders_of_magnitude():
    sim = simulate(SimConfig(customers=60, duration_s=DAY, interval_s=3600, seed=2, tiny_fraction=0.0))
    sizes = sorted(p.size for p in sim.customers)
    assert sizes[-1] / sizes[0] >= 1000
    assert sizes[0] >= 10 and sizes[-1] <= 2_000_000
    peak = defaultdict(int)
    for e in sim.events():
        peak[e["customer_id"]] = max(peak[e["customer_id"]], e["requests"])
    assert max(peak.values()) / max(1, min(peak.values())) >= 1000


def test_interval_scales_sizes():
    a = simulate(SimConfig(customers=3, duration_s=DAY, interval_s=60, seed=4, level_shifts=False))
    b = simulate(SimConfig(customers=3, duration_s=DAY, interval_s=600, seed=4, level_shifts=False))
    ra = sum(e["requests"] for e in a.events())
    rb = sum(e["requests"] for e in b.events())
    assert 0.9 < ra / rb < 1.1  # same traffic per day, whatever the interval


def test_daily_seasonality_in_each_customers_time_zone():
    sim = simulate(SimConfig(customers=12, duration_s=2 * DAY, interval_s=900, seed=8, tiny_fraction=0.0,
                             size_min=2000, holidays=False, growth=False, level_shifts=False, weekly=False,
                             incidents=0))
    by = defaultdict(lambda: defaultdict(list))
    for e in sim.events():
        by[e["customer_id"]][parse_ts(e["ts"])].append(e["requests"])
    tz_seen = set()
    for p in sim.customers:
        tz_seen.add(p.tz_offset_h)
        day, night = [], []
        for ts, (r,) in by[p.customer_id].items():
            local_h = ((ts + 450) / 3600 + p.tz_offset_h) % 24
            dist = min(abs(local_h - p.peak_hour), 24 - abs(local_h - p.peak_hour))
            (day if dist < 1.5 else night if dist > 10.5 else []).append(r)
        ratio = (sum(night) / len(night)) / (sum(day) / len(day))
        assert 0.12 < ratio < 0.55, (p.customer_id, ratio, p.trough)
    assert len(tz_seen) > 1


def test_weekly_seasonality_follows_the_weekend_factor():
    sim = simulate(SimConfig(customers=8, duration_s=14 * DAY, interval_s=3600, seed=9, tiny_fraction=0.0,
                             size_min=5000, holidays=False, growth=False, level_shifts=False, incidents=0))
    tot = defaultdict(lambda: [0, 0])  # weekday, weekend sums (per day)
    for e in sim.events():
        p = sim.profile(e["customer_id"])
        local_day = int((parse_ts(e["ts"]) + p.tz_offset_h * 3600) // DAY)
        weekend = (local_day + 3) % 7 >= 5
        tot[p.customer_id][weekend] += e["requests"]
    for p in sim.customers:
        wd, we = tot[p.customer_id]
        ratio = (we / 4) / (wd / 10)  # 14 days from a Monday: 10 weekdays, 4 weekend days
        assert ratio == pytest.approx(p.weekend_factor, abs=0.08)


def test_ratios_are_in_realistic_ranges():
    sim = simulate(SimConfig(customers=30, duration_s=DAY, interval_s=1800, seed=6, tiny_fraction=0.0,
                             size_min=1000, incidents=0))
    agg = defaultdict(lambda: defaultdict(int))
    for e in sim.events():
        a = agg[e["customer_id"]]
        for k in ("requests", "status_4xx", "status_5xx", "cache_hits"):
            a[k] += e[k]
        a["origin"] += sum(e.get("origin_errors", {}).values())
    for a in agg.values():
        assert 0.00003 < a["status_5xx"] / a["requests"] < 0.04
        assert 0.005 < a["status_4xx"] / a["requests"] < 0.12
        assert 0.4 < a["cache_hits"] / a["requests"] < 0.995
        assert a["origin"] <= a["status_5xx"]
    assert sum(a["origin"] for a in agg.values()) > 0


def test_level_shifts_and_holidays_are_recorded_not_labelled():
    sim = simulate(SimConfig(customers=40, duration_s=30 * DAY, interval_s=3600, seed=1, level_shift_prob=0.5,
                             incidents=10))
    assert sim.level_shifts and sim.holidays
    for s in sim.level_shifts:
        assert sim.start + warmup_seconds(sim.config) <= s.ts < sim.end
        assert not any(i.customer_id == s.customer_id and i.start <= s.ts < i.end for i in sim.incidents)
        assert s.factor < 0.75 or s.factor > 1.35
    for h in sim.holidays:
        assert 0.6 <= h.factor <= 0.8


# ------------------------------------------------------------------ incidents and labels


def test_labels_are_in_range_aligned_non_overlapping_and_after_warmup():
    for duration, warm in ((10 * DAY, 7 * DAY), (3 * DAY, 2 * DAY)):
        cfg = SimConfig(
            customers=10, duration_s=duration, interval_s=300, seed=4, incidents=30, kinds=ALL_KINDS
        )
        sim = simulate(cfg)
        assert warmup_seconds(cfg) == warm
        assert 20 <= len(sim.incidents) <= 30
        per = defaultdict(list)
        for inc in sim.incidents:
            assert inc.kind in ALL_KINDS
            assert sim.start + warm <= inc.start < inc.end <= sim.end
            assert (inc.start - sim.start) % 300 == 0 and (inc.end - sim.start) % 300 == 0
            assert inc.end - inc.start >= 1800
            per[inc.customer_id].append(inc)
        for incs in per.values():
            incs.sort(key=lambda i: i.start)
            for a, b in zip(incs, incs[1:]):
                assert a.end <= b.start


def test_default_mix_and_rate_mode():
    sim = simulate(SimConfig(customers=30, duration_s=14 * DAY, interval_s=3600, seed=3))
    kinds = sim.incidents_by_kind()
    assert set(kinds) <= set(INCIDENT_KINDS) and "error_creep" not in kinds
    assert 10 <= len(sim.incidents) <= 60  # ~1 per customer-week over the 7 days after warm-up


def _window_stats(events, cid, start, end):
    rows = [e for e in events.get(cid, ()) if start <= e["_ts"] < end]
    s = defaultdict(float)
    for e in rows:
        for k in ("requests", "status_4xx", "status_5xx", "cache_hits"):
            s[k] += e[k]
        s["origin"] += sum(e.get("origin_errors", {}).values())
        s["p99"] += e.get("latency_p99_ms", 0.0)
        s["p50"] += e.get("latency_p50_ms", 0.0)
    n = max(1, len(rows))
    r = max(1.0, s["requests"])
    return {"requests": s["requests"], "r5": s["status_5xx"] / r, "r4": s["status_4xx"] / r,
            "origin": s["origin"] / r, "cache": s["cache_hits"] / r, "p99": s["p99"] / n, "p50": s["p50"] / n,
            "rows": rows}


def test_each_incident_kind_changes_its_signal_against_the_prior_day():
    sim = simulate(SimConfig(customers=21, duration_s=3 * DAY, interval_s=300, seed=12, incidents=28,
                             kinds=ALL_KINDS, tiny_fraction=0.0, size_min=500, holidays=False, growth=False,
                             level_shifts=False))
    events = defaultdict(list)
    for e in sim.events():
        e["_ts"] = parse_ts(e["ts"])
        events[e["customer_id"]].append(e)
    checked = defaultdict(int)
    for inc in sim.incidents:
        prior_busy = any(
            o.customer_id == inc.customer_id and o.start < inc.end - DAY and inc.start - DAY < o.end
            for o in sim.incidents
        )
        if prior_busy:
            continue
        now = _window_stats(events, inc.customer_id, inc.start, inc.end)
        before = _window_stats(events, inc.customer_id, inc.start - DAY, inc.end - DAY)
        k, msg = inc.kind, (inc, now, before)
        if k == "origin_outage":
            assert now["origin"] > 2 * before["origin"] + 0.002, msg
            assert now["r5"] > before["r5"], msg
            codes = defaultdict(int)
            for e in now["rows"]:
                for c, v in e.get("origin_errors", {}).items():
                    codes[c] += v
            assert max(codes, key=codes.get) in ("521", "522", "525", "526"), msg
            assert now["p99"] > 1.5 * before["p99"], msg
        elif k == "partial_5xx":
            assert now["r5"] > max(2 * before["r5"], before["r5"] + 0.015), msg
            assert now["origin"] > before["origin"] + 0.01, msg
        elif k == "latency":
            assert now["p99"] > 2 * before["p99"] and now["p50"] > 1.3 * before["p50"], msg
        elif k == "traffic_drop":
            assert now["requests"] < 0.45 * before["requests"], msg
        elif k == "traffic_surge":
            assert now["requests"] > 2.5 * before["requests"], msg
        elif k == "cache_collapse":
            assert now["cache"] < 0.6 * before["cache"], msg
        elif k == "error_creep":
            rows = now["rows"]
            q = max(1, len(rows) // 4)
            first = sum(e["status_5xx"] for e in rows[:q]) / sum(e["requests"] for e in rows[:q])
            last = sum(e["status_5xx"] for e in rows[-q:]) / sum(e["requests"] for e in rows[-q:])
            assert last > 3 * first and last > 3 * before["r5"], msg
        checked[k] += 1
    assert set(checked) == set(ALL_KINDS), checked


# ------------------------------------------------------------------ files


def test_labels_round_trip_jsonl(tmp_path):
    sim = simulate(small(duration_s=3 * DAY, incidents=5))
    path = tmp_path / "labels.jsonl"
    assert write_labels(sim.incidents, path) == len(sim.incidents) == 5
    assert read_labels(path) == sim.incidents
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"customer_id", "start", "end", "kind"} and first["start"].endswith("Z")


def test_labels_read_csv_with_rfc3339_or_epoch_and_optional_kind(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("customer_id,start,end,kind\n"
                 "acme,2026-01-05T10:00:00Z,2026-01-05T10:30:00Z,latency\n"
                 "beta,1767607200,1767609000.0,\n\n")
    assert read_labels(p) == [Incident("acme", 1767607200.0, 1767609000.0, "latency"),
                              Incident("beta", 1767607200.0, 1767609000.0, "unknown")]
    q = tmp_path / "nokind.csv"
    q.write_text("customer_id,start,end\nacme,2026-01-05T10:00:00+01:00,2026-01-05T10:30:00+01:00\n")
    assert read_labels(q) == [Incident("acme", 1767603600.0, 1767605400.0, "unknown")]


def test_bad_labels_name_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,start,end\nacme,2026-01-05T10:00:00Z,2026-01-05T09:00:00Z\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: end .* must be after start"):
        read_labels(p)
    j = tmp_path / "bad.jsonl"
    j.write_text('{"customer_id":"a","start":"2026-01-05T10:00:00Z","end":"2026-01-05T11:00:00Z"}\n{"customer_id":"a"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: start and end are required"):
        read_labels(j)
    h = tmp_path / "header.csv"
    h.write_text("id,from,to\nacme,1,2\n")
    with pytest.raises(ValueError, match="missing customer_id, start, end"):
        read_labels(h)


def test_write_jsonl_plain_and_gzip(tmp_path):
    sim = simulate(small(customers=3, duration_s=3 * 3600))
    evs = list(sim.events())
    for name in ("e.jsonl", "e.jsonl.gz"):
        p = tmp_path / name
        assert write_jsonl(sim.events(), p) == len(evs) == 3 * 36
        opener = gzip.open if name.endswith(".gz") else open
        with opener(p, "rt") as f:
            assert [json.loads(line) for line in f] == evs


# ------------------------------------------------------------------ CLI


def test_cli_writes_events_and_labels(tmp_path):
    from click.testing import CliRunner

    from streams.commands.simulate import simulate as cmd

    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(
        cmd,
        [
            "--customers",
            "3",
            "--duration",
            "3d",
            "--interval",
            "600",
            "--incidents",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 3 * 3 * 144
    for line in lines[:50]:
        parse_event(json.loads(line))
    labels = read_labels(tmp_path / "sim.labels.jsonl")
    assert len(labels) == 2
    assert "1,296 events" in res.output and "2 incidents" in res.output and "sim.labels.jsonl" in res.output
    # the same options reproduce the same file
    out2 = tmp_path / "again.jsonl"
    res2 = CliRunner().invoke(
        cmd,
        [
            "--customers",
            "3",
            "--duration",
            "3d",
            "--interval",
            "600",
            "--incidents",
            "2",
            "--seed",
            "5",
            "--out",
            str(out2),
            "--labels-out",
            str(tmp_path / "l2.jsonl"),
            "-q",
        ],
    )
    assert res2.exit_code == 0, res2.output
    assert out2.read_text() == out.read_text()
    assert read_labels(tmp_path / "l2.jsonl") == labels


def test_cli_errors_are_one_line_exit_1(tmp_path):
    from click.testing import CliRunner

    from streams.commands.simulate import simulate as cmd

    for args, text in ((["--kinds", "meteor", "--out", str(tmp_path / "x.jsonl")], "unknown incident kind"),
                       (["--duration", "2x", "--out", str(tmp_path / "x.jsonl")], "invalid duration"),
                       (["--customers", "2"], "exactly one of --out"),
                       (["--days", "1", "--duration", "1d", "--out", "x"], "either --days or --duration")):
        res = CliRunner().invoke(cmd, args)
        assert res.exit_code == 1, (args, res.output)
        assert text in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_cli_end_now_ends_at_the_current_interval(tmp_path):
    from click.testing import CliRunner

    from streams.commands.simulate import simulate as cmd

    out = tmp_path / "now.jsonl"
    res = CliRunner().invoke(
        cmd, ["--customers", "1", "--duration", "2h", "--end-now", "--out", str(out), "-q"]
    )
    assert res.exit_code == 0, res.output
    last = parse_ts(json.loads(out.read_text().splitlines()[-1])["ts"])
    now = time.time()
    assert now - 2 * 300 <= last + 300 <= now + 1
    assert math.isclose(last % 300, 0)
