"""Lookout's benchmarks, one entry point: ``python -m bench [BENCHMARK] [OPTIONS]`` (see __main__).

Without a name, the full run (:mod:`bench.suite`); with one, the benchmark of :data:`BENCHMARKS`.
Each prints its numbers; none is a test (tests never time anything).
"""

#: ``python -m bench NAME`` -> (module with ``main(argv)``, what it measures)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "engine": ("bench.engine", "the detection engine alone: events/s per core, memory per customer"),
    "replay": ("bench.replay", "`lookout replay` over N simulated events: events/s, peak RSS (--report, "
               "--profile)"),
    "decode": ("bench.decode", "the decode path stage by stage: CPU ns per valid event"),
    "state": ("bench.state", "the state format: bytes and microseconds per customer"),
    "state-sync": ("bench.state_sync", "snapshots and restores of 100,000 customers on a real broker"),
    "worker": ("bench.worker", "the live worker's events/s on a real broker"),
    "rebuild": ("bench.rebuild", "a partition rebuilt from the input's history (--rebuild-from): events/s"),
    "parent-latency": ("bench.parent_latency",
                       "produce -> parent incident latency of the correlator, live data on a real broker"),
}


def listing() -> str:
    """The benchmarks as ``--help`` lists them."""
    return "\n".join(f"  {name:<14} {what}" for name, (_module, what) in BENCHMARKS.items())
