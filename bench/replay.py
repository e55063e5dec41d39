"""``python -m bench replay``: ``lookout replay``, events/s and peak RSS for N simulated events.

Generates N events with the simulator into a temporary JSONL file (or reuses --file), then
runs ``lookout replay FILE --no-report -q --json`` in a child process (``--report``: with the
report, labelled customers traced in the same pass) and reports:

* events/s of the replay loop (from summary.json: records / replay seconds, single core),
* wall time of the whole command (imports, writing outputs included),
* peak RSS of the child (``ru_maxrss``) -- with ``--scaling`` also for N/4 events, to show
  memory does not grow with the file length (it is bounded by the number of customers).

``--profile`` runs a cProfile of the replay loop over the first ``--profile-events`` records
in this process and prints where the time goes (top functions by own time, and a
breakdown: JSON decode, contract validation, models, alerting, replay/processor overhead).

Examples::

    .venv/bin/python -m bench replay                      # 1,000,000 events, 200 customers
    .venv/bin/python -m bench replay --events 200000 --profile
    .venv/bin/python -m bench replay --events 1000000 --scaling
    .venv/bin/python -m bench replay --events 200000 --report
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(path: Path, events: int, customers: int, interval_s: int, seed: int) -> int:
    """Write the simulated events to ``path`` and their incidents to ``labels.jsonl`` beside it."""
    from detectors.synthetic import SimConfig, simulate
    from streams.offline.simfiles import write_jsonl, write_labels

    n_int = max(2, events // customers)
    sim = simulate(
        SimConfig(customers=customers, duration_s=n_int * interval_s, interval_s=interval_s, seed=seed)
    )
    n = write_jsonl(sim.events(), path)
    write_labels(sim.incidents, path.with_name("labels.jsonl"))
    return n


def run_child(path: Path, out: Path, extra: list[str]) -> dict:
    lookout = Path(sys.executable).with_name("lookout")
    cmd = [
        str(lookout) if lookout.exists() else sys.executable,
        *([] if lookout.exists() else ["-m", "streams.cli"]),
        "replay",
        str(path),
        "--out",
        str(out),
        "-q",
        "--json",
        *extra,
    ]
    if "--labels" not in extra:
        cmd.append("--no-report")
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"replay failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    s = json.loads(proc.stdout)
    return {
        "records": s["records"],
        "replay_s": s["seconds"],
        "events_per_s": s["events_per_s"],
        "wall_s": wall,
        "peak_rss_mb": max(peak_kb, before) / 1024,
        "customers": s["customers"],
        "alerts": s["alerts"]["alerts"],
    }


def head(path: Path, n: int, dest: Path) -> None:
    with open(path, "rb") as f, open(dest, "wb") as g:
        for i, line in enumerate(f):
            if i >= n:
                break
            g.write(line)


def profile(path: Path, n: int, top: int) -> None:
    from detectors.config import DetectorConfig
    from streams.offline import open_source, run_replay

    sample = path.with_suffix(".head.jsonl")
    head(path, n, sample)
    prof = cProfile.Profile()
    src = open_source(str(sample))
    prof.enable()
    res = run_replay(src, DetectorConfig())
    prof.disable()
    sample.unlink()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # own time
    groups = {
        "json decode (orjson / json)": 0.0,
        "contract validation (detectors/events.py)": 0.0,
        "signal derivation (detectors/signals.py)": 0.0,
        "models (detectors/univariate.py, stats.py)": 0.0,
        "alerting (detectors/alerting.py)": 0.0,
        "engine loop (detectors/engine.py)": 0.0,
        "processor + codecs (streams/pipeline/processor.py, codecs.py)": 0.0,
        "replay loop + file reading (streams/offline/)": 0.0,
        "builtins (min/max/isinstance/math..., mostly called by the models)": 0.0,
        "other": 0.0,
    }
    for (fname, _line, func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        f = fname.replace("\\", "/")
        if (func in ("loads", "decode", "raw_decode") and ("json" in f or f == "~")) or "orjson" in func:
            g = "json decode (orjson / json)"
        elif f.endswith("detectors/events.py"):
            g = "contract validation (detectors/events.py)"
        elif f.endswith("detectors/signals.py"):
            g = "signal derivation (detectors/signals.py)"
        elif f.endswith(("detectors/univariate.py", "detectors/stats.py", "detectors/base.py")):
            g = "models (detectors/univariate.py, stats.py)"
        elif f.endswith("detectors/alerting.py"):
            g = "alerting (detectors/alerting.py)"
        elif f.endswith("detectors/engine.py"):
            g = "engine loop (detectors/engine.py)"
        elif f.endswith(("streams/pipeline/processor.py", "streams/pipeline/codecs.py")):
            g = "processor + codecs (streams/pipeline/processor.py, codecs.py)"
        elif "streams/offline/" in f:
            g = "replay loop + file reading (streams/offline/)"
        elif f == "~":
            g = "builtins (min/max/isinstance/math..., mostly called by the models)"
        else:
            g = "other"
        groups[g] += tt
    print(
        f"\ncProfile of {res.records:,} records ({res.seconds:.2f} s under the profiler; own time by area):"
    )
    for g, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {tt / total:6.1%}  {tt:7.2f} s  {g}")
    print(f"\ntop {top} functions by own time:")
    st.sort_stats("tottime").print_stats(top)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--interval", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--file", type=Path, help="replay this JSONL file instead of generating one")
    ap.add_argument("--config", help="detector config for the replay")
    ap.add_argument(
        "--scaling", action="store_true", help="also run N/4 events: peak RSS should not grow with N"
    )
    ap.add_argument("--report", action="store_true",
                    help="replay with the HTML report (labelled customers traced, plots): needs labels")
    ap.add_argument("--labels", type=Path, help="labels for --report (default: labels.jsonl beside the file)")
    ap.add_argument("--profile", action="store_true", help="cProfile the replay loop (in-process)")
    ap.add_argument("--profile-events", type=int, default=100_000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lookout-bench-"))
    path = args.file
    if path is None:
        path = tmp / "events.jsonl"
        t0 = time.perf_counter()
        n = generate(path, args.events, args.customers, args.interval, args.seed)
        print(f"generated {n:,} events ({args.customers} customers, {args.interval} s interval, "
              f"{path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s -> {path}")
    extra = ["--config", args.config] if args.config else []
    if args.report:
        labels = args.labels or path.with_name("labels.jsonl")
        if not labels.exists():
            raise SystemExit(f"--report needs labels: {labels} does not exist (pass --labels)")
        extra += ["--labels", str(labels)]
    runs = []
    if args.scaling:
        quarter = tmp / "quarter.jsonl"
        with open(path, "rb") as f:
            total = sum(1 for _ in f)
        head(path, total // 4, quarter)
        runs.append(("N/4", quarter))
    runs.append(("N", path))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores visible; replay is single-process")
    for name, p in runs:
        r = run_child(p, tmp / f"out-{name.replace('/', '_')}", extra)
        print(
            f"{name:>4}: {r['records']:>10,} records  {r['events_per_s']:>9,.0f} events/s "
            f"(replay loop {r['replay_s']:.1f} s, "
            f"wall {r['wall_s']:.1f} s)  peak RSS {r['peak_rss_mb']:.0f} MB  "
            f"{r['customers']} customers, {r['alerts']} alerts"
        )
    if args.profile:
        profile(path, args.profile_events, args.top)
    if not args.keep and args.file is None:
        for p in sorted(tmp.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
