"""The incident-dense fleet of ``python -m bench``: warm models, the evaluation's incident density.

The throughput fleet starts cold and runs five hours of events: every series is still warming
up, so almost no event needs the alert lifecycle (0.76 % came back to Python). A fleet in
production is warm and has incidents open. This one has the incident density of the simulator's
evaluation (``scripts/evaluate_detectors.py``: held-out seed 2027, one labelled incident per
customer-week of every kind, half the customers small), the bench's 2,000 customers: a week of
history is replayed into an engine whose state the worker starts from (``--initial-state``),
and the events that follow are what the worker is measured on. The fleet is simulated once and
cached (``~/.cache/lookout/bench``): simulating a week of 2,000 customers takes minutes.

    python -m bench.dense --events 120000      # build (or show) the cached fleet, print its figures
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: what the evaluation simulates (scripts/evaluate_detectors.py): its held-out seed and incident rate
SEED = 2027
INCIDENTS_PER_CUSTOMER_WEEK = 1.0
CUSTOMERS = 2000
#: history replayed before the measured events (incidents start after the simulator's 2-day warm-up):
#: a week and half a day, so the measured events are a Monday afternoon's, the hours when the most
#: events need the alert lifecycle (at night ~1 % of them, in the afternoon 3-4 %)
HISTORY_DAYS = 7.5
INTERVAL_S = 300
#: events per engine call when the share of events reaching Python is measured (the worker's chunks)
CHUNK = 5000
VERSION = 2  # of the cached files' layout


@dataclass
class DenseFleet:
    state: Path  # the engine's state after the history (``lookout worker --initial-state``)
    events: Path  # the measured events, JSON lines in event-time order
    meta: dict  # n, python share, incidents...


def cache_dir() -> Path:
    from streams.settings import Settings

    return Settings().kafka_home / "bench"


def prepare(n_events: int, progress: Callable[[str], object] = print,
            root: Path | None = None) -> DenseFleet:
    """The fleet for ``n_events`` measured events: from the cache, or simulated now."""
    d = (root or cache_dir()) / f"dense-v{VERSION}-c{CUSTOMERS}-s{SEED}-h{HISTORY_DAYS}-n{n_events}"
    fleet = DenseFleet(d / "state.lookout", d / "events.jsonl", {})
    meta = d / "meta.json"
    if meta.exists() and fleet.state.exists() and fleet.events.exists():
        fleet.meta = json.loads(meta.read_text())
        return fleet
    d.mkdir(parents=True, exist_ok=True)
    progress(f"simulating the incident-dense fleet once ({CUSTOMERS:,} customers, {HISTORY_DAYS} days of "
             f"history; cached in {d})")
    fleet.meta = _build(fleet, n_events)
    meta.write_text(json.dumps(fleet.meta, indent=2) + "\n")
    return fleet


def _build(fleet: DenseFleet, n_events: int) -> dict:
    from detectors.engine import Engine
    from detectors.events import parse_event
    from detectors.synthetic import ALL_KINDS, SimConfig, simulate

    t0 = time.perf_counter()
    span_s = -(-n_events // CUSTOMERS) * INTERVAL_S
    sim = simulate(SimConfig(customers=CUSTOMERS, duration_s=int(HISTORY_DAYS * 86400) + span_s,
                             interval_s=INTERVAL_S, seed=SEED,
                             incidents_per_customer_week=INCIDENTS_PER_CUSTOMER_WEEK, kinds=ALL_KINDS))
    split = sim.config.start + HISTORY_DAYS * 86400
    engine = Engine()
    batch, measured = [], []
    for ev in sim.events():
        e = parse_event(ev)
        if e.ts >= split:
            if len(measured) < n_events:
                measured.append(ev)
            continue
        batch.append(e)
        if len(batch) >= 4096:
            engine.process_many(batch)
            batch = []
    engine.process_many(batch)
    open_at_start = len(engine.open_incidents())
    fleet.state.write_bytes(engine.dump_all())
    with open(fleet.events, "w") as f:
        for ev in measured:
            f.write(json.dumps(ev, separators=(",", ":")) + "\n")
    share = python_share(engine, measured)
    end = split + span_s
    return {"customers": CUSTOMERS, "seed": SEED,
            "incidents_per_customer_week": INCIDENTS_PER_CUSTOMER_WEEK, "history_days": HISTORY_DAYS,
            "events": len(measured), "python_share": share,
            "incidents": len(sim.incidents),
            "incidents_during": sum(1 for i in sim.incidents if i.start < end and i.end > split),
            "open_at_start": open_at_start,
            "seconds_to_build": round(time.perf_counter() - t0, 1)}


def python_share(engine, events: list[dict]) -> float:
    """Share of ``events`` (run through ``engine`` in chunks) that came back to Python."""
    from detectors.events import parse_event

    before = engine.python_events
    for i in range(0, len(events), CHUNK):
        engine.process_many([parse_event(ev) for ev in events[i:i + CHUNK]])
    return (engine.python_events - before) / max(1, len(events))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dense", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=120_000)
    a = p.parse_args()
    fleet = prepare(a.events)
    files = {"state_file": str(fleet.state), "events_file": str(fleet.events)}
    print(json.dumps({**files, **fleet.meta}, indent=2))


if __name__ == "__main__":
    main()
